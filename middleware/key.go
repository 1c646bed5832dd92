package middleware

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unsafe"
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
//   - the path as the client sent it: r.URL.RawPath when it decodes to
//     r.URL.Path, else [url.URL.EscapedPath] ("/a%2Fb" and "/a/b" differ, as
//     "/a%2fb" and "/a%2Fb" and "/%C3%A4" and a raw "/ä" do); "/" when empty;
//     for an opaque URL the scheme, ":" and r.URL.Opaque;
//   - "?" and the raw query as sent (r.URL.RawQuery, byte for byte, not
//     sorted or decoded) when the target had a "?" (a non-empty RawQuery or
//     r.URL.ForceQuery); nothing otherwise.
//
// For example "GET\nexample.com\n/items\n?b=2&a=1". So two requests share
// an entry only when their request targets (path and query) are the same
// bytes, as nginx and Varnish key: never two that r.URL.Query(),
// r.URL.RawQuery or r.URL.EscapedPath() tell apart. The one normalisation is
// that an empty path is "/" (an absolute-form target "http://h" is
// "http://h/"). [SortedQueryKey] also merges reordered queries. DefaultKey
// reads no header but Host; the cache adds forwarding headers itself (see
// [WithKeyHeaders]). DefaultKey returns "" (bypass) for a request without a
// URL.
//
// The material grows with the URL; the store key does not (see [hashKey]).
// The cache bypasses requests whose key material exceeds its limit; with
// DefaultKey (no [WithKeyFunc]) it tells that from the URL's length before
// calling it, so a huge URL costs neither this function nor a store.
func DefaultKey(r *http.Request) string { return requestKey(r, false) }

// SortedQueryKey is [DefaultKey] with the query's parameters stably sorted
// by name, so that requests whose queries differ only in the order of
// parameters of different names share an entry: "/q?b=2&a=1" and
// "/q?a=1&b=2" do. A parameter is the bytes between two "&"; its name is
// the part before the first "=", decoded as [url.ParseQuery] decodes it
// ("%61" and "a" are the same name, as are "a+b" and "a%20b"). Parameters
// whose names decode the same keep their order, and no parameter is
// decoded, re-encoded or dropped in the material, so two requests share a
// key only when r.URL.Query() gives them the same values in the same order:
// "/q?a=1&%61=2" and "/q?%61=2&a=1" do not share one. Requests whose raw
// queries differ in other ways ("a=%31" and "a=1", an empty "&&") do not
// share a key either. Parameters whose names url.ParseQuery drops (a ";" in
// the name, a bad escape) sort after the others, by their raw names. A
// query of more than 512 parameters is not sorted (it is keyed as sent), so
// that sorting stays cheap. Use it with [WithKeyFunc]; as any key function
// it is called whatever the URL's length.
func SortedQueryKey(r *http.Request) string { return requestKey(r, true) }

// maxSortedParams bounds the parameters [SortedQueryKey] sorts.
const maxSortedParams = 512

// requestKey builds DefaultKey's material, with the query sorted when sorted.
func requestKey(r *http.Request, sorted bool) string {
	if r.URL == nil {
		return ""
	}
	u := r.URL
	size := len("GET\nhttps\n") + len(r.Host) + len(u.Host) + len(u.Scheme) + len(u.Opaque) +
		len(u.RawPath) + len(u.Path) + len(u.RawQuery) + 5
	b := appendRequestKey(make([]byte, 0, size), r, sorted)
	// b is never written again: the string may share its bytes, as
	// strings.Builder's does.
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// appendRequestKey appends DefaultKey's material for r to dst, with the
// query sorted when sorted; it appends nothing for a request without a URL.
// The cache builds the material of most requests into a buffer on the stack
// with it, so that a hit allocates no key material.
func appendRequestKey(dst []byte, r *http.Request, sorted bool) []byte {
	if r.URL == nil {
		return dst
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
	path := targetPath(r.URL)
	query := r.URL.RawQuery
	hasQuery := query != "" || r.URL.ForceQuery

	b := append(dst, method...)
	if tls {
		b = append(b, "\nhttps"...)
	}
	b = append(b, '\n')
	b = append(b, host...)
	b = append(b, '\n')
	if r.URL.Opaque != "" {
		b = append(b, r.URL.Scheme...)
		b = append(b, ':')
	}
	b = append(b, path...)
	b = append(b, '\n')
	if hasQuery {
		b = append(b, '?')
		if sorted {
			b = appendSortedQuery(b, query)
		} else {
			b = append(b, query...)
		}
	}
	return b
}

// targetPath is the path of u as the client sent it (see [DefaultKey]):
// the opaque part, RawPath when it is consistent with Path (a stale RawPath
// that a middleware left behind after changing Path does not count), or
// EscapedPath; "/" when empty.
func targetPath(u *url.URL) string {
	if u.Opaque != "" {
		return u.Opaque
	}
	if u.RawPath != "" {
		if p, err := url.PathUnescape(u.RawPath); err == nil && p == u.Path {
			return u.RawPath
		}
	}
	if p := u.EscapedPath(); p != "" {
		return p
	}
	return "/"
}

// defaultKeyOver reports, without building it, that [DefaultKey]'s material
// for r is longer than limit: it holds the path (escaped, never shorter than
// r.URL.Path) or the opaque part, and the query. A huge URL then costs the
// cache nothing.
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

// appendSortedQuery appends raw to b with its "&"-separated parameters stably
// sorted by [queryName] (as many bytes as raw); raw itself when they are
// sorted already or there are more than [maxSortedParams].
func appendSortedQuery(b []byte, raw string) []byte {
	n := strings.Count(raw, "&") + 1
	sorted := true
	if n <= maxSortedParams {
		var prev queryParam
		for i, p := range strings.Split(raw, "&") {
			cur := newQueryParam(p)
			if i > 0 && compareParams(prev, cur) > 0 {
				sorted = false
				break
			}
			prev = cur
		}
	}
	if sorted {
		return append(b, raw...)
	}
	params := make([]queryParam, 0, n)
	for p := range strings.SplitSeq(raw, "&") {
		params = append(params, newQueryParam(p))
	}
	slices.SortStableFunc(params, compareParams)
	for i, p := range params {
		if i > 0 {
			b = append(b, '&')
		}
		b = append(b, p.raw...)
	}
	return b
}

// queryParam is a raw query parameter and its name as [url.ParseQuery]
// reads it: the part before the first "=", unescaped ("+" is a space).
// dropped marks a name ParseQuery drops (one with ";" or a bad escape),
// which is then kept raw: such a parameter is in no url.Values, and it
// sorts after every other, so that it never ties with one that is.
type queryParam struct {
	name, raw string
	dropped   bool
}

func newQueryParam(raw string) queryParam {
	name, _, _ := strings.Cut(raw, "=")
	if strings.Contains(name, ";") {
		return queryParam{name: name, raw: raw, dropped: true}
	}
	if !strings.ContainsAny(name, "%+") {
		return queryParam{name: name, raw: raw}
	}
	dec, err := url.QueryUnescape(name)
	if err != nil {
		return queryParam{name: name, raw: raw, dropped: true}
	}
	return queryParam{name: dec, raw: raw}
}

// compareParams orders parameters by name, those ParseQuery drops last.
func compareParams(a, b queryParam) int {
	if a.dropped != b.dropped {
		if a.dropped {
			return 1
		}
		return -1
	}
	return strings.Compare(a.name, b.name)
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
	return hashKeyBytes(append(buf[:0], material...))
}

// hashKeyBytes is [hashKey] of material held in bytes.
func hashKeyBytes(material []byte) string {
	return digestKey(primaryKeyPrefix, sha256.Sum256(material))
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
	linesOf := lineLookup(r.Header)
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
