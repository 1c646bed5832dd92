package store

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// newHookTest builds a guard (closed at the end of the test), a hook over
// it, and a client for addr with the hook added before its first command.
func newHookTest(t testing.TB, addr string, clientOpt func(*redis.Options), guardOpts []GuardOption, hookOpts ...HookOption) (*redis.Client, *Hook, *Guard) {
	t.Helper()
	g := newTestGuard(t, unusedStore{}, guardOpts...)
	h, err := NewHook(g, hookOpts...)
	if err != nil {
		t.Fatalf("NewHook: %v", err)
	}
	opt := &redis.Options{Addr: addr, DisableIdentity: true}
	if clientOpt != nil {
		clientOpt(opt)
	}
	rdb := redis.NewClient(opt)
	rdb.AddHook(h)
	t.Cleanup(func() { rdb.Close() })
	return rdb, h, g
}

// unusedStore is the Store of a guard used only through a hook.
type unusedStore struct{}

func (unusedStore) Get(context.Context, string) ([]byte, error) { return nil, ErrNotFound }
func (unusedStore) Set(context.Context, string, []byte, time.Duration) error {
	return nil
}
func (unusedStore) Delete(context.Context, string) error { return nil }

// muteServer accepts TCP connections on a loopback port and never answers:
// a blackholed Redis. It returns the address.
func muteServer(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

func TestNewHookErrors(t *testing.T) {
	g := newTestGuard(t, unusedStore{})
	tests := []struct {
		name string
		g    *Guard
		opts []HookOption
		want string
	}{
		{"nil guard", nil, nil, "nil Guard"},
		{"nil option", g, []HookOption{nil}, "nil Option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewHook(tt.g, tt.opts...)
			if err == nil || h != nil {
				t.Fatalf("NewHook = %v, %v; want nil and an error", h, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestHookPassesThrough(t *testing.T) {
	m := miniredis.RunT(t)
	var mu sync.Mutex
	var ops []string
	rdb, h, g := newHookTest(t, m.Addr(), nil, []GuardOption{WithObserver(func(_, op string, _ time.Duration, _ Class) {
		mu.Lock()
		ops = append(ops, op)
		mu.Unlock()
	})})
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", time.Minute).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET = %q, %v", v, err)
	}
	if err := rdb.Get(ctx, "missing").Err(); err != redis.Nil {
		t.Fatalf("GET missing: %v, want redis.Nil", err)
	}
	cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, "n")
		p.Incr(ctx, "n")
		return nil
	})
	if err != nil || cmds[1].(*redis.IntCmd).Val() != 2 {
		t.Fatalf("pipeline: %v, %v", cmds, err)
	}
	if err := rdb.Do(ctx, "GET", "k").Err(); err != nil {
		t.Fatalf("DO GET: %v", err)
	}
	// The connection handshake (HELLO) runs inside the first command: it
	// must not count as a call of its own.
	if st := g.Stats(); st.Calls != 5 || st.Failures != 0 || st.State != StateClosed {
		t.Errorf("Stats = %+v, want 5 calls, no failures, closed", st)
	}
	if h.Dropped() != 0 {
		t.Errorf("Dropped() = %d", h.Dropped())
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"set", "get", "get", "pipeline", "get"}
	if !sameStrings(ops, want) {
		t.Errorf("observer ops = %q, want %q", ops, want)
	}
}

func TestHookClassification(t *testing.T) {
	const threshold = 2
	tests := []struct {
		name      string
		setup     func(m *miniredis.Miniredis)
		cmd       func(ctx context.Context, rdb *redis.Client) error
		wantState State
		wantErr   func(error) bool
	}{
		{
			name:      "miss",
			cmd:       func(ctx context.Context, rdb *redis.Client) error { return rdb.Get(ctx, "nope").Err() },
			wantState: StateClosed,
			wantErr:   func(err error) bool { return err == redis.Nil },
		},
		{
			name:      "WRONGTYPE",
			setup:     func(m *miniredis.Miniredis) { m.Lpush("list", "x") },
			cmd:       func(ctx context.Context, rdb *redis.Client) error { return rdb.Get(ctx, "list").Err() },
			wantState: StateClosed,
			wantErr:   func(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE") },
		},
		{
			name:      "LOADING",
			setup:     func(m *miniredis.Miniredis) { m.SetError("LOADING Redis is loading the dataset in memory") },
			cmd:       func(ctx context.Context, rdb *redis.Client) error { return rdb.Get(ctx, "k").Err() },
			wantState: StateOpen,
			wantErr:   func(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "LOADING") },
		},
		{
			name:      "READONLY",
			setup:     func(m *miniredis.Miniredis) { m.SetError("READONLY You can't write against a read only replica.") },
			cmd:       func(ctx context.Context, rdb *redis.Client) error { return rdb.Set(ctx, "k", "v", 0).Err() },
			wantState: StateOpen,
			wantErr:   func(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "READONLY") },
		},
		{
			name:      "server gone",
			setup:     func(m *miniredis.Miniredis) { m.Close() },
			cmd:       func(ctx context.Context, rdb *redis.Client) error { return rdb.Get(ctx, "k").Err() },
			wantState: StateOpen,
			wantErr:   func(err error) bool { return Classify(err) == ClassConnection },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := miniredis.RunT(t)
			// One dial attempt and no retries, so that a refused connection
			// comes back as such rather than as the op timeout.
			fast := func(o *redis.Options) { o.DialerRetries, o.MaxRetries = 1, -1 }
			rdb, _, g := newHookTest(t, m.Addr(), fast, []GuardOption{WithFailureThreshold(threshold), WithOpenPeriod(time.Hour), WithOpTimeout(time.Second)})
			if tt.setup != nil {
				tt.setup(m)
			}
			for i := 0; i < threshold; i++ {
				ctx := TrackFailures(context.Background())
				err := tt.cmd(ctx, rdb)
				if !tt.wantErr(err) {
					t.Fatalf("call %d: unexpected error %v", i, err)
				}
				_, seen := FailureSeen(ctx)
				if want := tt.wantState == StateOpen; seen != want {
					t.Errorf("call %d: FailureSeen = %v, want %v", i, seen, want)
				}
			}
			if s := g.State(); s != tt.wantState {
				t.Fatalf("State() = %v, want %v", s, tt.wantState)
			}
			if tt.wantState != StateOpen {
				return
			}
			// Open: refused at once, without touching the network. The
			// guard's counters say so for every outage (the server's command
			// count only where it still runs); a command that went out would
			// be counted as a call, and bounded only by the op timeout (1 s
			// here), which the refusal must stay below.
			before := 0
			if m.Server() != nil {
				before = m.CommandCount()
			}
			stats := g.Stats()
			start := time.Now()
			err := tt.cmd(context.Background(), rdb)
			if took := time.Since(start); took >= time.Second {
				t.Errorf("refused command took %v, as long as the op timeout", took)
			}
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("while open: %v, want ErrUnavailable", err)
			}
			if m.Server() != nil && m.CommandCount() != before {
				t.Errorf("a command reached the server while the breaker was open")
			}
			if st := g.Stats(); st.Calls != stats.Calls || st.Rejected != stats.Rejected+1 {
				t.Errorf("while open: %d calls went out, %d refused; want 0, 1", st.Calls-stats.Calls, st.Rejected-stats.Rejected)
			}
		})
	}
}

func TestHookCacheMode(t *testing.T) {
	type want struct {
		nilReply bool // comes back as redis.Nil
		dropped  bool // error cleared and counted
	}
	commands := []struct {
		name string
		run  func(ctx context.Context, rdb *redis.Client) redis.Cmder
		want want
	}{
		{"GET", func(ctx context.Context, rdb *redis.Client) redis.Cmder { return rdb.Get(ctx, "k") }, want{nilReply: true}},
		{"MGET", func(ctx context.Context, rdb *redis.Client) redis.Cmder { return rdb.MGet(ctx, "a", "b") }, want{nilReply: true}},
		{"HGETALL", func(ctx context.Context, rdb *redis.Client) redis.Cmder { return rdb.HGetAll(ctx, "h") }, want{nilReply: true}},
		{"EXISTS", func(ctx context.Context, rdb *redis.Client) redis.Cmder { return rdb.Exists(ctx, "k") }, want{nilReply: true}},
		{"TTL", func(ctx context.Context, rdb *redis.Client) redis.Cmder { return rdb.TTL(ctx, "k") }, want{nilReply: true}},
		{"DO GET upper case", func(ctx context.Context, rdb *redis.Client) redis.Cmder { return rdb.Do(ctx, "GET", "k") }, want{nilReply: true}},
		{"SET", func(ctx context.Context, rdb *redis.Client) redis.Cmder { return rdb.Set(ctx, "k", "v", time.Hour) }, want{dropped: true}},
		{"SETEX", func(ctx context.Context, rdb *redis.Client) redis.Cmder { return rdb.Do(ctx, "setex", "k", 3600, "v") }, want{dropped: true}},
		{"DEL", func(ctx context.Context, rdb *redis.Client) redis.Cmder { return rdb.Del(ctx, "k") }, want{dropped: true}},
		{"EXPIRE", func(ctx context.Context, rdb *redis.Client) redis.Cmder { return rdb.Expire(ctx, "k", time.Hour) }, want{dropped: true}},
		{"HSET", func(ctx context.Context, rdb *redis.Client) redis.Cmder { return rdb.HSet(ctx, "h", "f", "v") }, want{dropped: true}},
		{"INCR", func(ctx context.Context, rdb *redis.Client) redis.Cmder { return rdb.Incr(ctx, "n") }, want{}}, // a counter's reply is data: never faked
		{"PING", func(ctx context.Context, rdb *redis.Client) redis.Cmder { return rdb.Ping(ctx) }, want{}},
		{"PUBLISH", func(ctx context.Context, rdb *redis.Client) redis.Cmder { return rdb.Publish(ctx, "ch", "m") }, want{}},
	}
	states := []struct {
		name  string
		guard []GuardOption
		open  bool
	}{
		{"server gone", []GuardOption{WithFailureThreshold(1000), WithOpenPeriod(time.Hour)}, false},
		{"breaker open", []GuardOption{WithFailureThreshold(1), WithOpenPeriod(time.Hour)}, true},
	}
	for _, st := range states {
		t.Run(st.name, func(t *testing.T) {
			m := miniredis.RunT(t)
			rdb, h, g := newHookTest(t, m.Addr(), func(o *redis.Options) { o.MaxRetries = -1 }, st.guard, WithCacheMode(true))
			m.Close()
			if st.open {
				rdb.Get(context.Background(), "trip")
				if g.State() != StateOpen {
					t.Fatalf("State() = %v, want open", g.State())
				}
			}
			for _, c := range commands {
				t.Run(c.name, func(t *testing.T) {
					ctx := TrackFailures(context.Background())
					dropped := h.Dropped()
					cmd := c.run(ctx, rdb)
					err := cmd.Err()
					switch {
					case c.want.nilReply:
						if err != redis.Nil {
							t.Errorf("err = %v, want redis.Nil", err)
						}
					case c.want.dropped:
						if err != nil {
							t.Errorf("err = %v, want nil (dropped)", err)
						}
						if got := h.Dropped() - dropped; got != 1 {
							t.Errorf("Dropped() grew by %d, want 1", got)
						}
						if sc, ok := cmd.(*redis.StatusCmd); ok && sc.Val() != "OK" {
							t.Errorf("dropped status reply %q, want OK", sc.Val())
						}
					default:
						if !IsUnavailable(err) {
							t.Errorf("err = %v, want the outage error", err)
						}
					}
					if !c.want.dropped && h.Dropped() != dropped {
						t.Errorf("Dropped() changed for %s", c.name)
					}
					if _, ok := FailureSeen(ctx); !ok {
						t.Errorf("the outage was not recorded in the request context")
					}
				})
			}
		})
	}
}

func TestHookCommandErrorsPassThrough(t *testing.T) {
	for _, cacheMode := range []bool{false, true} {
		name := "plain"
		if cacheMode {
			name = "cache mode"
		}
		t.Run(name, func(t *testing.T) {
			m := miniredis.RunT(t)
			m.Lpush("list", "x")
			rdb, h, g := newHookTest(t, m.Addr(), nil, []GuardOption{WithFailureThreshold(1), WithOpenPeriod(time.Hour)}, WithCacheMode(cacheMode))
			ctx := TrackFailures(context.Background())
			for i := 0; i < 3; i++ {
				for _, err := range []error{
					rdb.Get(ctx, "list").Err(),
					rdb.Set(ctx, "list", "v", time.Hour).Err(), // SET replaces: no error
					rdb.LPush(ctx, "list", "y").Err(),
				} {
					if err != nil && !strings.HasPrefix(err.Error(), "WRONGTYPE") {
						t.Fatalf("unexpected error %v", err)
					}
				}
				if err := rdb.Incr(ctx, "list").Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") && !strings.HasPrefix(err.Error(), "ERR") {
					t.Fatalf("INCR on a string that is not a number: %v, want a command error", err)
				}
			}
			if g.State() != StateClosed || h.Dropped() != 0 {
				t.Errorf("State %v, Dropped %d: command errors must not trip or drop", g.State(), h.Dropped())
			}
			if _, ok := FailureSeen(ctx); ok {
				t.Errorf("a command error was recorded as an outage")
			}
		})
	}
}

func TestHookPipeline(t *testing.T) {
	pipe := func(ctx context.Context, rdb *redis.Client) (get *redis.StringCmd, set *redis.StatusCmd, ping *redis.StatusCmd, err error) {
		_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			get = p.Get(ctx, "k")
			set = p.Set(ctx, "k", "v", time.Hour)
			ping = p.Ping(ctx)
			return nil
		})
		return get, set, ping, err
	}
	t.Run("cache mode, server gone", func(t *testing.T) {
		m := miniredis.RunT(t)
		rdb, h, g := newHookTest(t, m.Addr(), func(o *redis.Options) { o.MaxRetries = -1 }, []GuardOption{WithFailureThreshold(2), WithOpenPeriod(time.Hour)}, WithCacheMode(true))
		m.Close()
		for i := 0; i < 3; i++ { // failure, failure (trips), refusal
			ctx := TrackFailures(context.Background())
			get, set, ping, err := pipe(ctx, rdb)
			if get.Err() != redis.Nil || set.Err() != nil || set.Val() != "OK" || !IsUnavailable(ping.Err()) {
				t.Fatalf("pipeline %d: get %v, set %v %q, ping %v", i, get.Err(), set.Err(), set.Val(), ping.Err())
			}
			if err != redis.Nil {
				t.Errorf("pipeline %d returned %v, want its first error, redis.Nil", i, err)
			}
			if _, ok := FailureSeen(ctx); !ok {
				t.Errorf("pipeline %d: outage not recorded", i)
			}
		}
		if h.Dropped() != 3 {
			t.Errorf("Dropped() = %d, want 3", h.Dropped())
		}
		if st := g.Stats(); st.State != StateOpen || st.Calls != 2 || st.Rejected != 1 {
			t.Errorf("Stats = %+v, want open after 2 calls, 1 rejected", st)
		}
	})
	t.Run("plain, server gone", func(t *testing.T) {
		m := miniredis.RunT(t)
		rdb, h, _ := newHookTest(t, m.Addr(), func(o *redis.Options) { o.MaxRetries = -1 }, []GuardOption{WithFailureThreshold(1), WithOpenPeriod(time.Hour)})
		m.Close()
		for i := 0; i < 2; i++ {
			get, set, _, err := pipe(context.Background(), rdb)
			if !IsUnavailable(err) || !IsUnavailable(get.Err()) || !IsUnavailable(set.Err()) {
				t.Errorf("pipeline %d: %v (get %v, set %v), want outage errors", i, err, get.Err(), set.Err())
			}
		}
		if h.Dropped() != 0 {
			t.Errorf("Dropped() = %d outside cache mode", h.Dropped())
		}
	})
	t.Run("cache mode keeps a transaction's errors", func(t *testing.T) {
		m := miniredis.RunT(t)
		rdb, h, _ := newHookTest(t, m.Addr(), func(o *redis.Options) { o.MaxRetries = -1 }, []GuardOption{WithFailureThreshold(10), WithOpenPeriod(time.Hour)}, WithCacheMode(true))
		m.Close()
		ctx := context.Background()
		var set *redis.StatusCmd
		_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			set = p.Set(ctx, "k", "v", time.Hour)
			return nil
		})
		if !IsUnavailable(err) || !IsUnavailable(set.Err()) || h.Dropped() != 0 {
			t.Errorf("transaction: %v, set %v, dropped %d; want the outage kept", err, set.Err(), h.Dropped())
		}
	})
	t.Run("a command's outage reply fails the pipeline", func(t *testing.T) {
		m := miniredis.RunT(t)
		rdb, _, g := newHookTest(t, m.Addr(), nil, []GuardOption{WithFailureThreshold(1), WithOpenPeriod(time.Hour)})
		rdb.Ping(context.Background()) // connect before the server starts failing
		m.SetError("MASTERDOWN Link with MASTER is down")
		_, _, _, err := pipe(context.Background(), rdb)
		if err == nil || g.State() != StateOpen {
			t.Errorf("pipeline: %v, state %v; want a failure that trips", err, g.State())
		}
	})
}

func TestHookBoundsBlackholedServer(t *testing.T) {
	const opTimeout = 50 * time.Millisecond
	// Each client below would wait 10 s or for ever on the mute server; a
	// bounded call ends after about opTimeout. 1 s tells the two apart with
	// room for a loaded runner.
	const limit = time.Second
	clients := []struct {
		name string
		opt  func(*redis.Options)
	}{
		{"no deadline (-1), 3 retries", func(o *redis.Options) { o.ReadTimeout, o.WriteTimeout, o.MaxRetries = -1, -1, 3 }},
		{"deadlines never set (-2), 3 retries", func(o *redis.Options) { o.ReadTimeout, o.WriteTimeout, o.MaxRetries = -2, -2, 3 }},
		{"10 s timeouts, 3 retries, no backoff", func(o *redis.Options) {
			o.ReadTimeout, o.WriteTimeout, o.MaxRetries, o.MinRetryBackoff = 10*time.Second, 10*time.Second, 3, -1
		}},
		{"10 s timeouts, context timeouts on", func(o *redis.Options) {
			o.ReadTimeout, o.ContextTimeoutEnabled = 10*time.Second, true
		}},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			addr := muteServer(t)
			rdb, _, g := newHookTest(t, addr, c.opt, []GuardOption{WithOpTimeout(opTimeout), WithFailureThreshold(3), WithOpenPeriod(time.Hour)})
			for i := 0; i < 3; i++ {
				ctx := TrackFailures(context.Background())
				start := time.Now()
				err := rdb.Get(ctx, "k").Err()
				took := time.Since(start)
				if took > limit {
					t.Errorf("call %d took %v, want at most %v", i, took, limit)
				}
				if Classify(err) != ClassTimeout {
					t.Errorf("call %d: %v (%v), want a timeout", i, err, Classify(err))
				}
				if c, ok := FailureSeen(ctx); !ok || c != ClassTimeout {
					t.Errorf("call %d: FailureSeen = %v, %v", i, c, ok)
				}
			}
			if s := g.State(); s != StateOpen {
				t.Fatalf("State() = %v after 3 timeouts, want open", s)
			}
			// Refused without going out: a GET sent to the mute server would
			// count as a call and wait the op timeout.
			before := g.Stats()
			start := time.Now()
			if err := rdb.Get(context.Background(), "k").Err(); !errors.Is(err, ErrUnavailable) {
				t.Errorf("while open: %v", err)
			}
			if took := time.Since(start); took > limit {
				t.Errorf("refused call took %v", took)
			}
			if st := g.Stats(); st.Calls != before.Calls || st.Rejected != before.Rejected+1 {
				t.Errorf("while open: %d calls went out, %d refused; want 0, 1", st.Calls-before.Calls, st.Rejected-before.Rejected)
			}
		})
	}
}

func TestHookCallerContext(t *testing.T) {
	addr := muteServer(t)
	rdb, _, g := newHookTest(t, addr, func(o *redis.Options) { o.ReadTimeout = -1 }, []GuardOption{WithOpTimeout(time.Second), WithFailureThreshold(1), WithOpenPeriod(time.Hour)})
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}},
		{"own deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			ctx = TrackFailures(ctx)
			if err := rdb.Get(ctx, "k").Err(); err == nil {
				t.Fatal("GET succeeded on a mute server")
			}
			if g.State() != StateClosed || g.Stats().Failures != 0 {
				t.Errorf("the caller's own context end counted as a failure: %+v", g.Stats())
			}
			if _, ok := FailureSeen(ctx); ok {
				t.Errorf("the caller's own context end was recorded as an outage")
			}
		})
	}
}

func TestHookClosedGuard(t *testing.T) {
	m := miniredis.RunT(t)
	rdb, h, g := newHookTest(t, m.Addr(), nil, nil, WithCacheMode(true))
	g.Close()
	before := m.CommandCount()
	if err := rdb.Get(context.Background(), "k").Err(); err != redis.Nil {
		t.Errorf("cache-mode GET after Close: %v, want redis.Nil", err)
	}
	if err := rdb.Ping(context.Background()).Err(); !errors.Is(err, ErrClosed) {
		t.Errorf("PING after Close: %v, want ErrClosed", err)
	}
	if m.CommandCount() != before || h.Dropped() != 0 {
		t.Errorf("commands reached the server after Close")
	}
}

func TestIsCacheReadWrite(t *testing.T) {
	tests := []struct {
		name        string
		read, write bool
	}{
		{"get", true, false}, {"mget", true, false}, {"hgetall", true, false}, {"exists", true, false},
		{"set", false, true}, {"del", false, true}, {"incr", false, false}, {"setnx", false, false}, {"xadd", false, false}, {"expire", false, true},
		{"ping", false, false}, {"publish", false, false}, {"multi", false, false}, {"eval", false, false},
		{"GET", false, false}, // names are lower case, as Cmder.Name returns them
		{"", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsCacheRead(tt.name); got != tt.read {
				t.Errorf("IsCacheRead(%q) = %v", tt.name, got)
			}
			if got := IsCacheWrite(tt.name); got != tt.write {
				t.Errorf("IsCacheWrite(%q) = %v", tt.name, got)
			}
		})
	}
}

// tcpPair returns the two ends of a loopback TCP connection, closed when
// the test ends. Unlike net.Pipe, a Write returns once the bytes are in the
// socket buffer, before the peer reads them.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		a.Close()
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestBoundedConn(t *testing.T) {
	const bound = 30 * time.Millisecond
	// Each I/O below either ends at a short deadline or hangs (a silent
	// peer, no deadline, an hour's deadline, or a 10 s bound where the
	// user's earlier deadline must win); 1 s of room tells the two apart on
	// a loaded runner.
	const slack = time.Second
	tests := []struct {
		name    string
		bound   time.Duration // the conn's bound
		prepare func(c net.Conn)
		max     time.Duration
	}{
		{"no deadline", bound, func(net.Conn) {}, bound},
		{"cleared deadline", bound, func(c net.Conn) { c.SetReadDeadline(time.Time{}) }, bound},
		{"later deadline", bound, func(c net.Conn) { c.SetDeadline(time.Now().Add(time.Hour)) }, bound},
		{"earlier deadline wins", 10 * time.Second, func(c net.Conn) { c.SetReadDeadline(time.Now().Add(5 * time.Millisecond)) }, 5 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			c := bindConn(a, tt.bound)
			tt.prepare(c)
			start := time.Now()
			_, err := c.Read(make([]byte, 1))
			took := time.Since(start)
			var nerr net.Error
			if !errors.As(err, &nerr) || !nerr.Timeout() {
				t.Fatalf("Read on a silent peer: %v, want a timeout", err)
			}
			if took > tt.max+slack {
				t.Errorf("Read took %v, want at most %v", took, tt.max)
			}
		})
	}
	t.Run("write is bounded", func(t *testing.T) {
		a, b := net.Pipe() // synchronous: a Write waits for a reader
		defer a.Close()
		defer b.Close()
		c := bindConn(a, bound)
		c.SetWriteDeadline(time.Time{})
		start := time.Now()
		if _, err := c.Write([]byte("x")); err == nil {
			t.Fatal("Write to a peer that never reads succeeded")
		}
		if took := time.Since(start); took > bound+slack { // unbounded: for ever
			t.Errorf("Write took %v", took)
		}
	})
	t.Run("the bound's timeout kills the conn", func(t *testing.T) {
		// Over TCP, so that the late reply is already in the socket buffer
		// when the dead conn is read, and a Write would go out at once: a conn
		// that was not dead would read the reply or send the Write right
		// away, whatever the machine's load, rather than depend on how fast
		// it fails.
		a, b := tcpPair(t)
		c := bindConn(a, bound)
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("Read on a silent peer succeeded")
		}
		if _, err := b.Write([]byte("late reply")); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err := c.Read(make([]byte, 1))
		var nerr net.Error
		if !errors.As(err, &nerr) || !nerr.Timeout() {
			t.Errorf("Read after the bound cut one short: %v, want the timeout again", err)
		}
		if _, werr := c.Write([]byte("x")); werr == nil {
			t.Errorf("Write on a dead conn succeeded")
		}
		// "At once": a conn that read again would wait a new bound (30 ms)
		// at least, if the reply were not there; 1 s is room for a loaded
		// runner. The checks above are the deterministic ones.
		if took := time.Since(start); took > slack {
			t.Errorf("Read on a dead conn waited %v", took)
		}
		// Nothing was consumed or sent: the reply is still unread below the
		// dead conn, and the peer got no "x".
		a.SetReadDeadline(time.Now().Add(10 * time.Second)) // it is there: a failure, not a hang, if not whole
		got := make([]byte, len("late reply"))
		if _, err := io.ReadFull(a, got); err != nil || string(got) != "late reply" {
			t.Errorf("reply under the dead conn: %q, %v; want it whole", got, err)
		}
		b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, _ := b.Read(make([]byte, 1)); n != 0 {
			t.Errorf("the peer received a Write made on a dead conn")
		}
	})
	t.Run("the user's own timeout does not kill the conn", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		c := bindConn(a, time.Hour)
		c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("Read past the user's deadline succeeded")
		}
		c.SetReadDeadline(time.Time{})
		go b.Write([]byte("x"))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Errorf("Read after the user's own timeout: %v", err)
		}
	})
	t.Run("passes data", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		c := bindConn(a, bound)
		go b.Write([]byte("hello"))
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
			t.Fatalf("Read = %q, %v", buf, err)
		}
		if c.(interface{ NetConn() net.Conn }).NetConn() != a {
			t.Errorf("NetConn does not return the wrapped conn")
		}
		if _, ok := c.(syscall.Conn); ok {
			t.Errorf("a wrapped net.Pipe claims syscall.Conn")
		}
	})
	t.Run("TCP keeps syscall.Conn", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := l.Accept()
			if err == nil {
				accepted <- c
			}
			close(accepted)
		}()
		raw, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		if peer := <-accepted; peer != nil {
			defer peer.Close()
		}
		sc, ok := bindConn(raw, bound).(syscall.Conn)
		if !ok {
			t.Fatal("a wrapped TCP conn hides syscall.Conn")
		}
		if _, err := sc.SyscallConn(); err != nil {
			t.Errorf("SyscallConn: %v", err)
		}
	})
}
