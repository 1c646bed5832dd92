package store

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Option configures the constructors of this package: [NewRedis],
// [NewMemory], [NewTiered], [NewGuard] and [NewHook]. Each constructor's doc
// lists the options it reads; it ignores the others, so one option list can
// be shared. Options are validated by the constructor, which returns an
// error for a bad value.
type Option func(*options)

// options is the union of every constructor's settings.
type options struct {
	logger *slog.Logger
	now    func() time.Time

	// Redis
	prefix        string
	maxKeyBytes   int
	maxValueBytes int

	// Guard
	name             string
	opTimeout        time.Duration
	failureThreshold uint32
	openPeriod       time.Duration
	halfOpenRequests uint32
	maxInFlight      int
	onStateChange    func(name string, from, to State)
	observer         func(name, op string, took time.Duration, class Class)

	// Tiered
	coherence    time.Duration
	maxBackfills int

	// Hook
	cacheMode bool
}

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

func defaultOptions() options {
	return options{
		now:              time.Now,
		prefix:           DefaultPrefix,
		maxKeyBytes:      DefaultMaxKeyBytes,
		maxValueBytes:    DefaultMaxValueBytes,
		name:             "redis",
		opTimeout:        DefaultOpTimeout,
		failureThreshold: DefaultFailureThreshold,
		openPeriod:       DefaultOpenPeriod,
		halfOpenRequests: 1,
		maxInFlight:      DefaultMaxInFlight,
		coherence:        DefaultCoherence,
		maxBackfills:     DefaultMaxBackfills,
	}
}

// buildOptions applies opts over the defaults and validates the result.
func buildOptions(opts []Option) (options, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if opt == nil {
			return o, errors.New("store: nil Option")
		}
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	var errs []error
	if o.now == nil {
		errs = append(errs, errors.New("clock is nil"))
	}
	if o.maxKeyBytes <= 0 {
		errs = append(errs, fmt.Errorf("max key bytes %d is not positive", o.maxKeyBytes))
	}
	if o.maxValueBytes <= 0 {
		errs = append(errs, fmt.Errorf("max value bytes %d is not positive", o.maxValueBytes))
	}
	if o.opTimeout <= 0 {
		errs = append(errs, fmt.Errorf("op timeout %v is not positive", o.opTimeout))
	}
	if o.failureThreshold == 0 {
		errs = append(errs, errors.New("failure threshold is 0"))
	}
	if o.openPeriod <= 0 {
		errs = append(errs, fmt.Errorf("open period %v is not positive", o.openPeriod))
	}
	if o.halfOpenRequests == 0 {
		errs = append(errs, errors.New("half-open requests is 0"))
	}
	if o.maxInFlight <= 0 {
		errs = append(errs, fmt.Errorf("max in flight %d is not positive", o.maxInFlight))
	}
	if o.coherence < 0 {
		errs = append(errs, fmt.Errorf("coherence window %v is negative", o.coherence))
	}
	if o.maxBackfills <= 0 {
		errs = append(errs, fmt.Errorf("max backfills %d is not positive", o.maxBackfills))
	}
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("store: invalid options: %w", err)
	}
	return o, nil
}

// WithLogger sets the logger for state changes and dropped work.
// Default: slog.Default(). Read by NewGuard, NewTiered and NewHook.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithClock sets the time source, for tests. Default: time.Now. Read by
// NewMemory, NewTiered and NewGuard (for the open-period countdown; the
// breaker itself keeps real time).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithPrefix sets the namespace prepended to every Redis key.
// Default: "failsoft:". Read by NewRedis.
func WithPrefix(p string) Option { return func(o *options) { o.prefix = p } }

// WithMaxKeyBytes limits a key's length. Default: 1024 ([DefaultMaxKeyBytes]).
// Read by NewRedis and NewMemory.
func WithMaxKeyBytes(n int) Option { return func(o *options) { o.maxKeyBytes = n } }

// WithMaxValueBytes limits a value's size. Default: 2 MiB
// ([DefaultMaxValueBytes]). Read by NewRedis and NewMemory.
func WithMaxValueBytes(n int) Option { return func(o *options) { o.maxValueBytes = n } }

// WithName names a guard in logs, health checks and metrics.
// Default: "redis". Read by NewGuard.
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithOpTimeout bounds every guarded call and every hooked command.
// Default: 100 ms ([DefaultOpTimeout]). Read by NewGuard.
func WithOpTimeout(d time.Duration) Option { return func(o *options) { o.opTimeout = d } }

// WithBreaker sets how many consecutive outage errors trip the breaker and
// how long it then stays open before a half-open probe.
// Default: 5 failures, 5 s. Read by NewGuard.
func WithBreaker(failures uint32, openPeriod time.Duration) Option {
	return func(o *options) { o.failureThreshold, o.openPeriod = failures, openPeriod }
}

// WithHalfOpenRequests sets how many probes a half-open breaker lets
// through; that many consecutive successes close it. Default: 1. Read by
// NewGuard.
func WithHalfOpenRequests(n uint32) Option { return func(o *options) { o.halfOpenRequests = n } }

// WithMaxInFlight bounds the guarded calls running at once, including calls
// that outlived their op timeout and still wait on a hung backend; beyond it
// calls fail at once with [ErrUnavailable]. Default: 1024. Read by NewGuard.
func WithMaxInFlight(n int) Option { return func(o *options) { o.maxInFlight = n } }

// WithCoherence sets how long a tiered store serves its in-process copy
// before asking the shared tier again, so that a purge or an update made by
// another replica is seen within this window. 0 asks the shared tier on
// every read. Default: 2 s ([DefaultCoherence]). Read by NewTiered.
func WithCoherence(d time.Duration) Option { return func(o *options) { o.coherence = d } }

// WithMaxBackfills bounds the concurrent write-backs of in-process copies to
// a shared tier that came back empty; more are dropped. Default: 16. Read
// by NewTiered.
func WithMaxBackfills(n int) Option { return func(o *options) { o.maxBackfills = n } }

// WithCacheMode makes a [Hook] turn outages into cache semantics: a failed
// read command returns redis.Nil (a miss) and a failed write is dropped
// and counted, so a handler's miss path runs instead of its error path.
// Default: off (outages return [ErrUnavailable] or the Redis error). Read
// by NewHook.
func WithCacheMode(on bool) Option { return func(o *options) { o.cacheMode = on } }

// WithOnStateChange registers fn to be called after each breaker state change
// of a [Guard], outside the breaker's lock, once per change; metrics use it.
// fn must not block. Default: none. Read by NewGuard.
func WithOnStateChange(fn func(name string, from, to State)) Option {
	return func(o *options) { o.onStateChange = fn }
}

// WithObserver registers fn to be called after every guarded call with the
// guard's name, the operation ("get", "set", "delete", "ping", or the Redis
// command name for a [Hook]), how long the caller waited and the class of
// the result; metrics use it. fn must be fast and must not block.
// Default: none. Read by NewGuard (and so by hooks built on the guard).
func WithObserver(fn func(name, op string, took time.Duration, class Class)) Option {
	return func(o *options) { o.observer = fn }
}
