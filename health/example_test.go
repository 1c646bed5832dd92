package health_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/failsoft/failsoft/health"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

// Example mounts the three endpoints on a ServeMux. The guarded store here is
// in-process so that the example needs no Redis; in a service it is the
// guard over Redis that the cache uses, and a WithPinger check on the same
// guard adds an active PING.
func Example() {
	now := func() time.Time { return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) }
	mem, err := store.NewMemory(64 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer mem.Close()
	guard, err := store.NewGuard(mem, store.WithName("redis"), store.WithClock(now))
	if err != nil {
		log.Fatal(err)
	}
	defer guard.Close()
	cache, err := middleware.New(guard)
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()

	h, err := health.New(
		health.WithBreakerCheck(guard, false), // an open breaker degrades (warn), it does not fail readiness
		health.WithCacheStats("cache", cache.Stats),
		health.WithClock(now),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()

	mux := http.NewServeMux()
	mux.Handle("GET /livez", h.Livez())
	mux.Handle("GET /readyz", h.Readyz())
	mux.Handle("GET /healthz", h.Healthz())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, path := range []string{"/livez", "/readyz?verbose"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("GET %s: %d\n%s\n", path, resp.StatusCode, body)
	}

	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var report health.Report
	if err := json.NewDecoder(resp.Body).Decode(&report); err != nil {
		log.Fatal(err)
	}
	breaker := report.Checks["redis:breaker"][0]
	fmt.Printf("GET /healthz: %d %s\n", resp.StatusCode, resp.Header.Get("Content-Type"))
	fmt.Printf("status %s; breaker %v since %v; cache hits %v\n", report.Status,
		breaker.ObservedValue, report.Checks["redis:lastStateChange"][0].ObservedValue,
		report.Checks["cache:hits"][0].ObservedValue)
	// Output:
	// GET /livez: 200
	// ok
	// GET /readyz?verbose: 200
	// [+]redis ok
	// readyz check passed
	//
	// GET /healthz: 200 application/health+json
	// status pass; breaker closed since 2025-03-01T12:00:00Z; cache hits 0
}
