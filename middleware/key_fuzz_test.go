package middleware

import (
	"bufio"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// FuzzDefaultKey feeds arbitrary request lines and Host headers through
// net/http's own request parser, as a server sees them: no panic, a
// constant-length store key, HEAD and GET alike, headers never in the key,
// and the query's parameters stably sorted by name, each byte for byte.
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
		// The query keeps every parameter byte for byte, stably sorted by
		// name. (Comparing lengths only would pass a key that changed bytes.)
		params := strings.Split(r.URL.RawQuery, "&")
		slices.SortStableFunc(params, func(a, b string) int {
			an, _, _ := strings.Cut(a, "=")
			bn, _, _ := strings.Cut(b, "=")
			return strings.Compare(an, bn)
		})
		if q, want := material[strings.LastIndexByte(material, '\n')+1:], strings.Join(params, "&"); q != want {
			t.Fatalf("query %q from %q, want %q", q, r.URL.RawQuery, want)
		}
	})
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
