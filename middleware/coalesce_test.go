package middleware

import (
	"bytes"
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
		if n := flightsLeft(&c); n != 1 {
			t.Fatalf("%d flights, want 1", n)
		}
		want := &outcome{failed: true}
		go c.done("k", f, want)
		res, ok := c.wait(context.Background(), g, time.Minute)
		if !ok || res != want {
			t.Errorf("wait = %v, %v", res, ok)
		}
		if n := flightsLeft(&c); n != 0 {
			t.Errorf("%d flights after done, want 0", n)
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
		if n := waitingFollowers(); n != 0 {
			t.Errorf("%d followers wait after the wait ended", n)
		}
		if g, leader := c.join("k"); leader || g != f {
			t.Error("a follower's timeout ended the leader's flight")
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

// waitingFollowers counts the goroutines blocked in a coalescer's wait:
// the followers that wait for a leader now. It reads the goroutines'
// stacks, so that the coalescer keeps no count for tests; the tests that
// use it serve one key at a time. A follower that its leader's done woke is
// runnable, no longer blocked, so it is not counted.
func waitingFollowers() int {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		_, state, _ := bytes.Cut(g, []byte(" ["))
		if bytes.HasPrefix(state, []byte("select")) && bytes.Contains(g, []byte("middleware.(*coalescer).wait(")) {
			count++
		}
	}
	return count
}

// flightsLeft counts the flights c holds: a leader's call in progress each.
func flightsLeft(c *coalescer) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.flights)
}

// coalesceHandler blocks its first call until n-1 followers wait.
func coalesceHandler(n int, hdr string, calls *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			for waitingFollowers() < n-1 {
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
			var calls atomic.Int64
			h := c.Handler(coalesceHandler(n, tt.hdr, &calls))
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
	if n := flightsLeft(&c.flights); n != 0 {
		t.Errorf("%d flights are left", n)
	}
}

func TestCacheCoalescingVary(t *testing.T) {
	// Followers whose Vary header values differ from the leader's do not
	// take its response.
	c := newTestCache(t, newMapStore())
	var calls atomic.Int64
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			for waitingFollowers() < 1 {
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

// spinUntil yields until cond holds or a generous bound passes (a safety
// net so that a broken implementation fails instead of hanging); it reports
// whether cond held.
func spinUntil(cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		runtimeYield()
	}
	return true
}

// TestCacheCoalescingRejoin: followers that the leader's answer cannot
// serve, although their own answer may be shareable, join the next flight
// instead of all calling the handler at once.
func TestCacheCoalescingRejoin(t *testing.T) {
	const n = 20
	tests := []struct {
		name   string
		method string   // the leader's
		hdr    []string // the leader's request header fields
		status int      // the leader's answer
	}{
		{name: "HEAD leader", method: "HEAD", status: 200},
		{name: "Authorization leader, private answer", method: "GET", hdr: []string{"Authorization", "Bearer x"}, status: 200},
		{name: "Cookie leader, no explicit freshness", method: "GET", hdr: []string{"Cookie", "a=b"}, status: 200},
		{name: "failed leader", method: "GET", status: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCache(t, newMapStore(), WithCoalesceWait(time.Minute))
			var calls atomic.Int64
			release := make(chan struct{})
			h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch calls.Add(1) {
				case 1:
					<-release
					if tt.status != 200 {
						w.WriteHeader(tt.status)
						return
					}
					if r.Header.Get("Cookie") != "" {
						w.Header().Set("Last-Modified", "Mon, 03 Mar 2025 00:00:00 GMT")
					} else {
						w.Header().Set("Cache-Control", "max-age=60")
					}
					fmt.Fprint(w, "leader body")
					return
				case 2:
					// The next leader: every other follower waits for it.
					spinUntil(func() bool { return waitingFollowers() >= n-1 })
				}
				w.Header().Set("Cache-Control", "max-age=60")
				fmt.Fprint(w, "shared body")
			}))
			leaderDone := make(chan *httptest.ResponseRecorder, 1)
			go func() {
				r := httptest.NewRequest(tt.method, "http://example.com/a", nil)
				for i := 0; i+1 < len(tt.hdr); i += 2 {
					r.Header.Set(tt.hdr[i], tt.hdr[i+1])
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				leaderDone <- w
			}()
			if !spinUntil(func() bool { return calls.Load() == 1 }) {
				t.Fatal("the leader did not start")
			}
			var wg sync.WaitGroup
			bodies := make([]string, n)
			for i := range n {
				wg.Go(func() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, httptest.NewRequest("GET", "http://example.com/a", nil))
					bodies[i] = w.Body.String()
				})
			}
			if !spinUntil(func() bool { return waitingFollowers() == n }) {
				t.Fatalf("%d followers wait, want %d", waitingFollowers(), n)
			}
			close(release)
			wg.Wait()
			lw := <-leaderDone
			c.bg.wait()
			if lw.Code != tt.status {
				t.Errorf("leader got %d, want %d", lw.Code, tt.status)
			}
			if got := calls.Load(); got > 2 {
				t.Errorf("handler ran %d times, want at most 2 (the leader and one follower)", got)
			}
			for i, b := range bodies {
				if b != "shared body" {
					t.Fatalf("follower %d got %q", i, b)
				}
			}
			if got := c.Stats().Coalesced; got != n-1 {
				t.Errorf("Coalesced %d, want %d", got, n-1)
			}
		})
	}
}

// TestCacheCoalescingNoSerialize: followers whose own answer would be kept
// from sharing for the leader's reason (here: they all send credentials)
// call the handler at once, not one flight after another.
func TestCacheCoalescingNoSerialize(t *testing.T) {
	const n = 8
	c := newTestCache(t, newMapStore(), WithCoalesceWait(time.Minute))
	var calls, active atomic.Int64
	var together atomic.Bool
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			spinUntil(func() bool { return waitingFollowers() >= n-1 })
		} else {
			// The followers' calls overlap only if none waits for another.
			active.Add(1)
			if spinUntil(func() bool { return active.Load() >= n-1 }) {
				together.Store(true)
			}
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "private body")
	}))
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			r := httptest.NewRequest("GET", "http://example.com/a", nil)
			r.Header.Set("Authorization", "Bearer x")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Body.String() != "private body" {
				t.Errorf("got %q", w.Body.String())
			}
		})
	}
	wg.Wait()
	if calls.Load() != n || !together.Load() {
		t.Errorf("handler ran %d times (want %d), concurrently: %v", calls.Load(), n, together.Load())
	}
}

// TestCacheCoalescingRejoinBounded: a follower that rejoins stops waiting
// when the coalescing wait is over and calls the handler itself, though
// the flight it rejoined still runs.
func TestCacheCoalescingRejoinBounded(t *testing.T) {
	c := newTestCache(t, newMapStore(), WithCoalesceWait(100*time.Millisecond))
	var calls atomic.Int64
	release, thirdDone := make(chan struct{}), make(chan struct{})
	var secondUnblocked atomic.Bool
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1: // the HEAD leader
			<-release
		case 2: // the next leader: stuck until the other follower answered alone
			select {
			case <-thirdDone:
				secondUnblocked.Store(true)
			case <-time.After(10 * time.Second):
			}
		case 3:
			defer close(thirdDone)
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "body")
	}))
	var wg sync.WaitGroup
	wg.Go(func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("HEAD", "http://example.com/a", nil)) })
	if !spinUntil(func() bool { return calls.Load() == 1 }) {
		t.Fatal("the leader did not start")
	}
	bodies := make([]string, 2)
	for i := range 2 {
		wg.Go(func() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "http://example.com/a", nil))
			bodies[i] = w.Body.String()
		})
	}
	if !spinUntil(func() bool { return waitingFollowers() == 2 }) {
		t.Fatal("the followers do not wait")
	}
	close(release)
	wg.Wait()
	c.bg.wait()
	if calls.Load() != 3 || !secondUnblocked.Load() {
		t.Errorf("calls %d, second leader unblocked by the third call: %v", calls.Load(), secondUnblocked.Load())
	}
	if bodies[0] != "body" || bodies[1] != "body" {
		t.Errorf("bodies %q", bodies)
	}
	if n := flightsLeft(&c.flights); n != 0 {
		t.Errorf("%d flights are left", n)
	}
}
