package main

import (
	"github.com/prometheus/client_golang/prometheus"

	fsprom "github.com/failsoft/failsoft/health/prometheus"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

// metrics connects failsoft's Prometheus collector to the guard and cache.
type metrics struct{ m *fsprom.Metrics }

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m, err := fsprom.New()
	if err != nil {
		return nil, err
	}
	if err := reg.Register(m); err != nil {
		return nil, err
	}
	return &metrics{m: m}, nil
}

// storeOptions feed store latency, errors and breaker transitions.
func (m *metrics) storeOptions() []store.GuardOption {
	return []store.GuardOption{store.WithObserver(m.m.Observer()), store.WithOnStateChange(m.m.OnStateChange())}
}

// watch exposes the breaker's state and the cache's counters.
func (m *metrics) watch(g *store.Guard, c *middleware.Cache) {
	m.m.WatchBreaker(g)
	m.m.WatchCache(c.Stats)
}
