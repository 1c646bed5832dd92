package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// These tests run the guard and the hook against a real redis-server and
// make real outages: kill, pause (SIGSTOP), restart empty.

const (
	itOpTimeout = 100 * time.Millisecond // the default
	// itBounded tells a call bounded by the op timeout from one that waited
	// on the client's own timeouts: go-redis' default ReadTimeout is 3 s (and
	// it retries), and the other itClients wait 10 s or for ever. A bounded
	// call ends within about one op timeout; 1 s leaves room for a loaded
	// two-core runner under -race and still fails on the first such wait.
	itBounded = time.Second
)

// itTarget is one way of reaching Redis through a guard: the Redis store
// wrapped in a Guard, or a client with the Hook.
type itTarget struct {
	name string
	// build returns the guard and calls for one server. get reports a miss
	// as isMiss does.
	build func(t *testing.T, srv *redistest.Server, clientOpt func(*redis.Options), guardOpts ...GuardOption) *itConn
}

type itConn struct {
	g   *Guard
	get func(ctx context.Context, key string) error
	set func(ctx context.Context, key, value string) error
}

func isMiss(err error) bool { return errors.Is(err, ErrNotFound) || errors.Is(err, redis.Nil) }

// itClient builds a client for srv; cleanup closes it before the guard
// (registered earlier) is closed, so that abandoned calls end at once.
func itClient(t *testing.T, srv *redistest.Server, clientOpt func(*redis.Options)) *redis.Client {
	opt := &redis.Options{Addr: srv.Addr(), DisableIdentity: true}
	if clientOpt != nil {
		clientOpt(opt)
	}
	return redis.NewClient(opt)
}

var itTargets = []itTarget{
	{
		name: "guarded Redis store",
		build: func(t *testing.T, srv *redistest.Server, clientOpt func(*redis.Options), guardOpts ...GuardOption) *itConn {
			rdb := itClient(t, srv, clientOpt)
			st, err := NewRedis(rdb)
			if err != nil {
				t.Fatal(err)
			}
			g := newTestGuard(t, st, guardOpts...)
			t.Cleanup(func() { rdb.Close() }) // runs before g.Close
			return &itConn{
				g:   g,
				get: func(ctx context.Context, key string) error { _, err := g.Get(ctx, key); return err },
				set: func(ctx context.Context, key, value string) error {
					return g.Set(ctx, key, []byte(value), time.Hour)
				},
			}
		},
	},
	{
		name: "client with hook",
		build: func(t *testing.T, srv *redistest.Server, clientOpt func(*redis.Options), guardOpts ...GuardOption) *itConn {
			g := newTestGuard(t, unusedStore{}, guardOpts...)
			h, err := NewHook(g)
			if err != nil {
				t.Fatal(err)
			}
			rdb := itClient(t, srv, clientOpt)
			rdb.AddHook(h)
			t.Cleanup(func() { rdb.Close() })
			return &itConn{
				g:   g,
				get: func(ctx context.Context, key string) error { return rdb.Get(ctx, key).Err() },
				set: func(ctx context.Context, key, value string) error { return rdb.Set(ctx, key, value, time.Hour).Err() },
			}
		},
	},
}

// itClients are client configurations whose own timeouts would let a call
// to a hung server wait for seconds or for ever.
var itClients = []struct {
	name string
	opt  func(*redis.Options)
}{
	{"defaults", nil},
	{"no socket deadlines (-1), 3 retries", func(o *redis.Options) {
		o.ReadTimeout, o.WriteTimeout, o.MaxRetries = -1, -1, 3
	}},
	{"deadlines never set (-2), 3 retries", func(o *redis.Options) {
		o.ReadTimeout, o.WriteTimeout, o.MaxRetries = -2, -2, 3
	}},
	{"10 s timeouts, 3 retries", func(o *redis.Options) {
		o.ReadTimeout, o.WriteTimeout, o.MaxRetries = 10*time.Second, 10*time.Second, 3
	}},
	// The guard runs the calls of a Redis store over this client on the
	// caller's goroutine: the bound comes from the client's deadlines.
	{"context deadlines, 10 s timeouts, 3 retries, one connection", func(o *redis.Options) {
		o.ContextTimeoutEnabled = true
		o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		o.ReadTimeout, o.WriteTimeout, o.MaxRetries = 10*time.Second, 10*time.Second, 3
		o.PoolSize, o.PoolTimeout = 1, 10*time.Second
	}},
}

// timed runs call and returns its duration and error.
func timed(call func() error) (time.Duration, error) {
	start := time.Now()
	err := call()
	return time.Since(start), err
}

// tripAndCheck makes calls against a failing server: each must end with an
// outage well before the client's own timeouts would end it (itBounded), the
// breaker must open after threshold of them, and then calls must be refused
// without reaching Redis.
func tripAndCheck(t *testing.T, c *itConn, threshold int) {
	t.Helper()
	var worst time.Duration
	for i := 0; i < threshold; i++ {
		ctx := TrackFailures(context.Background())
		took, err := timed(func() error { return c.get(ctx, "k") })
		worst = max(worst, took)
		if took > itBounded {
			t.Errorf("call %d took %v, want at most %v", i, took, itBounded)
		}
		if !IsUnavailable(err) {
			t.Errorf("call %d: %v, want an outage", i, err)
		}
		if _, ok := FailureSeen(ctx); !ok {
			t.Errorf("call %d: outage not recorded in the context", i)
		}
	}
	t.Logf("slowest failing call: %v", worst)
	if s := c.g.State(); s != StateOpen {
		t.Fatalf("after %d failures State() = %v, want open", threshold, s)
	}
	// "Costs nothing" is checked by what a refusal does, not by how fast an
	// idle machine runs it: it must not reach Redis (Calls stays put), and
	// the refusals together must take less than one op timeout each. A
	// refusal that waited on the down server would wait at least the op
	// timeout (a timer cannot fire early), so n of them at least n op
	// timeouts; healthy, they take microseconds.
	before := c.g.Stats()
	const refusals = 100
	var total time.Duration
	for i := 0; i < refusals; i++ {
		ctx := TrackFailures(context.Background())
		took, err := timed(func() error { return c.get(ctx, "k") })
		total += took
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("while open: %v, want ErrUnavailable", err)
		}
		if _, ok := FailureSeen(ctx); !ok {
			t.Fatalf("refusal not recorded in the context")
		}
	}
	if after := c.g.Stats(); after.Calls != before.Calls || after.Rejected-before.Rejected != refusals {
		t.Errorf("while open: %d calls reached Redis, %d refused; want 0, %d",
			after.Calls-before.Calls, after.Rejected-before.Rejected, refusals)
	}
	if total >= refusals*itOpTimeout {
		t.Errorf("%d refused calls took %v, as long as one op timeout each", refusals, total)
	}
}

func TestGuardIntegrationUp(t *testing.T) {
	srv := redistest.Start(t)
	for _, tg := range itTargets {
		t.Run(tg.name, func(t *testing.T) {
			// A generous op timeout: this test checks the calls go through
			// and are counted, and a loaded runner must not turn a healthy
			// round trip into a timeout.
			c := tg.build(t, srv, nil, WithFailureThreshold(3), WithOpenPeriod(time.Hour), WithOpTimeout(itBounded))
			ctx := context.Background()
			if err := c.set(ctx, "up", "v"); err != nil {
				t.Fatalf("set: %v", err)
			}
			if err := c.get(ctx, "up"); err != nil {
				t.Fatalf("get: %v", err)
			}
			if err := c.get(ctx, "nope"); !isMiss(err) {
				t.Fatalf("get missing: %v, want a miss", err)
			}
			if st := c.g.Stats(); st.State != StateClosed || st.Failures != 0 || st.Calls != 3 {
				t.Errorf("Stats = %+v", st)
			}
		})
	}
}

func TestGuardIntegrationKilled(t *testing.T) {
	for _, tg := range itTargets {
		t.Run(tg.name, func(t *testing.T) {
			srv := redistest.Start(t)
			c := tg.build(t, srv, nil, WithFailureThreshold(3), WithOpenPeriod(time.Hour))
			if err := c.set(context.Background(), "k", "v"); err != nil {
				t.Fatalf("set: %v", err)
			}
			srv.Kill()
			tripAndCheck(t, c, 3)
		})
	}
}

func TestGuardIntegrationPaused(t *testing.T) {
	for _, tg := range itTargets {
		t.Run(tg.name, func(t *testing.T) {
			for _, cl := range itClients {
				t.Run(cl.name, func(t *testing.T) {
					srv := redistest.Start(t)
					c := tg.build(t, srv, cl.opt, WithFailureThreshold(5), WithOpenPeriod(time.Hour))
					ctx := context.Background()
					if err := c.set(ctx, "k", "v"); err != nil {
						t.Fatalf("set: %v", err)
					}
					srv.Pause()
					t.Cleanup(srv.Resume) // before the client and the guard close
					tripAndCheck(t, c, 5)
					if st := c.g.Stats(); st.Timeouts != 5 {
						t.Errorf("Timeouts = %d, want 5", st.Timeouts)
					}
				})
			}
		})
	}
}

func TestGuardIntegrationRestartedEmpty(t *testing.T) {
	const openPeriod = 300 * time.Millisecond
	for _, tg := range itTargets {
		t.Run(tg.name, func(t *testing.T) {
			srv := redistest.Start(t)
			tr := &changeLog{}
			c := tg.build(t, srv, nil, WithFailureThreshold(3), WithOpenPeriod(openPeriod), WithOnStateChange(tr.record))
			ctx := context.Background()
			if err := c.set(ctx, "k", "v"); err != nil {
				t.Fatalf("set: %v", err)
			}
			srv.Kill()
			for i := 0; i < 3; i++ {
				c.get(ctx, "k")
			}
			if s := c.g.State(); s != StateOpen {
				t.Fatalf("State() = %v after 3 failures, want open", s)
			}
			opened := time.Now()
			srv.Restart()
			// Measured from the restart's end, not from the trip: starting
			// redis-server on a loaded machine can take longer than the open
			// period, and a probe sent before it listens fails and reopens the
			// breaker for another open period.
			back := time.Now()
			// Callers keep calling; the breaker must let a probe through after
			// the open period and close on its success.
			var last error
			waitUntil(t, openPeriod+itBounded, "the breaker to close", func() bool {
				last = c.get(ctx, "k")
				return c.g.State() == StateClosed
			})
			t.Logf("closed %v after opening, %v after the restart (open period %v)", time.Since(opened), time.Since(back), openPeriod)
			if !isMiss(last) {
				t.Errorf("first read after the restart: %v, want a miss", last)
			}
			// A breaker that kept to a longer open period (the 5 s default, a
			// minute) or needed several probes would close far later; 1 s of
			// room covers the probe and scheduling on a loaded runner.
			if took := time.Since(back); took > openPeriod+itBounded {
				t.Errorf("closed %v after Redis came back, want within the open period plus one probe", took)
			}
			if err := c.set(ctx, "k", "v2"); err != nil {
				t.Errorf("set after recovery: %v", err)
			}
			if err := c.get(ctx, "k"); err != nil {
				t.Errorf("get after recovery: %v", err)
			}
			want := []string{"redis:closed->open", "redis:open->half-open", "redis:half-open->closed"}
			if got := tr.list(); !sameStrings(got, want) {
				t.Errorf("state changes %q, want %q", got, want)
			}
		})
	}
}

func TestHookIntegrationCacheMode(t *testing.T) {
	outages := []struct {
		name string
		make func(srv *redistest.Server)
	}{
		{"paused", func(srv *redistest.Server) { srv.Pause() }},
		{"killed", func(srv *redistest.Server) { srv.Kill() }},
	}
	for _, o := range outages {
		t.Run(o.name, func(t *testing.T) {
			srv := redistest.Start(t)
			g := newTestGuard(t, unusedStore{}, WithFailureThreshold(3), WithOpenPeriod(time.Hour))
			h, err := NewHook(g, WithCacheMode(true))
			if err != nil {
				t.Fatal(err)
			}
			rdb := itClient(t, srv, func(o *redis.Options) { o.ReadTimeout, o.MaxRetries = 10*time.Second, 3 })
			rdb.AddHook(h)
			t.Cleanup(func() { rdb.Close() })
			ctx := context.Background()
			if err := rdb.Set(ctx, "k", "v", time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			o.make(srv)
			t.Cleanup(func() {
				if o.name == "paused" {
					srv.Resume()
				}
			})
			// Before and after the breaker opens.
			for i := 0; i < 5; i++ {
				rctx := TrackFailures(ctx)
				took, err := timed(func() error { return rdb.Get(rctx, "k").Err() })
				if err != redis.Nil {
					t.Errorf("GET %d: %v, want redis.Nil", i, err)
				}
				if took > itBounded { // the client's own read timeout is 10 s
					t.Errorf("GET %d took %v, want at most %v", i, took, itBounded)
				}
				set := rdb.Set(rctx, "k", "v2", time.Hour)
				if set.Err() != nil || set.Val() != "OK" {
					t.Errorf("SET %d: %v %q, want dropped (nil, OK)", i, set.Err(), set.Val())
				}
				cmds, err := rdb.Pipelined(rctx, func(p redis.Pipeliner) error {
					p.Get(rctx, "a")
					p.Del(rctx, "b")
					return nil
				})
				if err != redis.Nil || cmds[0].Err() != redis.Nil || cmds[1].Err() != nil {
					t.Errorf("pipeline %d: %v, %v", i, err, cmds)
				}
				if c, ok := FailureSeen(rctx); !ok || !c.Outage() {
					t.Errorf("request %d: FailureSeen = %v, %v", i, c, ok)
				}
			}
			if h.Dropped() != 10 {
				t.Errorf("Dropped() = %d, want 10", h.Dropped())
			}
			if g.State() != StateOpen {
				t.Errorf("State() = %v, want open", g.State())
			}
		})
	}
}
