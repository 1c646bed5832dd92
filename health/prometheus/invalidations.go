package prometheus

import (
	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/failsoft/failsoft/store"
)

// invalidationDescs describe the invalidation metrics.
type invalidationDescs struct {
	published, received, pending, late, dropped, subscribed, reconnects *prom.Desc
}

func newInvalidationDescs() invalidationDescs {
	d := func(name, help string) *prom.Desc { return prom.NewDesc(name, help, nil, nil) }
	return invalidationDescs{
		published:  d("failsoft_invalidations_published_total", "Invalidations announced to the other replicas."),
		received:   d("failsoft_invalidations_received_total", "Invalidations received from the broadcast, this replica's own included."),
		pending:    d("failsoft_invalidations_pending", "Invalidations refused by an outage and not yet applied in Redis."),
		late:       d("failsoft_invalidations_applied_late_total", "Pending invalidations applied once Redis was back."),
		dropped:    d("failsoft_invalidations_dropped_total", "Invalidations lost because too many were pending."),
		subscribed: d("failsoft_broadcast_subscribed", "1 while the invalidation broadcast subscription is confirmed, else 0."),
		reconnects: d("failsoft_broadcast_reconnects_total", "Invalidation broadcast subscriptions lost."),
	}
}

func (d invalidationDescs) describe(ch chan<- *prom.Desc) {
	for _, x := range []*prom.Desc{d.published, d.received, d.pending, d.late, d.dropped, d.subscribed, d.reconnects} {
		ch <- x
	}
}

func (d invalidationDescs) collect(ch chan<- prom.Metric, s store.InvalidationStats) {
	sub := 0.0
	if s.Subscribed {
		sub = 1
	}
	ch <- prom.MustNewConstMetric(d.published, prom.CounterValue, float64(s.Published))
	ch <- prom.MustNewConstMetric(d.received, prom.CounterValue, float64(s.Received))
	ch <- prom.MustNewConstMetric(d.pending, prom.GaugeValue, float64(s.Pending))
	ch <- prom.MustNewConstMetric(d.late, prom.CounterValue, float64(s.AppliedLate))
	ch <- prom.MustNewConstMetric(d.dropped, prom.CounterValue, float64(s.Dropped))
	ch <- prom.MustNewConstMetric(d.subscribed, prom.GaugeValue, sub)
	ch <- prom.MustNewConstMetric(d.reconnects, prom.CounterValue, float64(s.Reconnects))
}

// WatchInvalidations makes each scrape read the invalidation counters from
// stats (typically what failsoft.New hands over: it calls this method when
// given the Metrics with failsoft.WithMetrics), which must be safe for
// concurrent use. A later call replaces an earlier one. Until it is called,
// no invalidation metric is exported.
func (m *Metrics) WatchInvalidations(stats func() store.InvalidationStats) {
	if stats == nil {
		panic("prometheus: WatchInvalidations: nil function")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.invalidations = stats
}
