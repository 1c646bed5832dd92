package middleware

import (
	"bufio"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzDefaultKey feeds arbitrary request lines and Host headers through
// net/http's own request parser, as a server sees them: no panic, a
// constant-length store key, HEAD and GET alike, headers never in the key,
// and the query kept byte for byte, as sent, behind a "?".
func FuzzDefaultKey(f *testing.F) {
	for _, s := range []struct{ target, host string }{
		{"/items?b=2&a=1", "Example.com:80"},
		{"/a%2Fb?x=%20&x=+", "[::1]:443"},
		{"http://evil.example/x?q", "example.com"},
		{"*", "h"},
		{"/?&&=&a", ""},
	} {
		f.Add(s.target, s.host)
	}
	f.Fuzz(func(t *testing.T, target, host string) {
		raw := "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nX-Forwarded-Host: evil\r\n\r\n"
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return
		}
		material := DefaultKey(r)
		if k := hashKey(material); len(k) != 45 {
			t.Fatalf("store key %q", k)
		}
		if strings.Count(material, "\n") != 3 {
			t.Fatalf("material %q does not have 4 lines", material)
		}
		r.Method = http.MethodHead
		if DefaultKey(r) != material {
			t.Fatal("HEAD and GET keys differ")
		}
		r.Header.Del("X-Forwarded-Host")
		if DefaultKey(r) != material {
			t.Fatal("X-Forwarded-Host changed the key")
		}
		// The query line is the raw query byte for byte. (Comparing
		// lengths only would pass a key that changed bytes.)
		want := ""
		if r.URL.RawQuery != "" || r.URL.ForceQuery {
			want = "?" + r.URL.RawQuery
		}
		if q := material[strings.LastIndexByte(material, '\n')+1:]; q != want {
			t.Fatalf("query %q from %q, want %q", q, r.URL.RawQuery, want)
		}
	})
}

// FuzzKeyTargets parses two request targets as a server does and checks
// issue 10's key property: DefaultKey gives them the same material only
// when their escaped paths and raw queries are the same bytes (an empty
// path being "/", as DefaultKey documents), and SortedQueryKey only when
// r.URL.Query() gives them the same values and their escaped paths are the
// same.
func FuzzKeyTargets(f *testing.F) {
	for _, s := range [][2]string{
		{"/q?a=1&%61=2", "/q?%61=2&a=1"},
		{"/q?a+b=1&a%20b=2", "/q?a%20b=2&a+b=1"},
		{"/q?b=1&a=2", "/q?a=2&b=1"},
		{"/a%2Fb", "/a/b"},
		{"*", "http:*"},
		{"http://h", "http://h/"},
		{"/\u00e4?", "/%C3%A4"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, t1, t2 string) {
		var rs [2]*http.Request
		for i, target := range []string{t1, t2} {
			raw := "GET " + target + " HTTP/1.1\r\nHost: example.com\r\n\r\n"
			r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
			if err != nil {
				return
			}
			rs[i] = r
		}
		path := func(r *http.Request) string {
			if p := r.URL.EscapedPath(); p != "" {
				return p
			}
			return "/"
		}
		a, b := rs[0], rs[1]
		samePath := path(a) == path(b)
		if (!samePath || a.URL.RawQuery != b.URL.RawQuery) && DefaultKey(a) == DefaultKey(b) {
			t.Fatalf("DefaultKey merges %q and %q: %q", t1, t2, DefaultKey(a))
		}
		if (!samePath || !sameValues(a.URL.Query(), b.URL.Query())) && SortedQueryKey(a) == SortedQueryKey(b) {
			t.Fatalf("SortedQueryKey merges %q and %q: %q", t1, t2, SortedQueryKey(a))
		}
	})
}

// sameValues reports whether two url.Values hold the same names with the
// same values in the same order.
func sameValues(a, b url.Values) bool {
	return maps.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}

// FuzzSortedQueryKey checks what SortedQueryKey merges: a query's raw
// parameters reordered, keeping the order of those whose names decode the
// same, key as the query itself; and two queries key apart whenever
// url.ParseQuery tells them apart.
func FuzzSortedQueryKey(f *testing.F) {
	f.Add("b=2&a=1&%61=3&a+b&a%20b=&&c", "a=1&b=2", uint64(7))
	f.Add("x=1;y=2&%zz=1&x=2", "%61=2&a=1", uint64(1))
	f.Fuzz(func(t *testing.T, q1, q2 string, seed uint64) {
		req := func(q string) *http.Request {
			return &http.Request{Method: "GET", Host: "h", URL: &url.URL{Path: "/q", RawQuery: q}}
		}
		m1 := SortedQueryKey(req(q1))
		if v1, v2 := parseQueryValues(q1), parseQueryValues(q2); !sameValues(v1, v2) && m1 == SortedQueryKey(req(q2)) {
			t.Fatalf("%q and %q have other values but one key %q", q1, q2, m1)
		}
		params := strings.Split(q1, "&")
		if len(params) > maxSortedParams {
			return
		}
		// Shuffle: repeatedly take the next parameter of a random name, so
		// that each name's parameters keep their order.
		groups := map[string][]string{}
		var names []string
		for _, p := range params {
			n := oracleName(p)
			if _, ok := groups[n]; !ok {
				names = append(names, n)
			}
			groups[n] = append(groups[n], p)
		}
		rng := rand.New(rand.NewPCG(seed, 0))
		shuffled := make([]string, 0, len(params))
		for len(names) > 0 {
			i := rng.IntN(len(names))
			n := names[i]
			shuffled = append(shuffled, groups[n][0])
			if groups[n] = groups[n][1:]; len(groups[n]) == 0 {
				names = slices.Delete(names, i, i+1)
			}
		}
		q := strings.Join(shuffled, "&")
		if m := SortedQueryKey(req(q)); m != m1 {
			t.Fatalf("%q reordered as %q: key %q, want %q", q1, q, m, m1)
		}
		if !sameValues(parseQueryValues(q), parseQueryValues(q1)) {
			t.Fatalf("the oracle's shuffle changed the values of %q", q1)
		}
	})
}

// parseQueryValues is url.ParseQuery, ignoring its error as r.URL.Query
// does.
func parseQueryValues(q string) url.Values {
	v, _ := url.ParseQuery(q)
	return v
}

// oracleName is a raw parameter's name as url.ParseQuery reads it, written
// from its documentation: the part before the first "=", unescaped; a
// parameter ParseQuery drops (a ";" in the name, a bad escape) is named by
// its raw bytes, which ParseQuery puts in no value.
func oracleName(param string) string {
	name, _, _ := strings.Cut(param, "=")
	if strings.Contains(name, ";") {
		return "raw:" + name
	}
	dec, err := url.QueryUnescape(name)
	if err != nil {
		return "raw:" + name
	}
	return "dec:" + dec
}

// FuzzVariantKey computes variant keys from arbitrary Vary and request
// header values: no panic, constant length, and the normalisation is
// stable (lines split at commas select the same variant).
func FuzzVariantKey(f *testing.F) {
	f.Add("Accept-Encoding, accept", "gzip, br", `text/html;q="0, 5"`, uint64(1))
	f.Add("*", "", "", uint64(0))
	f.Fuzz(func(t *testing.T, vary, v1, v2 string, nonce uint64) {
		names, star := parseVary(http.Header{"Vary": {vary}})
		if star {
			return
		}
		r, _ := http.NewRequest(http.MethodGet, "http://example.com/", nil)
		for _, n := range names {
			r.Header.Add(n, v1)
			r.Header.Add(n, v2)
		}
		k := variantKey("m", nonce, names, r)
		if !storeKeyRE.MatchString(k) {
			t.Fatalf("variantKey = %q", k)
		}
		if variantKey("m", nonce, names, r) != k {
			t.Fatal("variantKey is not stable")
		}
		// One combined line is the same list as two lines, unless a line
		// ends inside a quoted string.
		if len(names) > 0 && !strings.Contains(v1+v2, `"`) {
			r2, _ := http.NewRequest(http.MethodGet, "http://example.com/", nil)
			for _, n := range names {
				r2.Header.Set(n, v1+","+v2)
			}
			if variantKey("m", nonce, names, r2) != k {
				t.Fatalf("%q and %q as one line select another variant", v1, v2)
			}
		}
		if _, err := decodeEntry(encodeEntry(nil, &entry{Kind: kindVary, VaryHeaders: names, Nonce: nonce}), 0); err != nil {
			t.Fatalf("marker for %q does not decode: %v", names, err)
		}
	})
}
