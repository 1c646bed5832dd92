package middleware

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// gatedStore is a mapStore whose Set reports on entered that it started and
// then waits for release, so that a test can act while a write is in
// flight.
type gatedStore struct {
	*mapStore
	entered chan string
	release chan struct{}
}

func newGatedStore() *gatedStore {
	return &gatedStore{mapStore: newMapStore(), entered: make(chan string, 16), release: make(chan struct{})}
}

func (s *gatedStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	s.entered <- key
	<-s.release
	return s.mapStore.Set(ctx, key, value, ttl)
}

// versionedOrigin answers a GET with "v" and the number of its GET calls,
// cacheable for a minute, and a PUT with 204.
func versionedOrigin(gets *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		n := gets.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "v%d", n)
	})
}

// TestInvalidateOvertakesWriteInFlight: a PUT that invalidates while the
// store write of an earlier GET's answer is on its way (its Set started
// before the invalidation's Delete) wins: the old answer is not served
// afterwards, from the store or from the pending-writes view.
func TestInvalidateOvertakesWriteInFlight(t *testing.T) {
	for _, vary := range []bool{false, true} {
		t.Run(fmt.Sprintf("vary=%v", vary), func(t *testing.T) {
			s := newGatedStore()
			c := newTestCache(t, s)
			var gets atomic.Int64
			origin := versionedOrigin(&gets)
			if vary {
				inner := origin
				origin = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Vary", "Accept-Language")
					inner.ServeHTTP(w, r)
				})
			}
			h := c.Handler(origin)
			serve := func(method string) *httptest.ResponseRecorder {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(method, "http://example.com/a", nil))
				return w
			}

			if w := serve("GET"); w.Body.String() != "v1" {
				t.Fatalf("first GET: %q", w.Body.String())
			}
			<-s.entered // the write of v1 is in flight, past save's first check
			if w := serve("PUT"); w.Code != http.StatusNoContent {
				t.Fatalf("PUT: %d", w.Code)
			}
			// While the write is still blocked: the pending view is gone.
			if w := serve("GET"); w.Body.String() != "v2" {
				t.Fatalf("GET after the PUT, write in flight: %q (%s), want v2",
					w.Body.String(), w.Header().Get("Cache-Status"))
			}
			close(s.release) // v1's Set lands after the Delete, then v2's
			c.bg.wait()
			w := serve("GET")
			if b := w.Body.String(); b == "v1" {
				t.Fatalf("GET after the writes landed: the invalidated v1 came back (%s)", w.Header().Get("Cache-Status"))
			}
			if gets.Load() > 3 {
				t.Errorf("%d GET calls, want at most 3", gets.Load())
			}
			c.bg.wait()
			// Whatever is stored now is not v1.
			if w := serve("GET"); w.Body.String() == "v1" {
				t.Fatalf("v1 served again: %s", w.Header().Get("Cache-Status"))
			}
		})
	}
}

// TestInvalidateDuringHandler: an answer whose handler call began before an
// invalidation of its URL is answered but neither stored nor read back:
// the handler may have read the data before the unsafe request changed it.
func TestInvalidateDuringHandler(t *testing.T) {
	s := newMapStore()
	c := newTestCache(t, s)
	var gets atomic.Int64
	inHandler, unblock := make(chan struct{}), make(chan struct{})
	origin := versionedOrigin(&gets)
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && gets.Load() == 0 {
			close(inHandler)
			<-unblock
		}
		origin.ServeHTTP(w, r)
	}))
	got := make(chan string, 1)
	go func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "http://example.com/a", nil))
		got <- w.Body.String()
	}()
	<-inHandler
	if w := do(c, h, "PUT", "http://example.com/a"); w.Code != http.StatusNoContent {
		t.Fatalf("PUT: %d", w.Code)
	}
	close(unblock)
	if b := <-got; b != "v1" {
		t.Fatalf("first GET: %q", b)
	}
	c.bg.wait()
	if s.len() != 0 || c.Stats().Stored != 0 {
		t.Errorf("the overtaken answer was stored: %d entries, Stored %d", s.len(), c.Stats().Stored)
	}
	if w := do(c, h, "GET", "http://example.com/a"); w.Body.String() != "v2" {
		t.Errorf("GET after: %q (%s), want v2 from the handler", w.Body.String(), w.Header().Get("Cache-Status"))
	}
	if w := do(c, h, "GET", "http://example.com/a"); w.Body.String() != "v2" || gets.Load() != 2 {
		t.Errorf("third GET: %q, %d calls: later answers are stored again", w.Body.String(), gets.Load())
	}
}

// TestPurgeOvertakesWriteInFlight: Purge, like an unsafe method, wins over
// a write in flight.
func TestPurgeOvertakesWriteInFlight(t *testing.T) {
	s := newGatedStore()
	c := newTestCache(t, s)
	var gets atomic.Int64
	h := c.Handler(versionedOrigin(&gets))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "http://example.com/a", nil))
	<-s.entered
	if err := c.Purge(context.Background(), "http://example.com/a"); err != nil {
		t.Fatal(err)
	}
	close(s.release)
	c.bg.wait()
	if s.len() != 0 {
		t.Errorf("%d entries left after the purge", s.len())
	}
	if w := do(c, h, "GET", "http://example.com/a"); w.Body.String() != "v2" {
		t.Errorf("GET after purge: %q, want v2", w.Body.String())
	}
}

// TestInvalidateDuringRefresh: a background refresh (stale-while-revalidate)
// whose handler call began before an invalidation does not store its
// answer.
func TestInvalidateDuringRefresh(t *testing.T) {
	clk := newTestClock()
	s := newMapStore()
	c := newTestCache(t, s, WithClock(clk.Now))
	var gets atomic.Int64
	inRefresh, unblock := make(chan struct{}), make(chan struct{})
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		n := gets.Add(1)
		if n == 2 {
			close(inRefresh)
			<-unblock
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=60")
		fmt.Fprintf(w, "v%d", n)
	}))
	do(c, h, "GET", "http://example.com/a")
	clk.Add(20 * time.Second)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "http://example.com/a", nil))
	if w.Body.String() != "v1" {
		t.Fatalf("stale answer %q", w.Body.String())
	}
	<-inRefresh
	// Not do: its wait for background work would wait for the refresh.
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("PUT", "http://example.com/a", nil))
	close(unblock)
	c.bg.wait()
	if s.len() != 0 {
		t.Errorf("%d entries: the refresh stored over the invalidation", s.len())
	}
	if w := do(c, h, "GET", "http://example.com/a"); w.Body.String() != "v3" {
		t.Errorf("GET after: %q (%s), want v3 from the handler", w.Body.String(), w.Header().Get("Cache-Status"))
	}
}

func TestCachePurge(t *testing.T) {
	o := newOrigin(200, "x", "Cache-Control", "max-age=60")
	c := newTestCache(t, newMapStore())
	h := c.Handler(o)
	do(c, h, "GET", "http://example.com/a?x=1")
	do(c, h, "GET", "http://example.com/b")
	if err := c.Purge(context.Background(), "http://EXAMPLE.com:80/a?x=1"); err != nil {
		t.Fatal(err)
	}
	do(c, h, "GET", "http://example.com/a?x=1")
	do(c, h, "GET", "http://example.com/b")
	if o.calls.Load() != 3 || c.Stats().Invalidated != 1 {
		t.Errorf("calls %d invalidated %d, want 3 and 1", o.calls.Load(), c.Stats().Invalidated)
	}
	for _, bad := range []string{"", "/relative", "ftp://example.com/a", "http://[::1"} {
		if err := c.Purge(context.Background(), bad); err == nil {
			t.Errorf("Purge(%q) = nil, want an error", bad)
		}
	}
}

func TestCacheUnsafeInvalidates(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		status      int
		location    string
		wantCleared []string
	}{
		{name: "post 200", method: "POST", status: 200, wantCleared: []string{"/items"}},
		{name: "delete 204", method: "DELETE", status: 204, wantCleared: []string{"/items"}},
		{name: "put 303 location", method: "PUT", status: 303, location: "/items/7", wantCleared: []string{"/items", "/items/7"}},
		{name: "post absolute location same host", method: "POST", status: 201, location: "http://example.com/items/7", wantCleared: []string{"/items", "/items/7"}},
		{name: "post location other host", method: "POST", status: 201, location: "http://other.example/items/7", wantCleared: []string{"/items"}},
		{name: "post 500", method: "POST", status: 500},
		{name: "options", method: "OPTIONS", status: 200},
		// Methods not known to be safe invalidate like POST (RFC 9111 §4.4).
		{name: "m-search 200", method: "M-SEARCH", status: 200, wantCleared: []string{"/items"}},
		{name: "purge 200", method: "PURGE", status: 200, wantCleared: []string{"/items"}},
		{name: "proppatch 207", method: "PROPPATCH", status: 207, wantCleared: []string{"/items"}},
		{name: "mkcol 201 location", method: "MKCOL", status: 201, location: "/items/7", wantCleared: []string{"/items", "/items/7"}},
		{name: "move 301", method: "MOVE", status: 301, wantCleared: []string{"/items"}},
		{name: "lower-case get is another method", method: "get", status: 200, wantCleared: []string{"/items"}},
		{name: "m-search 404", method: "M-SEARCH", status: 404},
		{name: "purge 500", method: "PURGE", status: 500},
		// Safe methods (RFC 9110 §9.2.1, the IANA registry's Safe column).
		{name: "trace", method: "TRACE", status: 200},
		{name: "propfind", method: "PROPFIND", status: 207},
		{name: "report", method: "REPORT", status: 200},
		{name: "search", method: "SEARCH", status: 200},
		{name: "connect targets an authority, not a URL", method: "CONNECT", status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gets atomic.Int64
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == "GET" {
					gets.Add(1)
					w.Header().Set("Cache-Control", "max-age=60")
					fmt.Fprint(w, r.URL.Path)
					return
				}
				if tt.location != "" {
					w.Header().Set("Location", tt.location)
				}
				w.WriteHeader(tt.status)
			})
			c := newTestCache(t, newMapStore())
			ch := c.Handler(h)
			paths := []string{"/items", "/items/7", "/other"}
			for _, p := range paths {
				do(c, ch, "GET", "http://example.com"+p)
			}
			w := do(c, ch, tt.method, "http://example.com/items")
			if w.Code != tt.status || w.Header().Get("Cache-Status") != "failsoft; fwd=method" {
				t.Errorf("%s: %d %q", tt.method, w.Code, w.Header().Get("Cache-Status"))
			}
			before := gets.Load()
			for _, p := range paths {
				do(c, ch, "GET", "http://example.com"+p)
			}
			if got, want := gets.Load()-before, int64(len(tt.wantCleared)); got != want {
				t.Errorf("%d entries refetched, want %d (%v)", got, want, tt.wantCleared)
			}
			if got := c.Stats().Invalidated; got != uint64(len(tt.wantCleared)) {
				t.Errorf("Invalidated %d, want %d", got, len(tt.wantCleared))
			}
		})
	}
}
