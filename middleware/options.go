package middleware

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"
)

// Option configures a [Cache] built by [New]. Each option's doc states its
// default; New validates the result once and returns an error for a bad
// value, and for a nil Option. Only this package's With functions make
// Options (its method is unexported), so an option of another constructor
// does not compile here.
type Option interface {
	applyCache(*options)
}

// cacheOption is an [Option] that is a function of the settings.
type cacheOption func(*options)

func (f cacheOption) applyCache(o *options) { f(o) }

// LoggerOption is what [WithLogger] returns: it is both an [Option] of
// [New] and a [RecoverOption] of [Recover] and [Chain], so that one name
// sets the logger everywhere. Its zero value sets the default logger.
type LoggerOption struct {
	logger *slog.Logger
}

func (o LoggerOption) applyCache(c *options) { c.logger = o.logger }

func (o LoggerOption) applyRecover(c *recoverConfig) { c.logger = o.logger }

// The logger option fits both constructors.
var (
	_ Option        = LoggerOption{}
	_ RecoverOption = LoggerOption{}
)

// options are a Cache's settings after the defaults were applied.
type options struct {
	key              KeyFunc
	customKey        bool // WithKeyFunc was given: key may not be DefaultKey
	name             string
	defaultTTL       time.Duration
	staleIfError     time.Duration
	maxBody          int
	maxKey           int
	keyHeaders       []string // canonical, sorted: DefaultKeyHeaders and WithKeyHeaders'
	statuses         map[int]bool
	handlerTimeout   time.Duration
	coalesceWait     time.Duration
	maxRefreshes     int
	maxPendingWrites int
	refreshTimeout   time.Duration
	logger           *slog.Logger
	now              func() time.Time
	clockSet         bool // WithClock was given: now is not the system clock

	// Targeted cache control and heuristic freshness.
	targeted  []string  // canonical targeted field names, highest precedence first
	heuristic heuristic // off when Fraction is 0

	serverErrors bool  // WithServerErrors
	err          error // the first error an option met while applying

	// The miss budget.
	missBudget     int           // WithMissBudget; 0: off
	missBudgetWait time.Duration // WithMissBudget
	missBudgetMode MissBudgetMode
}

const (
	// DefaultName is the cache's name in the Cache-Status header.
	DefaultName = "failsoft"
	// DefaultStaleIfError is the stale-if-error window of a response that
	// names none: serve old data rather than none.
	DefaultStaleIfError = 24 * time.Hour
	// DefaultMaxBodyBytes is the largest response body stored; larger
	// responses stream through uncached.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxKeyBytes is the longest key material (see [KeyFunc]) cached;
	// requests with longer material bypass the cache.
	DefaultMaxKeyBytes = 8 << 10
	// DefaultCoalesceWait bounds how long a request waits for another
	// request's handler call of the same key before calling the handler
	// itself.
	DefaultCoalesceWait = 5 * time.Second
	// DefaultMaxRefreshes bounds the background refreshes
	// (stale-while-revalidate) that run at once.
	DefaultMaxRefreshes = 16
	// DefaultMaxPendingWrites bounds the background store writes that run
	// at once; more are dropped and counted in [Stats].Dropped.
	DefaultMaxPendingWrites = 256
	// DefaultRefreshTimeout bounds one background refresh.
	DefaultRefreshTimeout = 30 * time.Second
)

// defaultStatuses are the statuses stored without an explicit lifetime (under
// [WithDefaultTTL]) when [WithStatuses] is not given: those RFC 9110 §15.1
// calls heuristically cacheable, less 206 (ranges are not stored) and 308.
var defaultStatuses = [...]int{200, 203, 204, 300, 301, 404, 405, 410, 414, 501}

func defaultOptions() options {
	return options{
		key:              DefaultKey,
		name:             DefaultName,
		staleIfError:     DefaultStaleIfError,
		maxBody:          DefaultMaxBodyBytes,
		maxKey:           DefaultMaxKeyBytes,
		keyHeaders:       defaultKeyHeaderNames(),
		coalesceWait:     DefaultCoalesceWait,
		maxRefreshes:     DefaultMaxRefreshes,
		maxPendingWrites: DefaultMaxPendingWrites,
		refreshTimeout:   DefaultRefreshTimeout,
		now:              time.Now,
		targeted:         canonicalFields(DefaultTargetedFields()),
	}
}

// buildOptions applies opts over the defaults and validates the result.
func buildOptions(opts []Option) (options, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if opt == nil {
			return o, errors.New("middleware: nil Option")
		}
		opt.applyCache(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	var errs []error
	if o.err != nil {
		errs = append(errs, o.err)
	}
	if o.key == nil {
		errs = append(errs, errors.New("key function is nil"))
	}
	if !validToken(o.name) {
		errs = append(errs, fmt.Errorf("cache name %q is not a structured-field token", o.name))
	}
	if o.defaultTTL < 0 {
		errs = append(errs, fmt.Errorf("default TTL %v is negative", o.defaultTTL))
	}
	if o.staleIfError < 0 {
		errs = append(errs, fmt.Errorf("stale-if-error window %v is negative", o.staleIfError))
	}
	if o.maxBody <= 0 {
		errs = append(errs, fmt.Errorf("max body bytes %d is not positive", o.maxBody))
	}
	if o.maxKey <= 0 {
		errs = append(errs, fmt.Errorf("max key bytes %d is not positive", o.maxKey))
	}
	if o.handlerTimeout < 0 {
		errs = append(errs, fmt.Errorf("handler timeout %v is negative", o.handlerTimeout))
	}
	if o.coalesceWait < 0 {
		errs = append(errs, fmt.Errorf("coalesce wait %v is negative", o.coalesceWait))
	}
	if o.maxRefreshes < 0 {
		errs = append(errs, fmt.Errorf("max refreshes %d is negative", o.maxRefreshes))
	}
	if o.maxPendingWrites <= 0 {
		errs = append(errs, fmt.Errorf("max pending writes %d is not positive", o.maxPendingWrites))
	}
	if o.refreshTimeout <= 0 {
		errs = append(errs, fmt.Errorf("refresh timeout %v is not positive", o.refreshTimeout))
	}
	if o.now == nil {
		errs = append(errs, errors.New("clock is nil"))
	}
	errs = append(errs, validTargeted(o.targeted)...)
	if f := o.heuristic.Fraction; !(f >= 0 && f <= 1) {
		errs = append(errs, fmt.Errorf("heuristic freshness fraction %v is not within 0..1", f))
	} else if f > 0 && o.heuristic.Max <= 0 {
		errs = append(errs, fmt.Errorf("heuristic freshness limit %v is not positive", o.heuristic.Max))
	}
	errs = append(errs, validMissBudget(o)...)
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("middleware: invalid options: %w", err)
	}
	return o, nil
}

// validToken reports whether s is an RFC 8941 token, as a Cache-Status
// cache name must be.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	c := s[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '*') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == ':' || c == '/':
		case c < 0x7f && c > 0x20 && !isSeparator(c):
		default:
			return false
		}
	}
	return true
}

// isSeparator reports whether c is an RFC 9110 delimiter (not a tchar).
func isSeparator(c byte) bool {
	for i := 0; i < len(`"(),/:;<=>?@[\]{}`); i++ {
		if c == `"(),/:;<=>?@[\]{}`[i] {
			return true
		}
	}
	return false
}

// WithKeyFunc sets how the key material of a request is computed; a
// function that returns "" makes the cache bypass that request. The
// material is hashed before it reaches the store. Default: [DefaultKey].
func WithKeyFunc(f KeyFunc) Option {
	return cacheOption(func(o *options) { o.key, o.customKey = f, true })
}

// WithName sets the cache's name in the Cache-Status header (RFC 9211); it
// must be a structured-field token. Default: "failsoft" ([DefaultName]).
func WithName(name string) Option { return cacheOption(func(o *options) { o.name = name }) }

// WithDefaultTTL sets the freshness lifetime of a storable response that
// states none (no s-maxage, max-age or Expires). Default: 0, such responses
// are not stored: a shared cache that invents freshness serves stale data to
// handlers that never asked to be cached. Set it to cache handlers that say
// nothing about caching, such as the documented data endpoint.
func WithDefaultTTL(d time.Duration) Option {
	return cacheOption(func(o *options) { o.defaultTTL = d })
}

// WithStaleIfError sets the stale-if-error window (RFC 5861) of a response
// that names none: how long after its freshness ends a stored response may
// still answer when the handler fails. 0 turns the default window off (a
// response's own stale-if-error still counts). Default: 24 h
// ([DefaultStaleIfError]).
func WithStaleIfError(d time.Duration) Option {
	return cacheOption(func(o *options) { o.staleIfError = d })
}

// WithMaxBodyBytes sets the largest body stored; a handler that writes more
// streams through uncached. Default: 1 MiB ([DefaultMaxBodyBytes]).
func WithMaxBodyBytes(n int) Option { return cacheOption(func(o *options) { o.maxBody = n }) }

// WithMaxKeyBytes sets the longest key material cached; requests with
// longer material bypass the cache. Default: 8 KiB ([DefaultMaxKeyBytes]).
func WithMaxKeyBytes(n int) Option { return cacheOption(func(o *options) { o.maxKey = n }) }

// WithStatuses limits the response statuses that may be stored to those
// listed; the other storage rules still apply: a listed status that RFC 9110
// §15.1 does not call heuristically cacheable (such as 302) is stored only
// with an explicit lifetime (max-age, s-maxage, Expires) or public, and a
// 5xx but 501 only under [WithServerErrors]. A status the cache never
// stores (1xx, 206, 304, and any status it does not understand, such as
// 299 or 207) is an error. Default: no list. Any final status the cache
// understands (RFC 9110 §15's, and 428, 429, 431, 451, 511) may then be
// stored with an explicit lifetime or public (RFC 9111 §3), 5xx but 501
// aside; without one, under [WithDefaultTTL], only 200, 203, 204, 300,
// 301, 404, 405, 410, 414 and 501.
func WithStatuses(statuses ...int) Option {
	statuses = slices.Clone(statuses)
	return cacheOption(func(o *options) {
		m := make(map[int]bool, len(statuses))
		for _, s := range statuses {
			if neverStored(s) {
				if o.err == nil {
					o.err = fmt.Errorf("status %d cannot be stored", s)
				}
				continue
			}
			m[s] = true
		}
		o.statuses = m
	})
}

// WithHandlerTimeout sets a deadline for the handler when a stale copy
// within its stale-if-error window exists: when it passes, the stale copy
// answers at once, the handler's context is cancelled and what it writes
// later is discarded (as with [http.TimeoutHandler]). Without a stale copy
// the handler runs as long as it takes. 0 turns it off. Default: 0.
func WithHandlerTimeout(d time.Duration) Option {
	return cacheOption(func(o *options) { o.handlerTimeout = d })
}

// WithCoalesceWait bounds how long a request waits for a concurrent request
// of the same key that is already calling the handler; after that it calls
// the handler itself. 0 turns coalescing off. Default: 5 s
// ([DefaultCoalesceWait]).
func WithCoalesceWait(d time.Duration) Option {
	return cacheOption(func(o *options) { o.coalesceWait = d })
}

// WithMaxRefreshes bounds the background refreshes (stale-while-revalidate)
// that run at once; when all are busy a stale response is still served, but
// not refreshed. 0 turns background refreshes off. Default: 16
// ([DefaultMaxRefreshes]).
func WithMaxRefreshes(n int) Option { return cacheOption(func(o *options) { o.maxRefreshes = n }) }

// WithMaxPendingWrites bounds the background store writes that run at once;
// a write beyond it is dropped and counted in [Stats].Dropped. Default: 256
// ([DefaultMaxPendingWrites]).
func WithMaxPendingWrites(n int) Option {
	return cacheOption(func(o *options) { o.maxPendingWrites = n })
}

// WithRefreshTimeout bounds one background refresh: the handler's context
// ends after it. Default: 30 s ([DefaultRefreshTimeout]).
func WithRefreshTimeout(d time.Duration) Option {
	return cacheOption(func(o *options) { o.refreshTimeout = d })
}

// WithLogger sets the logger of a [Cache] (as an [Option] of [New]) or of
// [Recover] (as a [RecoverOption] of Recover and [Chain]); the one value
// serves both. The cache logs per-request events (hit, miss, stale,
// bypass, coalesced, refresh) at Debug, and trouble that could repeat on
// every request (a corrupt entry, failing writes) at Warn at most once a
// minute per kind. Recover logs each recovered panic, with its value and
// stack, at Error (at most one full line per second, counting the rest).
// Default: slog.Default() (a nil logger also means the default).
func WithLogger(l *slog.Logger) LoggerOption { return LoggerOption{logger: l} }

// WithClock sets the time source used for freshness, Age and the log rate
// limit, for tests. Default: time.Now.
func WithClock(now func() time.Time) Option {
	return cacheOption(func(o *options) { o.now, o.clockSet = now, true })
}

// Options of the cache key.

// WithKeyHeaders adds request headers to those that key a request when it
// carries them (see [DefaultKeyHeaders]): the field lines of each one
// present go into the key material, so that requests with different values,
// or without the header, never share an entry. Use it for headers that a
// proxy in front sets and the handler answers by, such as a tenant or
// region header; a header that differs per client (a session, an address)
// belongs in the response's Vary, or nowhere. Names are field names in any
// case; one that is not a token is an error. Repeated options add up.
// Default: none beyond [DefaultKeyHeaders].
func WithKeyHeaders(names ...string) Option {
	names = slices.Clone(names)
	return cacheOption(func(o *options) {
		if bad, ok := validKeyHeaders(names); !ok {
			if o.err == nil {
				o.err = fmt.Errorf("key header %q is not a field name", bad)
			}
			return
		}
		for _, n := range names {
			o.keyHeaders = append(o.keyHeaders, http.CanonicalHeaderKey(n))
		}
		o.keyHeaders = sortUnique(o.keyHeaders)
	})
}

// Targeted cache control (RFC 9213) and heuristic freshness (RFC 9111
// §4.2.2).

// WithTargetedFields sets the targeted cache-control fields the cache
// obeys, highest precedence first. The first of them that a response
// carries as a valid Structured Fields Dictionary takes the place of
// Cache-Control, Pragma and Expires for this cache; one that does not parse
// is ignored as a whole (a private, no-store or no-cache it names still
// applies). Directives: max-age, s-maxage, stale-while-revalidate and
// stale-if-error (Integers), no-store, no-cache, private, public,
// must-revalidate, proxy-revalidate, immutable, no-transform; parameters and
// unknown directives are ignored. The response reaches the client
// unchanged, Cache-Control and the targeted fields included. Each name must
// be a field-name token other than Cache-Control, given once; no names turns
// targeted cache control off. Default: Failsoft-Cache-Control, then
// CDN-Cache-Control ([DefaultTargetedFields]).
func WithTargetedFields(names ...string) Option {
	canon := canonicalFields(names)
	return cacheOption(func(o *options) { o.targeted = canon })
}

// canonicalFields returns a copy of names in canonical form.
func canonicalFields(names []string) []string {
	canon := make([]string, len(names))
	for i, n := range names {
		canon[i] = http.CanonicalHeaderKey(n)
	}
	return canon
}

// validTargeted checks the names of [WithTargetedFields].
func validTargeted(names []string) []error {
	var errs []error
	for i, n := range names {
		switch {
		case !isToken(n):
			errs = append(errs, fmt.Errorf("targeted field %q is not a field name", n))
		case n == "Cache-Control":
			errs = append(errs, fmt.Errorf("targeted field %q is Cache-Control itself", n))
		case slices.Contains(names[:i], n):
			errs = append(errs, fmt.Errorf("targeted field %q is listed twice", n))
		}
	}
	return errs
}

// WithHeuristicFreshness lets the cache give a response that states no
// freshness of its own (no s-maxage, max-age or Expires, and no
// targeted-field max-age) a heuristic lifetime (RFC 9111 §4.2.2): fraction
// of the time between its Last-Modified and its Date, at most limit. It
// applies only to heuristically cacheable statuses (200, 203, 204, 300,
// 301, 308, 404, 405, 410, 414, 501) with a valid Last-Modified before the
// Date, and there it takes the place of [WithDefaultTTL]. Like the default
// TTL it is not a lifetime the response states, so it does not make the
// answer to a request with Cookie, or with Authorization and
// must-revalidate, shareable. fraction
// must be within 0..1 (0 turns it off; 0.1 is customary) and limit positive
// when fraction is not 0 (a day is a common cap). Default: off.
func WithHeuristicFreshness(fraction float64, limit time.Duration) Option {
	return cacheOption(func(o *options) { o.heuristic = heuristic{Fraction: fraction, Max: limit} })
}

// WithServerErrors lets the cache store 5xx responses (other than 501,
// which is an answer, not a failure, and stored like a 404) when they state
// an explicit lifetime (max-age, s-maxage, Expires) and pass every other
// rule; a stale copy still answers for such a response when one exists
// within its stale-if-error window, and a 5xx never replaces a stored
// response that is not one (one a background refresh or revalidation
// could still use). Storing them lets a failing handler's own "retry in 10
// s" answer absorb the load of a retry storm. Default: false, 5xx responses
// are never stored.
func WithServerErrors(store bool) Option {
	return cacheOption(func(o *options) { o.serverErrors = store })
}

// Options of the miss budget (see budget.go).

// WithMissBudget bounds how many handler calls for misses run at once
// while the store is unavailable (see [WithMissBudgetMode]), so that a
// Redis outage does not pour every miss onto the primary source behind the
// handler at once. n is the number of slots; only a call of the handler
// takes one (coalesced requests that wait for another request's call of
// the same key do not), and it holds it until the handler returns.
//
// A miss that finds no free slot:
//   - with a stale copy within its stale-if-error window, is answered with
//     it at once (Cache-Status detail "miss-budget"): a stale answer never
//     waits;
//   - otherwise waits for a slot, first come first served, at most wait
//     (and no longer than its context lives); when the wait runs out it is
//     answered 503 Service Unavailable with Retry-After
//     ([DefaultRetryAfter]), Cache-Control: no-store and the JSON body of
//     [Recover]. Requests that were coalesced behind it get the same
//     answer (or their stale copy) at once.
//
// Hits and stale-while-revalidate answers never wait on the budget;
// background refreshes are bounded separately ([WithMaxRefreshes]). The
// budget's state is in [Stats].MissBudget.
//
// n = 0 turns the budget off; n must not be negative, nor wait. A wait of
// 0 sheds at once. Default: off (failsoft.New turns it on: 64 slots, 1 s
// wait).
func WithMissBudget(n int, wait time.Duration) Option {
	return cacheOption(func(o *options) { o.missBudget, o.missBudgetWait = n, wait })
}

// WithMissBudgetMode sets when the budget of [WithMissBudget] applies:
// only while the store is unavailable ([MissBudgetWhileUnavailable]) or
// always ([MissBudgetAlways]). Default: [MissBudgetWhileUnavailable].
func WithMissBudgetMode(m MissBudgetMode) Option {
	return cacheOption(func(o *options) { o.missBudgetMode = m })
}

// validMissBudget checks the options of the miss budget.
func validMissBudget(o options) []error {
	var errs []error
	if o.missBudget < 0 {
		errs = append(errs, fmt.Errorf("miss budget %d is negative", o.missBudget))
	}
	if o.missBudgetWait < 0 {
		errs = append(errs, fmt.Errorf("miss budget wait %v is negative", o.missBudgetWait))
	}
	if o.missBudgetMode != MissBudgetWhileUnavailable && o.missBudgetMode != MissBudgetAlways {
		errs = append(errs, fmt.Errorf("miss budget mode %d is unknown", o.missBudgetMode))
	}
	return errs
}
