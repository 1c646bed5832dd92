package middleware

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCoalescer(t *testing.T) {
	t.Run("leader and follower", func(t *testing.T) {
		var c coalescer
		f, leader := c.join("k")
		if !leader {
			t.Fatal("first join is not the leader")
		}
		g, leader := c.join("k")
		if leader || g != f {
			t.Fatal("second join is not a follower of the same flight")
		}
		if c.waiters("k") != 1 {
			t.Fatalf("waiters %d, want 1", c.waiters("k"))
		}
		want := &outcome{failed: true}
		go c.done("k", f, want)
		res, ok := c.wait(context.Background(), g, time.Minute)
		if !ok || res != want {
			t.Errorf("wait = %v, %v", res, ok)
		}
		if _, leader := c.join("k"); !leader {
			t.Error("a join after done does not start a new flight")
		}
	})
	t.Run("wait bounded by time", func(t *testing.T) {
		var c coalescer
		f, _ := c.join("k")
		c.join("k")
		if res, ok := c.wait(context.Background(), f, time.Millisecond); ok || res != nil {
			t.Errorf("wait = %v, %v, want a timeout", res, ok)
		}
		if c.waiters("k") != 0 {
			t.Errorf("waiters %d after the wait ended", c.waiters("k"))
		}
	})
	t.Run("wait bounded by context", func(t *testing.T) {
		var c coalescer
		f, _ := c.join("k")
		c.join("k")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, ok := c.wait(ctx, f, time.Minute); ok {
			t.Error("wait outlived its context")
		}
	})
}

// coalesceHandler blocks its first call until n-1 followers wait on key.
func coalesceHandler(c *Cache, key string, n int, hdr string, calls *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			for c.flights.waiters(key) < n-1 {
				runtimeYield()
			}
		}
		w.Header().Set("Cache-Control", hdr)
		fmt.Fprint(w, "shared body")
	})
}

// runtimeYield gives other goroutines a turn while a test waits for a
// condition that they make true.
func runtimeYield() { runtime.Gosched() }

func TestCacheCoalescing(t *testing.T) {
	const n = 50
	tests := []struct {
		name      string
		hdr       string
		wantCalls int64
		wantCoal  uint64
	}{
		{name: "cacheable: the handler runs once", hdr: "max-age=60", wantCalls: 1, wantCoal: n - 1},
		{name: "uncacheable: each request runs it", hdr: "no-store", wantCalls: n, wantCoal: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCache(t, newMapStore())
			key := hashKey(DefaultKey(httptest.NewRequest("GET", "http://example.com/a", nil)))
			var calls atomic.Int64
			h := c.Handler(coalesceHandler(c, key, n, tt.hdr, &calls))
			var wg sync.WaitGroup
			bodies := make([]string, n)
			for i := range n {
				wg.Go(func() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, httptest.NewRequest("GET", "http://example.com/a", nil))
					bodies[i] = w.Body.String()
				})
			}
			wg.Wait()
			c.bg.wait()
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("handler ran %d times, want %d", got, tt.wantCalls)
			}
			for i, b := range bodies {
				if b != "shared body" {
					t.Fatalf("request %d got %q", i, b)
				}
			}
			if got := c.Stats().Coalesced; got != tt.wantCoal {
				t.Errorf("Coalesced %d, want %d", got, tt.wantCoal)
			}
		})
	}
}

func TestCacheCoalescingBoundedWait(t *testing.T) {
	c := newTestCache(t, newMapStore(), WithCoalesceWait(5*time.Millisecond))
	secondDone := make(chan struct{})
	var calls atomic.Int64
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			<-secondDone // the leader is stuck until the follower answered alone
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "x")
	}))
	leaderDone := make(chan struct{})
	go func() {
		defer close(leaderDone)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "http://example.com/a", nil))
	}()
	key := hashKey(DefaultKey(httptest.NewRequest("GET", "http://example.com/a", nil)))
	for calls.Load() == 0 {
		runtimeYield()
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "http://example.com/a", nil))
	close(secondDone)
	<-leaderDone
	if calls.Load() != 2 || w.Body.String() != "x" {
		t.Errorf("calls %d body %q: the follower should have run the handler after its wait", calls.Load(), w.Body.String())
	}
	if c.flights.waiters(key) != 0 {
		t.Error("a waiter is left")
	}
}

func TestCacheCoalescingVary(t *testing.T) {
	// Followers whose Vary header values differ from the leader's do not
	// take its response.
	c := newTestCache(t, newMapStore())
	key := hashKey(DefaultKey(httptest.NewRequest("GET", "http://example.com/a", nil)))
	var calls atomic.Int64
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			for c.flights.waiters(key) < 1 {
				runtimeYield()
			}
		}
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprint(w, r.Header.Get("Accept-Language"))
	}))
	var wg sync.WaitGroup
	got := make([]string, 2)
	for i, lang := range []string{"en", "de"} {
		wg.Go(func() {
			if i == 1 {
				for calls.Load() == 0 {
					runtimeYield()
				}
			}
			r := httptest.NewRequest("GET", "http://example.com/a", nil)
			r.Header.Set("Accept-Language", lang)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			got[i] = w.Body.String()
		})
	}
	wg.Wait()
	if got[0] != "en" || got[1] != "de" {
		t.Errorf("bodies %q, want each its own language", got)
	}
}
