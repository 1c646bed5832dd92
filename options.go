package failsoft

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

// Option configures [New]. Each option's doc states its default; New
// validates the result once and returns an error for a bad value.
type Option func(*config)

// config is New's settings after the defaults were applied.
type config struct {
	memoryBytes      int64
	defaultTTL       time.Duration
	opTimeout        time.Duration
	failureThreshold uint32
	openPeriod       time.Duration
	logger           *slog.Logger
	critical         bool
	name             string
	key              middleware.KeyFunc
	metrics          Metrics
	cacheMode        bool
	errs             []error

	missBudget     int           // WithMissBudget
	missBudgetWait time.Duration // WithMissBudget
	missBudgetMode middleware.MissBudgetMode

	// Invalidation options (at the end of this file).
	broadcast       bool
	broadcastWindow time.Duration
}

// DefaultMemoryBytes is the in-process tier's byte budget: the copy that
// answers while Redis is away.
const DefaultMemoryBytes = 64 << 20

func defaultConfig() config {
	return config{
		memoryBytes:      DefaultMemoryBytes,
		opTimeout:        store.DefaultOpTimeout,
		failureThreshold: store.DefaultFailureThreshold,
		openPeriod:       store.DefaultOpenPeriod,
		name:             middleware.DefaultName,
		cacheMode:        true,
		broadcast:        true,
		missBudget:       DefaultMissBudget,
		missBudgetWait:   DefaultMissBudgetWait,
	}
}

func buildConfig(opts []Option) (config, error) {
	c := defaultConfig()
	for _, opt := range opts {
		if opt == nil {
			return c, errors.New("failsoft: nil Option")
		}
		opt(&c)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	errs := c.errs
	if c.memoryBytes < 0 {
		errs = append(errs, fmt.Errorf("in-process budget %d is negative", c.memoryBytes))
	}
	if c.defaultTTL < 0 {
		errs = append(errs, fmt.Errorf("default TTL %v is negative", c.defaultTTL))
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
	if c.broadcastWindow < 0 {
		errs = append(errs, fmt.Errorf("broadcast coherence window %v is negative", c.broadcastWindow))
	}
	if c.missBudget < 0 || c.missBudgetWait < 0 {
		errs = append(errs, fmt.Errorf("miss budget %d, wait %v: negative", c.missBudget, c.missBudgetWait))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("failsoft: invalid options: %w", err)
	}
	return c, nil
}

// WithMemory sets the in-process tier's byte budget: the entries a replica
// keeps in its own memory, which answer in microseconds and keep answering
// while Redis is away. 0 turns the tier off: every lookup asks Redis, and
// only stale copies in Redis answer during an outage, which is none while
// Redis is down. Default: 64 MiB ([DefaultMemoryBytes]).
func WithMemory(maxBytes int64) Option {
	return func(c *config) { c.memoryBytes = maxBytes }
}

// WithDefaultTTL sets how long a response that says nothing about caching
// (no Cache-Control freshness, no Expires) is fresh. Default: 0, such
// responses are not stored; set it to protect handlers that set no caching
// headers (see [middleware.WithDefaultTTL]).
func WithDefaultTTL(d time.Duration) Option {
	return func(c *config) { c.defaultTTL = d }
}

// WithOpTimeout bounds every Redis call of the cache and of the hooked
// client: no request waits on Redis longer, whatever the client's own
// options say. For a Cluster it bounds a cache call as a whole, and each
// command to one node gets half of it. Default: 100 ms
// ([store.DefaultOpTimeout]).
func WithOpTimeout(d time.Duration) Option {
	return func(c *config) { c.opTimeout = d }
}

// WithFailureThreshold sets how many consecutive outage errors (a refused
// connection, a timeout, LOADING, READONLY, ...; not a command error) trip
// the breaker. Default: 5 ([store.DefaultFailureThreshold]).
func WithFailureThreshold(n uint32) Option {
	return func(c *config) { c.failureThreshold = n }
}

// WithOpenPeriod sets how long a tripped breaker stays open, costing
// requests no time at all, before one probe is let through. Default: 5 s
// ([store.DefaultOpenPeriod]).
func WithOpenPeriod(d time.Duration) Option {
	return func(c *config) { c.openPeriod = d }
}

// WithLogger sets the logger of every part: breaker state changes, dropped
// writes, recovered panics, failing health checks, each logged once per
// change. Default: slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// WithCritical makes an open breaker fail readiness (/readyz answers 503) and
// the detailed report say "fail". Default: false, an open breaker is
// degraded ("warn", 200): the service still answers, and taking every
// replica out of a load balancer because Redis is down would turn a
// degraded service into a dead one.
func WithCritical(on bool) Option {
	return func(c *config) { c.critical = on }
}

// WithName sets the cache's name in the Cache-Status header and the prefix
// of its Redis keys ("<name>:"), so that two services sharing a Redis keep
// apart. It must be a structured-field token. Default: "failsoft".
func WithName(name string) Option {
	return func(c *config) { c.name = name }
}

// WithKeyFunc sets the cache's key function (see [middleware.KeyFunc]).
// Default: [middleware.DefaultKey].
func WithKeyFunc(f middleware.KeyFunc) Option {
	return func(c *config) {
		if f == nil {
			c.errs = append(c.errs, errors.New("key function is nil"))
			return
		}
		c.key = f
	}
}

// WithMetrics reports every Redis call, breaker change and cache counter to
// m, typically a *prometheus.Metrics of the module
// github.com/failsoft/failsoft/health/prometheus. Default: none.
func WithMetrics(m Metrics) Option {
	return func(c *config) {
		if m == nil {
			c.errs = append(c.errs, errors.New("metrics is nil"))
			return
		}
		c.metrics = m
	}
}

// WithCacheMode sets how the hook on the caller's client reports an
// outage: on, a failed read command comes back as a miss (redis.Nil) and a
// failed write is dropped, so that a handler's own miss path runs instead of
// its error path; off, the outage error is returned (see
// [store.WithCacheMode]). Default: on.
func WithCacheMode(on bool) Option {
	return func(c *config) { c.cacheMode = on }
}

// Invalidation options.

// WithBroadcast sets whether replicas tell each other about invalidations:
// on, every invalidation (a successful unsafe request, a purge) is published
// on the Redis channel "<name>:invalidations" (SPUBLISH on a Cluster) and
// every replica subscribed to it drops its in-process copy at once; while
// its subscription is confirmed, a replica keeps in-process copies for the
// broadcast coherence window ([WithBroadcastCoherence]) instead of 2 s.
// Off, nothing is published or subscribed, and another replica's purge
// reaches this one's in-process tier within 2 s. Default: on.
func WithBroadcast(on bool) Option {
	return func(c *config) { c.broadcast = on }
}

// WithBroadcastCoherence sets how long, while the broadcast subscription is
// confirmed and no invalidation is pending, an in-process copy answers
// without asking Redis; 0 means for the copy's whole ttl (which ends with
// the Redis entry's), and a negative window is an error. Default: 0.
func WithBroadcastCoherence(d time.Duration) Option {
	return func(c *config) { c.broadcastWindow = d }
}

// The miss budget.

const (
	// DefaultMissBudget is how many handler calls for cache misses run at
	// once while Redis is unavailable (see [WithMissBudget]).
	DefaultMissBudget = 64
	// DefaultMissBudgetWait is how long a miss over the budget waits for a
	// slot before it is answered 503 (see [WithMissBudget]).
	DefaultMissBudgetWait = time.Second
)

// WithMissBudget bounds how many handler calls for cache misses run at once
// while Redis is unavailable (breaker open, or the request saw an outage);
// see [middleware.WithMissBudget]. A miss over the budget is answered with
// a stale copy at once when one exists, else waits for a slot, first come
// first served, at most wait, and then gets 503 with Retry-After and the
// same JSON body as a recovered panic. While Redis is up it changes
// nothing. n = 0 turns the budget off.
//
// Default: on, 64 slots, 1 s wait ([DefaultMissBudget],
// [DefaultMissBudgetWait]). Why on: without it, a Redis outage turns every
// miss that the in-process tier cannot answer into a call of the primary
// (the database), all at once, which is the cascade failsoft exists to
// stop (DESIGN contract 9); a primary that falls over answers every request
// with 500, hits' handlers included, while a budget sheds only the excess
// with a clean, retryable 503. It costs nothing while Redis is up, and
// stale copies and the in-process tier answer before it is consulted. Why
// 64: above the connection pool of most services' primary (database/sql
// pools and pgx default to far fewer), so a budget this size rarely sheds
// what the primary could have served, yet it caps a miss storm at a
// concurrency that a typical database survives. Size it to the primary's
// real capacity (a database pool's size) where that is known. Why 1 s: a
// few handler calls of a typical primary free a slot well within it, and a
// client told 503 within a second can retry elsewhere.
func WithMissBudget(n int, wait time.Duration) Option {
	return func(c *config) { c.missBudget, c.missBudgetWait = n, wait }
}

// WithMissBudgetMode sets when the miss budget applies: only while Redis is
// unavailable ([middleware.MissBudgetWhileUnavailable]) or to every miss
// ([middleware.MissBudgetAlways]), for a primary that cannot take the
// service's cold-key miss traffic even while Redis is up. Default:
// [middleware.MissBudgetWhileUnavailable]: while Redis is up, failsoft
// changes nothing about how often the handler runs.
func WithMissBudgetMode(m middleware.MissBudgetMode) Option {
	return func(c *config) { c.missBudgetMode = m }
}
