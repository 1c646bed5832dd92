package middleware

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsoft/failsoft/store"
)

func TestCacheStorageRules(t *testing.T) {
	future := time.Date(2025, 3, 4, 6, 0, 0, 0, time.UTC).Format(http.TimeFormat)
	tests := []struct {
		name   string
		opts   []Option
		status int
		hdr    []string
		reqHdr []string
		stored bool
	}{
		{name: "max-age", status: 200, hdr: []string{"Cache-Control", "max-age=60"}, stored: true},
		{name: "s-maxage", status: 200, hdr: []string{"Cache-Control", "s-maxage=60"}, stored: true},
		{name: "expires", status: 200, hdr: []string{"Expires", future}, stored: true},
		{name: "404 with max-age", status: 404, hdr: []string{"Cache-Control", "max-age=60"}, stored: true},
		{name: "no freshness, no default ttl", status: 200, stored: false},
		{name: "no freshness, default ttl", opts: []Option{WithDefaultTTL(time.Minute)}, status: 200, stored: true},
		{name: "no-store", status: 200, hdr: []string{"Cache-Control", "max-age=60, no-store"}, stored: false},
		{name: "private", status: 200, hdr: []string{"Cache-Control", "private, max-age=60"}, stored: false},
		{name: "set-cookie", status: 200, hdr: []string{"Cache-Control", "max-age=60", "Set-Cookie", "a=b"}, stored: false},
		{name: "vary star", status: 200, hdr: []string{"Cache-Control", "max-age=60", "Vary", "*"}, stored: false},
		{name: "201 with max-age", status: 201, hdr: []string{"Cache-Control", "max-age=60"}, stored: true},
		{name: "201 without a lifetime not storable", opts: []Option{WithDefaultTTL(time.Minute)}, status: 201, stored: false},
		{name: "500 not stored", status: 500, hdr: []string{"Cache-Control", "max-age=60"}, stored: false},
		{name: "status outside WithStatuses", opts: []Option{WithStatuses(200)}, status: 404, hdr: []string{"Cache-Control", "max-age=60"}, stored: false},
		{name: "authorization without public", status: 200, hdr: []string{"Cache-Control", "max-age=60"}, reqHdr: []string{"Authorization", "Bearer x"}, stored: false},
		{name: "authorization with public", status: 200, hdr: []string{"Cache-Control", "public, max-age=60"}, reqHdr: []string{"Authorization", "Bearer x"}, stored: true},
		{name: "authorization with s-maxage", status: 200, hdr: []string{"Cache-Control", "s-maxage=60"}, reqHdr: []string{"Authorization", "Bearer x"}, stored: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newTestClock()
			o := newOrigin(tt.status, `{"data":"x"}`, tt.hdr...)
			c := newTestCache(t, newMapStore(), append([]Option{WithClock(clk.Now)}, tt.opts...)...)
			h := c.Handler(o)
			first := do(c, h, "GET", "http://example.com/a", tt.reqHdr...)
			if !strings.Contains(first.Header().Get("Cache-Status"), "fwd=") {
				t.Errorf("first Cache-Status %q, want a forward", first.Header().Get("Cache-Status"))
			}
			if got := strings.Contains(first.Header().Get("Cache-Status"), "; stored"); got != tt.stored {
				t.Errorf("first Cache-Status %q: stored=%v, want %v", first.Header().Get("Cache-Status"), got, tt.stored)
			}
			second := do(c, h, "GET", "http://example.com/a", tt.reqHdr...)
			wantCalls := int64(2)
			if tt.stored {
				wantCalls = 1
				if cs := second.Header().Get("Cache-Status"); !strings.HasPrefix(cs, "failsoft; hit; ttl=") {
					t.Errorf("second Cache-Status %q, want a hit", cs)
				}
				if second.Header().Get("Age") != "0" {
					t.Errorf("Age %q, want 0", second.Header().Get("Age"))
				}
				sameExceptCache(t, first, second)
			}
			if got := o.calls.Load(); got != wantCalls {
				t.Errorf("handler called %d times, want %d", got, wantCalls)
			}
			st := c.Stats()
			if tt.stored && (st.Hits != 1 || st.Stored != 1 || st.Misses != 1) {
				t.Errorf("stats %+v, want 1 hit, 1 stored, 1 miss", st)
			}
			if !tt.stored && (st.Hits != 0 || st.Stored != 0) {
				t.Errorf("stats %+v, want no hit, nothing stored", st)
			}
		})
	}
}

func TestCacheStaleIfError(t *testing.T) {
	type failure int
	const (
		fail500 failure = iota
		fail503
		failPanic
		fail501
		failRedis500
	)
	tests := []struct {
		name      string
		stored    []string // Cache-Control of the stored response
		age       time.Duration
		fail      failure
		wantStale bool
		wantCS    string
	}{
		{name: "500 within default window", stored: []string{"max-age=10"}, age: time.Hour, fail: fail500, wantStale: true,
			wantCS: "failsoft; fwd=stale; fwd-status=500; ttl=-3590; detail=stale-if-error"},
		{name: "503", stored: []string{"max-age=10"}, age: time.Minute, fail: fail503, wantStale: true},
		{name: "panic", stored: []string{"max-age=10"}, age: time.Minute, fail: failPanic, wantStale: true,
			wantCS: "failsoft; fwd=stale; ttl=-50; detail=stale-if-panic"},
		{name: "redis failure seen", stored: []string{"max-age=10"}, age: time.Minute, fail: failRedis500, wantStale: true,
			wantCS: "failsoft; fwd=stale; fwd-status=500; ttl=-50; detail=stale-if-error-redis"},
		{name: "501 is an answer", stored: []string{"max-age=10"}, age: time.Minute, fail: fail501, wantStale: false},
		{name: "beyond default window", stored: []string{"max-age=10"}, age: 25 * time.Hour, fail: fail500, wantStale: false},
		{name: "own stale-if-error", stored: []string{"max-age=10, stale-if-error=30"}, age: 30 * time.Second, fail: fail500, wantStale: true},
		{name: "beyond own stale-if-error", stored: []string{"max-age=10, stale-if-error=30"}, age: time.Minute, fail: fail500, wantStale: false},
		{name: "must-revalidate", stored: []string{"max-age=10, must-revalidate"}, age: time.Minute, fail: fail500, wantStale: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newTestClock()
			var failing atomic.Bool
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !failing.Load() {
					w.Header().Set("Cache-Control", tt.stored[0])
					fmt.Fprint(w, "good")
					return
				}
				switch tt.fail {
				case fail500:
					http.Error(w, "bad", http.StatusInternalServerError)
				case fail503:
					http.Error(w, "bad", http.StatusServiceUnavailable)
				case fail501:
					http.Error(w, "bad", http.StatusNotImplemented)
				case failPanic:
					panic("boom")
				case failRedis500:
					store.RecordFailure(r.Context(), store.ErrUnavailable)
					http.Error(w, "bad", http.StatusInternalServerError)
				}
			})
			c := newTestCache(t, newMapStore(), WithClock(clk.Now), WithMaxRefreshes(0))
			ch := c.Handler(h)
			do(c, ch, "GET", "http://example.com/a")
			clk.Add(tt.age)
			failing.Store(true)
			var w *httptest.ResponseRecorder
			pv := catchPanic(func() { w = do(c, ch, "GET", "http://example.com/a") })
			if tt.fail == failPanic && !tt.wantStale {
				if pv == nil {
					t.Fatal("panic not passed on")
				}
				return
			}
			if pv != nil {
				t.Fatalf("panic %v", pv)
			}
			if tt.wantStale {
				if w.Code != 200 || w.Body.String() != "good" {
					t.Errorf("got %d %q, want the stale copy", w.Code, w.Body.String())
				}
				if c.Stats().StaleServed != 1 {
					t.Errorf("StaleServed %d, want 1", c.Stats().StaleServed)
				}
			} else if w.Code < 500 {
				t.Errorf("got %d %q, want the failure passed on", w.Code, w.Body.String())
			}
			if tt.wantCS != "" && w.Header().Get("Cache-Status") != tt.wantCS {
				t.Errorf("Cache-Status %q, want %q", w.Header().Get("Cache-Status"), tt.wantCS)
			}
		})
	}
}

func TestCachePanics(t *testing.T) {
	tests := []struct {
		name      string
		stale     bool
		timeout   bool // WithHandlerTimeout: the handler runs on its own goroutine
		value     any
		recovered bool // the cache answers with the stale copy instead
	}{
		{name: "no stale copy: re-panic", stale: false, value: "boom"},
		{name: "abort handler with stale copy: re-panic", stale: true, value: http.ErrAbortHandler},
		{name: "abort handler without stale copy: re-panic", stale: false, value: http.ErrAbortHandler},
		// Recover re-panics a value that wraps http.ErrAbortHandler
		// (errors.Is); the cache must follow the same rule, not identity.
		{name: "wrapped abort handler with stale copy: re-panic", stale: true, value: fmt.Errorf("client gone: %w", http.ErrAbortHandler)},
		{name: "joined abort handler with stale copy: re-panic", stale: true, value: errors.Join(errors.New("client gone"), http.ErrAbortHandler)},
		{name: "wrapped abort handler with stale copy and timeout: re-panic", stale: true, timeout: true, value: fmt.Errorf("client gone: %w", http.ErrAbortHandler)},
		{name: "other error with stale copy: stale answers", stale: true, value: errors.New("boom"), recovered: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newTestClock()
			var panicking atomic.Bool
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if panicking.Load() {
					panic(tt.value)
				}
				w.Header().Set("Cache-Control", "max-age=10")
				fmt.Fprint(w, "good")
			})
			opts := []Option{WithClock(clk.Now)}
			if tt.timeout {
				opts = append(opts, WithHandlerTimeout(time.Hour))
			}
			c := newTestCache(t, newMapStore(), opts...)
			ch := c.Handler(h)
			if tt.stale {
				do(c, ch, "GET", "http://example.com/a")
				clk.Add(time.Minute)
			}
			panicking.Store(true)
			var w *httptest.ResponseRecorder
			pv := catchPanic(func() { w = do(c, ch, "GET", "http://example.com/a") })
			if tt.recovered {
				if pv != nil || w.Body.String() != "good" {
					t.Errorf("panic %v, body %q; want the stale copy", pv, w.Body.String())
				}
				return
			}
			if pv != tt.value {
				t.Errorf("recovered %v, want %v", pv, tt.value)
			}
		})
	}
}

func TestCacheHandlerTimeout(t *testing.T) {
	clk := newTestClock()
	var slow atomic.Bool
	var cancelled atomic.Bool
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			<-r.Context().Done()
			cancelled.Store(true)
			fmt.Fprint(w, "late") // discarded
			return
		}
		w.Header().Set("Cache-Control", "max-age=10")
		fmt.Fprint(w, "good")
	})
	c := newTestCache(t, newMapStore(), WithClock(clk.Now), WithHandlerTimeout(20*time.Millisecond))
	ch := c.Handler(h)
	do(c, ch, "GET", "http://example.com/a")
	clk.Add(time.Minute)
	slow.Store(true)
	w := do(c, ch, "GET", "http://example.com/a") // waits for the background handler too
	if w.Code != 200 || w.Body.String() != "good" {
		t.Errorf("got %d %q, want the stale copy", w.Code, w.Body.String())
	}
	if cs := w.Header().Get("Cache-Status"); !strings.Contains(cs, "detail=stale-if-timeout") {
		t.Errorf("Cache-Status %q", cs)
	}
	if !cancelled.Load() {
		t.Error("the timed-out handler's context was not cancelled")
	}
	// Without a stale copy the handler is not timed.
	w = do(c, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "fresh")
	}), "GET", "http://example.com/other")
	if w.Body.String() != "fresh" {
		t.Errorf("got %q", w.Body.String())
	}
}

func TestCacheLargeBodyStreams(t *testing.T) {
	o := newOrigin(200, strings.Repeat("x", 100), "Cache-Control", "max-age=60")
	s := newMapStore()
	c := newTestCache(t, s, WithMaxBodyBytes(10))
	w := do(c, c.Handler(o), "GET", "http://example.com/a")
	if w.Body.Len() != 100 || s.len() != 0 {
		t.Errorf("body %d bytes, %d stored", w.Body.Len(), s.len())
	}
	if cs := w.Header().Get("Cache-Status"); cs != "failsoft; fwd=uri-miss; fwd-status=200; detail=streamed" {
		t.Errorf("Cache-Status %q", cs)
	}
}
