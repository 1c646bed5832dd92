package failsoft

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft/health"
	"github.com/failsoft/failsoft/store"
)

// The invalidation parts of the stack: the queue of deletes an outage
// refused, and the broadcast of invalidations between replicas.

// InvalidationStats counts what happened to invalidations (unsafe requests
// and purges) of a [Protector]; see [store.InvalidationStats]. Subscribed is
// false with [WithBroadcast](false) or [WithMemory](0).
type InvalidationStats = store.InvalidationStats

// InvalidationWatcher is implemented by a [Metrics] that also exports the
// invalidation counters, as *prometheus.Metrics of the module
// github.com/failsoft/failsoft/health/prometheus does: [New] calls
// WatchInvalidations once with the Protector's counters.
type InvalidationWatcher interface {
	WatchInvalidations(stats func() InvalidationStats)
}

// invalidationChannel is the pub/sub channel of a cache's invalidations:
// one per name, as the keys' prefix.
func invalidationChannel(name string) string { return name + ":invalidations" }

// newPendingDeletes wraps the guarded store in the queue of deletes that an
// outage refused, so that no invalidation is lost (see
// [store.PendingDeletes]).
func (b *builder) newPendingDeletes(guarded store.Store) (*store.PendingDeletes, error) {
	pending, err := store.NewPendingDeletes(guarded, store.WithLogger(b.cfg.logger))
	if err != nil {
		return nil, err
	}
	b.p.pending, b.pending = pending, pending.Close
	return pending, nil
}

// newBroadcast subscribes to the invalidation channel with a client of its
// own that carries no hook: a subscription's blocking reads must not count
// against a breaker. For a single node or Sentinel that is the cache's
// client (which has no hook); a Cluster's gets hooks on its nodes, so the
// subscription gets a copy of it.
func (b *builder) newBroadcast(cc redis.UniversalClient) (*store.Broadcast, error) {
	sub, closeSub := cc, func() error { return nil }
	if c, ok := cc.(*redis.ClusterClient); ok {
		opt := clusterOptions(c)
		cl := redis.NewClusterClient(&opt)
		sub, closeSub = cl, cl.Close
	}
	bc, err := store.NewBroadcast(sub, invalidationChannel(b.cfg.name), store.WithLogger(b.cfg.logger))
	if err != nil {
		closeSub()
		return nil, err
	}
	b.p.broadcast = bc
	b.broadcast = func() error {
		bc.Close()
		return closeSub()
	}
	return bc, nil
}

// broadcastGrace is how long the broadcast subscription may be down before
// the health report says warn: long enough for a reconnection.
const broadcastGrace = 5 * time.Second

// broadcastCheck is the health check of the subscription: warn when it has
// been down for more than broadcastGrace. It never fails readiness.
func broadcastCheck(bc *store.Broadcast) health.Option {
	return health.WithCheck("redis-broadcast", false, func(context.Context) health.CheckResult {
		st := bc.Stats()
		switch {
		case st.Subscribed:
			return health.CheckResult{Status: health.StatusPass, ComponentType: "component", ObservedValue: st.Received, ObservedUnit: "invalidations received"}
		case time.Since(st.Since) < broadcastGrace:
			return health.CheckResult{Status: health.StatusPass, Output: "subscribing", ComponentType: "component"}
		}
		return health.CheckResult{
			Status:        health.StatusWarn,
			Output:        fmt.Sprintf("subscription to %s down since %s: in-process copies are kept for the short coherence window", bc.Channel(), st.Since.UTC().Format(time.RFC3339)),
			ComponentType: "component",
		}
	})
}

// invalidationStats returns the invalidation counters.
func (p *Protector) invalidationStats() InvalidationStats {
	ps := p.pending.Stats()
	bs := p.broadcast.Stats()
	return InvalidationStats{
		Published:   p.remote.Published(),
		Received:    bs.Received,
		Pending:     ps.Pending,
		AppliedLate: ps.AppliedLate,
		Dropped:     ps.Dropped,
		Subscribed:  bs.Subscribed,
		Reconnects:  bs.Reconnects,
	}
}
