package store

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// guardConfig holds the settings of a [Guard].
type guardConfig struct {
	name             string
	opTimeout        time.Duration
	failureThreshold uint32
	openPeriod       time.Duration
	halfOpenRequests uint32
	maxInFlight      int
	onStateChange    func(name string, from, to State)
	observer         func(name, op string, took time.Duration, class Class)
	logger           *slog.Logger
	now              func() time.Time

	// breakerOption names the last option given that tunes when the breaker
	// opens or closes, for Bound, whose breaker never opens.
	breakerOption string
}

func defaultGuardConfig() guardConfig {
	return guardConfig{
		name:             "redis",
		opTimeout:        DefaultOpTimeout,
		failureThreshold: DefaultFailureThreshold,
		openPeriod:       DefaultOpenPeriod,
		halfOpenRequests: 1,
		maxInFlight:      DefaultMaxInFlight,
		now:              time.Now,
	}
}

// newGuardConfig applies opts over the defaults and validates the result.
func newGuardConfig(constructor string, opts []GuardOption) (guardConfig, error) {
	c := defaultGuardConfig()
	for _, opt := range opts {
		if opt == nil {
			return c, errNilOption(constructor)
		}
		opt.applyGuard(&c)
	}
	return c, c.validate()
}

// validate fills in the default logger and checks the settings.
func (c *guardConfig) validate() error {
	if c.logger == nil {
		c.logger = slog.Default()
	}
	var errs []error
	if c.now == nil {
		errs = append(errs, errors.New("clock is nil"))
	}
	if c.opTimeout <= 0 {
		errs = append(errs, fmt.Errorf("op timeout %v is not positive", c.opTimeout))
	}
	if c.failureThreshold == 0 {
		errs = append(errs, errors.New("failure threshold is 0"))
	}
	if c.openPeriod <= 0 {
		errs = append(errs, fmt.Errorf("open period %v is not positive", c.openPeriod))
	}
	if c.halfOpenRequests == 0 {
		errs = append(errs, errors.New("half-open requests is 0"))
	}
	if c.maxInFlight <= 0 {
		errs = append(errs, fmt.Errorf("max in flight %d is not positive", c.maxInFlight))
	}
	return invalid(errs)
}

// nodeGuardsConfig holds the settings of a [NodeGuards]: those of each node
// guard, and those of the Redis store through which a node guard's own Store
// methods reach its node.
type nodeGuardsConfig struct {
	guard guardConfig
	redis redisConfig
}

// newNodeGuardsConfig applies opts over the defaults (a node op timeout of
// [DefaultNodeOpTimeout]) and validates the result.
func newNodeGuardsConfig(opts []NodeGuardsOption) (nodeGuardsConfig, error) {
	c := nodeGuardsConfig{guard: defaultGuardConfig(), redis: defaultRedisConfig()}
	c.guard.opTimeout = DefaultNodeOpTimeout
	for _, opt := range opts {
		if opt == nil {
			return c, errNilOption("NewNodeGuards")
		}
		opt.applyNodeGuards(&c)
	}
	if err := c.guard.validate(); err != nil {
		return c, err
	}
	return c, c.redis.validate()
}

// guardOption is an option read only by the guard constructors.
type guardOption func(*guardConfig)

func (f guardOption) applyGuard(c *guardConfig)           { f(c) }
func (f guardOption) applyNodeGuards(c *nodeGuardsConfig) { f(&c.guard) }

// WithName names a guard in logs, errors, health checks and metrics; a node
// guard of [NewNodeGuards] is named "<name>@<host:port>". Default: "redis".
func WithName(name string) GuardOption {
	return guardOption(func(c *guardConfig) { c.name = name })
}

// WithOpTimeout bounds every guarded call and every command of a hook over
// the guard. It must be positive. Default: 100 ms ([DefaultOpTimeout]) for
// [NewGuard] and [NodeGuards.Bound], 50 ms ([DefaultNodeOpTimeout]) for the
// node guards of [NewNodeGuards].
func WithOpTimeout(d time.Duration) GuardOption {
	return guardOption(func(c *guardConfig) { c.opTimeout = d })
}

// WithFailureThreshold sets how many consecutive outage errors trip the
// breaker open. It must be positive. Default: 5
// ([DefaultFailureThreshold]). [NodeGuards.Bound] rejects it: its breaker
// never opens.
func WithFailureThreshold(n uint32) GuardOption {
	return guardOption(func(c *guardConfig) { c.failureThreshold, c.breakerOption = n, "WithFailureThreshold" })
}

// WithOpenPeriod sets how long a tripped breaker stays open before it lets
// a half-open probe through. It must be positive. Default: 5 s
// ([DefaultOpenPeriod]). [NodeGuards.Bound] rejects it: its breaker never
// opens.
func WithOpenPeriod(d time.Duration) GuardOption {
	return guardOption(func(c *guardConfig) { c.openPeriod, c.breakerOption = d, "WithOpenPeriod" })
}

// WithHalfOpenRequests sets how many probes a half-open breaker lets
// through; that many consecutive successes close it. It must be positive.
// Default: 1. [NodeGuards.Bound] rejects it: its breaker never opens.
func WithHalfOpenRequests(n uint32) GuardOption {
	return guardOption(func(c *guardConfig) { c.halfOpenRequests, c.breakerOption = n, "WithHalfOpenRequests" })
}

// WithMaxInFlight bounds the guarded calls running at once, including calls
// that outlived their op timeout and still wait on a hung backend; beyond it
// calls fail at once with [ErrUnavailable]. A [Hook]'s commands do not count.
// It must be positive. Default: 1024 ([DefaultMaxInFlight]).
func WithMaxInFlight(n int) GuardOption {
	return guardOption(func(c *guardConfig) { c.maxInFlight = n })
}

// WithOnStateChange registers fn to be called after each breaker state change
// of a [Guard], outside the breaker's lock, once per change; metrics use it.
// fn must not block. Default: none (nil means none).
func WithOnStateChange(fn func(name string, from, to State)) GuardOption {
	return guardOption(func(c *guardConfig) { c.onStateChange = fn })
}

// WithObserver registers fn to be called after every guarded call with the
// guard's name, the operation ("get", "set", "delete", "ping", or the Redis
// command name for a [Hook] over the guard), how long the caller waited and
// the class of the result; metrics use it. fn must be fast and must not
// block. Default: none (nil means none).
func WithObserver(fn func(name, op string, took time.Duration, class Class)) GuardOption {
	return guardOption(func(c *guardConfig) { c.observer = fn })
}
