package middleware

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// bodyEcho answers with the request body it reads, cacheable.
func bodyEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "body=%q override=%q", b,
			r.Header.Get("X-Http-Method-Override")+r.Header.Get("X-Http-Method")+r.Header.Get("X-Method-Override"))
	})
}

// Issue 10, item 2: a GET or HEAD with a body (and one that overrides its
// method) is neither served from nor stored in the cache.
func TestRequestWithBodyBypasses(t *testing.T) {
	tests := []struct {
		name   string
		req    func() *http.Request
		detail string
	}{
		{"GET Content-Length", func() *http.Request {
			return httptest.NewRequest("GET", "http://example.com/x", strings.NewReader("evil"))
		}, "request-body"},
		{"HEAD Content-Length", func() *http.Request {
			return httptest.NewRequest("HEAD", "http://example.com/x", strings.NewReader("evil"))
		}, "request-body"},
		{"GET chunked", func() *http.Request {
			r := httptest.NewRequest("GET", "http://example.com/x", strings.NewReader("evil"))
			r.ContentLength, r.TransferEncoding = -1, []string{"chunked"}
			return r
		}, "request-body"},
		{"GET Transfer-Encoding header only", func() *http.Request {
			r := httptest.NewRequest("GET", "http://example.com/x", strings.NewReader("evil"))
			r.ContentLength = 0
			r.Header.Set("Transfer-Encoding", "gzip, chunked")
			return r
		}, "request-body"},
		{"GET unknown length", func() *http.Request {
			r := httptest.NewRequest("GET", "http://example.com/x", io.MultiReader(strings.NewReader("evil")))
			r.ContentLength = -1
			return r
		}, "request-body"},
		{"GET Content-Length header only", func() *http.Request {
			r := httptest.NewRequest("GET", "http://example.com/x", strings.NewReader("evil"))
			r.ContentLength = 0
			r.Header.Set("Content-Length", "4")
			return r
		}, "request-body"},
		{"X-HTTP-Method-Override", func() *http.Request {
			r := httptest.NewRequest("GET", "http://example.com/x", nil)
			r.Header.Set("X-HTTP-Method-Override", "DELETE")
			return r
		}, "method-override"},
		{"X-HTTP-Method", func() *http.Request {
			r := httptest.NewRequest("GET", "http://example.com/x", nil)
			r.Header.Set("X-HTTP-Method", "PUT")
			return r
		}, "method-override"},
		{"X-Method-Override", func() *http.Request {
			r := httptest.NewRequest("GET", "http://example.com/x", nil)
			r.Header.Set("X-Method-Override", "PATCH")
			return r
		}, "method-override"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, primed := range []bool{false, true} {
				c := newTestCache(t, newMapStore())
				h := c.Handler(bodyEcho())
				var plain *httptest.ResponseRecorder
				if primed {
					plain = do(c, h, "GET", "http://example.com/x")
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, tt.req())
				c.bg.wait()
				want := "failsoft; fwd=bypass; detail=" + tt.detail
				if cs := w.Header().Get("Cache-Status"); cs != want {
					t.Errorf("primed=%v: Cache-Status %q, want %q", primed, cs, want)
				}
				if primed && w.Body.String() == plain.Body.String() {
					t.Errorf("served the plain GET's entry: %q", w.Body.String())
				}
				after := do(c, h, "GET", "http://example.com/x")
				if after.Body.String() != `body="" override=""` {
					t.Errorf("primed=%v: a plain GET got %q (Cache-Status %q)", primed, after.Body.String(), after.Header().Get("Cache-Status"))
				}
			}
		})
	}
}

// A GET with an empty body (Content-Length: 0, http.NoBody, a nil Body) is
// a plain GET: cached as before.
func TestRequestWithEmptyBodyIsCached(t *testing.T) {
	reqs := map[string]func() *http.Request{
		"NoBody": func() *http.Request { return httptest.NewRequest("GET", "http://example.com/x", nil) },
		"nil Body": func() *http.Request {
			r, _ := http.NewRequest("GET", "http://example.com/x", nil)
			return r
		},
		"Content-Length 0": func() *http.Request {
			r := httptest.NewRequest("GET", "http://example.com/x", strings.NewReader(""))
			r.Header.Set("Content-Length", "0")
			return r
		},
	}
	for name, req := range reqs {
		t.Run(name, func(t *testing.T) {
			c := newTestCache(t, newMapStore())
			h := c.Handler(bodyEcho())
			do(c, h, "GET", "http://example.com/x")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req())
			if cs := w.Header().Get("Cache-Status"); !strings.Contains(cs, "hit") {
				t.Errorf("Cache-Status %q, want a hit", cs)
			}
		})
	}
}
