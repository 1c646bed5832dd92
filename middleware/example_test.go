package middleware_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/justinas/alice"

	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

// A handler that says how long its answer stays fresh is called once; the
// second request is answered from the store. In production the store is a
// store.Tiered over a store.Guard over Redis.
func ExampleCache() {
	mem, err := store.NewMemory(64 << 20)
	if err != nil {
		panic(err)
	}
	defer mem.Close()
	// A fixed clock keeps the printed ttl stable; leave it out in real use.
	now := func() time.Time { return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC) }
	cache, err := middleware.New(mem, middleware.WithClock(now))
	if err != nil {
		panic(err)
	}
	defer cache.Close()

	calls := 0
	data := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"source":"primary","data":"v"}`)
	})
	h := alice.New(cache.Handler).Then(data)

	for range 2 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "http://example.com/api/data/1", nil))
		fmt.Println(w.Code, w.Body.String())
		fmt.Println("Cache-Status:", w.Header().Get("Cache-Status"))
	}
	fmt.Println("handler calls:", calls)
	// Output:
	// 200 {"source":"primary","data":"v"}
	// Cache-Status: failsoft; fwd=uri-miss; fwd-status=200; stored
	// 200 {"source":"primary","data":"v"}
	// Cache-Status: failsoft; hit; ttl=60
	// handler calls: 1
}
