package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft"
	fsprom "github.com/failsoft/failsoft/health/prometheus"
)

// wire builds failsoft around the legacy service's client rdb, with its
// metrics on reg. The legacy handler sets no caching headers and its data
// lives an hour in Redis, so a minute of freshness changes nothing a client
// can see while sparing Redis and the handler.
func wire(rdb *redis.Client, reg prometheus.Registerer, opts ...failsoft.Option) (*failsoft.Protector, error) {
	metrics, err := fsprom.New()
	if err != nil {
		return nil, err
	}
	if err := reg.Register(metrics); err != nil {
		return nil, err
	}
	return failsoft.New(rdb, append(opts, failsoft.WithDefaultTTL(time.Minute), failsoft.WithMetrics(metrics))...)
}
