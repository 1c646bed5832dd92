//go:build !race

package middleware

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/failsoft/failsoft/store"
	"github.com/redis/go-redis/v9"
)

// TestHitAllocations holds the hit path to issue 12's bound: an in-process
// hit, through the cache alone and through the recommended chain (Recover,
// then the cache), allocates at most 2 objects more than the handler
// writing the same bytes directly. (Not under -race, which allocates on its
// own.)
func TestHitAllocations(t *testing.T) {
	allocs := func(t *testing.T, h http.Handler) float64 {
		r := httptest.NewRequest("GET", "http://example.com/api/data/1", nil)
		w := &benchWriter{h: make(http.Header, 8)}
		h.ServeHTTP(w, r)
		n := testing.AllocsPerRun(200, func() {
			w.reset()
			h.ServeHTTP(w, r)
		})
		if w.status != 200 || w.n != len(benchBody) {
			t.Fatalf("got %d with %d bytes", w.status, w.n)
		}
		return n
	}
	direct := allocs(t, benchHandler)
	tests := []struct {
		name  string
		chain func(c *Cache) http.Handler
	}{
		{"cache", cacheOnly},
		{"recover and cache", recoverThenCache},
		{"Chain", chainOf},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCache(t, newTieredMemory(t))
			h := tt.chain(c)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "http://example.com/api/data/1", nil))
			c.bg.wait()
			got := allocs(t, h)
			if st := c.Stats(); st.Misses != 1 {
				t.Fatalf("stats %+v, want hits only", st)
			}
			if got > direct+2 {
				t.Errorf("a hit allocates %v objects, the handler directly %v: more than 2 above", got, direct)
			}
		})
	}
}

// TestRedisHitAllocations holds a hit served from Redis (no in-process
// tier; the guard over a client with ContextTimeoutEnabled, as failsoft.New
// builds it) to issue 12's bound: at most 8 allocations more than a raw
// go-redis GET of the same bytes with a key made at run time. (The op
// timeout is long so that the guard's shared deadline windows, one per
// 1/32 of it, cannot add to the count however slow the machine.)
func TestRedisHitAllocations(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(benchRedisOptions(srv.Addr()))
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	key := rawKey()
	if err := rdb.Set(ctx, key, benchBody, 0).Err(); err != nil {
		t.Fatal(err)
	}
	raw := testing.AllocsPerRun(200, func() {
		if _, err := rdb.Get(ctx, key).Bytes(); err != nil {
			t.Fatal(err)
		}
	})

	rs, err := store.NewRedis(rdb, store.WithBatchedGets(2)) // as failsoft.New builds it; one caller sends lone GETs
	if err != nil {
		t.Fatal(err)
	}
	g, err := store.NewGuard(rs, store.WithOpTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	c := newTestCache(t, g)
	h := c.Handler(benchHandler)
	r := httptest.NewRequest("GET", "http://example.com/api/data/1", nil)
	h.ServeHTTP(httptest.NewRecorder(), r)
	c.bg.wait()
	w := &benchWriter{h: make(http.Header, 8)}
	hit := testing.AllocsPerRun(200, func() {
		w.reset()
		h.ServeHTTP(w, r)
	})
	if w.status != 200 || w.n != len(benchBody) {
		t.Fatalf("got %d with %d bytes", w.status, w.n)
	}
	if st := c.Stats(); st.Misses != 1 || st.Hits < 200 {
		t.Fatalf("stats %+v, want hits only", st)
	}
	t.Logf("raw GET %v allocations, Redis hit %v", raw, hit)
	if hit > raw+8 {
		t.Errorf("a Redis hit allocates %v objects, a raw GET %v: more than 8 above", hit, raw)
	}
}

// TestDecodeOwnedAllocations: an entry decoded for one request alone, with
// up to inlineValues header values, costs two allocations (the entry with
// room for its values, runs and the hit's two fields; one string for the
// header section) and builds no map until a path asks for its Header; one
// with more values takes one slice more for them, one with more fields one
// more for its runs.
func TestDecodeOwnedAllocations(t *testing.T) {
	many := http.Header{}
	for i := range inlineValues + 1 {
		many["X-F"+strconv.Itoa(i)] = []string{"v"}
	}
	for _, tt := range []struct {
		name   string
		header http.Header
		want   float64
	}{
		{"none", http.Header{}, 1},
		{"sample", sampleEntry().Header, 2},
		{"over inline", many, 4},
	} {
		e := sampleEntry()
		e.Header = tt.header
		b := encodeEntry(nil, e)
		got := testing.AllocsPerRun(100, func() {
			if _, err := decodeOwned(b, -1); err != nil {
				t.Fatal(err)
			}
		})
		if got != tt.want {
			t.Errorf("%s: decodeOwned allocates %v times, want %v", tt.name, got, tt.want)
		}
	}
}
