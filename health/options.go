package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

const (
	// DefaultTimeout bounds each check run: below the 1 s default timeout of
	// a Kubernetes probe, so that a slow check is reported as failed instead
	// of the probe timing out.
	DefaultTimeout = 500 * time.Millisecond
	// DefaultTTL is how long a check's result is reused: a burst of probes
	// costs at most one run (one Redis PING) per check per second.
	DefaultTTL = time.Second
	// maxNameLen bounds a check's name.
	maxNameLen = 128
)

// Option configures [New]. Options are applied in order; the check options
// add a check each, the others override an earlier value.
type Option func(*config) error

// config holds New's settings.
type config struct {
	checks       []*check
	timeout      time.Duration
	ttl          time.Duration
	now          func() time.Time
	logger       *slog.Logger
	errorDetails bool
	service      ServiceInfo
}

// ServiceInfo describes the service in the detailed report's top-level
// members of the same names. Every field is optional.
type ServiceInfo struct {
	ServiceID   string // "serviceId": a unique identifier of the service
	Version     string // "version": the public version of the service
	ReleaseID   string // "releaseId": the release or build of the implementation
	Description string // "description": a human-friendly description
}

// WithBreakerCheck adds a readiness check on a circuit breaker, named after
// b.Name(): closed passes, half-open warns, and open warns, or fails when
// critical is true, which turns /readyz to 503 while the breaker is open.
// The detailed report lists the state, when it last changed, the remaining
// open time and the breaker's counters. The breaker is read on every
// request (it costs no I/O); its Stats method must be safe for concurrent
// use and must not block. Default: no breaker check.
func WithBreakerCheck(b Breaker, critical bool) Option {
	return func(c *config) error {
		if b == nil {
			return errors.New("WithBreakerCheck: nil breaker")
		}
		return c.add(&check{name: b.Name(), critical: critical, ready: true, run: breakerCheck(b)})
	}
}

// WithPinger adds a readiness check that pings a store (a *[store.Guard]
// over Redis, typically): it passes when Ping returns nil within the
// timeout, and otherwise warns, or fails when critical is true. When p also
// reports a breaker state (as a *[store.Guard] does: a State() store.State
// method) and the breaker is open, no ping is sent and the check reports
// "not pinged: circuit breaker open" as a failed ping would (warn, or fail
// when critical): the breaker's own half-open probe decides when the store
// is back. The result is cached (see [WithTTL]) and
// one ping at a time runs. Default: no ping.
func WithPinger(name string, p store.Pinger, critical bool) Option {
	return func(c *config) error {
		if p == nil {
			return fmt.Errorf("WithPinger %q: nil pinger", name)
		}
		return c.add(&check{name: name, critical: critical, ready: true, bounded: true, run: pingCheck(name, p)})
	}
}

// WithCheck adds a readiness check that runs fn. fn gets a context that ends
// after the timeout (see [WithTimeout]) and should return by then; when it
// does not, the check is reported as failed at the timeout and fn is not
// started again until it has returned. Its result is cached (see [WithTTL])
// and one run at a time happens. A non-critical check that fails is reported
// as warn and does not fail readiness. A panic in fn is a failure. Default:
// no such check.
func WithCheck(name string, critical bool, fn func(ctx context.Context) CheckResult) Option {
	return func(c *config) error {
		if fn == nil {
			return fmt.Errorf("WithCheck %q: nil function", name)
		}
		return c.add(&check{name: name, critical: critical, ready: true, bounded: true, run: customCheck(name, fn)})
	}
}

// WithCacheStats adds a response cache's counters to the detailed report
// under name (for example "cache:hits", "cache:staleServed"); typically fn
// is a [middleware.Cache]'s Stats method. It is not a readiness check and
// always passes. fn is called on every /healthz request and must be fast
// and safe for concurrent use. Default: no cache counters.
func WithCacheStats(name string, fn func() middleware.Stats) Option {
	return func(c *config) error {
		if fn == nil {
			return fmt.Errorf("WithCacheStats %q: nil function", name)
		}
		return c.add(&check{name: name, run: cacheStatsCheck(name, fn)})
	}
}

// WithTimeout bounds each run of a ping or a [WithCheck] function.
// Default: 500 ms ([DefaultTimeout]).
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("WithTimeout: %v is not positive", d)
		}
		c.timeout = d
		return nil
	}
}

// WithTTL sets how long the result of a ping or a [WithCheck] function is
// reused before the check runs again. Default: 1 s ([DefaultTTL]).
func WithTTL(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("WithTTL: %v is not positive", d)
		}
		c.ttl = d
		return nil
	}
}

// WithClock sets the time source for the report's times and the age of
// cached results, for tests. Timeouts and ping durations use real time.
// Default: time.Now.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("WithClock: nil clock")
		}
		c.now = now
		return nil
	}
}

// WithLogger sets the logger that receives each change of a check's status,
// once per change, and each panic of a check function. Default:
// slog.Default() (a nil logger also means the default).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		c.logger = l
		return nil
	}
}

// WithErrorDetails sets whether the outputs of failed pings carry the error
// text. Health endpoints are often reachable by anyone, and an error text can
// name internal addresses, so by default the output names only the kind of
// failure (for example "ping failed: timeout"; see [store.Class]) and the
// full error goes to the log. Default: off.
func WithErrorDetails(on bool) Option {
	return func(c *config) error {
		c.errorDetails = on
		return nil
	}
}

// WithServiceInfo sets the detailed report's serviceId, version, releaseId
// and description. Default: all empty (omitted).
func WithServiceInfo(info ServiceInfo) Option {
	return func(c *config) error {
		c.service = info
		return nil
	}
}

// add registers a check after validating its name.
func (c *config) add(ch *check) error {
	if err := validName(ch.name); err != nil {
		return err
	}
	for _, other := range c.checks {
		if other.name == ch.name {
			return fmt.Errorf("check %q registered twice", ch.name)
		}
	}
	c.checks = append(c.checks, ch)
	return nil
}

// validName accepts the names that survive a query string and a verbose
// listing unchanged: printable, no spaces, no commas, at most 128 bytes.
func validName(name string) error {
	if name == "" {
		return errors.New("empty check name")
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("check name %.20q... longer than %d bytes", name, maxNameLen)
	}
	if strings.IndexFunc(name, func(r rune) bool {
		return !unicode.IsPrint(r) || unicode.IsSpace(r) || r == ','
	}) >= 0 {
		return fmt.Errorf("check name %q has a space, a comma or an unprintable character", name)
	}
	return nil
}
