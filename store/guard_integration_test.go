package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// These tests run the guard and the hook against a real redis-server and
// make real outages: kill, pause (SIGSTOP), restart empty.

const (
	itOpTimeout = 100 * time.Millisecond // the default
	itSlack     = 100 * time.Millisecond // allowed beyond the op timeout (scheduling under -race)
	itFast      = 5 * time.Millisecond   // "costs nothing": a refused call
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
}

// timed runs call and returns its duration and error.
func timed(call func() error) (time.Duration, error) {
	start := time.Now()
	err := call()
	return time.Since(start), err
}

// tripAndCheck makes calls against a failing server: each must end within
// the op timeout plus slack with an outage, the breaker must open after
// threshold of them, and then calls must be refused at once.
func tripAndCheck(t *testing.T, c *itConn, threshold int) {
	t.Helper()
	var worst time.Duration
	for i := 0; i < threshold; i++ {
		ctx := TrackFailures(context.Background())
		took, err := timed(func() error { return c.get(ctx, "k") })
		worst = max(worst, took)
		if took > itOpTimeout+itSlack {
			t.Errorf("call %d took %v, want at most %v", i, took, itOpTimeout+itSlack)
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
	for i := 0; i < 100; i++ {
		ctx := TrackFailures(context.Background())
		took, err := timed(func() error { return c.get(ctx, "k") })
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("while open: %v, want ErrUnavailable", err)
		}
		if took > itFast {
			t.Errorf("refused call took %v", took)
		}
		if _, ok := FailureSeen(ctx); !ok {
			t.Fatalf("refusal not recorded in the context")
		}
	}
}

func TestGuardIntegrationUp(t *testing.T) {
	srv := redistest.Start(t)
	for _, tg := range itTargets {
		t.Run(tg.name, func(t *testing.T) {
			c := tg.build(t, srv, nil, WithFailureThreshold(3), WithOpenPeriod(time.Hour))
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
			// Callers keep calling; the breaker must let a probe through after
			// the open period and close on its success.
			var last error
			waitUntil(t, openPeriod+time.Second, "the breaker to close", func() bool {
				last = c.get(ctx, "k")
				return c.g.State() == StateClosed
			})
			t.Logf("closed %v after opening (open period %v)", time.Since(opened), openPeriod)
			if !isMiss(last) {
				t.Errorf("first read after the restart: %v, want a miss", last)
			}
			if took := time.Since(opened); took > openPeriod+itOpTimeout+itSlack {
				t.Errorf("closed %v after opening, want within the open period plus one probe", took)
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
				if took > itOpTimeout+itSlack {
					t.Errorf("GET %d took %v", i, took)
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
