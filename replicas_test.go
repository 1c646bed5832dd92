package failsoft_test

import (
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t)
			app := &versioned{}
			a := newReplica(t, srv.Addr(), app, tc.opts...)

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
		})
	}
}
