package middleware

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/failsoft/failsoft/store"
)

// Integration tests against a real redis-server, through the stack the
// design recommends: Tiered(Memory, Guard(Redis)).

const itOpTimeout = 100 * time.Millisecond

// itStack is a redis-server with the store stack over it.
type itStack struct {
	srv    *redistest.Server
	rdb    *redis.Client
	guard  *store.Guard
	mem    *store.Memory
	tiered *store.Tiered
}

// newITStack builds the stack over srv; cleanup closes it in order.
func newITStack(t testing.TB, srv *redistest.Server, storeOpts ...store.TieredOption) *itStack {
	t.Helper()
	quiet := store.WithLogger(slog.New(slog.DiscardHandler))
	s := &itStack{srv: srv}
	s.rdb = redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true})
	rs, err := store.NewRedis(s.rdb)
	if err != nil {
		t.Fatal(err)
	}
	if s.guard, err = store.NewGuard(rs, quiet, store.WithOpTimeout(itOpTimeout)); err != nil {
		t.Fatal(err)
	}
	if s.mem, err = store.NewMemory(64 << 20); err != nil {
		t.Fatal(err)
	}
	if s.tiered, err = store.NewTiered(s.mem, s.guard, append([]store.TieredOption{quiet}, storeOpts...)...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.tiered.Close()
		s.rdb.Close()
		s.guard.Close()
		s.mem.Close()
	})
	return s
}

// itCache builds a cache over st, closed before the stack (cleanups run in
// reverse order).
func itCache(t testing.TB, st store.Store, opts ...Option) *Cache {
	return newTestCache(t, st, opts...)
}

func get(h http.Handler, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
	return w
}

func TestIntegrationHitMiss(t *testing.T) {
	srv := redistest.Start(t)
	a := newITStack(t, srv)
	o := newOrigin(200, `{"source":"primary","data":"v"}`, "Cache-Control", "max-age=60", "Content-Type", "application/json")
	c := itCache(t, a.tiered)
	h := c.Handler(o)
	first := get(h, "http://example.com/api/data/1")
	c.bg.wait()
	second := get(h, "http://example.com/api/data/1")
	if o.calls.Load() != 1 {
		t.Fatalf("handler called %d times, want 1", o.calls.Load())
	}
	sameExceptCache(t, first, second)
	// Another replica (its own in-process tier) over the same Redis: a hit
	// from Redis.
	b := newITStack(t, srv)
	c2 := itCache(t, b.tiered)
	third := get(c2.Handler(o), "http://example.com/api/data/1")
	if o.calls.Load() != 1 || c2.Stats().Hits != 1 {
		t.Errorf("other replica: %d calls, stats %+v; want a hit from Redis", o.calls.Load(), c2.Stats())
	}
	sameExceptCache(t, first, third)
}

// redisHandler is the documented data endpoint in miniature: it reads its
// own key from Redis through a hooked client and answers 500 when Redis
// fails.
func redisHandler(t testing.TB, srv *redistest.Server, g *store.Guard, calls *atomic.Int64) http.Handler {
	hook, err := store.NewHook(g)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true, MaxRetries: -1})
	rdb.AddHook(hook)
	t.Cleanup(func() { rdb.Close() })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		v, err := rdb.Get(r.Context(), "data:"+r.URL.Path).Result()
		switch {
		case errors.Is(err, redis.Nil):
			v = "primary"
		case err != nil:
			http.Error(w, `{"error":"redis"}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Cache-Control", "max-age=1")
		fmt.Fprintf(w, `{"data":%q}`, v)
	})
}

func TestIntegrationStaleIfErrorRedisKilled(t *testing.T) {
	srv := redistest.Start(t)
	s := newITStack(t, srv)
	clk := newTestClock()
	var calls atomic.Int64
	c := itCache(t, s.tiered, WithClock(clk.Now), WithMaxRefreshes(0))
	h := c.Handler(redisHandler(t, srv, s.guard, &calls))
	first := get(h, "http://example.com/a")
	c.bg.wait()
	if first.Code != 200 {
		t.Fatalf("first: %d", first.Code)
	}
	srv.Kill()
	clk.Add(10 * time.Second) // stale; within the default stale-if-error window
	for i := range 10 {
		start := time.Now()
		w := get(h, "http://example.com/a")
		if w.Code != 200 || w.Body.String() != first.Body.String() {
			t.Fatalf("request %d with Redis dead: %d %q, want the stale copy", i, w.Code, w.Body.String())
		}
		if took := time.Since(start); took > itOpTimeout*3+time.Second {
			t.Errorf("request %d took %v", i, took)
		}
	}
	if st := c.Stats(); st.StaleServed != 10 {
		t.Errorf("stats %+v, want 10 stale answers", st)
	}
	// Without a stale copy the failure passes on.
	if w := get(h, "http://example.com/never-cached"); w.Code != 500 {
		t.Errorf("uncached path with Redis dead: %d, want the handler's 500", w.Code)
	}
}

func TestIntegrationStaleWhileRevalidate(t *testing.T) {
	srv := redistest.Start(t)
	s := newITStack(t, srv)
	clk := newTestClock()
	release := make(chan struct{})
	var calls atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) > 1 {
			<-release
		}
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=60")
		fmt.Fprintf(w, "v%d", calls.Load())
	})
	c := itCache(t, s.tiered, WithClock(clk.Now))
	ch := c.Handler(h)
	get(ch, "http://example.com/a")
	c.bg.wait()
	clk.Add(5 * time.Second)
	for i := range 20 {
		if w := get(ch, "http://example.com/a"); w.Body.String() != "v1" {
			t.Fatalf("request %d: %q, want the stale v1 at once", i, w.Body.String())
		}
	}
	close(release)
	c.bg.wait()
	if calls.Load() != 2 || c.Stats().Refreshes != 1 {
		t.Errorf("calls %d refreshes %d, want one background refresh", calls.Load(), c.Stats().Refreshes)
	}
	if w := get(ch, "http://example.com/a"); w.Body.String() != "v2" {
		t.Errorf("after the refresh: %q", w.Body.String())
	}
}

func TestIntegrationCoalescing(t *testing.T) {
	srv := redistest.Start(t)
	s := newITStack(t, srv)
	const n = 50
	c := itCache(t, s.tiered)
	var calls atomic.Int64
	h := c.Handler(coalesceHandler(n, "max-age=60", &calls))
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if w := get(h, "http://example.com/a"); w.Body.String() != "shared body" {
				t.Errorf("got %q", w.Body.String())
			}
		})
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Errorf("handler ran %d times for %d concurrent misses, want 1", calls.Load(), n)
	}
}

func TestIntegrationRedisPaused(t *testing.T) {
	srv := redistest.Start(t)
	s := newITStack(t, srv, store.WithCoherence(0)) // every read asks Redis
	o := newOrigin(200, "x", "Cache-Control", "max-age=60")
	c := itCache(t, s.tiered)
	h := c.Handler(o)
	get(h, "http://example.com/cached")
	c.bg.wait()
	srv.Pause()
	defer srv.Resume()
	// A request that waited on the paused Redis itself would wait out the
	// client's read timeout (go-redis' default, 3 s); a bounded one waits
	// about one op timeout (100 ms). 2 s tells the two apart with room for
	// a loaded machine (a loaded CI runner has taken 629 ms).
	const limit = 2 * time.Second
	var slowest time.Duration
	for i := range 20 {
		for _, p := range []string{"/cached", fmt.Sprintf("/new-%d", i)} {
			start := time.Now()
			w := get(h, "http://example.com"+p)
			took := time.Since(start)
			slowest = max(slowest, took)
			if w.Code != 200 || w.Body.String() != "x" {
				t.Fatalf("%s with Redis paused: %d %q", p, w.Code, w.Body.String())
			}
			if took > limit {
				t.Errorf("%s took %v with Redis paused, limit %v", p, took, limit)
			}
		}
	}
	t.Logf("slowest request with Redis paused: %v; breaker %v", slowest, s.guard.State())
	if s.guard.State() != store.StateOpen {
		t.Errorf("breaker %v, want open", s.guard.State())
	}
}
