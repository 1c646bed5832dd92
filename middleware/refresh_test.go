package middleware

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCacheStaleWhileRevalidate(t *testing.T) {
	clk := newTestClock()
	release := make(chan struct{})
	var calls atomic.Int64
	var version atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if n > 1 {
			<-release // the background refresh waits until the test lets it go
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=60")
		fmt.Fprintf(w, "v%d", version.Add(1))
	})
	c := newTestCache(t, newMapStore(), WithClock(clk.Now))
	ch := c.Handler(h)
	do(c, ch, "GET", "http://example.com/a")
	clk.Add(20 * time.Second)
	for i := range 10 {
		r := httptest.NewRequest("GET", "http://example.com/a", nil)
		w := httptest.NewRecorder()
		ch.ServeHTTP(w, r)
		if w.Body.String() != "v1" {
			t.Fatalf("request %d: got %q, want the stale v1", i, w.Body.String())
		}
		if cs := w.Header().Get("Cache-Status"); cs != "failsoft; hit; ttl=-10; detail=stale-while-revalidate" {
			t.Fatalf("Cache-Status %q", cs)
		}
	}
	close(release)
	c.bg.wait()
	if got := calls.Load(); got != 2 {
		t.Errorf("handler called %d times, want 2 (one refresh for 10 stale answers)", got)
	}
	st := c.Stats()
	if st.Refreshes != 1 || st.StaleServed != 10 {
		t.Errorf("stats %+v, want 1 refresh, 10 stale", st)
	}
	w := do(c, ch, "GET", "http://example.com/a")
	if w.Body.String() != "v2" || !strings.Contains(w.Header().Get("Cache-Status"), "hit; ttl=10") {
		t.Errorf("after the refresh got %q %q, want a fresh v2", w.Body.String(), w.Header().Get("Cache-Status"))
	}
}

func TestCacheRefreshFailureKeepsStale(t *testing.T) {
	clk := newTestClock()
	var fail atomic.Bool
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			panic("refresh boom")
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=60")
		fmt.Fprint(w, "v1")
	})
	c := newTestCache(t, newMapStore(), WithClock(clk.Now))
	ch := c.Handler(h)
	do(c, ch, "GET", "http://example.com/a")
	clk.Add(20 * time.Second)
	fail.Store(true)
	do(c, ch, "GET", "http://example.com/a") // stale + a refresh that panics
	w := do(c, ch, "GET", "http://example.com/a")
	if w.Body.String() != "v1" || c.Stats().Refreshes != 2 {
		t.Errorf("got %q with %d refreshes, want the stale v1 and a second refresh", w.Body.String(), c.Stats().Refreshes)
	}
}
