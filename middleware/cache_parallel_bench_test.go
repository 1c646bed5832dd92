package middleware

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/failsoft/failsoft/store"
)

// The parallel hit benchmarks run the same request from GOMAXPROCS
// goroutines at once: with -cpu 1,2,4,8,16, an ns/op that stops falling
// (or grows) as -cpu grows shows state that every request touches and that
// serializes them (a lock, a contended atomic counter). The serial
// benchmarks cannot show it: they run one request at a time whatever -cpu
// says.

// benchServeParallel serves r through h from every goroutine of
// b.RunParallel, each with its own writer.
func benchServeParallel(b *testing.B, h http.Handler, r *http.Request) {
	b.Helper()
	h.ServeHTTP(&benchWriter{h: make(http.Header, 8)}, r) // warm: fill the cache
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &benchWriter{h: make(http.Header, 8)}
		for pb.Next() {
			w.reset()
			h.ServeHTTP(w, r)
			if w.status != 200 || w.n != len(benchBody) {
				b.Errorf("got %d with %d bytes", w.status, w.n)
				return
			}
		}
	})
}

func BenchmarkHandlerDirectParallel(b *testing.B) {
	benchServeParallel(b, benchHandler, httptest.NewRequest("GET", "http://example.com/api/data/1", nil))
}

// BenchmarkCacheHitLocalParallel is BenchmarkCacheHitLocal from every
// goroutine at once, on the same key.
func BenchmarkCacheHitLocalParallel(b *testing.B) {
	benchLocalHit(b, newTieredMemory(b), cacheOnly, benchServeParallel)
}

// BenchmarkRecoverCacheHitLocalParallel is the hit of Recover, then the
// cache (alice.New(Recover(), c.Handler), without Chain's fast path), from
// every goroutine at once.
func BenchmarkRecoverCacheHitLocalParallel(b *testing.B) {
	benchLocalHit(b, newBenchMemory(b), recoverThenCache, benchServeParallel)
}

// BenchmarkChainHitLocalParallel is the hit of Chain (as failsoft.New
// builds it), which answers a fresh in-process hit before Recover's
// set-up, from every goroutine at once.
func BenchmarkChainHitLocalParallel(b *testing.B) {
	benchLocalHit(b, newBenchMemory(b), chainOf, benchServeParallel)
}

// newBenchMemory returns an in-process store of 64 MiB, closed when b ends.
func newBenchMemory(b *testing.B) *store.Memory {
	b.Helper()
	m, err := store.NewMemory(64 << 20)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}
