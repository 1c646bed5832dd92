package failsoft_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft"
	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/failsoft/failsoft/store"
)

// versioned answers GET /item with its current version, fresh for 600 s,
// and bumps the version on POST /item; every other GET is a small fresh
// answer of its own.
type versioned struct{ v atomic.Int64 }

func (h *versioned) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/item" && r.Method == http.MethodPost {
		h.v.Add(1)
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Cache-Control", "max-age=600")
	if r.URL.Path == "/item" {
		fmt.Fprintf(w, "v%d", h.v.Load())
		return
	}
	fmt.Fprint(w, r.URL.Path)
}

// post serves one POST through h.
func post(h http.Handler, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, target, nil))
	return rec
}

// breakerState returns fs's breaker state (one node).
func breakerState(fs *failsoft.Protector) store.State { return fs.Stats().Breakers[0].State }

// replica is one failsoft stack with its own client and in-process tier.
type replica struct {
	fs *failsoft.Protector
	h  http.Handler
}

func newReplica(t *testing.T, addr string, app http.Handler, opts ...failsoft.Option) replica {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	fs, err := failsoft.New(rdb, append([]failsoft.Option{
		failsoft.WithFailureThreshold(2),
		failsoft.WithOpenPeriod(200 * time.Millisecond),
		failsoft.WithLogger(testLogger(t)),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fs.Close()
		rdb.Close()
	})
	return replica{fs: fs, h: fs.Then(app)}
}

// TestLostInvalidation is issue 11's sequence: an entry stored, Redis paused
// until the breaker opens, resumed, a POST acknowledged while the breaker is
// still open (so its Redis DEL is refused), the breaker closed again: a GET
// must not answer the entry the POST invalidated.
func TestLostInvalidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []failsoft.Option
	}{
		{"in-process tier", nil},
		{"no in-process tier", []failsoft.Option{failsoft.WithMemory(0)}},
		{"no broadcast", []failsoft.Option{failsoft.WithBroadcast(false)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t)
			app := &versioned{}
			// The breaker stays open long enough for the POST to land while
			// it is.
			a := newReplica(t, srv.Addr(), app, append(tc.opts, failsoft.WithOpenPeriod(time.Second))...)

			if rec := get(a.h, "/item"); rec.Body.String() != "v0" {
				t.Fatalf("first GET = %q", rec.Body)
			}
			waitFor(t, "the entry stored in Redis", func() bool { return a.fs.Stats().Cache.Stored >= 1 })

			srv.Pause()
			for i := 0; breakerState(a.fs) != store.StateOpen; i++ {
				if i > 1000 {
					t.Fatal("breaker never opened")
				}
				get(a.h, fmt.Sprintf("/trip-%d", i))
			}
			srv.Resume()
			if rec := post(a.h, "/item"); rec.Code != http.StatusOK {
				t.Fatalf("POST = %d", rec.Code)
			}
			waitFor(t, "the breaker closed", func() bool {
				get(a.h, "/probe")
				return breakerState(a.fs) == store.StateClosed
			})
			if rec := get(a.h, "/item"); rec.Body.String() != "v1" {
				t.Fatalf("GET after the breaker closed = %q (Cache-Status %q), want v1: the invalidation was lost",
					rec.Body, rec.Header().Get("Cache-Status"))
			}
			if st := a.fs.Stats().Invalidations; st.AppliedLate != 1 || st.Pending != 0 {
				t.Errorf("invalidation stats = %+v, want one applied late", st)
			}
		})
	}
}

// newReplicas builds n replicas over one Redis, each with its own client
// and in-process tier, and waits until each one's broadcast subscription is
// confirmed.
func newReplicas(t *testing.T, n int, addr string, app http.Handler, opts ...failsoft.Option) []replica {
	t.Helper()
	rs := make([]replica, n)
	for i := range rs {
		rs[i] = newReplica(t, addr, app, opts...)
	}
	for i, r := range rs {
		waitFor(t, fmt.Sprintf("replica %d subscribed", i), func() bool { return r.fs.Stats().Invalidations.Subscribed })
	}
	return rs
}

// waitServes waits until r answers GET /item with want.
func waitServes(t *testing.T, r replica, name, want string) {
	t.Helper()
	waitFor(t, name+" serving "+want, func() bool { return get(r.h, "/item").Body.String() == want })
}

// TestPurgeReachesReplicas checks that a purge or an invalidating POST on
// one replica stops every other replica from serving the entry, although
// their in-process tiers may keep copies for their whole ttl while the
// broadcast is healthy (WithBroadcastCoherence(0)): only the broadcast can
// make them drop the copies.
func TestPurgeReachesReplicas(t *testing.T) {
	for _, tc := range []struct {
		name       string
		replicas   int
		invalidate func(t *testing.T, r replica)
	}{
		{"two replicas, Purge", 2, func(t *testing.T, r replica) {
			if err := r.fs.Purge(context.Background(), "http://example.com/item"); err != nil {
				t.Fatal(err)
			}
		}},
		{"three replicas, Purge", 3, func(t *testing.T, r replica) {
			if err := r.fs.Purge(context.Background(), "http://example.com/item"); err != nil {
				t.Fatal(err)
			}
		}},
		{"three replicas, POST", 3, func(t *testing.T, r replica) {
			if rec := post(r.h, "/item"); rec.Code != http.StatusOK {
				t.Fatalf("POST = %d", rec.Code)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t)
			app := &versioned{}
			rs := newReplicas(t, tc.replicas, srv.Addr(), app)
			for i, r := range rs {
				if got := get(r.h, "/item").Body.String(); got != "v0" {
					t.Fatalf("replica %d first GET = %q", i, got)
				}
			}
			// Every replica holds v0 in process, and would for 600 s.
			app.v.Store(1)
			for i, r := range rs {
				if got := get(r.h, "/item").Body.String(); got != "v0" {
					t.Fatalf("replica %d before the purge = %q, want its cached v0", i, got)
				}
			}
			tc.invalidate(t, rs[0])
			want := fmt.Sprintf("v%d", app.v.Load()) // a POST bumped it again
			for i, r := range rs {
				waitServes(t, r, fmt.Sprintf("replica %d", i), want)
			}
			for i, r := range rs[1:] {
				if st := r.fs.Stats().Invalidations; st.Received == 0 {
					t.Errorf("replica %d received no invalidation: %+v", i+1, st)
				}
			}
			if st := rs[0].fs.Stats().Invalidations; st.Published == 0 {
				t.Errorf("replica 0 published nothing: %+v", st)
			}
		})
	}
}

// TestLostInvalidationAcrossReplicas is issue 11's sequence with a second
// replica that holds the entry in process: once the first replica's pending
// invalidation is applied, the second one serves the new answer too.
func TestLostInvalidationAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	app := &versioned{}
	rs := newReplicas(t, 2, srv.Addr(), app, failsoft.WithOpenPeriod(time.Second))
	a, b := rs[0], rs[1]
	for _, r := range rs {
		if got := get(r.h, "/item").Body.String(); got != "v0" {
			t.Fatalf("first GET = %q", got)
		}
	}
	waitFor(t, "the entry stored in Redis", func() bool { return a.fs.Stats().Cache.Stored >= 1 })

	srv.Pause()
	for i := 0; breakerState(a.fs) != store.StateOpen; i++ {
		if i > 1000 {
			t.Fatal("breaker never opened")
		}
		get(a.h, fmt.Sprintf("/trip-%d", i))
	}
	srv.Resume()
	if rec := post(a.h, "/item"); rec.Code != http.StatusOK {
		t.Fatalf("POST = %d", rec.Code)
	}
	if st := a.fs.Stats().Invalidations; st.Pending != 1 {
		t.Fatalf("after the refused invalidation: %+v, want one pending", st)
	}
	waitFor(t, "the pending invalidation applied", func() bool {
		get(a.h, "/probe")
		return breakerState(a.fs) == store.StateClosed && a.fs.Stats().Invalidations.Pending == 0
	})
	if got := get(a.h, "/item").Body.String(); got != "v1" {
		t.Fatalf("replica a after the breaker closed = %q, want v1", got)
	}
	waitServes(t, b, "replica b", "v1")
	if st := a.fs.Stats().Invalidations; st.AppliedLate != 1 || st.Dropped != 0 {
		t.Errorf("invalidation stats = %+v, want one applied late", st)
	}
}

// TestBroadcastSurvivesRestart checks that the subscription comes back
// after Redis restarts, and that purges reach the other replica again.
func TestBroadcastSurvivesRestart(t *testing.T) {
	srv := redistest.Start(t)
	app := &versioned{}
	rs := newReplicas(t, 2, srv.Addr(), app)
	srv.Restart()
	for i, r := range rs {
		waitFor(t, fmt.Sprintf("replica %d subscribed again", i), func() bool {
			st := r.fs.Stats().Invalidations
			return st.Subscribed && st.Reconnects > 0
		})
	}
	waitFor(t, "replica 1 caching again", func() bool {
		return get(rs[1].h, "/item").Body.String() == "v0" && breakerState(rs[1].fs) == store.StateClosed
	})
	app.v.Store(1)
	waitFor(t, "the purge applied", func() bool {
		return rs[0].fs.Purge(context.Background(), "http://example.com/item") == nil
	})
	waitServes(t, rs[1], "replica 1", "v1")
	if code, status := healthStatus(t, rs[1].fs.Healthz()); code != http.StatusOK || status != "pass" {
		t.Errorf("/healthz after the restart = %d %q, want 200 pass", code, status)
	}
}

// invalidationMetrics is countingMetrics that takes the invalidation
// counters too.
type invalidationMetrics struct {
	countingMetrics
	inv func() failsoft.InvalidationStats
}

func (m *invalidationMetrics) WatchInvalidations(stats func() failsoft.InvalidationStats) {
	m.inv = stats
}

// TestInvalidationMetrics checks that New hands the invalidation counters
// to metrics that take them, and that they count a purge.
func TestInvalidationMetrics(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	m := &invalidationMetrics{}
	fs, err := failsoft.New(rdb, failsoft.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if m.inv == nil {
		t.Fatal("WatchInvalidations was not called")
	}
	waitFor(t, "the subscription", func() bool { return m.inv().Subscribed })
	if err := fs.Purge(context.Background(), "http://example.com/x"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the purge published and received", func() bool {
		st := m.inv()
		return st.Published == 1 && st.Received == 1
	})
}
