// Forwarding headers in the key: a request that carries one is keyed by its
// value, so that an answer a proxy's header shaped is never served to a
// request without it or with another value.

package middleware

import (
	"iter"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// DefaultKeyHeaders returns the request headers that proxies and frameworks
// use to tell a handler the scheme, host, port, path prefix or URL the
// client used: Forwarded, Front-End-Https, X-Forwarded-Host,
// X-Forwarded-Port, X-Forwarded-Prefix, X-Forwarded-Proto,
// X-Forwarded-Scheme, X-Forwarded-Server, X-Forwarded-Ssl, X-Host,
// X-Original-Host, X-Original-Url, X-Rewrite-Url and X-Url-Scheme. A
// handler that redirects or builds links from one of them answers
// differently for each value, so the cache keys every request that carries
// one by its field lines (see [WithKeyHeaders], which adds names). Behind a
// proxy each has few values, so hit rates stay high; a request without any
// keys as it would without this list.
//
// X-Forwarded-For and the like (X-Real-Ip, True-Client-Ip) are not listed:
// they differ for every client, so keying them would give each client its
// own entries, and a response that depends on the client's address is not
// one to share. A handler that answers by address must say Vary (or not be
// cached). For the same reason only the proto and host parameters of
// Forwarded (RFC 7239) are keyed, not for and by: a Forwarded that names
// neither keys as if absent.
func DefaultKeyHeaders() []string {
	return []string{
		"Forwarded", "Front-End-Https",
		"X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Proto",
		"X-Forwarded-Scheme", "X-Forwarded-Server", "X-Forwarded-Ssl",
		"X-Host", "X-Original-Host", "X-Original-Url", "X-Rewrite-Url", "X-Url-Scheme",
	}
}

// defaultKeyHeaderNames returns [DefaultKeyHeaders] sorted, as the cache
// keeps its key headers.
func defaultKeyHeaderNames() []string { return sortUnique(DefaultKeyHeaders()) }

// keyMaterial returns the key material of r: the key function's, with the
// field lines of the key headers r carries inserted after its first line
// (see [withKeyHeaders]). It is "" (bypass) when the key function gives none
// or the material would be longer than the limit, which it tells before
// building it.
//
// A custom key function's material is framed first, as "custom\n" len ":"
// material, so that the key headers go into a first line of failsoft's own:
// unframed, a material such as "/a X-Forwarded-Proto=5:https" (from a
// request without the header) would equal the material of "/a" with the
// header inserted. [DefaultKey]'s needs no frame: its first line is the
// method, a token, which no inserted header can imitate.
func (c *Cache) keyMaterial(r *http.Request) string {
	material := c.o.key(r)
	if material == "" || len(material) > c.o.maxKey {
		return ""
	}
	if c.o.customKey {
		material = "custom\n" + strconv.Itoa(len(material)) + ":" + material
	}
	material, ok := withKeyHeaders(material, r.Header, c.o.keyHeaders, c.o.maxKey)
	if !ok {
		return ""
	}
	return material
}

// appendKeyMaterial appends the key material of r (see [Cache.keyMaterial])
// to dst, and reports false when there is none (bypass). With the default
// key function and none of the key headers present, which is most requests,
// it builds the material in dst without allocating.
func (c *Cache) appendKeyMaterial(dst []byte, r *http.Request) ([]byte, bool) {
	if !c.o.customKey && !keyHeadersPresent(r.Header, c.o.keyHeaders) {
		b := appendRequestKey(dst, r, false)
		return b, len(b) > 0 && len(b) <= c.o.maxKey
	}
	material := c.keyMaterial(r)
	return append(dst, material...), material != ""
}

// keyHeadersPresent reports whether h carries any of names (canonical), in
// any case of the key, as [withKeyHeaders] looks them up.
func keyHeadersPresent(h http.Header, names []string) bool {
	if len(h) == 0 {
		return false
	}
	linesOf := lineLookup(h)
	for _, name := range names {
		if len(linesOf(h, name)) > 0 {
			return true
		}
	}
	return false
}

// withKeyHeaders inserts into material, before its first "\n" (at its end
// when it has none), the field lines of the names (canonical, sorted) that
// h carries, in any case of the key, as
//
//	" " name "=" len ":" line ["," len ":" line ...]
//
// for each name, len being the line's length in decimal. Every line is
// length-prefixed, so a value cannot forge another name or line, and "a,b"
// and the two lines "a" and "b" (which r.Header.Get tells apart) differ. It
// returns material itself when h carries none of names, and ok=false when
// the result would be longer than limit. The first line of [DefaultKey]'s
// material is the method, a token: the space tells the two forms apart, so
// distinct requests never get the same material.
func withKeyHeaders(material string, h http.Header, names []string, limit int) (string, bool) {
	linesOf := lineLookup(h)
	type field struct {
		name  string
		lines []string
	}
	var buf [8]field // the fields present, for most requests
	present := buf[:0]
	size := len(material)
	for _, name := range names {
		lines := linesOf(h, name)
		if name == "Forwarded" && len(lines) > 0 {
			lines = forwardedKeyLines(lines)
		}
		if len(lines) == 0 {
			continue
		}
		present = append(present, field{name, lines})
		size += len(" =") + len(name) + len(lines) - 1 // the commas
		for _, line := range lines {
			size += decimalLen(len(line)) + len(":") + len(line)
		}
	}
	if len(present) == 0 {
		return material, true
	}
	if size > limit {
		return "", false
	}
	first := strings.IndexByte(material, '\n')
	if first < 0 {
		first = len(material)
	}
	b := make([]byte, 0, size)
	b = append(b, material[:first]...)
	for _, f := range present {
		b = append(b, ' ')
		b = append(b, f.name...)
		b = append(b, '=')
		for j, line := range f.lines {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(len(line)), 10)
			b = append(b, ':')
			b = append(b, line...)
		}
	}
	b = append(b, material[first:]...)
	return string(b), true
}

// decimalLen is the number of decimal digits of n >= 0.
func decimalLen(n int) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

// validKeyHeaders reports the first of names that is not a field name.
func validKeyHeaders(names []string) (bad string, ok bool) {
	i := slices.IndexFunc(names, func(n string) bool { return !isToken(n) })
	if i >= 0 {
		return names[i], false
	}
	return "", true
}

// forwardedKeyLines returns the Forwarded field lines (RFC 7239) as the key
// sees them: each element keeps only its proto and host pairs, in order;
// for and by, which name the client and the proxy, are dropped. Elements
// are split at commas and pairs at semicolons outside quoted strings. A
// line left with nothing is dropped.
func forwardedKeyLines(lines []string) []string {
	var out []string
	for _, line := range lines {
		var b strings.Builder
		for elem := range splitOutsideQuotes(line, ',') {
			var kept []string
			for pair := range splitOutsideQuotes(elem, ';') {
				pair = trimOWS(pair)
				name, _, _ := strings.Cut(pair, "=")
				if strings.EqualFold(name, "proto") || strings.EqualFold(name, "host") {
					kept = append(kept, pair)
				}
			}
			if len(kept) > 0 {
				if b.Len() > 0 {
					b.WriteByte(',')
				}
				b.WriteString(strings.Join(kept, ";"))
			}
		}
		if b.Len() > 0 {
			out = append(out, b.String())
		}
	}
	return out
}

// splitOutsideQuotes yields the parts of s between the sep bytes that are
// outside double-quoted strings (with backslash escapes).
func splitOutsideQuotes(s string, sep byte) iter.Seq[string] {
	return func(yield func(string) bool) {
		start, quoted := 0, false
		for i := 0; i < len(s); i++ {
			switch c := s[i]; {
			case quoted && c == '\\':
				i++
			case c == '"':
				quoted = !quoted
			case !quoted && c == sep:
				if !yield(s[start:i]) {
					return
				}
				start = i + 1
			}
		}
		yield(s[start:])
	}
}
