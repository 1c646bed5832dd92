package middleware

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCacheConditional(t *testing.T) {
	lm := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)
	tests := []struct {
		name     string
		reqHdr   []string
		wantCode int
	}{
		{name: "if-none-match matches", reqHdr: []string{"If-None-Match", `"v1"`}, wantCode: 304},
		{name: "if-none-match weak matches", reqHdr: []string{"If-None-Match", `W/"v1"`}, wantCode: 304},
		{name: "if-none-match list", reqHdr: []string{"If-None-Match", `"a", "v1"`}, wantCode: 304},
		{name: "if-none-match star", reqHdr: []string{"If-None-Match", `*`}, wantCode: 304},
		{name: "if-none-match other", reqHdr: []string{"If-None-Match", `"v2"`}, wantCode: 200},
		{name: "if-none-match garbage", reqHdr: []string{"If-None-Match", `v1, "`}, wantCode: 200},
		{name: "if-modified-since later", reqHdr: []string{"If-Modified-Since", time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)}, wantCode: 304},
		{name: "if-modified-since earlier", reqHdr: []string{"If-Modified-Since", time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)}, wantCode: 200},
		{name: "if-modified-since garbage", reqHdr: []string{"If-Modified-Since", "yesterday"}, wantCode: 200},
		{name: "if-none-match wins over if-modified-since", reqHdr: []string{"If-None-Match", `"v2"`, "If-Modified-Since", time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)}, wantCode: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin(200, "body", "Cache-Control", "max-age=60", "Etag", `"v1"`, "Last-Modified", lm, "X-Other", "1")
			c := newTestCache(t, newMapStore())
			h := c.Handler(o)
			do(c, h, "GET", "http://example.com/a")
			w := do(c, h, "GET", "http://example.com/a", tt.reqHdr...)
			if w.Code != tt.wantCode {
				t.Fatalf("status %d, want %d", w.Code, tt.wantCode)
			}
			if o.calls.Load() != 1 {
				t.Errorf("handler called %d times, want 1", o.calls.Load())
			}
			if w.Code == 304 {
				if w.Body.Len() != 0 || w.Header().Get("Etag") != `"v1"` || w.Header().Get("X-Other") != "" ||
					w.Header().Get("Cache-Control") != "max-age=60" || w.Header().Get("Content-Length") != "" {
					t.Errorf("304 headers %v body %q", w.Header(), w.Body.String())
				}
				if c.Stats().Hits != 1 {
					t.Errorf("Hits %d, want 1", c.Stats().Hits)
				}
			}
		})
	}
}

func TestCacheRevalidation(t *testing.T) {
	tests := []struct {
		name      string
		validator []string
		wantReq   string // request header the handler must see
	}{
		{name: "etag", validator: []string{"Etag", `"v1"`}, wantReq: "If-None-Match"},
		{name: "last-modified", validator: []string{"Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"}, wantReq: "If-Modified-Since"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newTestClock()
			var calls atomic.Int64
			var sawConditional atomic.Bool
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				if r.Header.Get(tt.wantReq) == tt.validator[1] {
					sawConditional.Store(true)
					w.Header().Set("Cache-Control", "max-age=100")
					w.Header().Set("X-Updated", "yes")
					w.WriteHeader(http.StatusNotModified)
					return
				}
				w.Header().Set("Cache-Control", "max-age=10")
				w.Header().Set(tt.validator[0], tt.validator[1])
				fmt.Fprint(w, "full body")
			})
			c := newTestCache(t, newMapStore(), WithClock(clk.Now))
			ch := c.Handler(h)
			do(c, ch, "GET", "http://example.com/a")
			clk.Add(time.Minute)
			w := do(c, ch, "GET", "http://example.com/a")
			if !sawConditional.Load() {
				t.Fatal("the handler did not get the stored validator")
			}
			if w.Code != 200 || w.Body.String() != "full body" || w.Header().Get("X-Updated") != "yes" ||
				w.Header().Get("Cache-Control") != "max-age=100" {
				t.Errorf("got %d %q %v, want the stored body with updated headers", w.Code, w.Body.String(), w.Header())
			}
			if cs := w.Header().Get("Cache-Status"); cs != "failsoft; fwd=stale; fwd-status=304; stored" {
				t.Errorf("Cache-Status %q", cs)
			}
			clk.Add(50 * time.Second)
			w = do(c, ch, "GET", "http://example.com/a")
			if calls.Load() != 2 || w.Body.String() != "full body" || w.Header().Get("Cache-Status") != "failsoft; hit; ttl=50" {
				t.Errorf("after revalidation: calls %d, %q, %q", calls.Load(), w.Body.String(), w.Header().Get("Cache-Status"))
			}
			if c.Stats().Revalidated != 1 {
				t.Errorf("Revalidated %d, want 1", c.Stats().Revalidated)
			}
		})
	}
	t.Run("client conditional passes through", func(t *testing.T) {
		clk := newTestClock()
		o := newOrigin(200, "body", "Cache-Control", "max-age=10", "Etag", `"v1"`)
		c := newTestCache(t, newMapStore(), WithClock(clk.Now))
		ch := c.Handler(o)
		do(c, ch, "GET", "http://example.com/a")
		clk.Add(time.Minute)
		do(c, ch, "GET", "http://example.com/a", "If-None-Match", `"zzz"`)
		if got := o.lastRequest().Header.Get("If-None-Match"); got != `"zzz"` {
			t.Errorf("handler saw If-None-Match %q, want the client's", got)
		}
	})
	t.Run("no-cache response revalidated on every use", func(t *testing.T) {
		clk := newTestClock()
		o := newOrigin(200, "body", "Cache-Control", "no-cache", "Etag", `"v1"`)
		c := newTestCache(t, newMapStore(), WithClock(clk.Now))
		ch := c.Handler(o)
		do(c, ch, "GET", "http://example.com/a")
		do(c, ch, "GET", "http://example.com/a")
		if o.calls.Load() != 2 || o.lastRequest().Header.Get("If-None-Match") != `"v1"` {
			t.Errorf("calls %d, If-None-Match %q", o.calls.Load(), o.lastRequest().Header.Get("If-None-Match"))
		}
	})
}

func TestETagScan(t *testing.T) {
	tests := []struct {
		list []string
		etag string
		want bool
	}{
		{[]string{`"a"`}, `"a"`, true},
		{[]string{`W/"a"`}, `"a"`, true},
		{[]string{`"a"`}, `W/"a"`, true},
		{[]string{`"b", W/"a"`}, `"a"`, true},
		{[]string{`"b"`, `"a"`}, `"a"`, true},
		{[]string{`"a,b"`}, `"a,b"`, true},
		{[]string{`"b"`}, `"a"`, false},
		{[]string{`a`}, `"a"`, false},
		{[]string{`"a`}, `"a"`, false},
		{[]string{``}, `"a"`, false},
		{[]string{`W/`}, `"a"`, false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.list, "|"), func(t *testing.T) {
			if got := etagMatchWeak(tt.list, tt.etag); got != tt.want {
				t.Errorf("etagMatchWeak(%q, %q) = %v", tt.list, tt.etag, got)
			}
		})
	}
}
