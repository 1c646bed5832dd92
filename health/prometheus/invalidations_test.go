package prometheus

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/failsoft/failsoft"
)

func TestInvalidationCounters(t *testing.T) {
	names := []string{
		"failsoft_invalidations_published_total", "failsoft_invalidations_received_total",
		"failsoft_invalidations_pending", "failsoft_invalidations_applied_late_total",
		"failsoft_invalidations_dropped_total", "failsoft_broadcast_subscribed",
		"failsoft_broadcast_reconnects_total",
	}
	tests := []struct {
		name  string
		stats *failsoft.InvalidationStats // nil: none watched
		want  string
	}{
		{"none watched", nil, ""},
		{"watched", &failsoft.InvalidationStats{Published: 1, Received: 2, Pending: 3, AppliedLate: 4, Dropped: 5, Subscribed: true, Reconnects: 6}, `
# HELP failsoft_broadcast_reconnects_total Invalidation broadcast subscriptions lost.
# TYPE failsoft_broadcast_reconnects_total counter
failsoft_broadcast_reconnects_total 6
# HELP failsoft_broadcast_subscribed 1 while the invalidation broadcast subscription is confirmed, else 0.
# TYPE failsoft_broadcast_subscribed gauge
failsoft_broadcast_subscribed 1
# HELP failsoft_invalidations_applied_late_total Pending invalidations applied once Redis was back.
# TYPE failsoft_invalidations_applied_late_total counter
failsoft_invalidations_applied_late_total 4
# HELP failsoft_invalidations_dropped_total Invalidations lost because too many were pending.
# TYPE failsoft_invalidations_dropped_total counter
failsoft_invalidations_dropped_total 5
# HELP failsoft_invalidations_pending Invalidations refused by an outage and not yet applied in Redis.
# TYPE failsoft_invalidations_pending gauge
failsoft_invalidations_pending 3
# HELP failsoft_invalidations_published_total Invalidations announced to the other replicas.
# TYPE failsoft_invalidations_published_total counter
failsoft_invalidations_published_total 1
# HELP failsoft_invalidations_received_total Invalidations received from the broadcast, this replica's own included.
# TYPE failsoft_invalidations_received_total counter
failsoft_invalidations_received_total 2
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMetrics(t)
			if tt.stats != nil {
				s := *tt.stats
				m.WatchInvalidations(func() failsoft.InvalidationStats { return s })
			}
			if err := testutil.CollectAndCompare(m, strings.NewReader(tt.want), names...); err != nil {
				t.Error(err)
			}
		})
	}
}
