package prometheus_test

import (
	"fmt"
	"log"
	"strings"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/failsoft/failsoft/health/prometheus"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

// Example wires the metrics into a guard and a cache. The guarded store is
// in-process so that the example needs no Redis.
func Example() {
	m, err := prometheus.New()
	if err != nil {
		log.Fatal(err)
	}
	reg := prom.NewRegistry()
	reg.MustRegister(m)

	mem, err := store.NewMemory(64 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer mem.Close()
	guard, err := store.NewGuard(mem, store.WithName("redis"),
		store.WithObserver(m.Observer()), store.WithOnStateChange(m.OnStateChange()))
	if err != nil {
		log.Fatal(err)
	}
	defer guard.Close()
	m.WatchBreaker(guard)
	cache, err := middleware.New(guard)
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
	m.WatchCache(cache.Stats)

	err = testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP failsoft_breaker_state Circuit breaker state: 0 closed, 1 half-open, 2 open.
# TYPE failsoft_breaker_state gauge
failsoft_breaker_state{store="redis"} 0
`), "failsoft_breaker_state")
	fmt.Println("breaker state exported:", err == nil)
	// Output: breaker state exported: true
}
