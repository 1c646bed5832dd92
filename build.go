package failsoft

import (
	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft/health"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

// builder assembles a Protector. Each part it builds is added to the
// closers in the order Close must run them, whatever the order of
// construction: the cache before the stores it writes to, the cache's
// client before the guards, so that calls a hung Redis still holds end at
// once instead of at the client's read timeout.
type builder struct {
	cfg config
	p   *Protector

	cache, health, tiered, memory, client, bound, guards func() error
	// The invalidation parts (invalidation.go).
	broadcast, pending func() error
}

// readLanes is the cache's batched reads' lanes (store.WithBatchedGets):
// two, so that a read waits for a lane only when two round trips are in
// flight already; one or two give the same throughput under load (hitbench).
const readLanes = 2

// guardName names the breaker (or, for a Cluster, each node's breaker
// "redis@host:port") in logs, health checks and metrics.
const guardName = "redis"

func (b *builder) build(client redis.UniversalClient) (*Protector, error) {
	cfg, p := b.cfg, b.p
	cc, err := cacheClient(client)
	if err != nil {
		return nil, err
	}
	b.client = cc.Close
	redisOpts := []store.RedisOption{store.WithPrefix(cfg.name + ":")}
	if cfg.broadcast {
		redisOpts = append(redisOpts, store.WithInvalidationChannel(invalidationChannel(cfg.name)))
	}
	if _, single := cc.(*redis.Client); single {
		// The cache's own client: reads made while two are in flight
		// share a pipeline (Cluster clients route by slot: no batching).
		redisOpts = append(redisOpts, store.WithBatchedGets(readLanes))
	}
	remote, err := store.NewRedis(cc, redisOpts...)
	if err != nil {
		return nil, err
	}
	p.remote = remote

	guardOpts := []store.GuardOption{
		store.WithName(guardName),
		store.WithFailureThreshold(cfg.failureThreshold),
		store.WithOpenPeriod(cfg.openPeriod),
		store.WithLogger(cfg.logger),
	}
	if m := cfg.metrics; m != nil {
		guardOpts = append(guardOpts, store.WithObserver(m.Observer()), store.WithOnStateChange(m.OnStateChange()))
	}

	// guarded is the cache's remote tier; addHook wires the caller's
	// client, last, once nothing can fail any more.
	var guarded *store.Guard
	var addHook func()
	var healthOpts []health.Option
	var recoverOpts []middleware.RecoverOption
	switch c := client.(type) {
	case *redis.ClusterClient:
		// Each node's commands get half the op timeout, the whole call the
		// op timeout: the bound must exceed the nodes' (see NodeGuards.Bound).
		nodeOpts := []store.NodeGuardsOption{store.WithOpTimeout(cfg.opTimeout / 2), store.WithPrefix(cfg.name + ":")}
		for _, o := range guardOpts {
			nodeOpts = append(nodeOpts, o)
		}
		nodes, err := store.NewNodeGuards(nodeOpts...)
		if err != nil {
			return nil, err
		}
		p.nodes, b.guards = nodes, nodes.Close
		cc.(*redis.ClusterClient).OnNewNode(nodes.OnNewNode)
		guarded, err = nodes.Bound(remote, store.WithName(guardName), store.WithOpTimeout(cfg.opTimeout))
		if err != nil {
			return nil, err
		}
		b.bound = guarded.Close
		healthOpts = append(healthOpts, health.WithBreakerChecks(guardName, nodes.Guards, cfg.critical))
		addHook = func() {
			if cfg.cacheMode {
				c.OnNewNode(nodes.OnNewNodeCacheMode)
			} else {
				c.OnNewNode(nodes.OnNewNode)
			}
		}
	default:
		guarded, err = store.NewGuard(remote, append(guardOpts, store.WithOpTimeout(cfg.opTimeout))...)
		if err != nil {
			return nil, err
		}
		p.guard, b.guards = guarded, guarded.Close
		p.hook, err = store.NewHook(guarded, store.WithCacheMode(cfg.cacheMode))
		if err != nil {
			return nil, err
		}
		healthOpts = append(healthOpts, health.WithBreakerCheck(guarded, cfg.critical))
		recoverOpts = append(recoverOpts, middleware.WithBreakers(guarded))
		addHook = func() { client.AddHook(p.hook) }
	}
	// A ping is never critical: one slow ping must not take a replica out
	// of its load balancer; the breaker check is what WithCritical governs.
	healthOpts = append(healthOpts, health.WithPinger("redis-ping", guarded, false))

	pending, err := b.newPendingDeletes(guarded)
	if err != nil {
		return nil, err
	}
	var cacheStore store.Store = pending
	if cfg.memoryBytes > 0 {
		local, err := store.NewMemory(cfg.memoryBytes)
		if err != nil {
			return nil, err
		}
		b.memory = local.Close
		tieredOpts := []store.TieredOption{store.WithLogger(cfg.logger)}
		if cfg.broadcast {
			bc, err := b.newBroadcast(cc)
			if err != nil {
				return nil, err
			}
			tieredOpts = append(tieredOpts, store.WithBroadcast(bc, cfg.broadcastWindow))
			healthOpts = append(healthOpts, broadcastCheck(bc))
		}
		tiered, err := store.NewTiered(local, pending, tieredOpts...)
		if err != nil {
			return nil, err
		}
		b.tiered, cacheStore = tiered.Close, tiered
	}

	cacheOpts := []middleware.Option{
		middleware.WithName(cfg.name),
		middleware.WithDefaultTTL(cfg.defaultTTL),
		middleware.WithLogger(cfg.logger),
		middleware.WithMissBudget(cfg.missBudget, cfg.missBudgetWait),
		middleware.WithMissBudgetMode(cfg.missBudgetMode),
	}
	if cfg.key != nil {
		cacheOpts = append(cacheOpts, middleware.WithKeyFunc(cfg.key))
	}
	cache, err := middleware.New(cacheStore, cacheOpts...)
	if err != nil {
		return nil, err
	}
	p.cache, b.cache = cache, cache.Close

	hh, err := health.New(append(healthOpts,
		health.WithCacheStats("cache", cache.Stats),
		health.WithMissBudgetCheck("missBudget", cache.Stats),
		health.WithLogger(cfg.logger))...)
	if err != nil {
		return nil, err
	}
	p.health, b.health = hh, hh.Close

	recoverOpts = append(recoverOpts, middleware.WithLogger(cfg.logger))
	p.chain = middleware.Chain(cache, recoverOpts...)

	// Nothing can fail from here on: only now are the caller's client and
	// metrics told about what was built.
	b.watchMetrics()
	addHook()
	p.closers = b.closeOrder()
	return p, nil
}

// watchMetrics hands the metrics, if any, the breaker (one node or
// Sentinel; a Cluster's node breakers report through OnStateChange), the
// cache's counters and the invalidation counters.
func (b *builder) watchMetrics() {
	m := b.cfg.metrics
	if m == nil {
		return
	}
	if b.p.guard != nil {
		m.WatchBreaker(b.p.guard)
	}
	m.WatchCache(b.p.cache.Stats)
	if w, ok := m.(InvalidationWatcher); ok {
		w.WatchInvalidations(b.p.invalidationStats)
	}
}

// closeOrder returns the closers of the parts built, in the order Close
// runs them.
func (b *builder) closeOrder() []func() error {
	var out []func() error
	for _, c := range []func() error{b.cache, b.health, b.tiered, b.broadcast, b.pending, b.memory, b.client, b.bound, b.guards} {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// closeAll releases what a failed build made.
func (b *builder) closeAll() {
	for _, c := range b.closeOrder() {
		c()
	}
}
