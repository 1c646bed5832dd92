package middleware

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsoft/failsoft/store"
)

func newChainCache(t *testing.T) *Cache {
	t.Helper()
	mem, err := store.NewMemory(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	c, err := New(mem)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestChain(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		check   func(t *testing.T, first, second *httptest.ResponseRecorder, calls int64)
	}{
		{
			name: "cacheable GET answered once by the handler",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60")
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"source":"primary","data":"v"}`)
			},
			check: func(t *testing.T, first, second *httptest.ResponseRecorder, calls int64) {
				if calls != 1 {
					t.Errorf("handler called %d times, want 1 (the second GET from the cache)", calls)
				}
				if first.Code != http.StatusOK || second.Code != http.StatusOK {
					t.Errorf("statuses %d, %d, want 200, 200", first.Code, second.Code)
				}
				if second.Body.String() != first.Body.String() {
					t.Errorf("cached body %q differs from %q", second.Body, first.Body)
				}
			},
		},
		{
			name: "panic below the cache becomes 503 JSON",
			handler: func(w http.ResponseWriter, r *http.Request) {
				panic("boom")
			},
			check: func(t *testing.T, first, second *httptest.ResponseRecorder, calls int64) {
				for _, rec := range []*httptest.ResponseRecorder{first, second} {
					if rec.Code != http.StatusServiceUnavailable {
						t.Errorf("status = %d, want 503", rec.Code)
					}
					if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
						t.Errorf("Content-Type = %q, want application/json", ct)
					}
					if rec.Header().Get("Retry-After") == "" {
						t.Error("no Retry-After")
					}
					var body errorBody
					if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error != "Service unavailable" {
						t.Errorf("body %q: %v", rec.Body, err)
					}
				}
			},
		},
		{
			name: "Redis failure recorded below the cache turns a 500 into 503",
			handler: func(w http.ResponseWriter, r *http.Request) {
				recordOutage(r)
				http.Error(w, "redis down", http.StatusInternalServerError)
			},
			check: func(t *testing.T, first, second *httptest.ResponseRecorder, calls int64) {
				for _, rec := range []*httptest.ResponseRecorder{first, second} {
					if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "5" {
						t.Errorf("got %d Retry-After %q, want 503 and 5", rec.Code, rec.Header().Get("Retry-After"))
					}
					if !strings.Contains(rec.Body.String(), "redis down") {
						t.Errorf("body %q is not the handler's", rec.Body)
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, _ := testLogger()
			var calls atomic.Int64
			h := Chain(newChainCache(t), WithLogger(logger)).ThenFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				tt.handler(w, r)
			})
			do := func() *httptest.ResponseRecorder {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://api.example/api/data/k", nil))
				return rec
			}
			first := do()
			second := do()
			tt.check(t, first, second, calls.Load())
		})
	}
}

func TestChainNilCachePanics(t *testing.T) {
	defer func() {
		if p := recover(); p == nil || !strings.HasPrefix(p.(string), "middleware: ") {
			t.Errorf("recovered %v, want a middleware: panic", p)
		}
	}()
	Chain(nil)
}

func TestChainNilOptionPanics(t *testing.T) {
	c := newChainCache(t)
	defer func() {
		if p, _ := recover().(string); !strings.HasPrefix(p, "middleware: ") {
			t.Errorf("recovered %q, want a middleware: panic", p)
		}
	}()
	Chain(c, nil)
}

// TestWithLoggerServesBoth: one WithLogger value configures the cache (an
// Option) and the recovery middleware (a RecoverOption).
func TestWithLoggerServesBoth(t *testing.T) {
	logger, buf := testLogger()
	opt := WithLogger(logger)
	mem, err := store.NewMemory(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	c, err := New(mem, opt, WithClock(func() time.Time { return time.Unix(0, 0) }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.log.Logger != logger {
		t.Error("New did not take the logger")
	}
	h := Chain(c, opt).ThenFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "http://api.example/p", nil))
	if !strings.Contains(buf.String(), "panic serving request") {
		t.Errorf("Recover did not log to the logger: %q", buf.String())
	}
}

// ExampleChain wraps a mux with recovery and the cache in one line. The store
// here is in-process so that the example needs no Redis; in a service it is
// a store.Tiered over a store.Guard over Redis, and the guard is also passed
// to WithBreakers.
func ExampleChain() {
	mem, err := store.NewMemory(64 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer mem.Close()
	cache, err := New(mem)
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()

	calls := 0
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/data/{key}", func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprintf(w, `{"source":"primary","data":%q}`, r.PathValue("key"))
	})
	h := Chain(cache).Then(mux)

	for range 2 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://api.example/api/data/k1", nil))
		fmt.Println(rec.Code, rec.Body)
	}
	fmt.Println("handler calls:", calls)
	// Output:
	// 200 {"source":"primary","data":"k1"}
	// 200 {"source":"primary","data":"k1"}
	// handler calls: 1
}
