package prometheus

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/failsoft/failsoft"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

type fakeBreaker struct {
	name string
	mu   sync.Mutex
	s    store.State
}

func (b *fakeBreaker) Name() string { return b.name }

func (b *fakeBreaker) State() store.State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.s
}

func newMetrics(t *testing.T, opts ...Option) *Metrics {
	t.Helper()
	m, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	tests := []struct {
		name string
		opt  Option
	}{
		{"nil option", nil},
		{"no buckets", WithBuckets()},
		{"unsorted buckets", WithBuckets(0.1, 0.01)},
		{"repeated bucket", WithBuckets(0.1, 0.1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opt); err == nil || !strings.HasPrefix(err.Error(), "prometheus: ") {
				t.Errorf("New: %v, want a prometheus: error", err)
			}
		})
	}
}

func TestLintAndPedanticRegistry(t *testing.T) {
	m := newMetrics(t)
	m.WatchCache(func() middleware.Stats { return middleware.Stats{Hits: 1} })
	m.WatchInvalidations(func() failsoft.InvalidationStats { return failsoft.InvalidationStats{Pending: 1} })
	m.WatchBreaker(&fakeBreaker{name: "redis"})
	m.Observer()("redis", "get", time.Millisecond, store.ClassTimeout)
	m.OnStateChange()("redis", store.StateClosed, store.StateOpen)
	problems, err := testutil.CollectAndLint(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	reg := prom.NewPedanticRegistry()
	if err := reg.Register(m); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Errorf("pedantic gather: %v", err)
	}
}

func TestCacheCounters(t *testing.T) {
	tests := []struct {
		name  string
		stats *middleware.Stats // nil: no cache watched
		want  string
	}{
		{
			name: "no cache watched",
			want: "",
		},
		{
			name: "counters by result",
			stats: &middleware.Stats{Hits: 10, Misses: 2, StaleServed: 3, Bypasses: 4, Coalesced: 5, Revalidated: 6,
				StoreErrors: 7, Stored: 8, Dropped: 9, Refreshes: 11, Invalidated: 12},
			want: `
# HELP failsoft_cache_requests_total Requests seen by the response cache, by result.
# TYPE failsoft_cache_requests_total counter
failsoft_cache_requests_total{result="bypass"} 4
failsoft_cache_requests_total{result="coalesced"} 5
failsoft_cache_requests_total{result="hit"} 10
failsoft_cache_requests_total{result="miss"} 2
failsoft_cache_requests_total{result="revalidated"} 6
failsoft_cache_requests_total{result="stale"} 3
# HELP failsoft_cache_store_errors_total Store calls of the response cache that failed.
# TYPE failsoft_cache_store_errors_total counter
failsoft_cache_store_errors_total 7
# HELP failsoft_cache_stored_total Entries the response cache wrote.
# TYPE failsoft_cache_stored_total counter
failsoft_cache_stored_total 8
# HELP failsoft_cache_dropped_writes_total Background writes the response cache dropped (queue full or store unavailable).
# TYPE failsoft_cache_dropped_writes_total counter
failsoft_cache_dropped_writes_total 9
# HELP failsoft_cache_refreshes_total Background refreshes the response cache started.
# TYPE failsoft_cache_refreshes_total counter
failsoft_cache_refreshes_total 11
# HELP failsoft_cache_invalidations_total Entries the response cache purged.
# TYPE failsoft_cache_invalidations_total counter
failsoft_cache_invalidations_total 12
# HELP failsoft_cache_miss_budget_slots Handler calls for misses the miss budget allows at once (0: off).
# TYPE failsoft_cache_miss_budget_slots gauge
failsoft_cache_miss_budget_slots 0
# HELP failsoft_cache_miss_budget_in_use Handler calls for misses running under the miss budget.
# TYPE failsoft_cache_miss_budget_in_use gauge
failsoft_cache_miss_budget_in_use 0
# HELP failsoft_cache_miss_budget_waiting Requests queued for a slot of the miss budget.
# TYPE failsoft_cache_miss_budget_waiting gauge
failsoft_cache_miss_budget_waiting 0
# HELP failsoft_cache_miss_budget_total Requests the miss budget held up, by result: waited (then got a slot), shed (503), stale.
# TYPE failsoft_cache_miss_budget_total counter
failsoft_cache_miss_budget_total{result="shed"} 0
failsoft_cache_miss_budget_total{result="stale"} 0
failsoft_cache_miss_budget_total{result="waited"} 0
`,
		},
		{
			name: "miss budget",
			stats: &middleware.Stats{MissBudget: middleware.MissBudgetStats{Size: 64, InUse: 64, Waiting: 7,
				Waited: 13, Shed: 21, Stale: 34}},
			want: `
# HELP failsoft_cache_miss_budget_slots Handler calls for misses the miss budget allows at once (0: off).
# TYPE failsoft_cache_miss_budget_slots gauge
failsoft_cache_miss_budget_slots 64
# HELP failsoft_cache_miss_budget_in_use Handler calls for misses running under the miss budget.
# TYPE failsoft_cache_miss_budget_in_use gauge
failsoft_cache_miss_budget_in_use 64
# HELP failsoft_cache_miss_budget_waiting Requests queued for a slot of the miss budget.
# TYPE failsoft_cache_miss_budget_waiting gauge
failsoft_cache_miss_budget_waiting 7
# HELP failsoft_cache_miss_budget_total Requests the miss budget held up, by result: waited (then got a slot), shed (503), stale.
# TYPE failsoft_cache_miss_budget_total counter
failsoft_cache_miss_budget_total{result="shed"} 21
failsoft_cache_miss_budget_total{result="stale"} 34
failsoft_cache_miss_budget_total{result="waited"} 13
`,
		},
	}
	names := []string{"failsoft_cache_requests_total", "failsoft_cache_store_errors_total", "failsoft_cache_stored_total",
		"failsoft_cache_dropped_writes_total", "failsoft_cache_refreshes_total", "failsoft_cache_invalidations_total"}
	budgetNames := []string{"failsoft_cache_miss_budget_slots", "failsoft_cache_miss_budget_in_use",
		"failsoft_cache_miss_budget_waiting", "failsoft_cache_miss_budget_total"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMetrics(t)
			if tt.stats != nil {
				s := *tt.stats
				m.WatchCache(func() middleware.Stats { return s })
			}
			names := names
			if tt.name == "miss budget" {
				names = budgetNames
			} else if tt.stats != nil {
				names = append(names, budgetNames...)
			}
			if err := testutil.CollectAndCompare(m, strings.NewReader(tt.want), names...); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestObserver(t *testing.T) {
	m := newMetrics(t, WithBuckets(0.01, 0.1))
	obs := m.Observer()
	// Durations that are exact in binary, so that the sums compare exactly.
	obs("redis", "get", 3906250*time.Nanosecond, store.ClassNone)
	obs("redis", "get", 3906250*time.Nanosecond, store.ClassMiss)
	obs("redis", "get", 62500*time.Microsecond, store.ClassTimeout)
	obs("redis", "set", 62500*time.Microsecond, store.ClassConnection)
	obs("redis", "set", 0, store.ClassOpen)
	want := `
# HELP failsoft_store_errors_total Guarded store operations that failed, by error class (misses are not errors).
# TYPE failsoft_store_errors_total counter
failsoft_store_errors_total{class="connection",op="set",store="redis"} 1
failsoft_store_errors_total{class="open",op="set",store="redis"} 1
failsoft_store_errors_total{class="timeout",op="get",store="redis"} 1
# HELP failsoft_store_operation_duration_seconds How long guarded store operations made their callers wait, in seconds, failures and refusals included.
# TYPE failsoft_store_operation_duration_seconds histogram
failsoft_store_operation_duration_seconds_bucket{op="get",store="redis",le="0.01"} 2
failsoft_store_operation_duration_seconds_bucket{op="get",store="redis",le="0.1"} 3
failsoft_store_operation_duration_seconds_bucket{op="get",store="redis",le="+Inf"} 3
failsoft_store_operation_duration_seconds_sum{op="get",store="redis"} 0.0703125
failsoft_store_operation_duration_seconds_count{op="get",store="redis"} 3
failsoft_store_operation_duration_seconds_bucket{op="set",store="redis",le="0.01"} 1
failsoft_store_operation_duration_seconds_bucket{op="set",store="redis",le="0.1"} 2
failsoft_store_operation_duration_seconds_bucket{op="set",store="redis",le="+Inf"} 2
failsoft_store_operation_duration_seconds_sum{op="set",store="redis"} 0.0625
failsoft_store_operation_duration_seconds_count{op="set",store="redis"} 2
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want),
		"failsoft_store_errors_total", "failsoft_store_operation_duration_seconds"); err != nil {
		t.Error(err)
	}
}

func TestBreakerStateAndTransitions(t *testing.T) {
	m := newMetrics(t)
	watched := &fakeBreaker{name: "redis"}
	m.WatchBreaker(watched)
	change := m.OnStateChange()

	if got := testutil.ToFloat64(m.state.WithLabelValues("redis")); got != 0 {
		t.Errorf("state before any change = %v, want 0", got)
	}
	tests := []struct {
		name  string
		state store.State
		want  float64
	}{
		{"open", store.StateOpen, 2},
		{"half-open", store.StateHalfOpen, 1},
		{"closed", store.StateClosed, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			watched.mu.Lock()
			from := watched.s
			watched.s = tt.state
			watched.mu.Unlock()
			change("redis", from, tt.state)
			change("sessions", from, tt.state) // not watched: fed by the callback alone
			want := strings.NewReader(`
# HELP failsoft_breaker_state Circuit breaker state: 0 closed, 1 half-open, 2 open.
# TYPE failsoft_breaker_state gauge
failsoft_breaker_state{store="redis"} ` + ftoa(tt.want) + `
failsoft_breaker_state{store="sessions"} ` + ftoa(tt.want) + `
`)
			if err := testutil.CollectAndCompare(m, want, "failsoft_breaker_state"); err != nil {
				t.Error(err)
			}
			if got := testutil.ToFloat64(m.transitions.WithLabelValues("redis", tt.state.String())); got != 1 {
				t.Errorf("transitions to %v = %v, want 1", tt.state, got)
			}
		})
	}
}

func ftoa(f float64) string {
	return map[float64]string{0: "0", 1: "1", 2: "2"}[f]
}

// failingStore is a Store whose every call fails like a dead server.
type failingStore struct{}

var errRefused = errors.New("dial tcp 127.0.0.1:1: connect: connection refused")

func (failingStore) Get(context.Context, string) ([]byte, error)              { return nil, errRefused }
func (failingStore) Set(context.Context, string, []byte, time.Duration) error { return errRefused }
func (failingStore) Delete(context.Context, string) error                     { return errRefused }

// TestWithGuard wires the metrics into a real store.Guard: failures trip the
// breaker, and the metrics see the calls, the errors by class and the
// transition.
func TestWithGuard(t *testing.T) {
	m := newMetrics(t)
	g, err := store.NewGuard(failingStore{},
		store.WithName("redis"),
		store.WithFailureThreshold(3), store.WithOpenPeriod(time.Hour),
		store.WithLogger(slog.New(slog.DiscardHandler)),
		store.WithObserver(m.Observer()),
		store.WithOnStateChange(m.OnStateChange()))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	m.WatchBreaker(g)
	for range 5 {
		g.Get(context.Background(), "k")
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues("redis", "get", "connection")); got != 3 {
		t.Errorf("connection errors = %v, want 3 (then the breaker opened)", got)
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues("redis", "get", "open")); got != 2 {
		t.Errorf("refused calls = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.transitions.WithLabelValues("redis", "open")); got != 1 {
		t.Errorf("transitions to open = %v, want 1", got)
	}
	want := `
# HELP failsoft_breaker_state Circuit breaker state: 0 closed, 1 half-open, 2 open.
# TYPE failsoft_breaker_state gauge
failsoft_breaker_state{store="redis"} 2
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "failsoft_breaker_state"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m, "failsoft_store_operation_duration_seconds"); n != 1 {
		t.Errorf("%d duration series, want 1 (redis, get)", n)
	}
}
