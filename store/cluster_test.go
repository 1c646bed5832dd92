package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// newNodeClient builds a client for addr, as a cluster client would for a
// node, and hands it to attach before its first command.
func newNodeClient(t *testing.T, addr string, attach func(*redis.Client)) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true, DialerRetries: 1, MaxRetries: -1})
	attach(c)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestNewNodeGuards(t *testing.T) {
	if _, err := NewNodeGuards(WithOpTimeout(-time.Second)); err == nil {
		t.Error("NewNodeGuards accepted a negative op timeout")
	}
	if _, err := NewNodeGuards(nil); err == nil {
		t.Error("NewNodeGuards accepted a nil option")
	}
	if _, err := NewNodeGuards(WithMaxKeyBytes(0)); err == nil {
		t.Error("NewNodeGuards accepted a key limit of 0 for its node stores")
	}
	n, err := NewNodeGuards()
	if err != nil {
		t.Fatal(err)
	}
	if n.cfg.guard.opTimeout != DefaultNodeOpTimeout {
		t.Errorf("node op timeout %v, want %v", n.cfg.guard.opTimeout, DefaultNodeOpTimeout)
	}
	if gs := n.Guards(); len(gs) != 0 {
		t.Errorf("Guards() = %v before any node", gs)
	}
	if g := n.Guard("127.0.0.1:1"); g != nil {
		t.Errorf("Guard of an unknown node = %v", g)
	}
	var zero *NodeGuards
	if zero.Guards() != nil || zero.Guard("x") != nil || zero.Dropped() != 0 || zero.Forget("x") || zero.Close() != nil {
		t.Error("nil NodeGuards is not inert")
	}
	if _, err := zero.Bound(unusedStore{}); err == nil {
		t.Error("Bound on a nil NodeGuards succeeded")
	}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	defer func() {
		if p := recover(); p == nil || !strings.Contains(p.(string), "store:") {
			t.Errorf("OnNewNode on a zero NodeGuards: panic %v, want a store: panic", p)
		}
	}()
	(&NodeGuards{}).OnNewNode(c)
}

func TestNodeGuardsBound(t *testing.T) {
	n, err := NewNodeGuards(WithOpTimeout(20 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    []GuardOption
		wantErr bool
	}{
		{"default 100ms over 20ms", nil, false},
		{"equal to the nodes'", []GuardOption{WithOpTimeout(20 * time.Millisecond)}, true},
		{"below the nodes'", []GuardOption{WithOpTimeout(10 * time.Millisecond)}, true},
		{"invalid option", []GuardOption{WithMaxInFlight(0)}, true},
		{"nil option", []GuardOption{nil}, true},
		{"other guard options", []GuardOption{WithName("b"), WithMaxInFlight(8), WithLogger(nil), WithClock(time.Now)}, false},
		// The bound never opens: the options that tune opening are errors,
		// not silently ignored.
		{"failure threshold", []GuardOption{WithFailureThreshold(3)}, true},
		{"open period", []GuardOption{WithOpenPeriod(time.Second)}, true},
		{"half-open requests", []GuardOption{WithHalfOpenRequests(2)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := n.Bound(unusedStore{}, tt.opts...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Bound: err %v, want error %v", err, tt.wantErr)
			}
			if g != nil {
				g.Close()
			}
		})
	}
	if _, err := n.Bound(nil); err == nil {
		t.Error("Bound accepted a nil store")
	}

	// The bound's breaker counts but never trips; each call still waits at
	// most the op timeout.
	g, err := n.Bound(hangingStore{}, WithOpTimeout(30*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for range 3 * DefaultFailureThreshold {
		start := time.Now()
		_, err := g.Get(t.Context(), "k")
		if Classify(err) != ClassTimeout {
			t.Fatalf("Get on a hung store: %v, want a timeout", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("Get took %v", took)
		}
	}
	if st := g.Stats(); st.State != StateClosed || st.Trips != 0 || st.Failures != 3*DefaultFailureThreshold {
		t.Errorf("bound stats %+v: want closed, no trip, %d failures", st, 3*DefaultFailureThreshold)
	}
}

// hangingStore blocks every call until its context ends.
type hangingStore struct{}

func (hangingStore) Get(ctx context.Context, _ string) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (hangingStore) Set(ctx context.Context, _ string, _ []byte, _ time.Duration) error {
	<-ctx.Done()
	return ctx.Err()
}
func (hangingStore) Delete(ctx context.Context, _ string) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestNodeGuardsBreakerPerNode is the point of NodeGuards: two nodes, one
// dies, only its breaker opens; clients of one address share its guard
// whatever their mode.
func TestNodeGuardsBreakerPerNode(t *testing.T) {
	a, b := miniredis.RunT(t), miniredis.RunT(t)
	n, err := NewNodeGuards(WithFailureThreshold(3), WithOpenPeriod(time.Minute), WithName("cl"), WithOpTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := t.Context()
	plainA := newNodeClient(t, a.Addr(), n.OnNewNode)
	plainB := newNodeClient(t, b.Addr(), n.OnNewNode)
	cacheA := newNodeClient(t, a.Addr(), n.OnNewNodeCacheMode)

	for _, c := range []*redis.Client{plainA, plainB, cacheA} {
		if err := c.Set(ctx, "k", "v", time.Minute).Err(); err != nil {
			t.Fatalf("SET through %s: %v", c.Options().Addr, err)
		}
	}
	gs := n.Guards()
	if len(gs) != 2 {
		t.Fatalf("%d guards for two nodes", len(gs))
	}
	want := []string{"cl@" + a.Addr(), "cl@" + b.Addr()}
	slices.Sort(want)
	if got := []string{gs[0].Name(), gs[1].Name()}; !slices.Equal(got, want) {
		t.Errorf("guard names %q, want %q, sorted", got, want)
	}
	addrA := a.Addr()
	ga, gb := n.Guard(addrA), n.Guard(b.Addr())
	if ga == nil || gb == nil || ga == gb {
		t.Fatalf("Guard(a) = %p, Guard(b) = %p", ga, gb)
	}
	if got := ga.Stats().Calls; got != 2 {
		t.Errorf("node a's guard saw %d calls from its two clients, want 2", got)
	}

	a.Close()
	for range 3 {
		if err := plainA.Get(ctx, "k").Err(); !IsUnavailable(err) {
			t.Fatalf("GET on dead node a: %v, want an outage", err)
		}
	}
	if ga.State() != StateOpen {
		t.Fatalf("node a's breaker %v after 3 failures, want open", ga.State())
	}
	err = plainA.Get(ctx, "k").Err()
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "cl@"+addrA) {
		t.Errorf("GET with a's breaker open: %v, want ErrUnavailable naming the node", err)
	}
	// The cache-mode client of a shares the open breaker: a miss, a
	// dropped write.
	if err := cacheA.Get(ctx, "k").Err(); err != redis.Nil {
		t.Errorf("cache-mode GET on dead node a: %v, want redis.Nil", err)
	}
	if err := cacheA.Set(ctx, "k", "v", time.Minute).Err(); err != nil {
		t.Errorf("cache-mode SET on dead node a: %v, want dropped", err)
	}
	if d := n.Dropped(); d != 1 {
		t.Errorf("Dropped() = %d, want 1", d)
	}
	// Node b is untouched.
	if v, err := plainB.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Errorf("GET on healthy node b: %q, %v", v, err)
	}
	if st := gb.Stats(); st.State != StateClosed || st.Failures != 0 {
		t.Errorf("node b's guard %+v, want closed without failures", st)
	}
}

// TestNodeGuardsGuardStore: a node guard's own Store methods reach its node
// through the node's client, counted once (not again by the hook).
func TestNodeGuardsGuardStore(t *testing.T) {
	m := miniredis.RunT(t)
	n, err := NewNodeGuards(WithPrefix("p:"), WithOpTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	newNodeClient(t, m.Addr(), n.OnNewNode)
	g := n.Guard(m.Addr())
	ctx := t.Context()
	if err := g.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, err := g.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if err := g.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Get("p:k"); got != "v" {
		t.Errorf("node holds %q under p:k", got)
	}
	if st := g.Stats(); st.Calls != 3 {
		t.Errorf("node guard counted %d calls for 3, want 3 (the hook must not count them again)", st.Calls)
	}
	// A guard whose node has no client yet answers ErrClosed.
	n2, _ := NewNodeGuards()
	nd := n2.newNode("127.0.0.1:1")
	if _, err := nd.guard.Get(ctx, "k"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get before any client: %v, want ErrClosed", err)
	}
}

func TestNodeGuardsForgetAndClose(t *testing.T) {
	m := miniredis.RunT(t)
	n, err := NewNodeGuards(WithOpTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	c1 := newNodeClient(t, m.Addr(), n.OnNewNode)
	g1 := n.Guard(m.Addr())
	// A new client for the same address (go-redis replaces a node's client
	// after a topology change) keeps the guard.
	newNodeClient(t, m.Addr(), n.OnNewNode)
	if n.Guard(m.Addr()) != g1 || len(n.Guards()) != 1 {
		t.Fatal("a second client of one address got a second guard")
	}
	if !n.Forget(m.Addr()) || n.Forget(m.Addr()) || len(n.Guards()) != 0 {
		t.Fatal("Forget did not drop the node exactly once")
	}
	newNodeClient(t, m.Addr(), n.OnNewNode)
	if g := n.Guard(m.Addr()); g == nil || g == g1 {
		t.Fatal("a client made after Forget did not get a new guard")
	}
	n.Close()
	if err := c1.Ping(t.Context()).Err(); err != nil {
		t.Errorf("forgotten guard was closed by Close: %v", err)
	}
	late := newNodeClient(t, m.Addr(), n.OnNewNode)
	if err := late.Ping(t.Context()).Err(); !errors.Is(err, ErrClosed) {
		t.Errorf("PING after Close: %v, want ErrClosed", err)
	}
}

// ExampleNodeGuards wires a cache over a Redis Cluster as [NodeGuards]
// recommends: a breaker per node, one bound over the whole call, the
// in-process tier in front. (It needs a cluster, so it is compiled, not
// run.)
func ExampleNodeGuards() {
	guards, err := NewNodeGuards() // 50 ms per node command, a breaker per node
	if err != nil {
		panic(err)
	}
	defer guards.Close()

	// The cache's own client: outages are errors, which Tiered needs to see.
	cacheRDB := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:         []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"},
		DialerRetries: 1, // a dead node refuses at once
	})
	cacheRDB.OnNewNode(guards.OnNewNode)
	defer cacheRDB.Close()

	// The client of a handler that calls Redis itself: cache mode, the same
	// node breakers.
	appRDB := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:         []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"},
		DialerRetries: 1,
	})
	appRDB.OnNewNode(guards.OnNewNodeCacheMode)
	defer appRDB.Close()

	remote, err := NewRedis(cacheRDB)
	if err != nil {
		panic(err)
	}
	bound, err := guards.Bound(remote, WithName("redis-cluster")) // 100 ms, never trips
	if err != nil {
		panic(err)
	}
	defer bound.Close()
	local, err := NewMemory(64 << 20)
	if err != nil {
		panic(err)
	}
	defer local.Close()
	tiered, err := NewTiered(local, bound)
	if err != nil {
		panic(err)
	}
	defer tiered.Close()
	// tiered goes to middleware.New; guards.Guards to health.WithBreakerChecks.
}
