// Cache-Control parsing (RFC 9111 §5.2, RFC 5861) and the RFC 9110 list
// syntax it rests on.

package middleware

import (
	"iter"
	"net/http"
	"slices"
	"strings"
	"time"
)

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
//     elements is ignored, as are empty elements and unknown directives;
//   - whitespace around "=" makes the argument invalid, as the grammar has
//     none there ("max-age =60" and "max-age= 60" read as an invalid
//     max-age);
//   - a delta-seconds that does not parse (empty, signed, fractional,
//     missing, or an invalid argument) makes its directive present with
//     value 0, the conservative reading (RFC 9111 §4.2.1 encourages caches
//     to consider invalid freshness information stale): stale, not fresh,
//     no stale window; values are capped at 2^31 seconds;
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
//     any name not a token) reads as the unqualified directive;
//   - text the parser cannot read cleanly (an element that is not
//     name[=token or quoted-string], such as "private max-age=60" without
//     its comma, or "no-store;"), and unknown directive names, count as
//     private, no-store or no-cache when they name one in any spelling (see
//     [cacheControl.sloppy]): unreadable input never shares what the origin
//     may have meant to keep private.
type cacheControl struct {
	NoStore, NoCache, Private, Public        bool
	MustRevalidate, ProxyRevalidate          bool
	OnlyIfCached, Immutable, NoTransform     bool
	MaxAge, SMaxAge                          time.Duration
	HasMaxAge, HasSMaxAge                    bool
	BadSMaxAge                               bool // an s-maxage without a valid delta-seconds (it reads as 0)
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
	// The grammar has no whitespace around "=" (RFC 9111 §5.2): with it,
	// the argument is invalid ("max-age =60" is not max-age=60).
	trimmedName, trimmedArg := trimOWS(name), trimOWS(arg)
	spaced := hasArg && (trimmedName != name || trimmedArg != arg)
	name, arg = trimmedName, trimmedArg
	if !isToken(name) {
		cc.sloppy(elem)
		return
	}
	value, valid := arg, hasArg && !spaced
	if valid && strings.HasPrefix(arg, `"`) {
		value, valid = unquote(arg)
	} else if valid && !isToken(arg) {
		valid = false
	}
	if hasArg && !valid {
		cc.sloppy(elem)
	}
	if len(name) > 32 {
		cc.sloppy(name)
		return
	}
	var buf [32]byte
	lower := buf[:len(name)]
	for i := range len(name) {
		lower[i] = asciiLowerByte(name[i])
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
		if _, ok := ageSeconds(value); !valid || !ok {
			cc.BadSMaxAge = true
		}
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
	default:
		cc.sloppy(name)
	}
}

// sloppy applies the restrictive directives that s, text the parser cannot
// read as a known directive (an element that is not name[=token or
// quoted-string], or an unknown directive's name), names in any spelling:
// private, no-store, no-cache, in any case and with any punctuation or
// none between the words ("no_store", "No Cache", "private max-age=60").
// Unreadable text that mentions one of them is taken to mean it: reading
// it as nothing would share what the origin meant to keep private.
func (cc *cacheControl) sloppy(s string) {
	cc.Private = cc.Private || mentions(s, "private")
	cc.NoStore = cc.NoStore || mentions(s, "nostore")
	cc.NoCache = cc.NoCache || mentions(s, "nocache")
}

// mentions reports whether the lower-case word occurs in s when ASCII case
// is ignored and every byte but a letter or digit is skipped.
func mentions(s, word string) bool {
	for i := 0; i < len(s); i++ {
		k := 0
		for j := i; j < len(s) && k < len(word); j++ {
			c := asciiLowerByte(s[j])
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
				if k == 0 {
					break
				}
				continue
			}
			if c != word[k] {
				break
			}
			k++
		}
		if k == len(word) {
			return true
		}
	}
	return false
}

// setSmaller records d in *dst unless a smaller value is there already.
func setSmaller(dst *time.Duration, has *bool, d time.Duration) {
	if !*has || d < *dst {
		*dst = d
	}
	*has = true
}

// deltaSeconds parses RFC 9111 delta-seconds (1*DIGIT), capped at 2^31
// seconds (see [ageSeconds]); anything else is 0.
func deltaSeconds(s string, valid bool) time.Duration {
	if !valid {
		return 0
	}
	d, _ := ageSeconds(s)
	return d
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
				if !quoting || !afterEquals(s, start, i) {
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

// afterEquals reports whether s[start:i], less trailing whitespace, ends in
// "=". It looks back only over the whitespace run before i, which no other
// quote's look-back covers, so a list's quotes cost linear time in all.
func afterEquals(s string, start, i int) bool {
	j := i - 1
	for j >= start && (s[j] == ' ' || s[j] == '\t') {
		j--
	}
	return j >= start && s[j] == '='
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
