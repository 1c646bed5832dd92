// Package prometheus exports failsoft's counters as Prometheus metrics.
//
// It lives in its own module so that the failsoft module does not require
// client_golang. A [Metrics] is a prometheus.Collector: register it, pass its
// [Metrics.Observer] and [Metrics.OnStateChange] to store.NewGuard, and tell
// it which breakers and cache to read:
//
//	m, err := prometheus.New()
//	reg.MustRegister(m)
//	guard, err := store.NewGuard(redisStore,
//		store.WithObserver(m.Observer()), store.WithOnStateChange(m.OnStateChange()))
//	m.WatchBreaker(guard)
//	cache, err := middleware.New(guard)
//	m.WatchCache(cache.Stats)
//
// The metrics:
//
//	failsoft_cache_requests_total{result}              counter: hit, miss, stale, bypass, coalesced, revalidated
//	failsoft_cache_store_errors_total                  counter: store calls of the cache that failed
//	failsoft_cache_stored_total                        counter: entries written
//	failsoft_cache_dropped_writes_total                counter: background writes dropped
//	failsoft_cache_refreshes_total                     counter: background refreshes started
//	failsoft_cache_invalidations_total                 counter: entries purged
//	failsoft_cache_miss_budget_slots                   gauge: the miss budget's size (0: off)
//	failsoft_cache_miss_budget_in_use                  gauge: handler calls for misses running under the budget
//	failsoft_cache_miss_budget_waiting                 gauge: requests queued for a slot
//	failsoft_cache_miss_budget_total{result}           counter: requests the budget held up: waited (then got a slot), shed (503), stale
//	failsoft_store_operation_duration_seconds{store,op} histogram: how long each guarded call made its caller wait
//	failsoft_store_errors_total{store,op,class}         counter: guarded calls that failed, by store.Class
//	failsoft_breaker_state{store}                      gauge: 0 closed, 1 half-open, 2 open
//	failsoft_breaker_transitions_total{store,to}        counter: breaker state changes, by the state entered
//	failsoft_invalidations_published_total             counter: invalidations announced to the other replicas
//	failsoft_invalidations_received_total              counter: invalidations received from the broadcast
//	failsoft_invalidations_pending                     gauge: invalidations refused by an outage, not yet applied
//	failsoft_invalidations_applied_late_total          counter: pending invalidations applied since
//	failsoft_invalidations_dropped_total               counter: invalidations lost, too many pending
//	failsoft_broadcast_subscribed                      gauge: 1 while the broadcast subscription is confirmed
//	failsoft_broadcast_reconnects_total                counter: broadcast subscriptions lost
//
// The cache counters are read from the cache's Stats when Prometheus
// scrapes, so they cost the request path nothing. To export several caches,
// use one Metrics per cache registered through
// prometheus.WrapRegistererWith with a distinguishing label.
package prometheus

import (
	"fmt"
	"sync"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

// DefaultBuckets returns the default upper bounds, in seconds, of the
// operation duration histogram: from half a millisecond (a healthy
// in-region Redis) to one second, with store.DefaultOpTimeout (100 ms) as a
// bound, so that calls cut off by the op timeout fall in their own bucket.
// Each call returns a new slice.
func DefaultBuckets() []float64 {
	return []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}
}

// Breaker is what [Metrics.WatchBreaker] reads. A *store.Guard satisfies it.
// State must be safe for concurrent use and must not block. It is the same
// type as failsoft.Breaker, so that a *Metrics is a failsoft.Metrics.
type Breaker = interface {
	Name() string
	State() store.State
}

// Option configures [New].
type Option func(*config) error

type config struct {
	buckets []float64
}

// WithBuckets sets the upper bounds, in seconds, of the operation duration
// histogram's buckets; they must be sorted in increasing order. Default:
// [DefaultBuckets].
func WithBuckets(bounds ...float64) Option {
	return func(c *config) error {
		if len(bounds) == 0 {
			return fmt.Errorf("WithBuckets: no bucket")
		}
		for i := 1; i < len(bounds); i++ {
			if bounds[i] <= bounds[i-1] {
				return fmt.Errorf("WithBuckets: bounds not in increasing order at %v", bounds[i])
			}
		}
		c.buckets = append([]float64(nil), bounds...)
		return nil
	}
}

// Metrics collects failsoft's metrics. It is safe for concurrent use; build
// it with [New] and register it on a prometheus.Registerer once.
type Metrics struct {
	duration    *prom.HistogramVec
	errors      *prom.CounterVec
	state       *prom.GaugeVec
	transitions *prom.CounterVec

	requestsDesc, storeErrorsDesc, storedDesc, droppedDesc, refreshesDesc, invalidatedDesc *prom.Desc

	budgetSlotsDesc, budgetInUseDesc, budgetWaitingDesc, budgetDesc *prom.Desc

	// WatchInvalidations (invalidations.go)
	inv invalidationDescs

	mu            sync.Mutex
	breakers      []Breaker
	cache         func() middleware.Stats
	invalidations func() store.InvalidationStats
}

var _ prom.Collector = (*Metrics)(nil)

// New returns a Metrics with no breaker or cache watched yet. It returns an
// error for an invalid option.
func New(opts ...Option) (*Metrics, error) {
	c := config{buckets: DefaultBuckets()}
	for _, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("prometheus: New: nil Option")
		}
		if err := opt(&c); err != nil {
			return nil, fmt.Errorf("prometheus: %w", err)
		}
	}
	desc := func(name, help string, labels ...string) *prom.Desc {
		return prom.NewDesc(name, help, labels, nil)
	}
	return &Metrics{
		inv: newInvalidationDescs(),
		duration: prom.NewHistogramVec(prom.HistogramOpts{
			Name:    "failsoft_store_operation_duration_seconds",
			Help:    "How long guarded store operations made their callers wait, in seconds, failures and refusals included.",
			Buckets: c.buckets,
		}, []string{"store", "op"}),
		errors: prom.NewCounterVec(prom.CounterOpts{
			Name: "failsoft_store_errors_total",
			Help: "Guarded store operations that failed, by error class (misses are not errors).",
		}, []string{"store", "op", "class"}),
		state: prom.NewGaugeVec(prom.GaugeOpts{
			Name: "failsoft_breaker_state",
			Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
		}, []string{"store"}),
		transitions: prom.NewCounterVec(prom.CounterOpts{
			Name: "failsoft_breaker_transitions_total",
			Help: "Circuit breaker state changes, by the state entered.",
		}, []string{"store", "to"}),
		requestsDesc:    desc("failsoft_cache_requests_total", "Requests seen by the response cache, by result.", "result"),
		storeErrorsDesc: desc("failsoft_cache_store_errors_total", "Store calls of the response cache that failed."),
		storedDesc:      desc("failsoft_cache_stored_total", "Entries the response cache wrote."),
		droppedDesc:     desc("failsoft_cache_dropped_writes_total", "Background writes the response cache dropped (queue full or store unavailable)."),
		refreshesDesc:   desc("failsoft_cache_refreshes_total", "Background refreshes the response cache started."),
		invalidatedDesc: desc("failsoft_cache_invalidations_total", "Entries the response cache purged."),

		budgetSlotsDesc:   desc("failsoft_cache_miss_budget_slots", "Handler calls for misses the miss budget allows at once (0: off)."),
		budgetInUseDesc:   desc("failsoft_cache_miss_budget_in_use", "Handler calls for misses running under the miss budget."),
		budgetWaitingDesc: desc("failsoft_cache_miss_budget_waiting", "Requests queued for a slot of the miss budget."),
		budgetDesc:        desc("failsoft_cache_miss_budget_total", "Requests the miss budget held up, by result: waited (then got a slot), shed (503), stale.", "result"),
	}, nil
}

// Observer returns the function to pass to store.WithObserver: it records
// each guarded call's duration and, for a failure, its class. Misses
// (store.ClassMiss) and successes are not errors.
func (m *Metrics) Observer() func(name, op string, took time.Duration, class store.Class) {
	return func(name, op string, took time.Duration, class store.Class) {
		m.duration.WithLabelValues(name, op).Observe(took.Seconds())
		if class != store.ClassNone && class != store.ClassMiss {
			m.errors.WithLabelValues(name, op, class.String()).Inc()
		}
	}
}

// OnStateChange returns the function to pass to store.WithOnStateChange: it
// counts each transition and sets the state gauge.
func (m *Metrics) OnStateChange() func(name string, from, to store.State) {
	return func(name string, _, to store.State) {
		m.transitions.WithLabelValues(name, to.String()).Inc()
		m.state.WithLabelValues(name).Set(float64(to))
	}
}

// WatchBreaker makes each scrape read b's state into failsoft_breaker_state,
// so the gauge exists (0, closed) before the first transition and is never
// stale. It may be called before or after registration, once per breaker.
func (m *Metrics) WatchBreaker(b Breaker) {
	if b == nil {
		panic("prometheus: WatchBreaker: nil breaker")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.breakers = append(m.breakers, b)
}

// WatchCache makes each scrape read the response cache's counters from
// stats (typically a middleware.Cache's Stats method), which must be safe
// for concurrent use. A later call replaces an earlier one. Until it is
// called, no cache metric is exported.
func (m *Metrics) WatchCache(stats func() middleware.Stats) {
	if stats == nil {
		panic("prometheus: WatchCache: nil function")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cache = stats
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prom.Desc) {
	m.duration.Describe(ch)
	m.errors.Describe(ch)
	m.state.Describe(ch)
	m.transitions.Describe(ch)
	for _, d := range []*prom.Desc{m.requestsDesc, m.storeErrorsDesc, m.storedDesc, m.droppedDesc, m.refreshesDesc, m.invalidatedDesc,
		m.budgetSlotsDesc, m.budgetInUseDesc, m.budgetWaitingDesc, m.budgetDesc} {
		ch <- d
	}
	m.inv.describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prom.Metric) {
	m.mu.Lock()
	breakers := append([]Breaker(nil), m.breakers...)
	cache := m.cache
	invalidations := m.invalidations
	m.mu.Unlock()
	if invalidations != nil {
		m.inv.collect(ch, invalidations())
	}

	for _, b := range breakers {
		m.state.WithLabelValues(b.Name()).Set(float64(b.State()))
	}
	m.duration.Collect(ch)
	m.errors.Collect(ch)
	m.state.Collect(ch)
	m.transitions.Collect(ch)

	if cache == nil {
		return
	}
	s := cache()
	for _, r := range []struct {
		result string
		v      uint64
	}{
		{"hit", s.Hits},
		{"miss", s.Misses},
		{"stale", s.StaleServed},
		{"bypass", s.Bypasses},
		{"coalesced", s.Coalesced},
		{"revalidated", s.Revalidated},
	} {
		ch <- prom.MustNewConstMetric(m.requestsDesc, prom.CounterValue, float64(r.v), r.result)
	}
	ch <- prom.MustNewConstMetric(m.storeErrorsDesc, prom.CounterValue, float64(s.StoreErrors))
	ch <- prom.MustNewConstMetric(m.storedDesc, prom.CounterValue, float64(s.Stored))
	ch <- prom.MustNewConstMetric(m.droppedDesc, prom.CounterValue, float64(s.Dropped))
	ch <- prom.MustNewConstMetric(m.refreshesDesc, prom.CounterValue, float64(s.Refreshes))
	ch <- prom.MustNewConstMetric(m.invalidatedDesc, prom.CounterValue, float64(s.Invalidated))
	b := s.MissBudget
	ch <- prom.MustNewConstMetric(m.budgetSlotsDesc, prom.GaugeValue, float64(b.Size))
	ch <- prom.MustNewConstMetric(m.budgetInUseDesc, prom.GaugeValue, float64(b.InUse))
	ch <- prom.MustNewConstMetric(m.budgetWaitingDesc, prom.GaugeValue, float64(b.Waiting))
	for _, r := range []struct {
		result string
		v      uint64
	}{{"waited", b.Waited}, {"shed", b.Shed}, {"stale", b.Stale}} {
		ch <- prom.MustNewConstMetric(m.budgetDesc, prom.CounterValue, float64(r.v), r.result)
	}
}
