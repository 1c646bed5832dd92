package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// boundedStub is a stubStore that says it ends its calls by their
// context's deadline, so that a Guard runs them inline.
type boundedStub struct{ *stubStore }

func (boundedStub) boundsCalls() bool { return true }

func TestGuardInlineOnlyForClientsThatEndCallsByDeadline(t *testing.T) {
	cases := []struct {
		name   string
		client func() redis.UniversalClient
		inline bool
	}{
		{"defaults", func() redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
		}, false},
		{"ContextTimeoutEnabled", func() redis.UniversalClient {
			return redis.NewClient(bounded(nil))
		}, true},
		{"ContextTimeoutEnabled, RESP2", func() redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true, Protocol: 2})
		}, true},
		{"ContextTimeoutEnabled, maintenance notifications by default", func() redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
		}, false},
		{"ContextTimeoutEnabled, no socket timeouts (-1)", func() redis.UniversalClient {
			return redis.NewClient(bounded(func(o *redis.Options) { o.ReadTimeout, o.WriteTimeout = -1, -1 }))
		}, true},
		{"ContextTimeoutEnabled, deadlines never set (-2)", func() redis.UniversalClient {
			return redis.NewClient(bounded(func(o *redis.Options) { o.ReadTimeout = -2 }))
		}, false},
		{"ContextTimeoutEnabled, writes never bounded (-2)", func() redis.UniversalClient {
			return redis.NewClient(bounded(func(o *redis.Options) { o.WriteTimeout = -2 }))
		}, false},
		{"ContextTimeoutEnabled, OnConnect", func() redis.UniversalClient {
			return redis.NewClient(bounded(func(o *redis.Options) {
				o.OnConnect = func(context.Context, *redis.Conn) error { return nil }
			}))
		}, false},
		{"ContextTimeoutEnabled, credentials callback", func() redis.UniversalClient {
			return redis.NewClient(bounded(func(o *redis.Options) {
				o.CredentialsProvider = func() (string, string) { return "", "" }
			}))
		}, false},
		{"Sentinel", func() redis.UniversalClient {
			return redis.NewFailoverClient(&redis.FailoverOptions{
				MasterName: "m", SentinelAddrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true,
			})
		}, false},
		{"Cluster", func() redis.UniversalClient {
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true})
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.client()
			t.Cleanup(func() { c.Close() })
			s, err := NewRedis(c)
			if err != nil {
				t.Fatal(err)
			}
			if g := newTestGuard(t, s); g.inline != tc.inline {
				t.Errorf("inline = %v, want %v", g.inline, tc.inline)
			}
		})
	}
	if g := newTestGuard(t, newStubStore()); g.inline {
		t.Error("a store that does not say it ends calls by their deadline runs inline")
	}
}

// bounded returns the options of a client whose calls a guard runs
// inline (ContextTimeoutEnabled, maintenance notifications off), changed
// by opt.
func bounded(opt func(*redis.Options)) *redis.Options {
	o := &redis.Options{
		Addr: "127.0.0.1:1", ContextTimeoutEnabled: true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if opt != nil {
		opt(o)
	}
	return o
}

type ctxKey struct{}

func TestGuardInlineContext(t *testing.T) {
	const opTimeout = 200 * time.Millisecond
	s := boundedStub{newStubStore()}
	g := newTestGuard(t, s, WithOpTimeout(opTimeout))
	if !g.inline {
		t.Fatal("guard over a bounded store does not run inline")
	}
	var seen context.Context
	s.setFail(func(ctx context.Context) error { seen = ctx; return nil })

	parent := context.WithValue(context.Background(), ctxKey{}, "mine")
	before := time.Now()
	if err := g.Set(parent, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if got := seen.Value(ctxKey{}); got != "mine" {
		t.Errorf("the store sees value %v, want the caller's", got)
	}
	d, ok := seen.Deadline()
	if !ok {
		t.Fatal("the store's context has no deadline")
	}
	// The deadline is at most the op timeout from the call's start, and at
	// most the window's slack less.
	if latest := after.Add(opTimeout); d.After(latest) {
		t.Errorf("deadline %v after the call's start, want at most the op timeout %v", d.Sub(before), opTimeout)
	}
	if earliest := before.Add(opTimeout - g.windowSlack()); d.Before(earliest) {
		t.Errorf("deadline %v after the call's start, want at least %v", d.Sub(before), opTimeout-g.windowSlack())
	}
	if got := g.Stats().InFlight; got != 0 {
		t.Errorf("InFlight = %d after the call returned", got)
	}

	// A caller's earlier deadline wins.
	short, cancel := context.WithTimeout(parent, opTimeout/2)
	defer cancel()
	want, _ := short.Deadline()
	if _, err := g.Get(short, "k"); err != nil {
		t.Fatal(err)
	}
	if d, _ := seen.Deadline(); !d.Equal(want) {
		t.Errorf("deadline %v, want the caller's %v", d, want)
	}
	if got := seen.Value(ctxKey{}); got != "mine" {
		t.Errorf("with the caller's deadline the store sees value %v, want the caller's", got)
	}
}

func TestGuardInlineTimeout(t *testing.T) {
	const opTimeout = 20 * time.Millisecond
	s := boundedStub{newStubStore()}
	g := newTestGuard(t, s, WithOpTimeout(opTimeout), WithFailureThreshold(100))
	// The store ends its call when its context is done, as go-redis does.
	s.setFail(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })

	_, err := g.Get(context.Background(), "k")
	if !errors.Is(err, context.DeadlineExceeded) || Classify(err) != ClassTimeout {
		t.Fatalf("Get = %v (%v), want the op timeout", err, Classify(err))
	}
	if !strings.Contains(err.Error(), "timed out after 20ms") {
		t.Errorf("error %q does not say the op timed out", err)
	}
	if st := g.Stats(); st.Timeouts != 1 || st.Failures != 1 || st.InFlight != 0 {
		t.Errorf("Stats = %+v, want one timeout, nothing in flight", st)
	}

	// A caller that goes away is not passed on: the call ends at its
	// deadline, and is counted as neither success nor failure.
	ctx, cancel := context.WithCancel(context.Background())
	entered := make(chan struct{})
	s.setFail(func(c context.Context) error {
		close(entered)
		<-c.Done()
		return c.Err()
	})
	go func() { <-entered; cancel() }()
	_, err = g.Get(ctx, "k")
	if !errors.Is(err, context.Canceled) || Classify(err) != ClassCanceled {
		t.Errorf("Get after the caller cancelled = %v (%v), want the caller's cancellation", err, Classify(err))
	}
	if st := g.Stats(); st.Failures != 1 {
		t.Errorf("Failures = %d after a cancelled call, want still 1", st.Failures)
	}

	// A caller gone before the call starts: the store is not asked, and
	// nothing is counted.
	calls := g.Stats().Calls
	reached := false
	s.setFail(func(context.Context) error { reached = true; return nil })
	_, err = g.Get(ctx, "k")
	if reached {
		t.Error("the store was asked for a caller that was gone")
	}
	if !errors.Is(err, context.Canceled) || Classify(err) != ClassCanceled || !strings.HasPrefix(err.Error(), "store: redis: get: ") {
		t.Errorf("Get for a caller gone = %v (%v), want the caller's cancellation, named", err, Classify(err))
	}
	if st := g.Stats(); st.Failures != 1 || st.InFlight != 0 || st.Calls != calls {
		t.Errorf("Stats = %+v, want still 1 failure, %d calls and nothing in flight", st, calls)
	}
}

// TestGuardInlineContextIsOneContext checks that the inline call's context
// behaves as one context: its cause and the contexts derived from it follow
// its own deadline, while its values are the caller's.
func TestGuardInlineContextIsOneContext(t *testing.T) {
	const opTimeout = 20 * time.Millisecond
	s := boundedStub{newStubStore()}
	g := newTestGuard(t, s, WithOpTimeout(opTimeout), WithFailureThreshold(100))
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "mine"))
	defer cancel()
	var cause error
	var childDone bool
	s.setFail(func(ctx context.Context) error {
		child, stop := context.WithCancel(ctx)
		defer stop()
		<-ctx.Done()
		<-child.Done() // a child ends with its parent
		childDone = true
		cause = context.Cause(ctx)
		if child.Value(ctxKey{}) != "mine" {
			return errors.New("the child lost the caller's value")
		}
		return ctx.Err()
	})
	_, err := g.Get(parent, "k")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get = %v, want the op timeout", err)
	}
	if !childDone || !errors.Is(cause, context.DeadlineExceeded) {
		t.Errorf("context.Cause = %v (child done %v), want the deadline", cause, childDone)
	}
}

func TestGuardInlinePanic(t *testing.T) {
	s := boundedStub{newStubStore()}
	g := newTestGuard(t, s, WithFailureThreshold(100))
	s.setFail(func(context.Context) error { panic("boom") })
	_, err := g.Get(context.Background(), "k")
	if err == nil || !strings.Contains(err.Error(), "panic in wrapped store: boom") {
		t.Fatalf("Get = %v, want the panic as an error", err)
	}
	if st := g.Stats(); st.Failures != 1 || st.InFlight != 0 {
		t.Errorf("Stats = %+v, want one failure and the slot back", st)
	}
}

func TestGuardInlineSetKeepsValue(t *testing.T) {
	s := boundedStub{newStubStore()}
	g := newTestGuard(t, s)
	v := []byte("value")
	if err := g.Set(context.Background(), "k", v, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := g.Get(context.Background(), "k")
	if err != nil || string(got) != "value" {
		t.Fatalf("Get = %q, %v", got, err)
	}
}

func TestGuardInlineAllocations(t *testing.T) {
	g := newTestGuard(t, boundedNop{})
	ctx := context.Background()
	allocs := testing.AllocsPerRun(2000, func() {
		if _, err := g.Get(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	})
	// One for the breaker's turn, one for the context; the shared deadline
	// window's timer is amortised over the calls of a window.
	if allocs > 2 {
		t.Errorf("an inline call allocates %v times, want at most 2", allocs)
	}
}

// boundedNop is nopStore run inline.
type boundedNop struct{ nopStore }

func (boundedNop) boundsCalls() bool { return true }

// TestGuardInlineBoundedByRealRedis pauses a real Redis under calls that
// run inline, with client timeouts of 10 s and one pooled connection: the
// calls that hold the connection and those waiting for it (or dialing a new
// one) all end at the op timeout, by the client's own deadline handling.
func TestGuardInlineBoundedByRealRedis(t *testing.T) {
	srv := redistest.Start(t)
	for _, warm := range []bool{true, false} {
		name := "pooled connection"
		if !warm {
			name = "dialing"
		}
		t.Run(name, func(t *testing.T) {
			rdb := redis.NewClient(bounded(func(o *redis.Options) {
				o.Addr, o.DisableIdentity = srv.Addr(), true
				o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = 10*time.Second, 10*time.Second, 10*time.Second
				o.PoolSize, o.MaxRetries = 1, 3
			}))
			st, err := NewRedis(rdb)
			if err != nil {
				t.Fatal(err)
			}
			g := newTestGuard(t, st, WithFailureThreshold(100), WithOpenPeriod(time.Hour))
			t.Cleanup(func() { rdb.Close() })
			if !g.inline {
				t.Fatal("guard does not run inline")
			}
			if warm {
				if err := g.Set(context.Background(), "k", []byte("v"), time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			srv.Pause()
			defer srv.Resume()
			const n = 4
			var wg sync.WaitGroup
			errs := make([]error, n)
			took := make([]time.Duration, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					took[i], errs[i] = timed(func() error { _, err := g.Get(context.Background(), "k"); return err })
				}()
			}
			wg.Wait()
			for i := range n {
				if took[i] > itBounded {
					t.Errorf("call %d took %v, want at most %v (the client would wait 10 s)", i, took[i], itBounded)
				}
				if !errors.Is(errs[i], context.DeadlineExceeded) || Classify(errs[i]) != ClassTimeout {
					t.Errorf("call %d: %v, want the op timeout", i, errs[i])
				}
			}
			if st := g.Stats(); st.InFlight != 0 || st.Timeouts != n {
				t.Errorf("Stats = %+v, want %d timeouts and nothing left in flight", st, n)
			}
			// Back: a call succeeds again. The first ones may still time out
			// (a new connection, a server catching up on a loaded machine):
			// wait for one, bounded.
			srv.Resume()
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
				if err = g.Set(context.Background(), "k2", []byte("v"), time.Minute); err == nil {
					break
				}
			}
			if err != nil {
				t.Errorf("10 s after resuming: %v", err)
			}
		})
	}
}
