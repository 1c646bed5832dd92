package middleware

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"slices"
	"strings"
)

// Cache keys. Key material is never a store key itself: hashKey and
// variantKey hash it, so that a store key has a constant length and a request
// cannot choose or inject one.

// KeyFunc returns the primary cache key material for a request: the default
// is [DefaultKey]. The result is hashed before it reaches any store, so a
// request cannot choose or inject a store key. Returning "" bypasses the
// cache for that request. A KeyFunc is called from many goroutines at once
// and must not change r.
type KeyFunc func(r *http.Request) string

// DefaultKey is the documented canonical form of a request's key material,
// these lines separated by "\n":
//   - "GET" for GET and HEAD (a HEAD is answered from a GET's entry); any
//     other method as it is, so its key never matches a GET's;
//   - "https" when the request came over TLS (r.TLS != nil), so a plain and
//     a TLS request never share an entry; nothing otherwise. The scheme in an
//     absolute-form request target is not trusted;
//   - the host (r.Host, or r.URL.Host when that is empty), ASCII-lowercased,
//     without a default port (":80" for http, ":443" for https) or an empty
//     one ("example.com:" is "example.com");
//   - the escaped path as the client sent it ([url.URL.EscapedPath]; "/a%2Fb"
//     and "/a/b" differ, as they may for the handler), "/" when empty;
//   - the raw query with its parameters stably sorted by name (the bytes
//     before "="), so the values of a repeated name keep their order; the
//     parameters themselves are not decoded or re-encoded, so two queries
//     share a key only when they differ in parameter order alone.
//
// For example "GET\nexample.com\n/items\na=1&b=2&b=1". Headers such as
// X-Forwarded-Host are never part of the key. DefaultKey returns "" (bypass)
// for a request without a URL.
//
// The material grows with the URL; the store key does not (see [hashKey]).
// The cache bypasses requests whose key material exceeds its limit; with
// DefaultKey (no [WithKeyFunc]) it tells that from the URL's length before
// calling it, so a huge URL costs neither this function nor a store.
func DefaultKey(r *http.Request) string {
	if r.URL == nil {
		return ""
	}
	method := r.Method
	if method == "" || method == http.MethodHead {
		method = http.MethodGet // "" is GET for a client request
	}
	tls, defaultPort := r.TLS != nil, ":80"
	if tls {
		defaultPort = ":443"
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	host = strings.TrimSuffix(strings.TrimSuffix(asciiLower(host), defaultPort), ":")
	path := r.URL.Opaque
	if path == "" {
		path = r.URL.EscapedPath()
	}
	if path == "" {
		path = "/"
	}
	query := r.URL.RawQuery // sorted by writeSortedQuery: the same length

	var b strings.Builder
	b.Grow(len(method) + len("\nhttps") + len(host) + len(path) + len(query) + 3)
	b.WriteString(method)
	if tls {
		b.WriteString("\nhttps")
	}
	b.WriteByte('\n')
	b.WriteString(host)
	b.WriteByte('\n')
	b.WriteString(path)
	b.WriteByte('\n')
	writeSortedQuery(&b, query)
	return b.String()
}

// defaultKeyOver reports, without building it, that [DefaultKey]'s material
// for r is longer than limit: it holds the path (escaped, never shorter than
// r.URL.Path) or the opaque part, and the query. A huge URL then costs the
// cache nothing: sorting 1 MiB of query parameters takes a CPU for a tenth of
// a second and allocates several times the URL.
func defaultKeyOver(r *http.Request, limit int) bool {
	if r.URL == nil {
		return false
	}
	path := r.URL.Opaque
	if path == "" {
		path = r.URL.Path
	}
	return len(path)+len(r.URL.RawQuery) > limit
}

// writeSortedQuery writes raw with its "&"-separated parameters stably
// sorted by name (as many bytes as raw); raw itself when they are sorted
// already. Up to 32 parameters are sorted without allocating.
func writeSortedQuery(b *strings.Builder, raw string) {
	sorted, prev := true, ""
	for param := range strings.SplitSeq(raw, "&") {
		name := queryName(param)
		if name < prev {
			sorted = false
			break
		}
		prev = name
	}
	if sorted {
		b.WriteString(raw)
		return
	}
	var buf [32]string
	params := buf[:0]
	if n := strings.Count(raw, "&") + 1; n > len(buf) {
		params = make([]string, 0, n) // one exact allocation, as strings.Split
	}
	for param := range strings.SplitSeq(raw, "&") {
		params = append(params, param)
	}
	slices.SortStableFunc(params, func(a, b string) int { return strings.Compare(queryName(a), queryName(b)) })
	for i, param := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(param)
	}
}

func queryName(param string) string {
	name, _, _ := strings.Cut(param, "=")
	return name
}

// asciiLower lowercases ASCII letters only, so that distinct hosts never
// fold together (strings.ToLower maps the Kelvin sign to "k"); it returns s
// itself when there is nothing to change.
func asciiLower(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return 'A' <= r && r <= 'Z' })
	if i < 0 {
		return s
	}
	b := []byte(s)
	for j := i; j < len(b); j++ {
		b[j] = asciiLowerByte(b[j])
	}
	return string(b)
}

// Store key prefixes: short, and different for primary and variant keys so
// that the two never meet and a store dump shows which is which.
const (
	primaryKeyPrefix = "e:"
	variantKeyPrefix = "v:"
)

// hashKey returns the store key for key material: "e:" and the base64url
// (unpadded) SHA-256 of material, 45 bytes whatever the material.
func hashKey(material string) string {
	var buf [256]byte // the material of most URLs: hashed without allocating
	return digestKey(primaryKeyPrefix, sha256.Sum256(append(buf[:0], material...)))
}

// digestKey formats a store key: prefix and the unpadded base64url of sum.
func digestKey(prefix string, sum [sha256.Size]byte) string {
	var buf [2 + 43]byte
	n := copy(buf[:], prefix)
	base64.RawURLEncoding.Encode(buf[n:], sum[:])
	return string(buf[:n+base64.RawURLEncoding.EncodedLen(sha256.Size)])
}

// variantKey returns the store key of one variant: "v:" and the base64url
// (unpadded) SHA-256 of the primary material, the marker's nonce, and for
// each name in varyHeaders (canonical, sorted, as in the marker) the
// request's values of that header, normalised as RFC 9111 §4.1 allows: the
// field lines combined into one list, whitespace around elements removed,
// empty elements dropped, elements joined with ",". So "gzip, br" and the two
// lines "gzip" and "br" select the same variant; an absent header and an
// empty one select different variants (for Accept-Encoding they mean "any
// coding" and "identity only"). Every part is length-prefixed, so distinct
// inputs never run together. The length is constant, like [hashKey]'s.
func variantKey(material string, nonce uint64, varyHeaders []string, r *http.Request) string {
	buf := make([]byte, 0, 256)
	buf = appendString(buf, material)
	buf = binary.BigEndian.AppendUint64(buf, nonce)
	buf = binary.AppendUvarint(buf, uint64(len(varyHeaders)))
	// fieldLines scans the whole map for other cases of each name; a map
	// whose keys are all canonical (as net/http's server builds it) is read
	// directly, so that many Vary names times thousands of request header
	// lines cost one pass over the map, not one per name.
	linesOf := fieldLines
	if canonicalKeys(r.Header) {
		linesOf = func(h http.Header, name string) []string { return h[name] }
	}
	var value []byte
	for _, name := range varyHeaders {
		buf = appendString(buf, name)
		lines := linesOf(r.Header, name)
		if len(lines) == 0 {
			buf = append(buf, 0) // absent
			continue
		}
		value = value[:0]
		for _, line := range lines {
			for elem := range listElements(line) {
				if len(value) > 0 {
					value = append(value, ',')
				}
				value = append(value, elem...)
			}
		}
		buf = append(buf, 1) // present
		buf = binary.AppendUvarint(buf, uint64(len(value)))
		buf = append(buf, value...)
	}
	return digestKey(variantKeyPrefix, sha256.Sum256(buf))
}

// parseVary returns the canonical, sorted, deduplicated header names in the
// response's Vary fields (any case of the map key), and star=true when any
// is "*". A member that is not a valid field name, or more than [maxHeaders]
// names, also reads as "*": the cache cannot select variants it cannot
// name, so the response is not stored. names is nil when star is true.
func parseVary(h http.Header) (names []string, star bool) {
	for _, line := range fieldLines(h, "Vary") {
		for elem := range listElements(line) {
			if elem == "*" || !isToken(elem) {
				return nil, true
			}
			names = append(names, http.CanonicalHeaderKey(elem))
		}
	}
	names = sortUnique(names)
	if len(names) > maxHeaders {
		return nil, true
	}
	return names, false
}
