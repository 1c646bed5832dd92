package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultNodeOpTimeout bounds each command a [NodeGuards] hook sends to one
// cluster node: half of [DefaultOpTimeout], so that a call bounded as a
// whole by [NodeGuards.Bound] (100 ms by default) has room for one full
// node attempt, whose timeout then counts against that node's breaker.
const DefaultNodeOpTimeout = DefaultOpTimeout / 2

// NodeGuards gives every node of a Redis Cluster its own [Guard] (breaker
// and op timeout) and a [Hook] over it, so that a dead or hung shard opens
// its own breaker and not the one of the healthy shards.
//
// Nodes are discovered by the cluster client as it learns the topology, so
// the guards are made as go-redis creates each node's *redis.Client: pass
// [NodeGuards.OnNewNode] (or [NodeGuards.OnNewNodeCacheMode]) to the
// cluster client's OnNewNode method right after building it, before its
// first command:
//
//	guards, err := store.NewNodeGuards(store.WithLogger(logger))
//	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, DialerRetries: 1})
//	rdb.OnNewNode(guards.OnNewNode)
//
// Each node's guard is named "<name>@<host:port>" ([WithName], default
// "redis"), for logs, metrics and health checks ([NodeGuards.Guards]; the
// health package's WithBreakerChecks reports them all under one check, naming
// the nodes that are down). go-redis may close a node's client and make a
// new one for the same address (after a topology change); the new client
// gets the same guard, so a node keeps its breaker and counters for the
// life of the NodeGuards. A node that has left the cluster keeps its guard
// until [NodeGuards.Forget].
//
// # Wiring the cache over a cluster
//
// Breaking lives on the nodes, bounding lives on the whole call: a single
// Guard around a [Redis] store over the cluster client would count every
// shard's outages in one breaker and trip for all keys when one shard
// dies, and the per-node hooks alone do not bound a call, because the
// cluster client retries a command (a refused connection, a timeout,
// TRYAGAIN, CLUSTERDOWN) on the same or another node up to MaxRedirects
// times, each attempt bounded by the node's op timeout. So the cache's
// store is
//
//	remote, _ := store.NewRedis(cacheRDB)        // a cluster client whose nodes carry guards.OnNewNode
//	bound, _ := guards.Bound(remote)             // the 100 ms bound, a breaker that never trips
//	tiered, _ := store.NewTiered(local, bound)   // the in-process copy answers for a dead shard
//
// A call for a key on a dead shard then fails at once with [ErrUnavailable]
// (its node's breaker is open; the cluster client does not retry that
// error) and the in-process tier or a stale copy answers, while keys on the
// other shards keep reaching Redis. The bound's op timeout must exceed the
// nodes' (see [NodeGuards.Bound]): a hook counts a command cut short by its
// caller's deadline as cancelled, not as a failure, so with an outer bound
// no longer than the node timeout a hung node would never trip its breaker.
//
// Code that calls the cluster client itself (a legacy handler) uses a
// second cluster client with [NodeGuards.OnNewNodeCacheMode], so that an
// outage on a read is a miss and a failed write is dropped, as with
// [WithCacheMode]; the two clients share each node's breaker. Keep the two
// clients apart: a cache-mode hook turns the outages the cache's store must
// see into misses, and a [Tiered] store drops its in-process copy on a miss.
//
// Commands go-redis sends on its own go through the node hooks too, each
// as one breaker request of the node it is sent to: CLUSTER SLOTS when the
// client reloads the topology (in the background: an open breaker makes it
// try the next node at once), COMMAND when it first routes a command, and
// PING. The connection handshake (HELLO, AUTH, CLIENT SETINFO) runs inside
// the command that dialed and is not counted on its own. Build the cluster
// client with DialerRetries: 1, so that a dead node refuses at once instead
// of spending a node op timeout on dial retries.
//
// A NodeGuards is safe for concurrent use. The zero value is not usable:
// build one with [NewNodeGuards]. It owns no goroutine; Close closes the
// node guards.
type NodeGuards struct {
	cfg nodeGuardsConfig

	mu     sync.Mutex
	nodes  map[string]*node
	closed bool
}

// node is one cluster node's guard and hooks.
type node struct {
	guard *Guard
	plain nodeHook // errors mode
	cache nodeHook // cache mode
	// inner is the node's store as the guard's Store methods see it: a
	// Redis store over the node's latest client.
	inner *nodeStore
}

// nodeStore is a node guard's wrapped store: a [Redis] store over the
// latest client go-redis made for the node, called with the context mark
// of that client's hook so that the hook lets the guard's call through
// without counting it a second time.
type nodeStore struct {
	cur atomic.Pointer[nodeClient]
}

type nodeClient struct {
	store *Redis
	hook  *Hook
}

var (
	_ Store     = (*nodeStore)(nil)
	_ TTLGetter = (*nodeStore)(nil)
	_ Pinger    = (*nodeStore)(nil)
)

// ctx returns ctx marked for the latest client's hook, and the store over
// that client; a nil store (a Redis zero value) before the first client,
// whose methods return ErrClosed.
func (s *nodeStore) ctx(ctx context.Context) (context.Context, *Redis) {
	c := s.cur.Load()
	if c == nil {
		return ctx, nil
	}
	return context.WithValue(ctx, hookKey, c.hook), c.store
}

func (s *nodeStore) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, r := s.ctx(ctx)
	return r.Get(ctx, key)
}

func (s *nodeStore) GetTTL(ctx context.Context, key string) ([]byte, time.Duration, error) {
	ctx, r := s.ctx(ctx)
	return r.GetTTL(ctx, key)
}

func (s *nodeStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	ctx, r := s.ctx(ctx)
	return r.Set(ctx, key, value, ttl)
}

func (s *nodeStore) Delete(ctx context.Context, key string) error {
	ctx, r := s.ctx(ctx)
	return r.Delete(ctx, key)
}

func (s *nodeStore) Ping(ctx context.Context) error {
	ctx, r := s.ctx(ctx)
	return r.Ping(ctx)
}

// NewNodeGuards returns an empty set of node guards; nodes are added as the
// cluster client creates them (see [NodeGuards]).
//
// Its options ([NodeGuardsOption]) are every [GuardOption], applied to each
// node guard: [WithName] (default "redis"; a node guard is named
// "<name>@<host:port>"), [WithOpTimeout] (default 50 ms,
// [DefaultNodeOpTimeout], for each command sent to one node),
// [WithFailureThreshold] (5 consecutive outages), [WithOpenPeriod] (5 s),
// the half-open, in-flight, logger, clock, state-change and observer
// options; the callbacks get the node guard's name. The guards' Store
// methods ([Guard.Get], [Guard.Ping] …) talk to their node through a
// [Redis] store, configured by [WithPrefix], [WithMaxKeyBytes] and
// [WithMaxValueBytes] (defaults as for [NewRedis]). It returns an error for
// a nil option or a bad value.
func NewNodeGuards(opts ...NodeGuardsOption) (*NodeGuards, error) {
	c, err := newNodeGuardsConfig(opts)
	if err != nil {
		return nil, err
	}
	return &NodeGuards{cfg: c, nodes: make(map[string]*node)}, nil
}

// OnNewNode gives c, a cluster node's client, its node's guard and a hook
// over it that returns outages as errors (as [NewHook] without cache
// mode). Pass it to a *redis.ClusterClient's OnNewNode method (or call it
// from ClusterOptions.NewClient) before the client's first command; the
// cluster client calls it for every node client it makes, under its own
// lock, so it does no I/O. A client of an address seen before gets that
// address's guard. After [NodeGuards.Close], c gets a closed guard: its
// commands fail with [ErrClosed]. It panics if n was not built by
// [NewNodeGuards].
func (n *NodeGuards) OnNewNode(c *redis.Client) { n.attach(c, false) }

// OnNewNodeCacheMode is [NodeGuards.OnNewNode] with a hook in cache mode
// (see [WithCacheMode]): on an outage a read command is a miss and a write
// is dropped, for the cluster client of code that calls Redis itself. It
// shares each node's guard with the clients given OnNewNode.
func (n *NodeGuards) OnNewNodeCacheMode(c *redis.Client) { n.attach(c, true) }

func (n *NodeGuards) attach(c *redis.Client, cacheMode bool) {
	if n == nil || n.nodes == nil {
		panic("store: NodeGuards not built by NewNodeGuards")
	}
	if c == nil {
		panic("store: NodeGuards.OnNewNode: nil client")
	}
	addr := c.Options().Addr
	n.mu.Lock()
	nd := n.nodes[addr]
	if nd == nil {
		nd = n.newNode(addr)
		n.nodes[addr] = nd
	}
	closed := n.closed
	n.mu.Unlock()
	if closed {
		nd.guard.Close()
	}
	h := nd.plain
	if cacheMode {
		h = nd.cache
	}
	c.AddHook(h)
	nd.inner.cur.Store(&nodeClient{store: newRedis(c, n.cfg.redis), hook: h.Hook})
}

// newNode builds addr's guard and hooks. The settings were validated by
// NewNodeGuards.
func (n *NodeGuards) newNode(addr string) *node {
	inner := &nodeStore{}
	gc := n.cfg.guard
	gc.name += "@" + addr
	g := newGuard(inner, gc)
	plain := newHook(g, hookConfig{})
	cache := newHook(g, hookConfig{cacheMode: true})
	refusals := make(map[error]error, 4)
	errs := &g.errs[opHook]
	for _, e := range []error{errs.open, errs.busy, errs.full, errs.closed} {
		ge := e.(*guardError)
		refusals[e] = &refusalError{msg: ge.msg, wrapped: ge.wrapped}
	}
	return &node{
		guard: g,
		plain: nodeHook{plain, refusals},
		cache: nodeHook{cache, refusals},
		inner: inner,
	}
}

// nodeHook is a node's [Hook] as the cluster client sees it. The cluster
// client retries a node's error when it looks like a timeout to go-redis,
// and go-redis takes any error with a Timeout method for one (a guard's
// errors have one, whatever its value); it would retry an open breaker's
// refusal with growing backoff until the caller's deadline, so that a dead
// shard would cost every call the whole bound. nodeHook returns refusals
// as errors without a Timeout method, which the cluster client does not
// retry, so that an open breaker costs nothing. Timeouts and other errors
// pass unchanged.
type nodeHook struct {
	*Hook
	refusals map[error]error // the guard's refusal errors to their untimed twins
}

// refusalError is a refusal of a node's guard: the same message and the
// same wrapped errors (ErrUnavailable and gobreaker's, or ErrClosed),
// without a Timeout method.
type refusalError struct {
	msg     string
	wrapped []error
}

func (e *refusalError) Error() string   { return e.msg }
func (e *refusalError) Unwrap() []error { return e.wrapped }

// ProcessHook implements redis.Hook.
func (h nodeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	inner := h.Hook.ProcessHook(next)
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := inner(ctx, cmd)
		if r, ok := h.refusals[err]; ok {
			cmd.SetErr(r)
			return r
		}
		return err
	}
}

// ProcessPipelineHook implements redis.Hook.
func (h nodeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	inner := h.Hook.ProcessPipelineHook(next)
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := inner(ctx, cmds)
		if err == nil {
			return nil
		}
		for _, cmd := range cmds {
			if r, ok := h.refusals[cmd.Err()]; ok {
				cmd.SetErr(r)
			}
		}
		if r, ok := h.refusals[err]; ok {
			return r
		}
		return err
	}
}

// Guards returns the guards of the nodes seen so far, sorted by name. The
// health package's WithBreakerChecks takes this method as it is.
func (n *NodeGuards) Guards() []*Guard {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	gs := make([]*Guard, 0, len(n.nodes))
	for _, nd := range n.nodes {
		gs = append(gs, nd.guard)
	}
	n.mu.Unlock()
	slices.SortFunc(gs, func(a, b *Guard) int { return cmp.Compare(a.Name(), b.Name()) })
	return gs
}

// Guard returns the guard of the node at addr (host:port, as the cluster
// names it), or nil if no client for it has been made.
func (n *NodeGuards) Guard(addr string) *Guard {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if nd := n.nodes[addr]; nd != nil {
		return nd.guard
	}
	return nil
}

// Forget drops the guard of the node at addr, for a node that has left the
// cluster, so that [NodeGuards.Guards] no longer lists it. Clients already
// made for the node keep using it; a client made later gets a new guard.
// It reports whether there was one.
func (n *NodeGuards) Forget(addr string) bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.nodes[addr]
	delete(n.nodes, addr)
	return ok
}

// Dropped returns how many write commands the cache-mode hooks of all
// nodes have dropped because of an outage.
func (n *NodeGuards) Dropped() uint64 {
	if n == nil {
		return 0
	}
	var total uint64
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, nd := range n.nodes {
		total += nd.cache.Dropped()
	}
	return total
}

// Bound wraps s, a store over a cluster client whose nodes carry n's hooks
// (a [Redis] store, usually), in a [Guard] that bounds each call as a whole
// and never trips: breaking is the nodes' job, so that a dead shard does
// not cost the healthy ones their cache. It takes the options [NewGuard]
// takes — [WithName] (default "redis"), [WithOpTimeout] (default 100 ms),
// [WithMaxInFlight], [WithLogger], [WithClock], [WithOnStateChange],
// [WithObserver] — except those that tune when the breaker opens or closes
// ([WithFailureThreshold], [WithOpenPeriod], [WithHalfOpenRequests]), which
// are an error: its breaker counts but never opens.
//
// The op timeout must exceed the nodes' ([NewNodeGuards]; 100 ms against
// 50 ms by default): a node's hook counts a command cut short by its
// caller's deadline as cancelled, not as a failure, so with an outer bound
// no longer than the node timeout a hung node would never trip its
// breaker. Bound returns an error when it does not, or for an invalid
// option or a nil store.
func (n *NodeGuards) Bound(s Store, opts ...GuardOption) (*Guard, error) {
	if n == nil || n.nodes == nil {
		return nil, fmt.Errorf("store: Bound: NodeGuards not built by NewNodeGuards")
	}
	if s == nil {
		return nil, errors.New("store: Bound: nil Store")
	}
	c, err := newGuardConfig("Bound", opts)
	if err != nil {
		return nil, err
	}
	if c.breakerOption != "" {
		return nil, fmt.Errorf("store: Bound: %s does not apply: the bound's breaker never opens", c.breakerOption)
	}
	if c.opTimeout <= n.cfg.guard.opTimeout {
		return nil, fmt.Errorf("store: Bound: op timeout %v must exceed the nodes' op timeout %v", c.opTimeout, n.cfg.guard.opTimeout)
	}
	c.failureThreshold = math.MaxUint32
	return newGuard(s, c), nil
}

// Close closes every node guard (see [Guard.Close]): later commands through
// the node hooks fail with [ErrClosed]. Close the cluster clients first, so
// that calls still waiting on a hung node end at once. It always returns
// nil.
func (n *NodeGuards) Close() error {
	if n == nil || n.nodes == nil {
		return nil
	}
	n.mu.Lock()
	n.closed = true
	gs := make([]*Guard, 0, len(n.nodes))
	for _, nd := range n.nodes {
		gs = append(gs, nd.guard)
	}
	n.mu.Unlock()
	for _, g := range gs {
		g.Close()
	}
	return nil
}
