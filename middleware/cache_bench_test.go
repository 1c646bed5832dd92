package middleware

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/failsoft/failsoft/store"
)

// benchBody is a 1 KiB JSON body, as the goals name.
var benchBody = []byte(`{"source":"primary","data":"` + strings.Repeat("x", 1024-30) + `"}`)

// benchHandler writes the handler's bytes: the baseline of every benchmark.
var benchHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "max-age=3600")
	w.WriteHeader(http.StatusOK)
	w.Write(benchBody)
})

// benchWriter is a ResponseWriter that a benchmark reuses, so that the
// writer's own costs stay out of the figures.
type benchWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(code int)        { w.status = code }
func (w *benchWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *benchWriter) reset()                      { clear(w.h); w.status, w.n = 0, 0 }

func benchServe(b *testing.B, h http.Handler, r *http.Request) {
	b.Helper()
	w := &benchWriter{h: make(http.Header, 8)}
	h.ServeHTTP(w, r) // warm: fill the cache
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w.reset()
		h.ServeHTTP(w, r)
	}
	b.StopTimer()
	if w.status != 200 || w.n != len(benchBody) {
		b.Fatalf("got %d with %d bytes", w.status, w.n)
	}
}

func benchCache(b *testing.B, s store.Store) *Cache {
	b.Helper()
	return newTestCache(b, s, WithLogger(slog.New(slog.DiscardHandler)))
}

// newTieredMemory returns a Tiered over two in-process stores of 64 MiB,
// closed when tb's test ends.
func newTieredMemory(tb testing.TB) *store.Tiered {
	tb.Helper()
	local, err := store.NewMemory(64 << 20)
	if err != nil {
		tb.Fatal(err)
	}
	remote, err := store.NewMemory(64 << 20)
	if err != nil {
		tb.Fatal(err)
	}
	t, err := store.NewTiered(local, remote)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { t.Close(); local.Close(); remote.Close() })
	return t
}

// The chains the in-process hit is measured through.
func cacheOnly(c *Cache) http.Handler        { return c.Handler(benchHandler) }
func recoverThenCache(c *Cache) http.Handler { return Recover()(c.Handler(benchHandler)) }
func chainOf(c *Cache) http.Handler          { return Chain(c).Then(benchHandler) }

// benchLocalHit measures the in-process hit of one warm key through
// chain(c), c a cache over s, with serve (benchServe or
// benchServeParallel), and checks that every request after the first was
// a hit.
func benchLocalHit(b *testing.B, s store.Store, chain func(*Cache) http.Handler, serve func(*testing.B, http.Handler, *http.Request)) {
	b.Helper()
	c := benchCache(b, s)
	h := chain(c)
	r := httptest.NewRequest("GET", "http://example.com/api/data/1", nil)
	h.ServeHTTP(httptest.NewRecorder(), r)
	c.bg.wait()
	serve(b, h, r)
	if st := c.Stats(); st.Misses != 1 {
		b.Fatalf("stats %+v, want hits only", st)
	}
}

func BenchmarkHandlerDirect(b *testing.B) {
	benchServe(b, benchHandler, httptest.NewRequest("GET", "http://example.com/api/data/1", nil))
}

func BenchmarkCacheHitLocal(b *testing.B) {
	benchLocalHit(b, newTieredMemory(b), cacheOnly, benchServe)
}

// BenchmarkCacheHitLocalRecover is BenchmarkCacheHitLocal through the
// recommended chain, Recover then the cache: the in-process hit whose
// allocations the goal bounds (at most 2 above BenchmarkHandlerDirect).
func BenchmarkCacheHitLocalRecover(b *testing.B) {
	benchLocalHit(b, newTieredMemory(b), recoverThenCache, benchServe)
}

// benchRedisOptions are the client options of the Redis benchmarks: those
// failsoft.New gives the cache's own client (ContextTimeoutEnabled and no
// maintenance notifications, so that the guard runs calls on the caller's
// goroutine).
func benchRedisOptions(addr string) *redis.Options {
	return &redis.Options{
		Addr: addr, DisableIdentity: true, ContextTimeoutEnabled: true, DialerRetries: 1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
}

func BenchmarkCacheHitRedis(b *testing.B) {
	srv := redistest.Start(b)
	rdb := redis.NewClient(benchRedisOptions(srv.Addr()))
	rs, err := store.NewRedis(rdb, store.WithBatchedGets(2)) // as failsoft.New builds it; one caller sends lone GETs
	if err != nil {
		b.Fatal(err)
	}
	g, err := store.NewGuard(rs)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rdb.Close(); g.Close() })
	c := benchCache(b, g)
	h := c.Handler(benchHandler)
	r := httptest.NewRequest("GET", "http://example.com/api/data/1", nil)
	h.ServeHTTP(httptest.NewRecorder(), r)
	c.bg.wait()
	benchServe(b, h, r)
	st := c.Stats()
	if st.Hits == 0 {
		b.Fatalf("stats %+v, want hits", st)
	}
	// An op that outlived the guard's 100 ms timeout on a loaded machine is
	// a miss: report how many there were rather than fail.
	b.ReportMetric(float64(st.Misses-1), "misses")
}

// BenchmarkRawRedisGet is one GET of a cache entry's size through the
// same client: the round trip a Redis hit may cost over a local one, and
// the baseline of BenchmarkCacheHitRedis (goal: one round trip and at most
// 8 allocations above it).
func BenchmarkRawRedisGet(b *testing.B) {
	srv := redistest.Start(b)
	rdb := redis.NewClient(benchRedisOptions(srv.Addr()))
	b.Cleanup(func() { rdb.Close() })
	key := rawKey()
	ctx := context.Background()
	if err := rdb.Set(ctx, key, benchBody, 0).Err(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := rdb.Get(ctx, key).Bytes(); err != nil {
			b.Fatal(err)
		}
	}
}

// rawKey returns the raw GET's key as a handler would have it: a string
// made at run time. (go-redis boxes its key in an interface; a constant
// string would be boxed for free, and the baseline would be one allocation
// short of any real handler's.)
func rawKey() string { return strings.Repeat("k", 1) }

func BenchmarkCacheMiss(b *testing.B) {
	mem, err := store.NewMemory(64 << 20)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { mem.Close() })
	c := benchCache(b, mem)
	h := c.Handler(benchHandler)
	reqs := make([]*http.Request, 1024)
	for i := range reqs {
		reqs[i] = httptest.NewRequest("GET", "http://example.com/api/data/"+strconv.Itoa(i), nil)
	}
	w := &benchWriter{h: make(http.Header, 8)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		w.reset()
		r := reqs[i%len(reqs)]
		if i%len(reqs) == 0 {
			b.StopTimer()
			c.bg.wait()
			for _, r := range reqs {
				c.Purge(context.Background(), "http://example.com"+r.URL.Path)
			}
			b.StartTimer()
		}
		h.ServeHTTP(w, r)
	}
	b.StopTimer()
	c.bg.wait()
}

// BenchmarkCacheHitLocalChain is BenchmarkCacheHitLocalRecover through
// Chain, which answers a fresh in-process hit before Recover's set-up.
func BenchmarkCacheHitLocalChain(b *testing.B) {
	benchLocalHit(b, newTieredMemory(b), chainOf, benchServe)
}
