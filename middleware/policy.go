// The storage and freshness rules of RFC 9111 and RFC 5861 for a shared
// cache: whether a response may be stored, and for how long it is fresh and
// may be served stale.

package middleware

import (
	"net/http"
	"strings"
	"time"
)

// policy holds the middleware settings the rules below need.
type policy struct {
	DefaultTTL   time.Duration    // freshness for responses that state none; 0: not stored
	StaleIfError time.Duration    // stale-if-error window when the response names none (default 24 h)
	Statuses     map[int]bool     // the only statuses stored ([WithStatuses]); nil: no such list (see [heuristicStatus])
	ServerErrors bool             // 5xx but 501 with an explicit lifetime may be stored ([WithServerErrors])
	Shared       bool             // a shared cache: honour s-maxage, proxy-revalidate and private (always true here)
	Now          func() time.Time // the clock storable reads (Expires without Date, Age); nil: time.Now
}

// heuristicallyCacheable reports whether RFC 9110 §15.1 lets a cache assign
// status a heuristic freshness lifetime. 206 is left out: this cache does not
// combine partial content. 308 is in, although [defaultStatuses] (the
// statuses stored under a heuristic lifetime by default) leaves it out.
func heuristicallyCacheable(status int) bool {
	switch status {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// storable reports whether the response to req may be stored, and if not a
// short reason for logs and Cache-Status detail. cc is the response's
// directives ([responseCacheControl]). The rules, in the order checked (RFC
// 9111 §3, §3.5, and the rule that nothing private is shared):
//   - "method": only GET is stored (a HEAD is answered from a GET's entry,
//     but its response is never stored);
//   - "request-no-store": the request said no-store;
//   - "status": the status is 1xx, 206, 304 or one the cache does not
//     understand (never stored whatever p says, see [neverStored]); or
//     p.Statuses is set and does not list it; or it is a 5xx but 501 and
//     p.ServerErrors is off or the response gives no explicit lifetime
//     (max-age, s-maxage, Expires); or the response gives no explicit
//     lifetime nor public and the status may not be stored under a
//     heuristic lifetime (p.DefaultTTL, RFC 9111 §4.2.2; see
//     [heuristicStatus]). With an explicit lifetime or public, any other
//     status may be stored (RFC 9111 §3): 302, 303, 307, 4xx, ...;
//   - "no-store", unless the response also has must-understand (RFC 9111
//     §5.2.2.3: its status is understood, so no-store is ignored);
//   - "private" (unqualified; only when p.Shared), "set-cookie"
//     (any Set-Cookie line, even one a qualified no-cache or private names),
//     "vary-star" (Vary: * or a Vary that cannot be parsed);
//   - "authorization": the request has Authorization (only when p.Shared)
//     and the response has none of the directives RFC 9111 §3.5 accepts:
//     public, s-maxage, or must-revalidate. must-revalidate counts only with
//     a lifetime the response states (max-age, Expires) or no-cache, so
//     that neither p.DefaultTTL nor a heuristic makes a per-user answer
//     fresh; must-revalidate itself then forbids serving it stale;
//   - "cookie": the request has Cookie and the response states no lifetime
//     of its own (max-age, s-maxage, Expires) nor public, so that only the
//     default TTL would store it: a handler that says nothing about caching
//     may be personalising by session;
//   - "no-lifetime": the response is not fresh when stored (see
//     [lifetimes]) and cannot be used later either: it is stored stale only
//     when it states its lifetime explicitly (no-cache, max-age, s-maxage,
//     Expires) and has a validator (ETag, Last-Modified) or an explicit
//     stale-while-revalidate or stale-if-error window that applies. A
//     response that states no lifetime is not stored when p.DefaultTTL is 0.
//
// Qualified no-cache and private fields do not prevent storing: the cache
// strips cc.NoCacheFields and cc.PrivateFields from what it stores.
func storable(req *http.Request, status int, h http.Header, cc cacheControl, p policy) (ok bool, reason string) {
	if req.Method != http.MethodGet {
		return false, "method"
	}
	if parseCacheControl(req.Header).NoStore {
		return false, "request-no-store"
	}
	explicit := cc.HasMaxAge || p.Shared && cc.HasSMaxAge || len(fieldLines(h, "Expires")) > 0
	switch {
	case neverStored(status), p.Statuses != nil && !p.Statuses[status]:
		return false, "status"
	case isError(status) && !(p.ServerErrors && explicit):
		return false, "status"
	case !explicit && !cc.Public && !heuristicStatus(status, p):
		return false, "status"
	case cc.NoStore && !mustUnderstand(h):
		return false, "no-store"
	case p.Shared && cc.Private:
		return false, "private"
	case hasField(h, "Set-Cookie"):
		return false, "set-cookie"
	}
	if _, star := parseVary(h); star {
		return false, "vary-star"
	}
	// An s-maxage that does not parse grants nothing: it makes the
	// response stale, and must not make one user's answer shareable.
	if p.Shared && hasField(req.Header, "Authorization") && !cc.Public && !(cc.HasSMaxAge && !cc.BadSMaxAge) &&
		!(cc.MustRevalidate && (explicit || cc.NoCache)) {
		return false, "authorization"
	}
	if hasField(req.Header, "Cookie") && !explicit && !cc.Public {
		return false, "cookie"
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	at := now()
	fresh, swr, sie, _ := lifetimes(h, cc, at, at, p)
	if fresh > 0 {
		return true, ""
	}
	explicit = explicit || cc.NoCache
	validator := hasField(h, "ETag") || hasField(h, "Last-Modified")
	staleWindow := cc.HasStaleWhileRevalidate && swr > 0 || cc.HasStaleIfError && sie > 0
	if explicit && (validator || staleWindow) {
		return true, ""
	}
	return false, "no-lifetime"
}

// lifetimes computes an entry's windows, as durations from now, for a
// response to a request sent at sent and received at now (see
// [entry.setLifetimes]), and the response's corrected initial age (see
// [initialAge]):
//
// The freshness lifetime comes from s-maxage (when p.Shared), then max-age,
// then Expires minus Date (Date defaulting to now; an Expires that is not an
// HTTP-date, such as "0" or "Thu, 18 Aug 2050 2:01:18 GMT", or more than one
// Expires line, means already expired: RFC 9111 §5.3),
// then p.DefaultTTL. fresh is that lifetime minus the response's age when
// received ([initialAge], RFC 9111 §4.2.3: the larger of now minus its Date
// and its Age plus the response delay; an invalid Age makes it stale), and
// never negative. The stale windows count from the end of the lifetime, so
// an age beyond it shortens them too.
//
// swr is stale-while-revalidate (0 when absent). sie is stale-if-error when
// present; otherwise p.StaleIfError, except for a response with s-maxage
// in a shared cache, which implies proxy-revalidate (RFC 9111 §5.2.2.10): the
// origin has to grant such a window itself.
//
// must-revalidate (and proxy-revalidate in a shared cache) make both stale
// windows 0: a stale response must not be served without revalidation, even
// on errors (RFC 9111 §5.2.2.2: "MUST NOT ignore"). no-cache makes all three
// 0: the entry must be revalidated before each use, and RFC 9111 §4.2.4
// forbids generating a stale response against it.
func lifetimes(h http.Header, cc cacheControl, sent, now time.Time, p policy) (fresh, swr, sie, age time.Duration) {
	if cc.NoCache {
		return 0, 0, 0, initialAge(h, sent, now, 0)
	}
	var lifetime time.Duration
	switch {
	case p.Shared && cc.HasSMaxAge:
		lifetime = cc.SMaxAge
	case cc.HasMaxAge:
		lifetime = cc.MaxAge
	default:
		if expires := fieldLines(h, "Expires"); len(expires) > 0 {
			lifetime = expiresLifetime(expires, h, now)
		} else {
			lifetime = min(max(p.DefaultTTL, 0), maxDelta)
		}
	}
	age = initialAge(h, sent, now, lifetime)
	fresh = max(lifetime-age, 0)
	if cc.MustRevalidate || p.Shared && cc.ProxyRevalidate {
		return fresh, 0, 0, age
	}
	if cc.HasStaleWhileRevalidate {
		swr = cc.StaleWhileRevalidate
	}
	switch {
	case cc.HasStaleIfError:
		sie = cc.StaleIfError
	case !(p.Shared && cc.HasSMaxAge):
		sie = min(max(p.StaleIfError, 0), maxDelta)
	}
	overshoot := max(age-lifetime, 0)
	return fresh, max(swr-overshoot, 0), max(sie-overshoot, 0), age
}

// expiresLifetime is Expires minus Date (or now), never negative; 0 (already
// expired, RFC 9111 §5.3) for more than one Expires line or one that is not
// an HTTP-date as [parseHTTPDate] reads it.
func expiresLifetime(expires []string, h http.Header, now time.Time) time.Duration {
	if len(expires) != 1 {
		return 0
	}
	exp, ok := parseHTTPDate(trimOWS(expires[0]), now)
	if !ok {
		return 0
	}
	base := now
	if date, ok := headerTime(h, "Date"); ok {
		base = date
	}
	return clampDuration(exp.Sub(base))
}

// headerTime parses the single line of an HTTP-date field.
func headerTime(h http.Header, name string) (time.Time, bool) {
	lines := fieldLines(h, name)
	if len(lines) != 1 {
		return time.Time{}, false
	}
	t, err := http.ParseTime(lines[0])
	return t, err == nil
}

func clampDuration(d time.Duration) time.Duration { return min(max(d, 0), maxDelta) }

// fieldLines returns the field lines of name (canonical) in h. An
// http.Header built by net/http has canonical keys only, but a handler can
// set a non-canonical key directly, and net/http sends it as given; such
// lines count too (they come after the canonical key's, in no set order).
// It allocates only when a non-canonical key is present.
func fieldLines(h http.Header, name string) []string {
	lines := h[name]
	for k, vs := range h {
		if len(k) == len(name) && k != name && strings.EqualFold(k, name) {
			lines = append(lines[:len(lines):len(lines)], vs...)
		}
	}
	return lines
}

// lineLookup returns the function that finds the lines of a canonical name
// in h as [fieldLines] does: h[name] when every key of h is canonical
// ([canonicalKeys]), which saves a scan of h per name, else fieldLines.
func lineLookup(h http.Header) func(h http.Header, name string) []string {
	if canonicalKeys(h) {
		return func(h http.Header, name string) []string { return h[name] }
	}
	return fieldLines
}

// hasField reports whether h has a line of name (canonical), in any case.
func hasField(h http.Header, name string) bool { return len(fieldLines(h, name)) > 0 }

// canonicalKeys reports whether every key of h is a token in the form
// [http.CanonicalHeaderKey] gives it, so that h[name] holds every line of a
// canonical name and [fieldLines] would find no more.
func canonicalKeys(h http.Header) bool {
	for k := range h {
		if k == "" {
			return false
		}
		upper := true
		for i := 0; i < len(k); i++ {
			c := k[i]
			if !isTchar(c) || upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
				return false
			}
			upper = c == '-'
		}
	}
	return true
}
