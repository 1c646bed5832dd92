package middleware

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// serverRequest builds a request as a server parsed it from target (an
// origin-form path or an absolute URL), with Host host and TLS when tlsOn.
func serverRequest(method, host, target string, tlsOn bool) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	if host != "" {
		r.Host = host
	}
	r.TLS = nil
	if tlsOn {
		r.TLS = &tls.ConnectionState{}
	}
	return r
}

func TestDefaultKey(t *testing.T) {
	tests := []struct {
		name   string
		method string
		host   string
		target string
		tls    bool
		want   string
	}{
		{"GET", "GET", "example.com", "/items", false, "GET\nexample.com\n/items\n"},
		{"HEAD is GET", "HEAD", "example.com", "/items", false, "GET\nexample.com\n/items\n"},
		{"other method kept", "POST", "example.com", "/items", false, "POST\nexample.com\n/items\n"},
		{"TLS adds scheme", "GET", "example.com", "/items", true, "GET\nhttps\nexample.com\n/items\n"},
		{"host lowercased", "GET", "Example.COM", "/", false, "GET\nexample.com\n/\n"},
		{"non-ASCII host not folded", "GET", "\u212Aey.com", "/", false, "GET\n\u212Aey.com\n/\n"},
		{"default port http", "GET", "example.com:80", "/", false, "GET\nexample.com\n/\n"},
		{"default port https", "GET", "example.com:443", "/", true, "GET\nhttps\nexample.com\n/\n"},
		{"443 over http kept", "GET", "example.com:443", "/", false, "GET\nexample.com:443\n/\n"},
		{"80 over https kept", "GET", "example.com:80", "/", true, "GET\nhttps\nexample.com:80\n/\n"},
		{"other port kept", "GET", "example.com:8080", "/", false, "GET\nexample.com:8080\n/\n"},
		{"port 180 kept", "GET", "example.com:180", "/", false, "GET\nexample.com:180\n/\n"},
		{"empty port", "GET", "example.com:", "/", false, "GET\nexample.com\n/\n"},
		{"IPv6 default port", "GET", "[::1]:80", "/", false, "GET\n[::1]\n/\n"},
		{"query as sent, not sorted", "GET", "h", "/p?b=2&a=1", false, "GET\nh\n/p\n?b=2&a=1"},
		{"query repeated name keeps order", "GET", "h", "/p?b=2&a=9&c=0&a=1", false, "GET\nh\n/p\n?b=2&a=9&c=0&a=1"},
		{"query not decoded", "GET", "h", "/p?b=%20&a=+", false, "GET\nh\n/p\n?b=%20&a=+"},
		{"query empty params kept", "GET", "h", "/p?b&&a", false, "GET\nh\n/p\n?b&&a"},
		{"empty query kept", "GET", "h", "/p?", false, "GET\nh\n/p\n?"},
		{"path escaping preserved", "GET", "h", "/a%2Fb/c%20d", false, "GET\nh\n/a%2Fb/c%20d\n"},
		{"path escape case preserved", "GET", "h", "/a%2fb", false, "GET\nh\n/a%2fb\n"},
		{"raw non-ASCII path as sent", "GET", "h", "/\u00e4", false, "GET\nh\n/\u00e4\n"},
		{"escaped non-ASCII path as sent", "GET", "h", "/%C3%A4", false, "GET\nh\n/%C3%A4\n"},
		{"path not cleaned", "GET", "h", "/a/../b//c", false, "GET\nh\n/a/../b//c\n"},
		{"absolute form uses Host, not scheme", "GET", "", "https://Example.com:443/x?q", false, "GET\nexample.com:443\n/x\n?q"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := serverRequest(tt.method, tt.host, tt.target, tt.tls)
			if got := DefaultKey(r); got != tt.want {
				t.Errorf("DefaultKey = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDefaultKeyIgnoresHeaders(t *testing.T) {
	a := serverRequest("GET", "example.com", "/x", false)
	b := serverRequest("GET", "example.com", "/x", false)
	for _, h := range []string{"X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "X-Original-Url", "Cookie", "Authorization"} {
		b.Header.Set(h, "evil.example")
	}
	if DefaultKey(a) != DefaultKey(b) {
		t.Fatal("headers changed the key")
	}
}

func TestDefaultKeyDiffers(t *testing.T) {
	base := func() *http.Request { return serverRequest("GET", "example.com", "/x?a=1", false) }
	tests := []struct {
		name string
		r    *http.Request
	}{
		{"other host", serverRequest("GET", "example.org", "/x?a=1", false)},
		{"TLS", serverRequest("GET", "example.com", "/x?a=1", true)},
		{"other port", serverRequest("GET", "example.com:8080", "/x?a=1", false)},
		{"other path", serverRequest("GET", "example.com", "/y?a=1", false)},
		{"escaped slash", serverRequest("GET", "example.com", "/x%2F?a=1", false)},
		{"other query", serverRequest("GET", "example.com", "/x?a=2", false)},
		{"no query", serverRequest("GET", "example.com", "/x", false)},
		{"repeated values reordered", serverRequest("GET", "example.com", "/x?a=1&a=2", false)},
		{"POST", serverRequest("POST", "example.com", "/x?a=1", false)},
	}
	want := DefaultKey(base())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DefaultKey(tt.r); got == want {
				t.Errorf("same key %q as the base request", got)
			}
		})
	}
	if DefaultKey(serverRequest("GET", "example.com", "/x?a=2&a=1", false)) == DefaultKey(serverRequest("GET", "example.com", "/x?a=1&a=2", false)) {
		t.Error("order of a repeated name's values does not count")
	}
}

func TestDefaultKeyClientRequest(t *testing.T) {
	tests := []struct {
		name string
		r    *http.Request
		want string
	}{
		{"URL host when Host empty", &http.Request{Method: "", URL: &url.URL{Host: "Example.com:80", Path: ""}}, "GET\nexample.com\n/\n"},
		{"opaque URL", &http.Request{Method: "GET", URL: &url.URL{Scheme: "http", Opaque: "foo"}, Host: "h"}, "GET\nh\nhttp:foo\n"},
		{"opaque * is not path *", &http.Request{Method: "GET", URL: &url.URL{Scheme: "http", Opaque: "*"}, Host: "h"}, "GET\nh\nhttp:*\n"},
		{"stale RawPath ignored", &http.Request{Method: "GET", URL: &url.URL{Path: "/b", RawPath: "/a%2Fb"}, Host: "h"}, "GET\nh\n/b\n"},
		{"no URL bypasses", &http.Request{Method: "GET"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DefaultKey(tt.r); got != tt.want {
				t.Errorf("DefaultKey = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDefaultKeyHugeURL(t *testing.T) {
	// ~1 MiB of query (net/http's default header limit), in reverse order:
	// DefaultKey keeps it as sent, and so does SortedQueryKey, above
	// maxSortedParams parameters.
	var q strings.Builder
	for i := 100_000; i > 0; i-- {
		fmt.Fprintf(&q, "p%06d=v&", i)
	}
	r := serverRequest("GET", "example.com", "/x?"+q.String(), false)
	for name, key := range map[string]KeyFunc{"DefaultKey": DefaultKey, "SortedQueryKey": SortedQueryKey} {
		material := key(r)
		if material != "GET\nexample.com\n/x\n?"+q.String() {
			t.Fatalf("%s: material of %d bytes for a %d-byte query, not the query as sent", name, len(material), q.Len())
		}
		if k := hashKey(material); len(k) != 45 {
			t.Fatalf("store key of %d bytes", len(k))
		}
	}
}

func TestSortedQueryKey(t *testing.T) {
	tests := []struct {
		name, target, want string
	}{
		{"sorted", "/p?b=2&a=1", "GET\nh\n/p\n?a=1&b=2"},
		{"repeated name keeps order", "/p?b=2&a=9&c=0&a=1", "GET\nh\n/p\n?a=9&a=1&b=2&c=0"},
		{"sorted already", "/p?a=1&a=0&b", "GET\nh\n/p\n?a=1&a=0&b"},
		{"not decoded", "/p?b=%20&a=+", "GET\nh\n/p\n?a=+&b=%20"},
		{"empty params kept", "/p?b&&a", "GET\nh\n/p\n?&a&b"},
		{"names compared decoded", "/p?b=1&%61=2&a=3", "GET\nh\n/p\n?%61=2&a=3&b=1"},
		{"same decoded name keeps order", "/p?a=3&%61=2", "GET\nh\n/p\n?a=3&%61=2"},
		{"plus is space", "/p?a+b=1&a=2&a%20b=3", "GET\nh\n/p\n?a=2&a+b=1&a%20b=3"},
		{"no query", "/p", "GET\nh\n/p\n"},
		{"empty query", "/p?", "GET\nh\n/p\n?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SortedQueryKey(serverRequest("GET", "h", tt.target, false)); got != tt.want {
				t.Errorf("SortedQueryKey = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("at most maxSortedParams sorted", func(t *testing.T) {
		params := make([]string, maxSortedParams)
		for i := range params {
			params[i] = fmt.Sprintf("p%04d", maxSortedParams-i)
		}
		sorted := slices.Clone(params)
		slices.Sort(sorted)
		r := serverRequest("GET", "h", "/?"+strings.Join(params, "&"), false)
		if got := SortedQueryKey(r); got != "GET\nh\n/\n?"+strings.Join(sorted, "&") {
			t.Errorf("%d parameters not sorted", len(params))
		}
		r = serverRequest("GET", "h", "/?"+strings.Join(params, "&")+"&a", false)
		if got := SortedQueryKey(r); got != "GET\nh\n/\n?"+r.URL.RawQuery {
			t.Errorf("%d parameters not kept as sent", len(params)+1)
		}
	})
}

var storeKeyRE = regexp.MustCompile(`^[ev]:[A-Za-z0-9_-]{43}$`)

func TestHashKey(t *testing.T) {
	keys := map[string]string{}
	for _, m := range []string{"", "GET\nexample.com\n/\n", "GET\nexample.com\n/\na", strings.Repeat("x", 1<<20)} {
		k := hashKey(m)
		if !storeKeyRE.MatchString(k) || !strings.HasPrefix(k, "e:") {
			t.Errorf("hashKey(%.20q) = %q: not e: and 43 base64url characters", m, k)
		}
		if k != hashKey(m) {
			t.Errorf("hashKey(%.20q) is not stable", m)
		}
		if prev, dup := keys[k]; dup {
			t.Errorf("hashKey(%.20q) == hashKey(%.20q)", m, prev)
		}
		keys[k] = m
	}
	// A known value, so that a change of format is deliberate: SHA-256("")
	// is e3b0c442...
	if got := hashKey(""); got != "e:47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU" {
		t.Errorf("hashKey(\"\") = %q", got)
	}
}

func TestVariantKey(t *testing.T) {
	const material = "GET\nexample.com\n/x\n"
	vary := []string{"Accept", "Accept-Encoding"}
	req := func(hdr ...string) *http.Request {
		r := serverRequest("GET", "example.com", "/x", false)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Add(hdr[i], hdr[i+1])
		}
		return r
	}
	base := variantKey(material, 1, vary, req("Accept", "text/html", "Accept-Encoding", "gzip, br"))
	if !storeKeyRE.MatchString(base) || !strings.HasPrefix(base, "v:") {
		t.Fatalf("variantKey = %q: not v: and 43 base64url characters", base)
	}
	same := []struct {
		name string
		r    *http.Request
	}{
		{"identical", req("Accept", "text/html", "Accept-Encoding", "gzip, br")},
		{"whitespace around elements", req("Accept", "  text/html\t", "Accept-Encoding", "gzip ,br ")},
		{"lines instead of commas", req("Accept", "text/html", "Accept-Encoding", "gzip", "Accept-Encoding", "br")},
		{"empty elements", req("Accept", "text/html,", "Accept-Encoding", ",gzip,,br,")},
		{"other headers ignored", req("Accept", "text/html", "Accept-Encoding", "gzip, br", "Cookie", "x=1", "User-Agent", "y")},
	}
	for _, tt := range same {
		t.Run("same "+tt.name, func(t *testing.T) {
			if got := variantKey(material, 1, vary, tt.r); got != base {
				t.Errorf("variantKey = %q, want %q", got, base)
			}
		})
	}
	differ := []struct {
		name     string
		material string
		nonce    uint64
		vary     []string
		r        *http.Request
	}{
		{"other value", material, 1, vary, req("Accept", "text/html", "Accept-Encoding", "gzip")},
		{"value order", material, 1, vary, req("Accept", "text/html", "Accept-Encoding", "br, gzip")},
		{"inner whitespace", material, 1, vary, req("Accept", "text/ html", "Accept-Encoding", "gzip, br")},
		{"header absent", material, 1, vary, req("Accept", "text/html")},
		{"values moved between headers", material, 1, vary, req("Accept", "text/html,gzip", "Accept-Encoding", "br")},
		{"other nonce", material, 2, vary, req("Accept", "text/html", "Accept-Encoding", "gzip, br")},
		{"other material", material + "q", 1, vary, req("Accept", "text/html", "Accept-Encoding", "gzip, br")},
		{"other vary list", material, 1, []string{"Accept"}, req("Accept", "text/html", "Accept-Encoding", "gzip, br")},
	}
	for _, tt := range differ {
		t.Run("differs "+tt.name, func(t *testing.T) {
			if got := variantKey(tt.material, tt.nonce, tt.vary, tt.r); got == base {
				t.Errorf("same key as the base request")
			}
		})
	}
	t.Run("absent differs from empty", func(t *testing.T) {
		absent := variantKey(material, 1, []string{"Accept-Encoding"}, req())
		empty := variantKey(material, 1, []string{"Accept-Encoding"}, req("Accept-Encoding", ""))
		if absent == empty {
			t.Error("an absent and an empty header select the same variant")
		}
	})
	t.Run("quoted commas kept", func(t *testing.T) {
		a := variantKey(material, 1, []string{"Accept"}, req("Accept", `a;q="x, y"`))
		b := variantKey(material, 1, []string{"Accept"}, req("Accept", `a;q="x,y"`))
		if a == b {
			t.Error("whitespace inside a quoted string was normalised away")
		}
	})
	t.Run("primary key differs", func(t *testing.T) {
		if variantKey(material, 0, nil, req()) == hashKey(material) {
			t.Error("a variant key equals the primary key")
		}
	})
}

func TestParseVary(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  []string
		star  bool
	}{
		{"absent", nil, nil, false},
		{"empty", []string{""}, nil, false},
		{"one", []string{"accept-encoding"}, []string{"Accept-Encoding"}, false},
		{"canonical sorted deduplicated", []string{"User-Agent, accept", "Accept, ACCEPT-ENCODING"}, []string{"Accept", "Accept-Encoding", "User-Agent"}, false},
		{"whitespace and empty elements", []string{" ,Accept ,\t,Origin"}, []string{"Accept", "Origin"}, false},
		{"star", []string{"*"}, nil, true},
		{"star among names", []string{"Accept", "Origin, *"}, nil, true},
		{"invalid name is star", []string{"Accept Encoding"}, nil, true},
		{"quoted name is star", []string{`"Accept"`}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.lines != nil {
				h["Vary"] = tt.lines
			}
			names, star := parseVary(h)
			if star != tt.star || !slices.Equal(names, tt.want) {
				t.Errorf("parseVary(%q) = %q, %v; want %q, %v", tt.lines, names, star, tt.want, tt.star)
			}
		})
	}
	t.Run("too many names is star", func(t *testing.T) {
		var names []string
		for i := range maxHeaders + 1 {
			names = append(names, "X-"+strings.Repeat("A", i+1))
		}
		if _, star := parseVary(http.Header{"Vary": {strings.Join(names, ",")}}); !star {
			t.Error("more than maxHeaders names: want star")
		}
		if names, star := parseVary(http.Header{"Vary": {strings.Join(names[:maxHeaders], ",")}}); star || len(names) != maxHeaders {
			t.Errorf("maxHeaders names: got %d names, star %v", len(names), star)
		}
	})
	t.Run("marker round trip", func(t *testing.T) {
		names, _ := parseVary(http.Header{"Vary": {"user-agent, Accept, accept"}})
		if _, err := decodeEntry(encodeEntry(nil, &entry{Kind: kindVary, VaryHeaders: names}), 0); err != nil {
			t.Fatalf("a marker of parseVary's names does not decode: %v", err)
		}
	})
}

// Issue 10, item 3: with the default key two requests share an entry only
// when their request targets are the same bytes; in particular none of
// these pairs, which the handler tells apart, may share one.
func TestDefaultKeyTargetsAreExact(t *testing.T) {
	tests := []struct{ a, b string }{
		{"/q?a=1&%61=2", "/q?%61=2&a=1"},
		{"/q?a+b=1&a%20b=2", "/q?a%20b=2&a+b=1"},
		{"/q?b=1&a=2", "/q?a=2&b=1"},
		{"/q?a=1&a=2", "/q?a=2&a=1"},
		{"/q?a=1;b=2", "/q?b=2;a=1"},
		{"/q?", "/q"},
		{"/q??", "/q?"},
		{"/q?a", "/q?a="},
		{"/\u00e4", "/%C3%A4"},
		{"/a%2Fb", "/a/b"},
		{"/a%2fb", "/a%2Fb"},
	}
	for _, tt := range tests {
		t.Run(tt.a+" "+tt.b, func(t *testing.T) {
			c := newTestCache(t, newMapStore())
			h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60")
				fmt.Fprintf(w, "%s %q", r.RequestURI, r.URL.Query())
			}))
			first := do(c, h, "GET", "http://example.com"+tt.a)
			second := do(c, h, "GET", "http://example.com"+tt.b)
			if second.Body.String() == first.Body.String() {
				t.Errorf("%q got the entry of %q: %q (Cache-Status %q)", tt.b, tt.a, second.Body.String(), second.Header().Get("Cache-Status"))
			}
			if again := do(c, h, "GET", "http://example.com"+tt.a); again.Body.String() != first.Body.String() ||
				!strings.Contains(again.Header().Get("Cache-Status"), "hit") {
				t.Errorf("%q again: %q (Cache-Status %q), want a hit", tt.a, again.Body.String(), again.Header().Get("Cache-Status"))
			}
		})
	}
}
