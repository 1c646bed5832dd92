package store

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// RedisOption configures [NewRedis]: [WithPrefix], [WithMaxKeyBytes],
// [WithMaxValueBytes], [WithInvalidationChannel] and [WithBatchedGets].
type RedisOption interface{ applyRedis(*redisConfig) }

// MemoryOption configures [NewMemory]: [WithMaxKeyBytes],
// [WithMaxValueBytes] and [WithClock].
type MemoryOption interface{ applyMemory(*memoryConfig) }

// TieredOption configures [NewTiered]: [WithCoherence], [WithMaxBackfills],
// [WithLogger], [WithClock] and [WithBroadcast].
type TieredOption interface{ applyTiered(*tieredConfig) }

// GuardOption configures [NewGuard]: [WithName], [WithOpTimeout],
// [WithFailureThreshold], [WithOpenPeriod], [WithHalfOpenRequests],
// [WithMaxInFlight], [WithOnStateChange], [WithObserver], [WithLogger] and
// [WithClock]. [NodeGuards.Bound] takes GuardOptions too, and returns an
// error for the three that tune when its breaker opens, which never
// happens. Every GuardOption is also a [NodeGuardsOption]: [NewNodeGuards]
// applies it to each node's guard.
type GuardOption interface {
	NodeGuardsOption
	applyGuard(*guardConfig)
}

// NodeGuardsOption configures [NewNodeGuards]: every [GuardOption], for the
// node guards, and [WithPrefix], [WithMaxKeyBytes] and [WithMaxValueBytes],
// for the [Redis] store through which a node guard's own Store methods reach
// its node.
type NodeGuardsOption interface{ applyNodeGuards(*nodeGuardsConfig) }

// HookOption configures [NewHook]: [WithCacheMode].
type HookOption interface{ applyHook(*hookConfig) }

// errNilOption is the error of a constructor given a nil option.
func errNilOption(constructor string) error {
	return fmt.Errorf("store: %s: nil Option", constructor)
}

// invalid wraps the validation errors of a constructor's options, or
// returns nil when there are none.
func invalid(errs []error) error {
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: invalid options: %w", err)
	}
	return nil
}

// LoggerOption sets the logger of the constructors that log: [NewGuard] (and
// so [NewNodeGuards] and [NodeGuards.Bound]: breaker state changes),
// [NewTiered] (the remote store's availability, dropped backfills),
// [NewPendingDeletes] (dropped deletes) and [NewBroadcast] (lost
// subscriptions). It is a [GuardOption], a [NodeGuardsOption], a
// [TieredOption], a [PendingOption] and a [BroadcastOption]; [Redis],
// [Memory] and [Hook] do not log. Build it with [WithLogger].
type LoggerOption struct{ logger *slog.Logger }

// WithLogger sets the logger for state changes and dropped work. Default:
// slog.Default() (a nil logger also means the default). Accepted by
// [NewGuard], [NodeGuards.Bound], [NewNodeGuards], [NewTiered],
// [NewPendingDeletes] and [NewBroadcast].
func WithLogger(l *slog.Logger) LoggerOption { return LoggerOption{l} }

func (o LoggerOption) applyGuard(c *guardConfig)           { c.logger = o.logger }
func (o LoggerOption) applyNodeGuards(c *nodeGuardsConfig) { o.applyGuard(&c.guard) }
func (o LoggerOption) applyTiered(c *tieredConfig)         { c.logger = o.logger }

// ClockOption sets the time source of the constructors that read one:
// [NewMemory], [NewTiered] and [NewGuard] (and so [NewNodeGuards] and
// [NodeGuards.Bound]). It is a [MemoryOption], a [TieredOption], a
// [GuardOption] and a [NodeGuardsOption]. Build it with [WithClock]; the zero
// value sets a nil clock, which the constructors reject.
type ClockOption struct{ now func() time.Time }

// WithClock sets the time source, for tests. Default: time.Now. A nil clock
// is an error. Accepted by [NewMemory] (expiry follows it, so a test can
// move it on), [NewTiered] (it times the coherence window and the state
// logging) and [NewGuard], [NewNodeGuards] and [NodeGuards.Bound] (for
// [Guard.RetryAfter] and [BreakerStats].Since; the breaker itself keeps real
// time).
func WithClock(now func() time.Time) ClockOption { return ClockOption{now} }

func (o ClockOption) applyMemory(c *memoryConfig)         { c.now = o.now }
func (o ClockOption) applyTiered(c *tieredConfig)         { c.now, c.clockSet = o.now, true }
func (o ClockOption) applyGuard(c *guardConfig)           { c.now = o.now }
func (o ClockOption) applyNodeGuards(c *nodeGuardsConfig) { o.applyGuard(&c.guard) }

// limits are the key and value size limits of the stores that hold bytes.
type limits struct {
	maxKeyBytes   int
	maxValueBytes int
}

func defaultLimits() limits {
	return limits{maxKeyBytes: DefaultMaxKeyBytes, maxValueBytes: DefaultMaxValueBytes}
}

func (l limits) validate() []error {
	var errs []error
	if l.maxKeyBytes <= 0 {
		errs = append(errs, fmt.Errorf("max key bytes %d is not positive", l.maxKeyBytes))
	}
	if l.maxValueBytes <= 0 {
		errs = append(errs, fmt.Errorf("max value bytes %d is not positive", l.maxValueBytes))
	}
	return errs
}

// LimitOption sets a size limit of the stores that hold bytes: [NewRedis],
// [NewMemory], and [NewNodeGuards] for its node stores. It is a
// [RedisOption], a [MemoryOption] and a [NodeGuardsOption]. Build it with
// [WithMaxKeyBytes] or [WithMaxValueBytes]; the zero value sets a key limit
// of 0, which the constructors reject.
type LimitOption struct {
	value bool // the value limit, else the key limit
	n     int
}

// WithMaxKeyBytes limits a key's length in bytes, not counting a [Redis]
// store's prefix; a longer key is [ErrInvalidKey]. It must be positive.
// Default: 1024 ([DefaultMaxKeyBytes]). Accepted by [NewRedis], [NewMemory]
// and [NewNodeGuards].
func WithMaxKeyBytes(n int) LimitOption { return LimitOption{n: n} }

// WithMaxValueBytes limits a value's size in bytes; a larger value is
// [ErrValueTooLarge]. It must be positive. Default: 2 MiB
// ([DefaultMaxValueBytes]). Accepted by [NewRedis], [NewMemory] and
// [NewNodeGuards].
func WithMaxValueBytes(n int) LimitOption { return LimitOption{value: true, n: n} }

func (o LimitOption) apply(l *limits) {
	if o.value {
		l.maxValueBytes = o.n
	} else {
		l.maxKeyBytes = o.n
	}
}

func (o LimitOption) applyRedis(c *redisConfig)           { o.apply(&c.limits) }
func (o LimitOption) applyMemory(c *memoryConfig)         { o.apply(&c.limits) }
func (o LimitOption) applyNodeGuards(c *nodeGuardsConfig) { o.apply(&c.redis.limits) }

const (
	// DefaultOpTimeout bounds every guarded call: far above a healthy Redis
	// round trip, far below a client's patience.
	DefaultOpTimeout = 100 * time.Millisecond
	// DefaultFailureThreshold is how many consecutive outage errors trip a
	// [Guard]'s breaker (as the seed service's pybreaker).
	DefaultFailureThreshold = 5
	// DefaultOpenPeriod is how long a tripped breaker stays open before it
	// lets a probe through: Redis back means cache back within seconds.
	DefaultOpenPeriod = 5 * time.Second
	// DefaultMaxInFlight bounds the calls a [Guard] lets run at once; calls
	// that outlived their op timeout still count until the backend answers,
	// so a hung backend cannot pile up goroutines.
	DefaultMaxInFlight = 1024
	// DefaultCoherence is how long a [Tiered] store trusts its in-process
	// copy before asking the shared tier again.
	DefaultCoherence = 2 * time.Second
	// DefaultMaxBackfills bounds the write-backs a [Tiered] store runs at
	// once after the shared tier comes back empty.
	DefaultMaxBackfills = 16
	// DefaultPrefix namespaces the keys a [Redis] store writes.
	DefaultPrefix = "failsoft:"
)
