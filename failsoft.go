package failsoft

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/justinas/alice"
	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft/health"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

// Protector is the recommended failsoft stack around one Redis client: a
// breaker and op timeout, a hook on the client, an in-process tier, the
// response cache, the recovery middleware and the health handlers.
//
// A Protector is safe for concurrent use. The zero value is not usable:
// build one with [New]. It owns background goroutines (store writes, cache
// refreshes, health checks) and a Redis client of its own; [Protector.Close]
// stops them.
type Protector struct {
	chain  alice.Chain
	cache  *middleware.Cache
	health *health.Handler

	// Exactly one of guard (one node or Sentinel) and nodes (Cluster) is set.
	guard *store.Guard
	hook  *store.Hook
	nodes *store.NodeGuards

	// The invalidation parts (invalidation.go): the cache's Redis store
	// (which publishes), the deletes an outage refused, the subscription
	// (nil without one).
	remote    *store.Redis
	pending   *store.PendingDeletes
	broadcast *store.Broadcast

	closers   []func() error // in the order Close calls them
	closeOnce sync.Once
	closeErr  error
}

// Breaker is what [Metrics] reads of a breaker: a *[store.Guard] is one.
type Breaker = interface {
	Name() string
	State() store.State
}

// Metrics receives failsoft's measurements: each guarded Redis call, each
// breaker state change, and the cache's counters. *prometheus.Metrics of
// the module github.com/failsoft/failsoft/health/prometheus implements it.
type Metrics interface {
	// Observer returns the function called after every guarded call
	// (see [store.WithObserver]).
	Observer() func(name, op string, took time.Duration, class store.Class)
	// OnStateChange returns the function called after each breaker state
	// change (see [store.WithOnStateChange]).
	OnStateChange() func(name string, from, to store.State)
	// WatchBreaker is called once for each breaker known at construction.
	WatchBreaker(b Breaker)
	// WatchCache is called once with the cache's Stats method.
	WatchCache(stats func() middleware.Stats)
}

// Stats is a snapshot of a Protector's counters.
type Stats struct {
	// Cache is the response cache's counters.
	Cache middleware.Stats
	// Breakers has one entry per breaker: one for a single node or a
	// Sentinel client, one per node seen so far for a Cluster.
	Breakers []store.BreakerStats
	// DroppedWrites counts the write commands of the caller's client that
	// the hook dropped during an outage (cache mode, see [WithCacheMode]).
	DroppedWrites uint64
	// Invalidations counts pending, late, dropped, published and received
	// invalidations, and tells the broadcast subscription's state.
	Invalidations InvalidationStats
}

// New builds the recommended stack around client, a *redis.Client (also one
// made by redis.NewFailoverClient, for Sentinel) or a *redis.ClusterClient,
// and returns it. Call it right after building the client, before the
// client's first command:
//
//   - The cache gets a client of its own, built from client's options with
//     DialerRetries 1 and ContextTimeoutEnabled, so that a dead Redis fails
//     fast and a hung one is let go at the op timeout; client keeps its
//     settings. Its keys are prefixed "<name>:" (see [WithName]). On one
//     node or Sentinel, the cache's reads use at most two connections at
//     once, and the reads made while both are busy share one pipeline
//     ([store.WithBatchedGets]): under load a Redis hit costs less than a
//     GET of its own.
//   - A breaker and op timeout guard every call (a [store.Guard]); for a
//     Cluster, each node gets its own ([store.NodeGuards]) so that a dead
//     shard does not cost the others their cache, and a whole cache call is
//     bounded by the op timeout.
//   - A go-redis hook ([store.Hook]) is added to client, so that a handler's
//     own Redis calls go through the same breaker and op timeout and, in
//     cache mode (the default), an outage on a read is a miss and a failed
//     write is dropped.
//   - An in-process tier ([store.Tiered] over [store.Memory]) holds copies
//     that answer while Redis is away.
//   - An invalidation (a successful unsafe request, a purge) that an outage
//     refused is kept and applied when Redis is back, before the key is read
//     from it again ([store.PendingDeletes]); each one is announced on the
//     Redis channel "<name>:invalidations", and every replica drops its
//     in-process copy when it hears it ([store.Broadcast], [WithBroadcast]).
//     The subscription uses a connection of the cache's client (for a
//     Cluster, of a copy of it without hooks).
//   - The chain is [middleware.Recover] then the [middleware.Cache], whose
//     miss budget bounds the handler calls for misses while Redis is
//     unavailable (see [WithMissBudget]), built by [middleware.Chain]: a
//     fresh hit from the in-process tier is answered before Recover's
//     per-request set-up, as it calls neither Redis nor the handler.
//   - The health handlers report the breakers, a ping and the cache's
//     counters (see [Protector.Health]).
//
// New returns an error for an invalid option and [ErrUnsupportedClient]
// for a client it cannot wire (a *redis.Ring); then it has changed nothing:
// the hook is added, and the metrics are told, only once everything else is
// built. client stays the
// caller's: Close does not close it, and must be called before it is
// closed.
func New(client redis.UniversalClient, opts ...Option) (*Protector, error) {
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	b := builder{cfg: cfg, p: &Protector{}}
	p, err := b.build(client)
	if err != nil {
		b.closeAll()
		if errors.Is(err, ErrUnsupportedClient) {
			return nil, err
		}
		return nil, fmt.Errorf("failsoft: %w", err)
	}
	return p, nil
}

// Then returns h wrapped by the whole chain, as alice's Chain.Then: a nil h
// means http.DefaultServeMux.
func (p *Protector) Then(h http.Handler) http.Handler { return p.chain.Then(h) }

// Handler is [Protector.Then] with the shape of a middleware constructor,
// for alice.New(fs.Handler), chi's Use and the Gin and Echo adapters.
func (p *Protector) Handler(next http.Handler) http.Handler { return p.chain.Then(next) }

// Health returns one handler for the three health endpoints, chosen by the
// last element of the request's path: "livez", "readyz" or "healthz"; any
// other path is 404. Mount it under a prefix (mux.Handle("/health/",
// fs.Health())), with http.StripPrefix, or at each path. /livez never
// touches Redis; /readyz is 200 unless a critical check fails (an open
// breaker is "warn" unless [WithCritical]); /healthz is the detailed
// application/health+json report. Check results are cached for a second,
// so probes cannot hammer Redis.
func (p *Protector) Health() http.Handler { return p.health }

// Livez returns the liveness handler (see [health.Handler.Livez]).
func (p *Protector) Livez() http.Handler { return p.health.Livez() }

// Readyz returns the readiness handler (see [health.Handler.Readyz]).
func (p *Protector) Readyz() http.Handler { return p.health.Readyz() }

// Healthz returns the detailed report handler (see [health.Handler.Healthz]).
func (p *Protector) Healthz() http.Handler { return p.health.Healthz() }

// Stats returns a snapshot of the cache's and the breakers' counters.
func (p *Protector) Stats() Stats {
	s := Stats{Cache: p.cache.Stats(), Invalidations: p.invalidationStats()}
	if p.guard != nil {
		s.Breakers = []store.BreakerStats{p.guard.Stats()}
		s.DroppedWrites = p.hook.Dropped()
	} else {
		for _, g := range p.nodes.Guards() {
			s.Breakers = append(s.Breakers, g.Stats())
		}
		s.DroppedWrites = p.nodes.Dropped()
	}
	return s
}

// Purge removes the cached answers to a GET of rawURL, an absolute URL,
// from every tier (see [middleware.Cache.Purge]). Behind a proxy that sets
// forwarding headers (X-Forwarded-Proto, ...), which are part of the key,
// use [Protector.PurgeRequest] with those headers.
func (p *Protector) Purge(ctx context.Context, rawURL string) error {
	return p.cache.Purge(ctx, rawURL)
}

// PurgeRequest removes the cached answers to a GET like r, with its URL,
// Host and forwarding headers (see [middleware.Cache.PurgeRequest]).
func (p *Protector) PurgeRequest(r *http.Request) error {
	return p.cache.PurgeRequest(r)
}

// Close shuts the stack down in order: the cache stops caching and waits
// for its pending writes and refreshes, the health checks stop, the
// broadcast subscription ends, pending invalidations are tried once more
// (what still fails is lost), the in-process tier is released, the cache's own client is closed (ending
// the calls a hung Redis still holds) and the breakers are closed. After
// Close the chain passes requests straight to the handler, and commands of
// the caller's client fail at once through the hook (in cache mode, reads
// are misses): close the client's users first. Close is safe to call more
// than once; later calls return the first call's result.
func (p *Protector) Close() error {
	p.closeOnce.Do(func() {
		var errs []error
		for _, c := range p.closers {
			errs = append(errs, c())
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}
