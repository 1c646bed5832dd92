package middleware

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCacheServesHandlerBytes(t *testing.T) {
	// The default key shares an entry between identical targets only;
	// SortedQueryKey also between reordered queries.
	tests := []struct {
		name   string
		opts   []Option
		second string
	}{
		{"default key", nil, "http://example.com/data/1?b=2&a=1"},
		{"sorted query key", []Option{WithKeyFunc(SortedQueryKey)}, "http://example.com/data/1?a=1&b=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newTestClock()
			body := `{"source":"primary","data":"` + strings.Repeat("x", 100) + `"}`
			o := newOrigin(200, body, "Cache-Control", "max-age=60", "Content-Type", "application/json",
				"X-Custom", "a", "X-Custom", "b", "Etag", `"v1"`)
			c := newTestCache(t, newMapStore(), append([]Option{WithClock(clk.Now)}, tt.opts...)...)
			h := c.Handler(o)
			first := do(c, h, "GET", "http://example.com/data/1?b=2&a=1")
			clk.Add(30 * time.Second)
			second := do(c, h, "GET", tt.second)
			sameExceptCache(t, first, second)
			if got := second.Header().Get("Age"); got != "30" {
				t.Errorf("Age %q, want 30", got)
			}
			if got := second.Header().Get("Cache-Status"); got != "failsoft; hit; ttl=30" {
				t.Errorf("Cache-Status %q", got)
			}
			if got := second.Header().Get("Date"); got != first.Header().Get("Date") || got == "" {
				t.Errorf("Date %q, want the stored %q", got, first.Header().Get("Date"))
			}
			if got := second.Header().Values("X-Custom"); len(got) != 2 {
				t.Errorf("X-Custom %q, want both values", got)
			}
		})
	}
}

func TestCacheRequestDirectives(t *testing.T) {
	tests := []struct {
		name      string
		reqHdr    []string
		wantCode  int
		wantCalls int64
		wantCS    string
	}{
		{name: "plain", wantCode: 200, wantCalls: 1, wantCS: "failsoft; hit; ttl=60"},
		{name: "no-store bypasses", reqHdr: []string{"Cache-Control", "no-store"}, wantCode: 200, wantCalls: 2, wantCS: "failsoft; fwd=bypass; detail=no-store"},
		{name: "no-cache forwards", reqHdr: []string{"Cache-Control", "no-cache"}, wantCode: 200, wantCalls: 2, wantCS: "failsoft; fwd=request; fwd-status=200; stored"},
		{name: "max-age=0 forwards", reqHdr: []string{"Cache-Control", "max-age=0"}, wantCode: 200, wantCalls: 2, wantCS: "failsoft; fwd=request; fwd-status=200; stored"},
		{name: "min-fresh too long forwards", reqHdr: []string{"Cache-Control", "min-fresh=120"}, wantCode: 200, wantCalls: 2, wantCS: "failsoft; fwd=request; fwd-status=200; stored"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newTestClock()
			o := newOrigin(200, "hello", "Cache-Control", "max-age=60")
			c := newTestCache(t, newMapStore(), WithClock(clk.Now))
			h := c.Handler(o)
			do(c, h, "GET", "http://example.com/a")
			w := do(c, h, "GET", "http://example.com/a", tt.reqHdr...)
			if w.Code != tt.wantCode || w.Body.String() != "hello" {
				t.Errorf("got %d %q", w.Code, w.Body.String())
			}
			if got := o.calls.Load(); got != tt.wantCalls {
				t.Errorf("handler called %d times, want %d", got, tt.wantCalls)
			}
			if got := w.Header().Get("Cache-Status"); got != tt.wantCS {
				t.Errorf("Cache-Status %q, want %q", got, tt.wantCS)
			}
		})
	}
	t.Run("only-if-cached miss", func(t *testing.T) {
		o := newOrigin(200, "hello", "Cache-Control", "max-age=60")
		c := newTestCache(t, newMapStore())
		w := do(c, c.Handler(o), "GET", "http://example.com/a", "Cache-Control", "only-if-cached")
		if w.Code != http.StatusGatewayTimeout || o.calls.Load() != 0 {
			t.Errorf("got %d with %d calls, want 504 without calling the handler", w.Code, o.calls.Load())
		}
	})
}

func TestCacheBypass(t *testing.T) {
	tests := []struct {
		name   string
		opts   []Option
		target string
		wantCS string
	}{
		{name: "empty key", opts: []Option{WithKeyFunc(func(*http.Request) string { return "" })}, target: "/a", wantCS: "failsoft; fwd=bypass; detail=no-key"},
		{name: "key too long", opts: []Option{WithMaxKeyBytes(64)}, target: "/" + strings.Repeat("a", 100), wantCS: "failsoft; fwd=bypass; detail=no-key"},
		{name: "cache name", opts: []Option{WithName("edge-1"), WithMaxKeyBytes(8)}, target: "/abcdefgh", wantCS: "edge-1; fwd=bypass; detail=no-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin(200, "x", "Cache-Control", "max-age=60")
			s := newMapStore()
			c := newTestCache(t, s, tt.opts...)
			h := c.Handler(o)
			do(c, h, "GET", tt.target)
			w := do(c, h, "GET", tt.target)
			if o.calls.Load() != 2 || s.len() != 0 {
				t.Errorf("calls %d, stored %d: want 2 calls and nothing stored", o.calls.Load(), s.len())
			}
			if got := w.Header().Get("Cache-Status"); got != tt.wantCS {
				t.Errorf("Cache-Status %q, want %q", got, tt.wantCS)
			}
			if c.Stats().Bypasses != 2 {
				t.Errorf("Bypasses %d, want 2", c.Stats().Bypasses)
			}
		})
	}
}

func TestCacheHead(t *testing.T) {
	o := newOrigin(200, "0123456789", "Cache-Control", "max-age=60")
	c := newTestCache(t, newMapStore())
	h := c.Handler(o)
	do(c, h, "GET", "http://example.com/a")
	w := do(c, h, "HEAD", "http://example.com/a")
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != "10" {
		t.Errorf("HEAD: %d %q Content-Length %q", w.Code, w.Body.String(), w.Header().Get("Content-Length"))
	}
	if o.calls.Load() != 1 {
		t.Errorf("handler called %d times, want 1", o.calls.Load())
	}
	// A HEAD miss is not stored: a later GET calls the handler.
	do(c, h, "HEAD", "http://example.com/b")
	do(c, h, "GET", "http://example.com/b")
	if o.calls.Load() != 3 {
		t.Errorf("handler called %d times, want 3", o.calls.Load())
	}
}

func TestCacheVary(t *testing.T) {
	var calls atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "lang=%s", r.Header.Get("Accept-Language"))
	})
	s := newMapStore()
	c := newTestCache(t, s)
	ch := c.Handler(h)
	for _, step := range []struct {
		lang, want string
		calls      int64
	}{
		{"en", "lang=en", 1},
		{"de", "lang=de", 2},
		{"en", "lang=en", 2},
		{"de", "lang=de", 2},
		{"", "lang=", 3},
	} {
		var w *httptest.ResponseRecorder
		if step.lang == "" {
			w = do(c, ch, "GET", "http://example.com/a")
		} else {
			w = do(c, ch, "GET", "http://example.com/a", "Accept-Language", step.lang)
		}
		if w.Body.String() != step.want || calls.Load() != step.calls {
			t.Errorf("lang %q: got %q after %d calls, want %q after %d", step.lang, w.Body.String(), calls.Load(), step.want, step.calls)
		}
	}
	// Purge drops the marker: every variant is gone.
	if err := c.Purge(context.Background(), "http://example.com/a"); err != nil {
		t.Fatal(err)
	}
	do(c, ch, "GET", "http://example.com/a", "Accept-Language", "en")
	if calls.Load() != 4 {
		t.Errorf("after purge: %d calls, want 4", calls.Load())
	}
}
