//go:build !race

package middleware

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/failsoft/failsoft/store"
)

// TestHitAllocations holds the hit path to issue 12's bound: an in-process
// hit, through the cache alone and through the recommended chain (Recover,
// then the cache), allocates at most 2 objects more than the handler
// writing the same bytes directly. (Not under -race, which allocates on its
// own.)
func TestHitAllocations(t *testing.T) {
	newTiered := func(t *testing.T) store.Store {
		local, err := store.NewMemory(64 << 20)
		if err != nil {
			t.Fatal(err)
		}
		remote, err := store.NewMemory(64 << 20)
		if err != nil {
			t.Fatal(err)
		}
		ts, err := store.NewTiered(local, remote)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ts.Close(); local.Close(); remote.Close() })
		return ts
	}
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
		{"cache", func(c *Cache) http.Handler { return c.Handler(benchHandler) }},
		{"recover and cache", func(c *Cache) http.Handler { return Recover()(c.Handler(benchHandler)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCache(t, newTiered(t))
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
