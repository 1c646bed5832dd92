package reliability

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft/health"
	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

// TestClusterShardDeathUnderLoad kills one master of a three-master Redis
// Cluster while requests flow through the cache to a legacy handler over a
// cluster client with per-node hooks: no request fails; only the dead
// shard's keys degrade (the handler keeps finding the other keys in Redis);
// only the dead node's breaker opens; the health report names that node.
func TestClusterShardDeathUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster and kills a master")
	}
	cl := redistest.StartCluster(t, 3)
	logger := topoLogger(t)

	// Op timeouts well above the defaults (50 ms per node, 100 ms bound):
	// a killed node refuses at once, so they cost this test nothing, and a
	// 2-core CI box under -race can stall a healthy node's reply past 50 ms,
	// which would (rightly) count against its breaker.
	guards, err := store.NewNodeGuards(store.WithLogger(logger), store.WithFailureThreshold(5), store.WithOpenPeriod(500*time.Millisecond),
		store.WithOpTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { guards.Close() })
	clusterOptions := func() *redis.ClusterOptions {
		return &redis.ClusterOptions{Addrs: cl.Addrs(), DialerRetries: 1}
	}
	// The cache's own client (outages are errors) and the legacy handler's
	// client (cache mode), sharing each node's breaker.
	cacheRDB := redis.NewClusterClient(clusterOptions())
	cacheRDB.OnNewNode(guards.OnNewNode)
	t.Cleanup(func() { cacheRDB.Close() })
	appRDB := redis.NewClusterClient(clusterOptions())
	appRDB.OnNewNode(guards.OnNewNodeCacheMode)
	t.Cleanup(func() { appRDB.Close() })

	remote, err := store.NewRedis(cacheRDB)
	if err != nil {
		t.Fatal(err)
	}
	bound, err := guards.Bound(remote, store.WithName("redis-cluster"), store.WithLogger(logger),
		store.WithOpTimeout(400*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bound.Close() })
	local, err := store.NewMemory(8 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close() })
	tiered, err := store.NewTiered(local, bound, store.WithLogger(logger), store.WithCoherence(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tiered.Close() })
	// A short freshness, so that the handler (and with it Redis) is asked
	// all along.
	cache, err := middleware.New(tiered, middleware.WithDefaultTTL(50*time.Millisecond), middleware.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	legacy := newTopoHandler(appRDB)
	h := cache.Handler(topoMux(legacy))

	hh, err := health.New(health.WithBreakerChecks("redis-cluster", guards.Guards, false), health.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hh.Close() })

	// Four keys per shard, by the slot of the handler's Redis key.
	victim := cl.Nodes[0]
	byNode := make(map[string][]string)
	for i := 0; len(byNode) < 3 || minLen(byNode) < 4; i++ {
		if i > 1000 {
			t.Fatal("could not spread keys over the shards")
		}
		k := "k" + strconv.Itoa(i)
		addr := cl.NodeFor(t, topoDataKey(k)).Addr()
		if len(byNode[addr]) < 4 {
			byNode[addr] = append(byNode[addr], k)
		}
	}
	var keys []string
	for _, ks := range byNode {
		keys = append(keys, ks...)
	}
	for _, k := range keys {
		if err := topoGet(h, k); err != nil {
			t.Fatalf("warm-up: %v", err)
		}
	}
	if n := len(guards.Guards()); n != 3 {
		t.Fatalf("%d node guards after warm-up, want 3: %v", n, guards.Guards())
	}

	load := startTopoLoad(h, 8, func(r *rand.Rand) string { return keys[r.IntN(len(keys))] })
	t.Cleanup(load.Stop)
	topoWait(t, 5*time.Second, "load running", func() bool { return load.requests.Load() > 200 })

	victim.Kill()
	dead := guards.Guard(victim.Addr())
	if dead == nil {
		t.Fatalf("no guard for node %s", victim.Addr())
	}
	tookOpen := topoWait(t, 10*time.Second, "the dead node's breaker to open", func() bool {
		return dead.State() == store.StateOpen
	})

	// From now on, measure: every healthy key must still be found in Redis
	// by the handler (hits, no primary fetch), every dead-shard key must be
	// served from the primary or a copy, and the healthy breakers stay
	// closed.
	type snap struct{ hits, fetches int64 }
	take := func() map[string]snap {
		m := make(map[string]snap)
		for _, k := range keys {
			st := legacy.stats(k)
			m[k] = snap{st.hits.Load(), st.fetches.Load()}
		}
		return m
	}
	before := take()
	healthyCalls := make(map[string]uint64)
	for _, g := range guards.Guards() {
		healthyCalls[g.Name()] = g.Stats().Calls
	}
	n0 := load.requests.Load()
	killed := time.Now()
	topoWait(t, 20*time.Second, "every key asked of the handler again, 1000 requests and two open periods", func() bool {
		if load.requests.Load() < n0+1000 || time.Since(killed) < time.Second {
			return false
		}
		for _, k := range keys {
			st := legacy.stats(k)
			if st.hits.Load()+st.fetches.Load() == before[k].hits+before[k].fetches {
				return false
			}
		}
		return true
	})
	after := take()

	rep := hh.Report(t.Context())
	load.Stop()
	load.check(t)

	for addr, ks := range byNode {
		for _, k := range ks {
			hits, fetches := after[k].hits-before[k].hits, after[k].fetches-before[k].fetches
			if addr == victim.Addr() {
				if hits != 0 {
					t.Errorf("key %s on the dead shard: %d Redis hits", k, hits)
				}
				continue
			}
			if fetches != 0 || hits == 0 {
				t.Errorf("key %s on healthy shard %s: %d Redis hits, %d primary fetches; want hits only", k, addr, hits, fetches)
			}
		}
	}
	for _, g := range guards.Guards() {
		st := g.Stats()
		if g == dead {
			if st.Trips == 0 {
				t.Errorf("dead node %s: breaker never tripped", g.Name())
			}
			continue
		}
		if st.State != store.StateClosed || st.Trips != 0 {
			t.Errorf("healthy node %s: breaker %v, %d trips; want closed, never tripped", g.Name(), st.State, st.Trips)
		}
		if st.Calls <= healthyCalls[g.Name()] {
			t.Errorf("healthy node %s: no call reached it after the kill", g.Name())
		}
	}
	if rep.Status != health.StatusWarn || !strings.Contains(rep.Output, victim.Addr()) {
		t.Errorf("health report: status %q, output %q; want warn naming %s", rep.Status, rep.Output, victim.Addr())
	}
	for _, s := range cl.Nodes[1:] {
		if strings.Contains(rep.Output, s.Addr()) {
			t.Errorf("health report names healthy node %s: %q", s.Addr(), rep.Output)
		}
	}
	if slowest := time.Duration(load.maxNanos.Load()); slowest > 2*time.Second {
		t.Errorf("slowest request took %v", slowest)
	}
	bs := bound.Stats()
	t.Logf("requests %d (0 failed), slowest %v; dead node's breaker open %v after the kill; report: %s; bound: %d calls, %d failures, %d timeouts, never tripped; cache %+v",
		load.requests.Load(), time.Duration(load.maxNanos.Load()), tookOpen, rep.Output, bs.Calls, bs.Failures, bs.Timeouts, cache.Stats())
}

// TestClusterPausedShardBound pauses one master (a blackhole: connections
// stay open, nothing answers) and calls the cache's store directly: each
// call waits at most the bound's op timeout, the paused node's breaker
// opens (the node timeout is shorter than the bound, so each call counts a
// node failure before the bound cuts it), and then its keys fail at once
// while the other shards answer.
func TestClusterPausedShardBound(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster and pauses a master")
	}
	cl := redistest.StartCluster(t, 3)
	guards, err := store.NewNodeGuards(store.WithLogger(topoLogger(t)), store.WithFailureThreshold(5), store.WithOpenPeriod(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { guards.Close() })
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), DialerRetries: 1})
	rdb.OnNewNode(guards.OnNewNode)
	t.Cleanup(func() { rdb.Close() })
	remote, err := store.NewRedis(rdb)
	if err != nil {
		t.Fatal(err)
	}
	bound, err := guards.Bound(remote, store.WithName("redis-cluster"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bound.Close() })

	victim := cl.Nodes[1]
	var onVictim, healthy []string
	for i := 0; len(onVictim) < 2 || len(healthy) < 4; i++ {
		if i > 1000 {
			t.Fatal("could not spread keys over the shards")
		}
		k := "p" + strconv.Itoa(i)
		if cl.NodeFor(t, store.DefaultPrefix+k) == victim {
			onVictim = append(onVictim, k)
		} else {
			healthy = append(healthy, k)
		}
	}
	ctx := t.Context()
	// The first calls also load the topology and dial: retried until each
	// Set lands.
	for _, k := range append(append([]string{}, onVictim...), healthy...) {
		topoWait(t, 10*time.Second, "Set "+k, func() bool { return bound.Set(ctx, k, []byte("v"), time.Minute) == nil })
	}

	victim.Pause()
	dead := guards.Guard(victim.Addr())
	var slowest time.Duration
	calls := 0
	for dead.State() != store.StateOpen {
		if calls++; calls > 20 {
			t.Fatalf("paused node's breaker still %v after %d calls", dead.State(), calls-1)
		}
		start := time.Now()
		_, err := bound.Get(ctx, onVictim[calls%len(onVictim)])
		took := time.Since(start)
		slowest = max(slowest, took)
		if !store.IsUnavailable(err) {
			t.Fatalf("Get on the paused shard: %v, want an outage", err)
		}
		// Bounded, it takes about the op timeout; unbounded, it waits out
		// go-redis' 3 s read timeout on the paused node. 2 s tells the two
		// apart on a loaded runner.
		if took > 2*time.Second {
			t.Errorf("Get on the paused shard took %v, bound %v", took, store.DefaultOpTimeout)
		}
	}
	start := time.Now()
	if _, err := bound.Get(ctx, onVictim[0]); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Get with the node's breaker open: %v, want ErrUnavailable", err)
	}
	fast := time.Since(start)
	for _, k := range healthy {
		if v, err := bound.Get(ctx, k); err != nil || string(v) != "v" {
			t.Errorf("Get %s on a healthy shard: %q, %v", k, v, err)
		}
	}
	for _, g := range guards.Guards() {
		if st := g.Stats(); g != dead && (st.State != store.StateClosed || st.Failures != 0) {
			t.Errorf("healthy node %s: %v, %d failures", g.Name(), st.State, st.Failures)
		}
	}
	if st := bound.Stats(); st.State != store.StateClosed {
		t.Errorf("bound breaker %v, want closed (it never trips)", st.State)
	}
	t.Logf("paused node's breaker open after %d calls, slowest %v (bound %v, node %v); then refused in %v",
		calls, slowest, store.DefaultOpTimeout, store.DefaultNodeOpTimeout, fast)
}

func minLen(m map[string][]string) int {
	n := -1
	for _, v := range m {
		if n < 0 || len(v) < n {
			n = len(v)
		}
	}
	return n
}
