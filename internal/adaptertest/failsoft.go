package adaptertest

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
	"github.com/redis/go-redis/v9"
)

// This file runs failsoft's own Cache and Recover through the framework: the
// tests of an adapter with the middleware it exists for.

// failsoftChain is failsoft's recommended chain over a tiered store (in-process
// in front of a guarded Redis at addr), mounted on the framework, in front of
// the documented data endpoint. The endpoint reads and writes Redis through
// its own client, as legacy code does, and fails with 500 when Redis fails, in
// the framework's way (Gin writes it, Echo returns an error).
type failsoftChain struct {
	router  http.Handler
	clock   *fakeClock
	primary atomic.Int32 // calls of the simulated primary source
	panics  atomic.Bool  // the handler panics instead of answering
}

func newFailsoftChain[E http.Handler](t *testing.T, a Adapter[E], addr string) *failsoftChain {
	t.Helper()
	fc := &failsoftChain{clock: &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	now := fc.clock.Now
	quiet := slog.New(slog.DiscardHandler)

	// The handler's own client and the store's client, as in an application.
	appRDB := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { appRDB.Close() })
	storeRDB := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { storeRDB.Close() })

	mem, err := store.NewMemory(1<<20, store.WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	rs, err := store.NewRedis(storeRDB)
	if err != nil {
		t.Fatal(err)
	}
	guard, err := store.NewGuard(rs, store.WithClock(now), store.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { guard.Close() })
	tiered, err := store.NewTiered(mem, guard, store.WithClock(now), store.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tiered.Close() })
	cache, err := middleware.New(tiered, middleware.WithClock(now), middleware.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })

	e := a.New()
	a.Use(e, middleware.Recover(middleware.WithBreakers(guard), middleware.WithLogger(quiet)))
	a.Use(e, cache.Handler)
	a.Handle(e, http.MethodGet, "/api/data/:key", func(c Ctx) {
		if fc.panics.Load() {
			panic("handler bug")
		}
		key := c.Param("key")
		c.Header().Set("Cache-Control", "max-age=60")
		ctx := c.Request().Context()
		v, err := appRDB.Get(ctx, "data:"+key).Result()
		switch {
		case err == nil:
			c.JSON(http.StatusOK, map[string]string{"source": "cache", "data": v})
		case errors.Is(err, redis.Nil):
			fc.primary.Add(1)
			v = "Data for " + key
			if err := appRDB.Set(ctx, "data:"+key, v, time.Hour).Err(); err != nil {
				c.Fail(http.StatusInternalServerError, err.Error())
				return
			}
			c.JSON(http.StatusOK, map[string]string{"source": "primary", "data": v})
		default:
			// A failure in the framework's way: Wrap must turn it into
			// the 500 that the cache replaces with a stale copy.
			c.Fail(http.StatusInternalServerError, err.Error())
		}
	})
	fc.router = e
	return fc
}

func (fc *failsoftChain) get(t *testing.T, path string) *httptest.ResponseRecorder {
	t.Helper()
	return Serve(fc.router, http.MethodGet, "http://api.example"+path)
}

// failsoftCacheHit checks that the second GET is answered by failsoft's cache
// through the framework: same status, headers and body, the handler ran once.
func failsoftCacheHit[E http.Handler](t *testing.T, a Adapter[E]) {
	fc := newFailsoftChain(t, a, redistest.Start(t).Addr())

	first := fc.get(t, "/api/data/k1")
	second := fc.get(t, "/api/data/k1")

	if first.Code != http.StatusOK || second.Code != http.StatusOK {
		t.Fatalf("statuses %d, %d; want 200, 200 (bodies %q, %q)", first.Code, second.Code, first.Body, second.Body)
	}
	if n := fc.primary.Load(); n != 1 {
		t.Errorf("primary asked %d times, want 1", n)
	}
	if first.Body.String() != second.Body.String() || !strings.Contains(first.Body.String(), `"source":"primary"`) {
		t.Errorf("bodies %q then %q; want the primary's answer twice", first.Body, second.Body)
	}
	for _, h := range []string{"Content-Type", "Cache-Control"} {
		if first.Header().Get(h) != second.Header().Get(h) {
			t.Errorf("%s: %q from the handler, %q from the cache", h, first.Header().Get(h), second.Header().Get(h))
		}
	}
	if cs := second.Header().Get("Cache-Status"); !strings.Contains(cs, "; hit") {
		t.Errorf("Cache-Status = %q, want a hit", cs)
	}
}

// failsoftStale checks that with Redis killed (or the handler failing in
// another way) and the entry past its freshness, failsoft answers through
// the framework with the stale copy instead of the handler's failure.
func failsoftStale[E http.Handler](t *testing.T, a Adapter[E]) {
	tests := []struct {
		name    string
		breakIt func(srv *redistest.Server, fc *failsoftChain)
		detail  string
	}{
		{"Redis killed, handler answers 500", func(srv *redistest.Server, _ *failsoftChain) { srv.Kill() }, "stale-if-error"},
		{"handler panics", func(_ *redistest.Server, fc *failsoftChain) { fc.panics.Store(true) }, "stale-if-panic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t)
			fc := newFailsoftChain(t, a, srv.Addr())
			first := fc.get(t, "/api/data/k1")
			if first.Code != http.StatusOK {
				t.Fatalf("first GET: %d %q", first.Code, first.Body)
			}

			// The cache writes Redis in the background; wait for its entry
			// beside the handler's own key before breaking anything.
			waitFor(t, "the cache entry in Redis", func() bool {
				n, err := srv.Do("DBSIZE")
				return err == nil && n != ":0" && n != ":1"
			})
			tt.breakIt(srv, fc)
			fc.clock.Advance(2 * time.Minute) // past max-age=60, within stale-if-error
			got := fc.get(t, "/api/data/k1")

			if got.Code != http.StatusOK || got.Body.String() != first.Body.String() {
				t.Errorf("got %d %q, want the stale 200 %q", got.Code, got.Body, first.Body)
			}
			if cs := got.Header().Get("Cache-Status"); !strings.Contains(cs, "detail="+tt.detail) {
				t.Errorf("Cache-Status = %q, want detail=%s", cs, tt.detail)
			}
			if n := fc.primary.Load(); n != 1 {
				t.Errorf("primary asked %d times, want 1", n)
			}
		})
	}
}

// failsoftPanic checks that a panic with no stale copy to fall back on becomes
// failsoft's 503 with Retry-After and a JSON body, through the framework, also
// under the framework's own recovery in an outer router.
func failsoftPanic[E http.Handler](t *testing.T, a Adapter[E]) {
	for _, outerRecovery := range []bool{false, true} {
		name := "failsoft only"
		if outerRecovery {
			name = a.Framework + " recovery outermost"
		}
		t.Run(name, func(t *testing.T) {
			fc := newFailsoftChain(t, a, redistest.Start(t).Addr())
			fc.panics.Store(true)
			if outerRecovery {
				outer := a.New()
				a.Recovery(outer)
				a.Mount(outer, http.MethodGet, "/api/data/:key", fc.router)
				fc.router = outer
			}

			got := fc.get(t, "/api/data/k1")

			if got.Code != http.StatusServiceUnavailable {
				t.Fatalf("status = %d %q, want 503", got.Code, got.Body)
			}
			if got.Header().Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
			if ct := got.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q, want JSON", ct)
			}
			var body struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(got.Body.Bytes(), &body); err != nil || body.Error == "" {
				t.Errorf("body %q: %v; want a JSON error", got.Body, err)
			}
		})
	}
}
