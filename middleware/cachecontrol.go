package middleware

import (
	"iter"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Cache-Control parsing and the storage and freshness rules of RFC 9111 and
// RFC 5861, for a shared cache.

// maxDelta caps every delta-seconds and every lifetime: RFC 9111 §1.2.2 has
// a cache read a larger or overflowing value as 2^31 seconds.
const maxDelta = (1 << 31) * time.Second

// anyStale is MaxStale for a max-stale request directive without a value:
// the client accepts a response however stale.
const anyStale = time.Duration(1 << 62)

// cacheControl is a parsed Cache-Control header (request or response); the
// zero value is an absent header.
//
// Parsing follows RFC 9111 §5.2 and is lenient where the RFC asks for
// leniency and conservative where the input is wrong:
//   - directives are comma-separated, names case-insensitive, arguments a
//     token or a quoted-string (max-age="5" is max-age=5); whitespace around
//     elements, names, "=" and arguments is ignored, as are empty elements
//     and unknown directives;
//   - a delta-seconds that does not parse (empty, signed, fractional,
//     missing) makes its directive present with value 0, the conservative
//     reading: stale, not fresh, no stale window; values are capped at 2^31
//     seconds;
//   - a directive given more than once (RFC 9111 §4.2.1: invalid) takes its
//     most restrictive value: the smallest max-age, s-maxage,
//     stale-while-revalidate, stale-if-error and max-stale, the largest
//     min-fresh;
//   - no-store, must-revalidate, proxy-revalidate, no-transform and
//     only-if-cached count even with a (meaningless) argument; public and
//     immutable, which grant something, count only without one;
//   - no-cache and private with a list of field names (no-cache="Set-Cookie",
//     quoted or a single token) are qualified: they set NoCacheFields or
//     PrivateFields (canonical, sorted, unique) and leave NoCache or Private
//     false, because the rest of the response may be stored (RFC 9111
//     §5.2.2.4, §5.2.2.7); the cache must not store or serve those fields
//     without revalidation. An argument that names no valid field (empty, or
//     any name not a token) reads as the unqualified directive.
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

// parseCacheControl parses every Cache-Control field line in h (they combine
// as one comma-separated list), whatever the case of the map key: a handler
// that sets h["cache-control"] directly still has it sent, so it must count.
// It allocates only for qualified no-cache and private lists.
func parseCacheControl(h http.Header) cacheControl {
	var cc cacheControl
	for _, line := range fieldLines(h, "Cache-Control") {
		for elem := range listElements(line) {
			cc.directive(elem)
		}
	}
	cc.NoCacheFields = sortUnique(cc.NoCacheFields)
	cc.PrivateFields = sortUnique(cc.PrivateFields)
	return cc
}

// directive applies one list element "name[=argument]".
func (cc *cacheControl) directive(elem string) {
	name, arg, hasArg := strings.Cut(elem, "=")
	name, arg = trimOWS(name), trimOWS(arg)
	if len(name) > 32 || !isToken(name) {
		return
	}
	var buf [32]byte
	lower := buf[:len(name)]
	for i := range len(name) {
		lower[i] = asciiLowerByte(name[i])
	}
	value, valid := arg, hasArg
	if hasArg && strings.HasPrefix(arg, `"`) {
		value, valid = unquote(arg)
	} else if hasArg && !isToken(arg) {
		valid = false
	}

	switch string(lower) {
	case "no-store":
		cc.NoStore = true
	case "must-revalidate":
		cc.MustRevalidate = true
	case "proxy-revalidate":
		cc.ProxyRevalidate = true
	case "no-transform":
		cc.NoTransform = true
	case "only-if-cached":
		cc.OnlyIfCached = true
	case "public":
		cc.Public = cc.Public || !hasArg
	case "immutable":
		cc.Immutable = cc.Immutable || !hasArg
	case "no-cache":
		if fields, ok := fieldNames(value, valid); hasArg && ok {
			cc.NoCacheFields = append(cc.NoCacheFields, fields...)
		} else {
			cc.NoCache = true
		}
	case "private":
		if fields, ok := fieldNames(value, valid); hasArg && ok {
			cc.PrivateFields = append(cc.PrivateFields, fields...)
		} else {
			cc.Private = true
		}
	case "max-age":
		setSmaller(&cc.MaxAge, &cc.HasMaxAge, deltaSeconds(value, valid))
	case "s-maxage":
		setSmaller(&cc.SMaxAge, &cc.HasSMaxAge, deltaSeconds(value, valid))
	case "stale-while-revalidate":
		setSmaller(&cc.StaleWhileRevalidate, &cc.HasStaleWhileRevalidate, deltaSeconds(value, valid))
	case "stale-if-error":
		setSmaller(&cc.StaleIfError, &cc.HasStaleIfError, deltaSeconds(value, valid))
	case "max-stale":
		d := anyStale
		if hasArg {
			d = deltaSeconds(value, valid)
		}
		setSmaller(&cc.MaxStale, &cc.HasMaxStale, d)
	case "min-fresh":
		d := deltaSeconds(value, valid)
		if !cc.HasMinFresh || d > cc.MinFresh {
			cc.MinFresh = d
		}
		cc.HasMinFresh = true
	}
}

// setSmaller records d in *dst unless a smaller value is there already.
func setSmaller(dst *time.Duration, has *bool, d time.Duration) {
	if !*has || d < *dst {
		*dst = d
	}
	*has = true
}

// deltaSeconds parses RFC 9111 delta-seconds (1*DIGIT), capped at 2^31
// seconds; anything else is 0.
func deltaSeconds(s string, valid bool) time.Duration {
	if !valid || s == "" {
		return 0
	}
	var n int64
	for i := range len(s) {
		c := s[i]
		if c < '0' || c > '9' {
			return 0
		}
		if n <= int64(maxDelta/time.Second) {
			n = n*10 + int64(c-'0')
		}
	}
	return time.Duration(min(n, int64(maxDelta/time.Second))) * time.Second
}

// fieldNames parses the argument of a qualified no-cache or private: a
// comma-separated list of field names, canonicalised. ok is false when the
// list names no field or any name is not a token.
func fieldNames(s string, valid bool) (names []string, ok bool) {
	if !valid {
		return nil, false
	}
	for elem := range listElements(s) {
		if !isToken(elem) {
			return nil, false
		}
		names = append(names, http.CanonicalHeaderKey(elem))
	}
	return names, len(names) > 0
}

func sortUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// policy holds the middleware settings the rules below need.
type policy struct {
	DefaultTTL   time.Duration    // freshness for responses that state none; 0: not stored
	StaleIfError time.Duration    // stale-if-error window when the response names none (default 24 h)
	Statuses     map[int]bool     // statuses stored (default [defaultStatuses]); nil: those [heuristicallyCacheable] accepts
	Shared       bool             // a shared cache: honour s-maxage, proxy-revalidate and private (always true here)
	Now          func() time.Time // the clock storable reads (Expires without Date, Age); nil: time.Now
	// Unkeyed lists request headers that can change a response without
	// being part of the key; an answer to a request carrying one is stored
	// only when the response's Vary names it. nil: [DefaultUnkeyedHeaders].
	Unkeyed []string
}

// DefaultUnkeyedHeaders returns the request headers that frameworks and
// proxies use to override the host, URL or method a handler sees. A request
// carrying one could make a handler generate a response for another host or
// URL under this request's key (web cache poisoning), so the cache does not
// store the answer to such a request unless the response's Vary names the
// header. X-Forwarded-For and X-Forwarded-Proto are not listed: proxies set
// them on every request. Behind a proxy that sets X-Forwarded-Host on every
// request, strip it there, or make it part of the key (a [KeyFunc] or Vary).
func DefaultUnkeyedHeaders() []string {
	return []string{
		"X-Forwarded-Host", "X-Host", "X-Forwarded-Server", "Forwarded",
		"X-Original-Url", "X-Rewrite-Url",
		"X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
	}
}

// heuristicallyCacheable reports whether RFC 9110 §15.1 lets a cache assign
// status a heuristic freshness lifetime. 206 is left out: this cache does not
// combine partial content. 308 is in, although [defaultStatuses] (the
// default of policy.Statuses) leaves it out.
func heuristicallyCacheable(status int) bool {
	switch status {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// storable reports whether the response to req may be stored, and if not a
// short reason for logs and Cache-Status detail. cc is the response's parsed
// Cache-Control. The rules, in the order checked (RFC 9111 §3, §3.5 and the
// design's "nothing private is shared"):
//   - "method": only GET is stored (a HEAD is answered from a GET's entry,
//     but its response is never stored);
//   - "request-no-store": the request said no-store;
//   - "status": the status is not in p.Statuses, is 1xx, 206 or 304 (never
//     stored whatever p says), or is not heuristically cacheable and the
//     response gives no explicit lifetime (max-age, s-maxage, Expires) nor
//     public: p.DefaultTTL is a heuristic, which RFC 9111 §4.2.2 allows only
//     for those statuses;
//   - "no-store", "private" (unqualified; only when p.Shared), "set-cookie"
//     (any Set-Cookie line, even one a qualified no-cache or private names),
//     "vary-star" (Vary: * or a Vary that cannot be parsed);
//   - "authorization": the request has Authorization and the response says
//     neither public nor s-maxage (only when p.Shared; DESIGN.md contract 4:
//     must-revalidate, which RFC 9111 §3.5 also accepts, is routinely sent
//     with per-user data, so it does not make an answer shareable here);
//   - "cookie": the request has Cookie and the response states no lifetime
//     of its own (max-age, s-maxage, Expires) nor public, so that only the
//     default TTL would store it: a handler that says nothing about caching
//     may be personalising by session;
//   - "unkeyed-header": the request carries one of p.Unkeyed that the
//     response's Vary does not name;
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
	case status < 200 || status == http.StatusPartialContent || status == http.StatusNotModified:
		return false, "status"
	case p.Statuses == nil && !heuristicallyCacheable(status), p.Statuses != nil && !p.Statuses[status]:
		return false, "status"
	case !heuristicallyCacheable(status) && !explicit && !cc.Public:
		return false, "status"
	case cc.NoStore:
		return false, "no-store"
	case p.Shared && cc.Private:
		return false, "private"
	case hasField(h, "Set-Cookie"):
		return false, "set-cookie"
	}
	if _, star := parseVary(h); star {
		return false, "vary-star"
	}
	if p.Shared && hasField(req.Header, "Authorization") && !cc.Public && !cc.HasSMaxAge {
		return false, "authorization"
	}
	if hasField(req.Header, "Cookie") && !explicit && !cc.Public {
		return false, "cookie"
	}
	if unkeyedHeader(req.Header, h, p.Unkeyed) {
		return false, "unkeyed-header"
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	fresh, swr, sie := lifetimes(h, cc, now(), p)
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
// response received at now (see [entry.setLifetimes]):
//
// The freshness lifetime comes from s-maxage (when p.Shared), then max-age,
// then Expires minus Date (Date defaulting to now; an Expires that does not
// parse, such as "0", or more than one Expires line, means already expired),
// then p.DefaultTTL. fresh is that lifetime minus the response's age when
// received, the larger of its Age header and now minus its Date (RFC 9111
// §4.2.3; zero for a response the handler generated now), and never
// negative. The stale windows count from the end of the lifetime, so an age
// beyond it shortens them too.
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
func lifetimes(h http.Header, cc cacheControl, now time.Time, p policy) (fresh, swr, sie time.Duration) {
	if cc.NoCache {
		return 0, 0, 0
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
	age := responseAge(h, now)
	fresh = max(lifetime-age, 0)
	if cc.MustRevalidate || p.Shared && cc.ProxyRevalidate {
		return fresh, 0, 0
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
	return fresh, max(swr-overshoot, 0), max(sie-overshoot, 0)
}

// expiresLifetime is Expires minus Date (or now), never negative; 0 for more
// than one Expires line or one that does not parse.
func expiresLifetime(expires []string, h http.Header, now time.Time) time.Duration {
	if len(expires) != 1 {
		return 0
	}
	exp, err := http.ParseTime(expires[0])
	if err != nil {
		return 0
	}
	base := now
	if date, ok := headerTime(h, "Date"); ok {
		base = date
	}
	return clampDuration(exp.Sub(base))
}

// responseAge is the age of a response received at now: the larger of its
// Age header (ignored when not delta-seconds) and now minus its Date.
func responseAge(h http.Header, now time.Time) time.Duration {
	var age time.Duration
	if lines := fieldLines(h, "Age"); len(lines) > 0 {
		age = deltaSeconds(trimOWS(lines[0]), true)
	}
	if date, ok := headerTime(h, "Date"); ok {
		age = max(age, clampDuration(now.Sub(date)))
	}
	return age
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

// unkeyedHeader reports whether the request header reqH carries one of
// names (nil: [DefaultUnkeyedHeaders]) that the response's Vary does not
// name.
func unkeyedHeader(reqH, respH http.Header, names []string) bool {
	if names == nil {
		names = DefaultUnkeyedHeaders()
	}
	var vary []string
	varyParsed := false
	for _, name := range names {
		if !hasField(reqH, name) {
			continue
		}
		if !varyParsed {
			vary, _ = parseVary(respH)
			varyParsed = true
		}
		if !slices.Contains(vary, http.CanonicalHeaderKey(name)) {
			return true
		}
	}
	return false
}

// listElements yields the elements of an RFC 9110 §5.6.1 comma-separated
// list, without surrounding whitespace and skipping empty ones. A quoted
// string (with backslash escapes) that starts an argument, right after "=",
// may hold commas; a quote anywhere else is an ordinary byte, and after an
// unterminated quoted string the rest of s splits at every comma, so that a
// malformed element never swallows the directives after it.
func listElements(s string) iter.Seq[string] {
	return func(yield func(string) bool) {
		start, quoting := 0, true
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case '"':
				if !quoting || !strings.HasSuffix(trimOWS(s[start:i]), "=") {
					continue
				}
				if end := quotedEnd(s, i); end > 0 {
					i = end - 1
				} else {
					quoting = false
				}
			case ',':
				if elem := trimOWS(s[start:i]); elem != "" && !yield(elem) {
					return
				}
				start = i + 1
			}
		}
		if elem := trimOWS(s[start:]); elem != "" {
			yield(elem)
		}
	}
}

// quotedEnd returns the index just after the quoted string that starts at
// s[i], or -1 when it does not end.
func quotedEnd(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// unquote returns the content of the quoted-string s; ok is false when s is
// not exactly one quoted-string.
func unquote(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' {
		return "", false
	}
	var b []byte // only when s has an escape
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			if i != len(s)-1 {
				return "", false
			}
			if b == nil {
				return s[1:i], true
			}
			return string(b), true
		case '\\':
			if i+1 >= len(s) {
				return "", false
			}
			if b == nil {
				b = append(make([]byte, 0, len(s)), s[1:i]...)
			}
			i++
			b = append(b, s[i])
		default:
			if b != nil {
				b = append(b, c)
			}
		}
	}
	return "", false
}

// trimOWS trims RFC 9110 optional whitespace (SP, HTAB).
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// isToken reports whether s is an RFC 9110 token: one or more tchar.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

// tchar bitmaps: bit c of tcharLow (c < 64) or of tcharHigh (c-64) is set
// when byte c is an RFC 9110 tchar: !#$%&'*+-.^_`|~, digits and letters.
const (
	tcharLow  = 0x03ff6cfa00000000
	tcharHigh = 0x57ffffffc7fffffe
)

func isTchar(c byte) bool {
	switch {
	case c < 64:
		return tcharLow>>c&1 == 1
	case c < 128:
		return tcharHigh>>(c-64)&1 == 1
	}
	return false
}

func asciiLowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
