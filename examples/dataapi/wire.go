package main

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/justinas/alice"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft/health"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

// Settings of the protected service. Each differs from failsoft's default
// only where the example needs it, and says why.
const (
	// inProcessBytes is the in-process tier's byte budget (the default).
	inProcessBytes = 64 << 20
	// freshFor is how long an answer without Cache-Control is served from
	// the cache: the legacy handler sets no caching headers, and its data
	// lives an hour in Redis, so a minute of freshness changes nothing a
	// client can see while sparing Redis and the handler.
	freshFor = time.Minute
)

// tune adjusts the Redis options of the protected service, before any client
// is built from them. FAILSOFT=off keeps go-redis' defaults, as the legacy
// service always had them.
func tune(opt *redis.Options) {
	// go-redis retries a refused dial 5 times, 100 ms apart: against a dead
	// (killed) Redis every command would then wait out the op timeout until
	// the breaker trips, and every half-open probe would too. One attempt
	// makes a refused connection fail at once: the breaker trips after five
	// quick failures, and a probe of a dead Redis costs nothing.
	opt.DialerRetries = 1
	// Honour context deadlines on socket reads and writes. The guard stops
	// waiting at the op timeout anyway; with this, a call it abandoned on a
	// hung (paused) Redis also ends then, instead of holding a pooled
	// connection and an in-flight slot until the 3 s read timeout.
	opt.ContextTimeoutEnabled = true
}

// wire builds failsoft around the legacy service's client rdb: a guard (one
// breaker and op timeout) shared by the cache's own Redis store and the hook
// on rdb, the tiered store, the cache, the recovery middleware, the health
// handlers on mux and failsoft's metrics on reg. closeAll releases them.
func wire(rdb *redis.Client, opt *redis.Options, reg prometheus.Registerer, logger *slog.Logger, mux *http.ServeMux) (alice.Chain, func(), error) {
	var closers []func() error
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (alice.Chain, func(), error) {
		closeAll()
		return alice.Chain{}, nil, err
	}

	metrics, err := newMetrics(reg)
	if err != nil {
		return fail(err)
	}

	// The cache's own client, so that its commands are not counted twice by
	// the hook that rdb carries.
	cacheClient := redis.NewClient(opt)
	remote, err := store.NewRedis(cacheClient)
	if err != nil {
		cacheClient.Close()
		return fail(err)
	}
	guard, err := store.NewGuard(remote, append(metrics.storeOptions(), store.WithName("redis"), store.WithLogger(logger))...)
	if err != nil {
		cacheClient.Close()
		return fail(err)
	}
	// closeAll runs in reverse: the client closes before the guard, so that
	// calls a hung Redis still holds end at once and the guard's Close does
	// not wait for them until the client's read timeout (3 s).
	closers = append(closers, guard.Close, cacheClient.Close)

	// One line where the client is built: every command of the legacy
	// handler now runs through the same breaker and op timeout; a failed
	// read comes back as a miss and a failed write is dropped.
	hook, err := store.NewHook(guard, store.WithCacheMode(true))
	if err != nil {
		return fail(err)
	}
	rdb.AddHook(hook)

	local, err := store.NewMemory(inProcessBytes)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, local.Close)
	tiered, err := store.NewTiered(local, guard, store.WithLogger(logger))
	if err != nil {
		return fail(err)
	}
	closers = append(closers, tiered.Close)

	cache, err := middleware.New(tiered, middleware.WithDefaultTTL(freshFor), middleware.WithLogger(logger))
	if err != nil {
		return fail(err)
	}
	closers = append(closers, cache.Close)
	metrics.watch(guard, cache)

	hh, err := health.New(
		health.WithBreakerCheck(guard, false),
		health.WithPinger("redis-ping", guard, false),
		health.WithCacheStats("cache", cache.Stats),
		health.WithLogger(logger),
	)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, hh.Close)
	mux.Handle("/livez", hh.Livez())
	mux.Handle("/readyz", hh.Readyz())
	mux.Handle("/healthz", hh.Healthz())

	chain := middleware.Chain(cache, middleware.WithBreakers(guard), middleware.WithLogger(logger))
	return chain, closeAll, nil
}
