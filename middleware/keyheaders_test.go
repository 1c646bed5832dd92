package middleware

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// forwardingReflector is a handler that answers from one forwarding
// header, as frameworks do: X-Forwarded-Proto "http" redirects to https,
// any other header is reflected into the body.
func forwardingReflector(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		v := r.Header.Get(name)
		if name == "X-Forwarded-Proto" && v == "http" {
			w.Header().Set("Location", "https://"+r.Host+r.URL.RequestURI())
			w.WriteHeader(http.StatusMovedPermanently)
			return
		}
		fmt.Fprintf(w, "%s=%q", name, v)
	})
}

// Issue 10, item 1: a request carrying a forwarding header is keyed by its
// value, so that its answer is never served to requests with another value
// or none, while requests with the same value still share an entry.
func TestForwardingHeadersAreKeyed(t *testing.T) {
	tests := []struct {
		name          string
		attack, other string // two values of the header
	}{
		{"X-Forwarded-Proto", "http", "https"},
		{"X-Forwarded-Scheme", "http", "https"},
		{"X-Forwarded-Prefix", "/evil", "/api"},
		{"X-Forwarded-Port", "8080", "443"},
		{"X-Forwarded-Host", "evil.example", "example.com"},
		{"X-Forwarded-Server", "evil.example", "example.com"},
		{"X-Forwarded-Ssl", "off", "on"},
		{"X-Original-Host", "evil.example", "example.com"},
		{"X-Host", "evil.example", "example.com"},
		{"X-Original-Url", "/admin", "/"},
		{"X-Rewrite-Url", "/admin", "/"},
		{"X-Url-Scheme", "http", "https"},
		{"Front-End-Https", "off", "on"},
		{"Forwarded", "proto=http;host=evil.example", "proto=https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCache(t, newMapStore())
			h := c.Handler(forwardingReflector(tt.name))
			first := do(c, h, "GET", "http://example.com/p?q=1", tt.name, tt.attack)
			if first.Code == 0 || strings.Contains(first.Header().Get("Cache-Status"), "hit") {
				t.Fatalf("first request: %d %q", first.Code, first.Header().Get("Cache-Status"))
			}
			for _, v := range []string{tt.other, ""} {
				var hdr []string
				if v != "" {
					hdr = []string{tt.name, v}
				}
				w := do(c, h, "GET", "http://example.com/p?q=1", hdr...)
				if w.Code == first.Code && w.Body.String() == first.Body.String() {
					t.Errorf("%s %q got the answer to %q: %d %q (Cache-Status %q)",
						tt.name, v, tt.attack, w.Code, w.Body.String(), w.Header().Get("Cache-Status"))
				}
			}
			again := do(c, h, "GET", "http://example.com/p?q=1", tt.name, tt.attack)
			if !strings.Contains(again.Header().Get("Cache-Status"), "hit") || again.Body.String() != first.Body.String() {
				t.Errorf("the same value again: Cache-Status %q, body %q; want a hit with %q",
					again.Header().Get("Cache-Status"), again.Body.String(), first.Body.String())
			}
		})
	}
}

// A forwarding header whose value differs only in how it is split into
// field lines, or which holds what looks like another header, keys apart.
func TestForwardingHeaderValuesCannotForge(t *testing.T) {
	c := newTestCache(t, newMapStore())
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "%q %q", r.Header.Values("X-Forwarded-Host"), r.Header.Values("X-Forwarded-Proto"))
	}))
	reqs := [][]string{
		{"X-Forwarded-Host", "a,b"},
		{"X-Forwarded-Host", "a", "X-Forwarded-Host", "b"},
		{"X-Forwarded-Host", "a X-Forwarded-Proto=5:https"},
		{"X-Forwarded-Host", "a", "X-Forwarded-Proto", "https"},
		{"X-Forwarded-Host", ""},
		{},
	}
	seen := map[string]int{}
	for i, hdr := range reqs {
		w := do(c, h, "GET", "http://example.com/", hdr...)
		if j, dup := seen[w.Body.String()]; dup {
			t.Errorf("request %d got the body of request %d: %q", i, j, w.Body.String())
		}
		seen[w.Body.String()] = i
		if strings.Contains(w.Header().Get("Cache-Status"), "hit") {
			t.Errorf("request %d %q was a hit", i, hdr)
		}
	}
}

func TestKeyHeadersMaterial(t *testing.T) {
	c := newTestCache(t, newMapStore(), WithMaxKeyBytes(64))
	req := func(hdr ...string) *http.Request {
		r := serverRequest("GET", "example.com", "/p?q", false)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Add(hdr[i], hdr[i+1])
		}
		return r
	}
	nonCanonical := req()
	nonCanonical.Header["x-forwarded-proto"] = []string{"https"}
	tests := []struct {
		name string
		r    *http.Request
		want string
	}{
		{"none", req("X-Forwarded-For", "10.0.0.1"), "GET\nexample.com\n/p\n?q"},
		{"one", req("X-Forwarded-Proto", "https"), "GET X-Forwarded-Proto=5:https\nexample.com\n/p\n?q"},
		{"sorted names, lines", req("X-Forwarded-Proto", "a", "X-Forwarded-Proto", "", "Forwarded", "for=x;host="),
			"GET Forwarded=5:host= X-Forwarded-Proto=1:a,0:\nexample.com\n/p\n?q"},
		{"non-canonical key", nonCanonical, "GET X-Forwarded-Proto=5:https\nexample.com\n/p\n?q"},
		{"at the limit", req("X-Forwarded-Host", strings.Repeat("h", 22)), "GET X-Forwarded-Host=22:" + strings.Repeat("h", 22) + "\nexample.com\n/p\n?q"},
		{"over the limit", req("X-Forwarded-Host", strings.Repeat("h", 23)), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.keyMaterial(tt.r); got != tt.want {
				t.Errorf("material %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWithKeyHeaders(t *testing.T) {
	tenant := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.Header.Get("X-Tenant"))
	})
	for _, keyed := range []bool{false, true} {
		var opts []Option
		if keyed {
			opts = append(opts, WithKeyHeaders("x-tenant"), WithKeyHeaders("X-Region"))
		}
		c := newTestCache(t, newMapStore(), opts...)
		h := c.Handler(tenant)
		do(c, h, "GET", "http://example.com/", "X-Tenant", "a")
		w := do(c, h, "GET", "http://example.com/", "X-Tenant", "b")
		if got, want := w.Body.String() == "b", keyed; got != want {
			t.Errorf("keyed=%v: tenant b got %q", keyed, w.Body.String())
		}
		if keyed && c.keyMaterial(serverRequest("GET", "h", "/", false)) == c.keyMaterial(func() *http.Request {
			r := serverRequest("GET", "h", "/", false)
			r.Header.Set("X-Region", "eu")
			return r
		}()) {
			t.Error("a second WithKeyHeaders replaced the first")
		}
	}
	for _, bad := range []string{"", "X Tenant", "X-Tenant:"} {
		if _, err := New(newMapStore(), WithKeyHeaders("X-Ok", bad)); err == nil {
			t.Errorf("WithKeyHeaders(%q): no error", bad)
		}
	}
}

// Purge keys a request without headers; PurgeRequest and an unsafe
// request through the same proxy reach what a proxied request stored.
func TestKeyHeadersPurgeAndInvalidate(t *testing.T) {
	c := newTestCache(t, newMapStore())
	o := newOrigin(200, "ok", "Cache-Control", "max-age=60")
	h := c.Handler(o)
	proxied := func() []string { return []string{"X-Forwarded-Proto", "https"} }
	hit := func() bool {
		w := do(c, h, "GET", "http://example.com/p", proxied()...)
		return strings.Contains(w.Header().Get("Cache-Status"), "hit")
	}
	do(c, h, "GET", "http://example.com/p", proxied()...)
	if !hit() {
		t.Fatal("not stored")
	}
	if err := c.Purge(context.Background(), "http://example.com/p"); err != nil {
		t.Fatal(err)
	}
	if !hit() {
		t.Error("Purge of the bare URL removed the proxied entry")
	}
	r := httptest.NewRequest("DELETE", "http://example.com/p", nil)
	r.Header.Set("X-Forwarded-Proto", "https")
	if err := c.PurgeRequest(r); err != nil {
		t.Fatal(err)
	}
	c.bg.wait()
	if hit() {
		t.Error("PurgeRequest did not remove the proxied entry")
	}
	if !hit() {
		t.Fatal("not stored again")
	}
	do(c, h, "POST", "http://example.com/p", proxied()...)
	if hit() {
		t.Error("a POST through the proxy did not invalidate the proxied entry")
	}
	if err := c.PurgeRequest(&http.Request{}); err == nil {
		t.Error("PurgeRequest without a URL: no error")
	}
}

// FuzzKeyHeaders checks that the key headers' encoding is unambiguous: two
// requests (each with up to two lines of two key headers, "\x00" ending a
// line list) get the same material exactly when their field lines of
// those headers are the same.
func FuzzKeyHeaders(f *testing.F) {
	f.Add("a,b", "a\x00b", "", "https")
	f.Add("a X-Forwarded-Proto=5:https", "a", "", "https")
	f.Add("", "\x00", "1:a", "1:a,0:")
	f.Fuzz(func(t *testing.T, host1, host2, proto1, proto2 string) {
		names := defaultKeyHeaderNames()
		material := func(r *http.Request) string {
			m, _ := withKeyHeaders(DefaultKey(r), r.Header, names, 1<<30)
			return m
		}
		req := func(host, proto string) *http.Request {
			r := serverRequest("GET", "example.com", "/", false)
			for name, v := range map[string]string{"X-Forwarded-Host": host, "X-Forwarded-Proto": proto} {
				if v == "" {
					continue
				}
				r.Header[name] = strings.Split(v, "\x00")
			}
			return r
		}
		a, b := req(host1, proto1), req(host2, proto2)
		same := slices.Equal(a.Header["X-Forwarded-Host"], b.Header["X-Forwarded-Host"]) &&
			slices.Equal(a.Header["X-Forwarded-Proto"], b.Header["X-Forwarded-Proto"])
		if ma, mb := material(a), material(b); (ma == mb) != same {
			t.Fatalf("headers %q and %q: materials %q and %q", a.Header, b.Header, ma, mb)
		}
	})
}

// TestAppendKeyMaterial checks the cache's allocation-free material (a
// buffer on the stack for most requests) against the string it stands for,
// keyMaterial, for the default key, key headers in either case, a custom
// key function and requests over the length limit.
func TestAppendKeyMaterial(t *testing.T) {
	plain := newTestCache(t, newMapStore())
	custom := newTestCache(t, newMapStore(), WithKeyFunc(SortedQueryKey))
	short := newTestCache(t, newMapStore(), WithMaxKeyBytes(24))
	tests := []struct {
		name   string
		c      *Cache
		target string
		hdr    http.Header
	}{
		{"default", plain, "http://Example.com:80/a/b?x=1", nil},
		{"head", plain, "http://example.com/a", nil},
		{"key header", plain, "http://example.com/a", http.Header{"X-Forwarded-Proto": {"https"}}},
		{"key header any case", plain, "http://example.com/a", http.Header{"x-forwarded-host": {"h"}}},
		{"other header", plain, "http://example.com/a", http.Header{"Accept": {"*/*"}}},
		{"custom key", custom, "http://example.com/a?b=2&a=1", nil},
		{"long material", short, "http://example.com/abcdefghijklmnopqrstuvwxyz", nil},
		{"fits", short, "http://example.com/abc", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			if tt.name == "head" {
				r.Method = http.MethodHead
			}
			for k, v := range tt.hdr {
				r.Header[k] = v
			}
			want := tt.c.keyMaterial(r)
			var buf [256]byte
			got, ok := tt.c.appendKeyMaterial(buf[:0], r)
			if ok != (want != "") || ok && string(got) != want {
				t.Errorf("appendKeyMaterial = %q, %v; keyMaterial = %q", got, ok, want)
			}
		})
	}
}

// TestCustomKeyCannotForgeKeyHeaders: with a custom key function, a path
// that spells out the key-header form must not get the key of another
// path plus that header.
func TestCustomKeyCannotForgeKeyHeaders(t *testing.T) {
	c := newTestCache(t, newMapStore(), WithKeyFunc(func(r *http.Request) string { return r.URL.Path }))
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "%s %q", r.URL.Path, r.Header.Get("X-Forwarded-Proto"))
	}))
	forged := do(c, h, "GET", "http://example.com/a%20X-Forwarded-Proto=5:https")
	real := do(c, h, "GET", "http://example.com/a", "X-Forwarded-Proto", "https")
	if real.Body.String() == forged.Body.String() || strings.Contains(real.Header().Get("Cache-Status"), "hit") {
		t.Fatalf("GET /a with X-Forwarded-Proto got %q (%s), the answer stored for the forged path %q",
			real.Body, real.Header().Get("Cache-Status"), forged.Body)
	}
}

// TestForwardedKeysProtoAndHostOnly: Forwarded's for and by name the
// client and the proxy; keying them would give every client its own
// entries (and an unsafe request from one client would not invalidate
// another's). proto and host are keyed.
func TestForwardedKeysProtoAndHostOnly(t *testing.T) {
	tests := []struct {
		name string
		a, b string // Forwarded values; "" for none
		same bool
	}{
		{"clients differ, proto same", "for=192.0.2.1;proto=https", "for=198.51.100.7;proto=https", true},
		{"quoted for with separators", `for="[2001:db8::1]:4711;x,y";proto=https`, "for=192.0.2.1;proto=https", true},
		{"by differs", "by=10.0.0.1;proto=https", "by=10.0.0.2;proto=https", true},
		{"only for keys as absent", "for=192.0.2.1", "", true},
		{"proto differs", "for=192.0.2.1;proto=http", "for=192.0.2.1;proto=https", false},
		{"host differs", "host=a.example;proto=https", "host=b.example;proto=https", false},
		{"proto present vs absent", "proto=https", "", false},
		{"a proto hidden in a quoted for is not a proto", `for="x;proto=https"`, "proto=https", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCache(t, newMapStore())
			req := func(v string) *http.Request {
				r := serverRequest("GET", "example.com", "/p", false)
				if v != "" {
					r.Header.Set("Forwarded", v)
				}
				return r
			}
			ka, kb := c.keyMaterial(req(tt.a)), c.keyMaterial(req(tt.b))
			if (ka == kb) != tt.same {
				t.Fatalf("key materials equal = %v, want %v:\n%q\n%q", ka == kb, tt.same, ka, kb)
			}
		})
	}
}
