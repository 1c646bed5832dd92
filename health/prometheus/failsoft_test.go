package prometheus_test

import (
	"github.com/failsoft/failsoft"
	"github.com/failsoft/failsoft/health/prometheus"
)

// A *Metrics is what failsoft.WithMetrics takes.
var _ failsoft.Metrics = (*prometheus.Metrics)(nil)

// A *Metrics takes the invalidation counters too.
var _ failsoft.InvalidationWatcher = (*prometheus.Metrics)(nil)
