package middleware

import (
	"net/http"
	"time"
)

// Contract (bodies being written): Cache-Control parsing and the storage and
// freshness rules of RFC 9111 and RFC 5861.

// cacheControl is a parsed Cache-Control header (request or response).
// Directive names are case-insensitive; unknown directives are ignored. A
// delta-seconds that does not parse makes its directive present with value
// 0 (the conservative reading: stale, not fresh); values are capped at
// 2^31 seconds. Quoted values are accepted.
type cacheControl struct {
	NoStore, NoCache, Private, Public        bool
	MustRevalidate, ProxyRevalidate          bool
	OnlyIfCached, Immutable, NoTransform     bool
	MaxAge, SMaxAge                          time.Duration
	HasMaxAge, HasSMaxAge                    bool
	StaleWhileRevalidate, StaleIfError       time.Duration
	HasStaleWhileRevalidate, HasStaleIfError bool
	MaxStale, MinFresh                       time.Duration
	HasMaxStale, HasMinFresh                 bool     // max-stale without a value: any staleness (MaxStale = 1<<62)
	NoCacheFields, PrivateFields             []string // field-name lists of qualified no-cache / private
}

// parseCacheControl parses every Cache-Control field value in h (they
// combine as one comma-separated list).
func parseCacheControl(h http.Header) cacheControl { panic("todo") }

// policy holds the middleware settings the rules below need.
type policy struct {
	DefaultTTL   time.Duration // freshness for responses that state none; 0: not stored
	StaleIfError time.Duration // stale-if-error window when the response names none (default 24 h)
	Statuses     map[int]bool  // statuses stored (RFC 9111 heuristically cacheable by default)
	Shared       bool          // a shared cache: honour s-maxage and private (always true here)
}

// storable reports whether the response to req may be stored, and if not a
// short reason for logs and Cache-Status detail ("no-store", "private",
// "set-cookie", "authorization", "status", "vary-star", "method", ...).
// Rules: GET only (HEAD is answered from GET entries but not stored from a
// HEAD); status in p.Statuses; request without no-store; response without
// no-store, private (unqualified), Set-Cookie, Vary: *; a request with
// Authorization only when the response says public, s-maxage or
// must-revalidate (RFC 9111 §3.5); and a freshness lifetime > 0 or a
// validator with no-cache.
func storable(req *http.Request, status int, h http.Header, cc cacheControl, p policy) (ok bool, reason string) {
	panic("todo")
}

// lifetimes computes an entry's windows for a response generated at now:
// freshness from s-maxage, then max-age, then Expires minus Date (Date
// defaulting to now), then p.DefaultTTL; no-cache makes freshness 0 (the
// entry must be revalidated before each use). swr is stale-while-revalidate
// (0 when absent, and 0 with must-revalidate/proxy-revalidate); sie is
// stale-if-error when present, else p.StaleIfError (0 with must-revalidate).
func lifetimes(h http.Header, cc cacheControl, now time.Time, p policy) (fresh, swr, sie time.Duration) {
	panic("todo")
}
