package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// stubStore is a Store for guard tests. By default it is a working map;
// setFail makes every call return what fn returns, and setHold makes every
// call wait, ignoring its context, until the returned release is called.
type stubStore struct {
	mu      sync.Mutex
	data    map[string][]byte
	fail    func(ctx context.Context) error
	hold    chan struct{}
	panics  bool
	entered chan struct{} // if set, receives once per call that started (non-blocking)
	calls   atomic.Int64
}

func newStubStore() *stubStore { return &stubStore{data: map[string][]byte{}} }

func (f *stubStore) setFail(fn func(ctx context.Context) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fn
}

// failWith makes every call return err.
func (f *stubStore) failWith(err error) {
	if err == nil {
		f.setFail(nil)
		return
	}
	f.setFail(func(context.Context) error { return err })
}

// setHold makes calls block until release is called (idempotent).
func (f *stubStore) setHold() (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.hold = ch
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			if f.hold == ch {
				f.hold = nil
			}
			f.mu.Unlock()
			close(ch)
		})
	}
}

func (f *stubStore) enter(ctx context.Context) error {
	f.calls.Add(1)
	f.mu.Lock()
	hold, fail, panics, entered := f.hold, f.fail, f.panics, f.entered
	f.mu.Unlock()
	if entered != nil {
		select {
		case entered <- struct{}{}:
		default:
		}
	}
	if panics {
		panic("fake store exploded")
	}
	if hold != nil {
		<-hold
	}
	if fail != nil {
		return fail(ctx)
	}
	return nil
}

func (f *stubStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := f.enter(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.data[key]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (f *stubStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := f.enter(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data[key] = bytes.Clone(value)
	return nil
}

func (f *stubStore) Delete(ctx context.Context, key string) error {
	if err := f.enter(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.data, key)
	return nil
}

// stubPinger is a stubStore that is also a Pinger and a TTLGetter.
type stubPinger struct{ *stubStore }

func (p stubPinger) Ping(ctx context.Context) error { return p.enter(ctx) }

func (p stubPinger) GetTTL(ctx context.Context, key string) ([]byte, time.Duration, error) {
	v, err := p.Get(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	return v, 42 * time.Second, nil
}

// redisReply is a Redis error reply, as go-redis returns them.
type redisReply string

func (e redisReply) Error() string { return string(e) }
func (redisReply) RedisError()     {}

var _ redis.Error = redisReply("")

// stubClock is an injectable clock.
type stubClock struct {
	mu sync.Mutex
	t  time.Time
}

func newStubClock() *stubClock {
	return &stubClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *stubClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stubClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// waitUntil polls cond until it holds or within passes.
func waitUntil(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// logBuffer is a bytes.Buffer safe for concurrent writers.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the JSON log records written so far.
func (l *logBuffer) records(t testing.TB) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func captureLog() (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// quietLogger keeps test output quiet.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTestGuard builds a guard over s that is closed (and whose held calls
// are released) when the test ends.
func newTestGuard(t testing.TB, s Store, opts ...GuardOption) *Guard {
	t.Helper()
	g, err := NewGuard(s, append([]GuardOption{WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatalf("NewGuard: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// changeLog records OnStateChange calls.
type changeLog struct {
	mu  sync.Mutex
	got []string
}

func (tr *changeLog) record(name string, from, to State) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.got = append(tr.got, fmt.Sprintf("%s:%s->%s", name, from, to))
}

func (tr *changeLog) list() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.got...)
}

func TestNewGuardErrors(t *testing.T) {
	tests := []struct {
		name  string
		store Store
		opts  []GuardOption
		want  string
	}{
		{"nil store", nil, nil, "nil Store"},
		{"nil option", newStubStore(), []GuardOption{nil}, "nil Option"},
		{"zero op timeout", newStubStore(), []GuardOption{WithOpTimeout(0)}, "op timeout"},
		{"negative op timeout", newStubStore(), []GuardOption{WithOpTimeout(-time.Second)}, "op timeout"},
		{"zero failure threshold", newStubStore(), []GuardOption{WithFailureThreshold(0), WithOpenPeriod(time.Second)}, "failure threshold"},
		{"zero open period", newStubStore(), []GuardOption{WithFailureThreshold(3), WithOpenPeriod(0)}, "open period"},
		{"zero half-open requests", newStubStore(), []GuardOption{WithHalfOpenRequests(0)}, "half-open"},
		{"zero max in flight", newStubStore(), []GuardOption{WithMaxInFlight(0)}, "max in flight"},
		{"nil clock", newStubStore(), []GuardOption{WithClock(nil)}, "clock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := NewGuard(tt.store, tt.opts...)
			if err == nil {
				g.Close()
				t.Fatal("NewGuard succeeded, want an error")
			}
			if g != nil {
				t.Errorf("NewGuard returned a guard with its error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestGuardPassesThrough(t *testing.T) {
	fs := newStubStore()
	g := newTestGuard(t, fs, WithName("cache"))
	ctx := context.Background()
	if g.Name() != "cache" {
		t.Errorf("Name() = %q, want cache", g.Name())
	}
	if err := g.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatalf("Set: %v", err)
	}
	v, err := g.Get(ctx, "k")
	if err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v; want v, nil", v, err)
	}
	if err := g.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := g.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	st := g.Stats()
	if st.Calls != 4 || st.Failures != 0 || st.State != StateClosed || st.Name != "cache" {
		t.Errorf("Stats = %+v, want 4 calls, 0 failures, closed, name cache", st)
	}
}

func TestGuardClassification(t *testing.T) {
	const threshold = 3
	blockUntilDone := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	tests := []struct {
		name      string
		fail      func(ctx context.Context) error
		ctx       func() (context.Context, context.CancelFunc)
		wantState State
		wantClass Class // as the observer saw the last call
		recorded  bool  // an outage is recorded in the caller's context
	}{
		{name: "miss", fail: failing(fmt.Errorf("x: %w", ErrNotFound)), wantState: StateClosed, wantClass: ClassMiss},
		{name: "redis.Nil", fail: failing(fmt.Errorf("x: %w", redis.Nil)), wantState: StateClosed, wantClass: ClassMiss},
		{name: "WRONGTYPE reply", fail: failing(redisReply("WRONGTYPE Operation against a key holding the wrong kind of value")), wantState: StateClosed, wantClass: ClassCommand},
		{name: "OOM reply", fail: failing(redisReply("OOM command not allowed when used memory > 'maxmemory'.")), wantState: StateClosed, wantClass: ClassCommand},
		{name: "syntax error reply", fail: failing(redisReply("ERR syntax error")), wantState: StateClosed, wantClass: ClassCommand},
		{name: "invalid key", fail: failing(fmt.Errorf("%w: empty", ErrInvalidKey)), wantState: StateClosed, wantClass: ClassInvalid},
		{name: "value too large", fail: failing(ErrValueTooLarge), wantState: StateClosed, wantClass: ClassInvalid},
		{name: "connection refused", fail: failing(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), wantState: StateOpen, wantClass: ClassConnection, recorded: true},
		{name: "connection reset", fail: failing(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), wantState: StateOpen, wantClass: ClassConnection, recorded: true},
		{name: "EOF", fail: failing(fmt.Errorf("store: redis get: %w", io.EOF)), wantState: StateOpen, wantClass: ClassConnection, recorded: true},
		{name: "socket timeout", fail: failing(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}), wantState: StateOpen, wantClass: ClassTimeout, recorded: true},
		{name: "pool timeout", fail: failing(redis.ErrPoolTimeout), wantState: StateOpen, wantClass: ClassTimeout, recorded: true},
		{name: "store's own deadline", fail: failing(context.DeadlineExceeded), wantState: StateOpen, wantClass: ClassTimeout, recorded: true},
		{name: "LOADING reply", fail: failing(redisReply("LOADING Redis is loading the dataset in memory")), wantState: StateOpen, wantClass: ClassServer, recorded: true},
		{name: "READONLY reply", fail: failing(redisReply("READONLY You can't write against a read only replica.")), wantState: StateOpen, wantClass: ClassServer, recorded: true},
		{name: "MASTERDOWN reply", fail: failing(redisReply("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.")), wantState: StateOpen, wantClass: ClassServer, recorded: true},
		{name: "CLUSTERDOWN reply", fail: failing(redisReply("CLUSTERDOWN The cluster is down")), wantState: StateOpen, wantClass: ClassServer, recorded: true},
		{name: "closed client", fail: failing(redis.ErrClosed), wantState: StateOpen, wantClass: ClassOpen, recorded: true},
		{
			name: "caller cancelled",
			fail: func(ctx context.Context) error { return ctx.Err() },
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			wantState: StateClosed, wantClass: ClassCanceled,
		},
		{
			name: "caller's own deadline, store honours it",
			fail: blockUntilDone,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 5*time.Millisecond)
			},
			wantState: StateClosed, wantClass: ClassCanceled,
		},
		{
			name: "caller's own deadline, store fails with a timeout after it",
			fail: func(ctx context.Context) error {
				<-ctx.Done()
				return &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
			},
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 5*time.Millisecond)
			},
			wantState: StateClosed, wantClass: ClassCanceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newStubStore()
			fs.setFail(tt.fail)
			var lastClass atomic.Int32
			g := newTestGuard(t, fs, WithFailureThreshold(threshold), WithOpenPeriod(time.Hour), WithOpTimeout(time.Second),
				WithObserver(func(_, _ string, _ time.Duration, c Class) { lastClass.Store(int32(c)) }))
			for i := 0; i < threshold; i++ {
				ctx := context.Background()
				if tt.ctx != nil {
					var cancel context.CancelFunc
					ctx, cancel = tt.ctx()
					defer cancel()
				}
				ctx = TrackFailures(ctx)
				_, err := g.Get(ctx, "k")
				if err == nil {
					t.Fatalf("call %d: Get succeeded, want an error", i)
				}
				if got := Class(lastClass.Load()); got != tt.wantClass {
					t.Errorf("call %d: observer class %v, want %v (err %v)", i, got, tt.wantClass, err)
				}
				if _, seen := FailureSeen(ctx); seen != tt.recorded {
					t.Errorf("call %d: FailureSeen = %v, want %v (err %v)", i, seen, tt.recorded, err)
				}
			}
			if got := g.State(); got != tt.wantState {
				t.Errorf("after %d calls: State() = %v, want %v", threshold, got, tt.wantState)
			}
			st := g.Stats()
			wantFailures := uint64(0)
			if tt.wantState == StateOpen {
				wantFailures = threshold
			}
			if st.Failures != wantFailures {
				t.Errorf("Stats().Failures = %d, want %d", st.Failures, wantFailures)
			}
		})
	}
}

func failing(err error) func(context.Context) error {
	return func(context.Context) error { return err }
}

func TestGuardBreakerLifecycle(t *testing.T) {
	// The breaker keeps real time. The open period must outlast everything
	// the test does between a trip and its checks that the breaker is still
	// open (100 refusals, a State call), even on a loaded runner that stalls
	// the test for a while; 50 ms did not.
	const openPeriod = time.Second
	fs := newStubStore()
	tr := &changeLog{}
	g := newTestGuard(t, fs, WithName("lc"), WithFailureThreshold(3), WithOpenPeriod(openPeriod), WithOnStateChange(tr.record))
	ctx := context.Background()
	down := errors.New("connection refused")

	t.Run("trips after threshold consecutive failures", func(t *testing.T) {
		fs.failWith(down)
		for i := 0; i < 2; i++ {
			g.Get(ctx, "k")
		}
		if s := g.State(); s != StateClosed {
			t.Fatalf("after 2 failures State() = %v, want closed", s)
		}
		// A success in between resets the consecutive count.
		fs.failWith(nil)
		g.Get(ctx, "k")
		fs.failWith(down)
		for i := 0; i < 2; i++ {
			g.Get(ctx, "k")
		}
		if s := g.State(); s != StateClosed {
			t.Fatalf("after success then 2 failures State() = %v, want closed", s)
		}
		g.Get(ctx, "k")
		if s := g.State(); s != StateOpen {
			t.Fatalf("after 3 consecutive failures State() = %v, want open", s)
		}
		if st := g.Stats(); st.Trips != 1 || st.Failures != 5 {
			t.Errorf("Stats = %+v, want 1 trip, 5 failures", st)
		}
	})

	t.Run("fails fast while open", func(t *testing.T) {
		before := fs.calls.Load()
		rejected := g.Stats().Rejected
		var total time.Duration
		for i := 0; i < 100; i++ {
			tctx := TrackFailures(ctx)
			start := time.Now()
			_, err := g.Get(tctx, "k")
			total += time.Since(start)
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, gobreaker.ErrOpenState) {
				t.Fatalf("Get while open: %v, want ErrUnavailable", err)
			}
			if Classify(err) != ClassOpen {
				t.Fatalf("Classify(%v) = %v, want open", err, Classify(err))
			}
			if c, ok := FailureSeen(tctx); !ok || c != ClassOpen {
				t.Fatalf("FailureSeen = %v, %v; want open, true", c, ok)
			}
		}
		// Failing fast means not calling the store (checked by count), and
		// not waiting on anything else either: a refusal that waited the op
		// timeout (a timer cannot fire early) would make the 100 take at
		// least 100 op timeouts; healthy, they take microseconds.
		if n := fs.calls.Load(); n != before {
			t.Errorf("the store was called %d times while open", n-before)
		}
		if total >= 100*DefaultOpTimeout {
			t.Errorf("100 refusals took %v, as long as one op timeout each", total)
		}
		if got := g.Stats().Rejected - rejected; got != 100 {
			t.Errorf("Rejected grew by %d, want 100", got)
		}
		if ra := g.RetryAfter(); ra <= 0 || ra > openPeriod {
			t.Errorf("RetryAfter() = %v, want in (0, %v]", ra, openPeriod)
		}
	})

	t.Run("half-opens after the open period and reopens on a failed probe", func(t *testing.T) {
		waitUntil(t, openPeriod+5*time.Second, "half-open", func() bool { return g.State() == StateHalfOpen })
		if ra := g.RetryAfter(); ra != 0 {
			t.Errorf("RetryAfter() while half-open = %v, want 0", ra)
		}
		before := fs.calls.Load()
		if _, err := g.Get(ctx, "k"); errors.Is(err, ErrUnavailable) || err == nil {
			t.Fatalf("probe: %v, want the store's error", err)
		}
		if fs.calls.Load() != before+1 {
			t.Fatalf("the probe did not reach the store")
		}
		if s := g.State(); s != StateOpen {
			t.Fatalf("after a failed probe State() = %v, want open", s)
		}
		if st := g.Stats(); st.Trips != 2 {
			t.Errorf("Trips = %d, want 2", st.Trips)
		}
	})

	t.Run("closes on a successful probe", func(t *testing.T) {
		fs.failWith(nil)
		waitUntil(t, openPeriod+5*time.Second, "half-open", func() bool { return g.State() == StateHalfOpen })
		if _, err := g.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("probe: %v, want a miss", err)
		}
		if s := g.State(); s != StateClosed {
			t.Fatalf("after a successful probe State() = %v, want closed", s)
		}
	})

	want := []string{
		"lc:closed->open", "lc:open->half-open", "lc:half-open->open",
		"lc:open->half-open", "lc:half-open->closed",
	}
	if got := tr.list(); !sameStrings(got, want) {
		t.Errorf("OnStateChange calls:\n got %q\nwant %q", got, want)
	}
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestGuardHalfOpen(t *testing.T) {
	tests := []struct {
		name     string
		probes   uint32
		attempts int // successful probes made
		want     State
	}{
		{"one probe closes", 1, 1, StateClosed},
		{"two probes needed, one made", 2, 1, StateHalfOpen},
		{"two probes needed, two made", 2, 2, StateClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newStubStore()
			g := newTestGuard(t, fs, WithFailureThreshold(1), WithOpenPeriod(20*time.Millisecond), WithHalfOpenRequests(tt.probes))
			ctx := context.Background()
			fs.failWith(errors.New("down"))
			g.Get(ctx, "k")
			fs.failWith(nil)
			waitUntil(t, 2*time.Second, "half-open", func() bool { return g.State() == StateHalfOpen })
			for i := 0; i < tt.attempts; i++ {
				if _, err := g.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("probe %d: %v", i, err)
				}
			}
			if s := g.State(); s != tt.want {
				t.Errorf("State() = %v, want %v", s, tt.want)
			}
		})
	}

	t.Run("probes in flight refuse other calls", func(t *testing.T) {
		fs := newStubStore()
		g := newTestGuard(t, fs, WithFailureThreshold(1), WithOpenPeriod(20*time.Millisecond), WithOpTimeout(5*time.Second))
		ctx := context.Background()
		fs.failWith(errors.New("down"))
		g.Get(ctx, "k")
		fs.failWith(nil)
		waitUntil(t, 2*time.Second, "half-open", func() bool { return g.State() == StateHalfOpen })
		entered := make(chan struct{}, 1)
		fs.mu.Lock()
		fs.entered = entered
		fs.mu.Unlock()
		release := fs.setHold()
		defer release()
		probe := make(chan error, 1)
		go func() { _, err := g.Get(ctx, "k"); probe <- err }()
		<-entered
		_, err := g.Get(ctx, "k")
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, gobreaker.ErrTooManyRequests) {
			t.Errorf("second call while the probe runs: %v, want ErrUnavailable (too many requests)", err)
		}
		release()
		if err := <-probe; !errors.Is(err, ErrNotFound) {
			t.Errorf("probe: %v, want a miss", err)
		}
		if s := g.State(); s != StateClosed {
			t.Errorf("State() = %v, want closed", s)
		}
	})
}

func TestGuardOpTimeout(t *testing.T) {
	const opTimeout = 30 * time.Millisecond
	// An unbounded call would wait until the test releases the store (it
	// ignores its context) or for ever (it honours a context that never
	// ends); a bounded one about opTimeout. 1 s is room for a loaded runner.
	const slack = time.Second
	tests := []struct {
		name    string
		honours bool // the store returns at its context's deadline
	}{
		{"store ignores its context", false},
		{"store honours its context", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newStubStore()
			var release func()
			if tt.honours {
				fs.setFail(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
			} else {
				release = fs.setHold()
				defer release()
			}
			g := newTestGuard(t, fs, WithName("slow"), WithOpTimeout(opTimeout), WithFailureThreshold(100), WithOpenPeriod(time.Hour))
			ops := []struct {
				name string
				call func(ctx context.Context) error
			}{
				{"get", func(ctx context.Context) error { _, err := g.Get(ctx, "k"); return err }},
				{"get", func(ctx context.Context) error { _, _, err := g.GetTTL(ctx, "k"); return err }},
				{"set", func(ctx context.Context) error { return g.Set(ctx, "k", []byte("v"), time.Minute) }},
				{"delete", func(ctx context.Context) error { return g.Delete(ctx, "k") }},
			}
			for _, op := range ops {
				ctx := TrackFailures(context.Background())
				start := time.Now()
				err := op.call(ctx)
				took := time.Since(start)
				if took > opTimeout+slack {
					t.Errorf("%s took %v, want at most %v", op.name, took, opTimeout+slack)
				}
				if took < opTimeout {
					t.Errorf("%s returned after %v, before the op timeout", op.name, took)
				}
				wantMsg := "store: slow: " + op.name + ": timed out after 30ms"
				if err == nil || err.Error() != wantMsg {
					t.Errorf("%s: error %v, want %q", op.name, err, wantMsg)
				}
				if !errors.Is(err, context.DeadlineExceeded) || Classify(err) != ClassTimeout {
					t.Errorf("%s: error %v does not wrap DeadlineExceeded / classify as timeout", op.name, err)
				}
				if c, ok := FailureSeen(ctx); !ok || c != ClassTimeout {
					t.Errorf("%s: FailureSeen = %v, %v; want timeout, true", op.name, c, ok)
				}
			}
			st := g.Stats()
			if st.Timeouts != 4 || st.Failures != 4 {
				t.Errorf("Stats: %d timeouts, %d failures; want 4, 4", st.Timeouts, st.Failures)
			}
			if !tt.honours {
				if st.InFlight != 4 {
					t.Errorf("InFlight = %d while the store hangs, want 4", st.InFlight)
				}
				release()
			}
			waitUntil(t, 2*time.Second, "in-flight calls to end", func() bool { return g.Stats().InFlight == 0 })
		})
	}
}

func TestGuardRetryAfter(t *testing.T) {
	clock := newStubClock()
	fs := newStubStore()
	g := newTestGuard(t, fs, WithFailureThreshold(1), WithOpenPeriod(time.Hour), WithClock(clock.Now))
	ctx := context.Background()

	created := clock.Now()
	if st := g.Stats(); !st.Since.Equal(created) || st.RetryAfter != 0 || st.State != StateClosed {
		t.Fatalf("fresh Stats = %+v, want closed since %v, RetryAfter 0", st, created)
	}
	clock.Advance(time.Minute)
	fs.failWith(errors.New("down"))
	g.Get(ctx, "k")
	opened := clock.Now()

	steps := []struct {
		name    string
		advance time.Duration
		want    time.Duration
	}{
		{"just opened", 0, time.Hour},
		{"a quarter in", 15 * time.Minute, 45 * time.Minute},
		{"nearly over", 44*time.Minute + 59*time.Second, time.Second},
		{"past the open period", time.Hour, 0},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clock.Advance(s.advance)
			if got := g.RetryAfter(); got != s.want {
				t.Errorf("RetryAfter() = %v, want %v", got, s.want)
			}
			st := g.Stats()
			if st.State != StateOpen || !st.Since.Equal(opened) || st.RetryAfter != s.want {
				t.Errorf("Stats = %+v, want open since %v, RetryAfter %v", st, opened, s.want)
			}
		})
	}
}

func TestGuardStateChangeLog(t *testing.T) {
	t.Run("one line per change", func(t *testing.T) {
		logger, buf := captureLog()
		fs := newStubStore()
		g, err := NewGuard(fs, WithName("logged"), WithLogger(logger), WithFailureThreshold(2), WithOpenPeriod(20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		ctx := context.Background()
		fs.failWith(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
		for i := 0; i < 10; i++ { // 2 failures, then 8 refusals
			g.Get(ctx, "k")
			g.State()
			g.Stats()
		}
		fs.failWith(nil)
		waitUntil(t, 2*time.Second, "half-open", func() bool { return g.State() == StateHalfOpen })
		for i := 0; i < 10; i++ {
			g.Get(ctx, "k")
			g.Stats()
		}
		recs := buf.records(t)
		want := []struct{ level, msg, from, to string }{
			{"WARN", "store: circuit breaker opened", "closed", "open"},
			{"INFO", "store: circuit breaker half-open", "open", "half-open"},
			{"INFO", "store: circuit breaker closed", "half-open", "closed"},
		}
		if len(recs) != len(want) {
			t.Fatalf("got %d log lines, want %d: %v", len(recs), len(want), recs)
		}
		for i, w := range want {
			r := recs[i]
			if r["level"] != w.level || r["msg"] != w.msg || r["from"] != w.from || r["to"] != w.to ||
				r["guard"] != "logged" || r["last_error"] != "connection" {
				t.Errorf("line %d = %v, want %+v, guard logged, last_error connection", i, r, w)
			}
		}
	})

	t.Run("concurrent failures log one trip", func(t *testing.T) {
		logger, buf := captureLog()
		tr := &changeLog{}
		fs := newStubStore()
		fs.failWith(errors.New("down"))
		g, err := NewGuard(fs, WithLogger(logger), WithFailureThreshold(5), WithOpenPeriod(time.Hour), WithOnStateChange(tr.record))
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		var wg sync.WaitGroup
		for i := 0; i < 64; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < 20; j++ {
					g.Get(context.Background(), "k")
					g.Stats()
				}
			}()
		}
		wg.Wait()
		recs := buf.records(t)
		if len(recs) != 1 || recs[0]["to"] != "open" {
			t.Errorf("log lines = %v, want one trip", recs)
		}
		if got := tr.list(); len(got) != 1 || got[0] != "redis:closed->open" {
			t.Errorf("OnStateChange calls = %q, want one trip", got)
		}
		if st := g.Stats(); st.Trips != 1 || st.Calls+st.Rejected != 64*20 {
			t.Errorf("Stats = %+v", st)
		}
	})
}

func TestGuardOnStateChangeReentrant(t *testing.T) {
	fs := newStubStore()
	var g *Guard
	var states []State
	var mu sync.Mutex
	cb := func(_ string, _, to State) {
		// Calling back into the guard from the callback must not deadlock,
		// and sees the new state.
		s := g.State()
		st := g.Stats()
		mu.Lock()
		states = append(states, to, s, st.State)
		mu.Unlock()
	}
	g = newTestGuard(t, fs, WithFailureThreshold(1), WithOpenPeriod(20*time.Millisecond), WithOnStateChange(cb))
	fs.failWith(errors.New("down"))
	g.Get(context.Background(), "k")
	waitUntil(t, 2*time.Second, "half-open", func() bool { return g.State() == StateHalfOpen })
	mu.Lock()
	defer mu.Unlock()
	want := []State{StateOpen, StateOpen, StateOpen, StateHalfOpen, StateHalfOpen, StateHalfOpen}
	if len(states) != len(want) {
		t.Fatalf("callback saw %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("callback saw %v, want %v", states, want)
		}
	}
}

func TestGuardMaxInFlight(t *testing.T) {
	fs := newStubStore()
	release := fs.setHold()
	defer release()
	g := newTestGuard(t, fs, WithMaxInFlight(2), WithOpTimeout(10*time.Millisecond), WithFailureThreshold(100), WithOpenPeriod(time.Hour))
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if _, err := g.Get(ctx, "k"); Classify(err) != ClassTimeout {
			t.Fatalf("call %d: %v, want a timeout", i, err)
		}
	}
	tctx := TrackFailures(ctx)
	start := time.Now()
	_, err := g.Get(tctx, "k")
	// That the refusal reached no store is checked below (Calls, Rejected).
	// A refusal that queued for a slot would wait until release() (never
	// here) and one that tried the store would time out, not be refused; 1 s
	// catches any other wait on the store while a loaded runner stays green.
	if took := time.Since(start); took > time.Second {
		t.Errorf("refused call took %v", took)
	}
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "2 calls in flight") {
		t.Fatalf("third call: %v, want ErrUnavailable (in flight)", err)
	}
	if _, ok := FailureSeen(tctx); !ok {
		t.Errorf("the refusal was not recorded in the context")
	}
	st := g.Stats()
	if st.Rejected != 1 || st.InFlight != 2 || st.Calls != 2 || st.ConsecutiveFailures != 2 {
		t.Errorf("Stats = %+v, want 1 rejected, 2 in flight, 2 calls, 2 consecutive failures", st)
	}
	release()
	waitUntil(t, 2*time.Second, "in-flight calls to end", func() bool { return g.Stats().InFlight == 0 })
	if _, err := g.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after the store answered: %v, want a miss", err)
	}
}

func TestGuardClose(t *testing.T) {
	fs := stubPinger{newStubStore()}
	release := fs.setHold()
	defer release()
	g, err := NewGuard(fs, WithLogger(quietLogger()), WithOpTimeout(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		g.Get(context.Background(), "k")
	}
	closed := make(chan struct{})
	go func() { g.Close(); close(closed) }()

	// Calls made once Close has begun are refused.
	waitUntil(t, 2*time.Second, "Close to begin", func() bool { return g.closed.Load() })
	select {
	case <-closed:
		t.Fatal("Close returned while calls were still running in the store")
	case <-time.After(20 * time.Millisecond):
	}
	release()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the store answered")
	}
	ctx := context.Background()
	checks := []struct {
		name string
		err  error
	}{
		{"Get", func() error { _, err := g.Get(ctx, "k"); return err }()},
		{"GetTTL", func() error { _, _, err := g.GetTTL(ctx, "k"); return err }()},
		{"Set", g.Set(ctx, "k", []byte("v"), time.Minute)},
		{"Delete", g.Delete(ctx, "k")},
		{"Ping", g.Ping(ctx)},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !errors.Is(c.err, ErrClosed) || Classify(c.err) != ClassOpen {
				t.Errorf("after Close: %v, want ErrClosed", c.err)
			}
		})
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if st := g.Stats(); st.InFlight != 0 {
		t.Errorf("InFlight after Close = %d", st.InFlight)
	}
}

func TestGuardPing(t *testing.T) {
	t.Run("pinger goes through the breaker", func(t *testing.T) {
		fs := stubPinger{newStubStore()}
		var ops []string
		var mu sync.Mutex
		g := newTestGuard(t, fs, WithFailureThreshold(2), WithOpenPeriod(time.Hour), WithObserver(func(_, op string, _ time.Duration, _ Class) {
			mu.Lock()
			ops = append(ops, op)
			mu.Unlock()
		}))
		ctx := context.Background()
		if err := g.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		fs.failWith(errors.New("down"))
		g.Ping(ctx)
		g.Ping(ctx)
		if s := g.State(); s != StateOpen {
			t.Fatalf("after 2 failed pings State() = %v, want open", s)
		}
		if err := g.Ping(ctx); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Ping while open: %v, want ErrUnavailable", err)
		}
		if st := g.Stats(); st.Calls != 3 || st.Rejected != 1 {
			t.Errorf("Stats = %+v, want 3 calls, 1 rejected", st)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(ops) != 4 || ops[0] != "ping" {
			t.Errorf("observer ops = %q, want 4 pings", ops)
		}
	})
	t.Run("non-pinger reports the breaker", func(t *testing.T) {
		fs := newStubStore()
		g := newTestGuard(t, fs, WithFailureThreshold(1), WithOpenPeriod(time.Hour))
		ctx := context.Background()
		if err := g.Ping(ctx); err != nil {
			t.Fatalf("Ping while closed: %v", err)
		}
		fs.failWith(errors.New("down"))
		g.Get(ctx, "k")
		if err := g.Ping(ctx); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Ping while open: %v, want ErrUnavailable", err)
		}
		if st := g.Stats(); st.Calls != 1 || fs.calls.Load() != 1 {
			t.Errorf("Ping counted or reached the store: %+v", st)
		}
	})
}

func TestGuardGetTTL(t *testing.T) {
	tests := []struct {
		name    string
		store   func(*stubStore) Store
		wantTTL time.Duration
	}{
		{"TTLGetter", func(f *stubStore) Store { return stubPinger{f} }, 42 * time.Second},
		{"plain store", func(f *stubStore) Store { return f }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newStubStore()
			fs.data["k"] = []byte("v")
			g := newTestGuard(t, tt.store(fs))
			v, ttl, err := g.GetTTL(context.Background(), "k")
			if err != nil || string(v) != "v" || ttl != tt.wantTTL {
				t.Errorf("GetTTL = %q, %v, %v; want v, %v, nil", v, ttl, err, tt.wantTTL)
			}
			if _, _, err := g.GetTTL(context.Background(), "missing"); !errors.Is(err, ErrNotFound) {
				t.Errorf("GetTTL(missing): %v, want ErrNotFound", err)
			}
		})
	}
}

func TestGuardObserver(t *testing.T) {
	type obs struct {
		name, op string
		class    Class
	}
	var mu sync.Mutex
	var got []obs
	fs := stubPinger{newStubStore()}
	g := newTestGuard(t, fs, WithName("o"), WithFailureThreshold(1), WithOpenPeriod(time.Hour), WithObserver(func(name, op string, took time.Duration, c Class) {
		if took < 0 {
			t.Errorf("negative duration %v", took)
		}
		mu.Lock()
		got = append(got, obs{name, op, c})
		mu.Unlock()
	}))
	ctx := context.Background()
	g.Set(ctx, "k", []byte("v"), time.Minute)
	g.Get(ctx, "k")
	g.GetTTL(ctx, "nope")
	g.Delete(ctx, "k")
	g.Ping(ctx)
	fs.failWith(errors.New("down"))
	g.Get(ctx, "k")
	g.Get(ctx, "k")
	want := []obs{
		{"o", "set", ClassNone}, {"o", "get", ClassNone}, {"o", "get", ClassMiss},
		{"o", "delete", ClassNone}, {"o", "ping", ClassNone},
		{"o", "get", ClassConnection}, {"o", "get", ClassOpen},
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("observation %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestGuardStorePanics(t *testing.T) {
	fs := newStubStore()
	fs.panics = true
	g := newTestGuard(t, fs, WithFailureThreshold(1), WithOpenPeriod(time.Hour))
	_, err := g.Get(context.Background(), "k")
	if err == nil || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("Get over a panicking store: %v, want a panic error", err)
	}
	if s := g.State(); s != StateOpen {
		t.Errorf("State() = %v, want open: a panic is a failure", s)
	}
}

func TestGuardConcurrent(t *testing.T) {
	fs := stubPinger{newStubStore()}
	g := newTestGuard(t, fs, WithFailureThreshold(3), WithOpenPeriod(time.Millisecond), WithOpTimeout(50*time.Millisecond), WithMaxInFlight(16))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // flip the store between healthy and failing
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				fs.failWith(errors.New("down"))
			} else {
				fs.failWith(nil)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	var callers sync.WaitGroup
	for i := 0; i < 16; i++ {
		callers.Add(1)
		go func(i int) {
			defer callers.Done()
			ctx := context.Background()
			for j := 0; j < 200; j++ {
				key := fmt.Sprintf("k%d", j%4)
				switch j % 5 {
				case 0:
					g.Set(ctx, key, []byte("v"), time.Minute)
				case 1:
					g.Get(ctx, key)
				case 2:
					g.GetTTL(ctx, key)
				case 3:
					g.Delete(ctx, key)
				case 4:
					g.Ping(ctx)
					g.Stats()
					g.RetryAfter()
				}
			}
		}(i)
	}
	callers.Wait()
	close(stop)
	wg.Wait()
	st := g.Stats()
	if st.Calls+st.Rejected != 16*200 {
		t.Errorf("Calls %d + Rejected %d != %d", st.Calls, st.Rejected, 16*200)
	}
}

func TestGuardZeroValue(t *testing.T) {
	for _, g := range []*Guard{nil, {}} {
		name := "nil"
		if g != nil {
			name = "zero"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if _, err := g.Get(ctx, "k"); !errors.Is(err, ErrClosed) {
				t.Errorf("Get: %v, want ErrClosed", err)
			}
			if _, _, err := g.GetTTL(ctx, "k"); !errors.Is(err, ErrClosed) {
				t.Errorf("GetTTL: %v, want ErrClosed", err)
			}
			if err := g.Set(ctx, "k", nil, time.Second); !errors.Is(err, ErrClosed) {
				t.Errorf("Set: %v, want ErrClosed", err)
			}
			if err := g.Delete(ctx, "k"); !errors.Is(err, ErrClosed) {
				t.Errorf("Delete: %v, want ErrClosed", err)
			}
			if err := g.Ping(ctx); !errors.Is(err, ErrClosed) {
				t.Errorf("Ping: %v, want ErrClosed", err)
			}
			if s := g.State(); s != StateOpen {
				t.Errorf("State() = %v, want open", s)
			}
			if st := g.Stats(); st.State != StateOpen || g.RetryAfter() != 0 || g.Name() != "" {
				t.Errorf("Stats() = %+v, RetryAfter %v", st, g.RetryAfter())
			}
			if err := g.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if h, err := NewHook(g); err == nil || h != nil {
				t.Errorf("NewHook over a %s guard: %v, %v; want an error", name, h, err)
			}
		})
	}
}

// TestGuardRequestBudget: once a call with a tracked context waited out the
// op timeout, later calls with that context fail at once, while calls with
// other contexts still reach the store.
func TestGuardRequestBudget(t *testing.T) {
	hang := make(chan struct{})
	var calls atomic.Int64
	inner := budgetStore{calls: &calls, hang: hang}
	const opTimeout = 500 * time.Millisecond
	g, err := NewGuard(inner, WithOpTimeout(opTimeout), WithFailureThreshold(100), WithOpenPeriod(time.Minute), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		close(hang) // let the abandoned call end before Close waits for it
		g.Close()
	}()
	ctx := TrackFailures(context.Background())
	if _, err := g.Get(ctx, "slow"); Classify(err) != ClassTimeout {
		t.Fatalf("first call: %v, want a timeout", err)
	}
	start := time.Now()
	_, err = g.Get(ctx, "fast")
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("second call in the same request: %v, want ErrUnavailable", err)
	}
	// At once: it reaches no store (the count below) and waits on nothing;
	// a call that waited on the hung store would end only at the op timeout
	// (a timer cannot fire early), which is long here so that a loaded
	// runner finishes a refusal well within it.
	if took := time.Since(start); took >= opTimeout {
		t.Errorf("second call in the same request took %v, want at once (op timeout %v)", took, opTimeout)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the store saw %d calls, want 1", n)
	}
	if _, err := g.Get(TrackFailures(context.Background()), "fast"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a call in another request: %v, want a miss", err)
	}
}

// budgetStore hangs on the key "slow" until hang is signalled; other keys
// miss at once.
type budgetStore struct {
	calls *atomic.Int64
	hang  chan struct{}
}

func (s budgetStore) Get(ctx context.Context, key string) ([]byte, error) {
	s.calls.Add(1)
	if key == "slow" {
		<-s.hang
	}
	return nil, ErrNotFound
}
func (s budgetStore) Set(context.Context, string, []byte, time.Duration) error { return nil }
func (s budgetStore) Delete(context.Context, string) error                     { return nil }

// TestGuardClosedBreakerToldFailureRuns: while the breaker is closed, calls
// pass without asking it, and it is told only what it trips on: each
// failure, and the first success after failures, which ends their run.
// Requests and ConsecutiveSuccesses (BreakerStats) count those alone.
func TestGuardClosedBreakerToldFailureRuns(t *testing.T) {
	fs := newStubStore()
	g := newTestGuard(t, fs, WithFailureThreshold(3), WithOpenPeriod(time.Hour))
	ctx := context.Background()
	down := errors.New("connection refused")
	call := func(err error, n int) {
		t.Helper()
		fs.failWith(err)
		for range n {
			g.Get(ctx, "k")
		}
	}
	check := func(step string, requests, failures, successes uint32, state State) {
		t.Helper()
		st := g.Stats()
		if st.Requests != requests || st.ConsecutiveFailures != failures || st.ConsecutiveSuccesses != successes || st.State != state {
			t.Errorf("%s: breaker told %d requests, %d consecutive failures, %d consecutive successes, %v; want %d, %d, %d, %v",
				step, st.Requests, st.ConsecutiveFailures, st.ConsecutiveSuccesses, st.State, requests, failures, successes, state)
		}
	}
	call(nil, 50)
	check("50 successes", 0, 0, 0, StateClosed)
	call(down, 2)
	check("2 failures", 2, 2, 0, StateClosed)
	call(nil, 50)
	check("50 successes after them", 3, 0, 1, StateClosed) // only the first is told
	call(down, 2)
	call(nil, 1)
	call(down, 2)
	check("2 failures, a success, 2 failures", 8, 2, 0, StateClosed)
	call(down, 1)
	check("a third failure in a row", 0, 0, 0, StateOpen) // tripped: a new state's counts
	if st := g.Stats(); st.Calls != 108 || st.Failures != 7 || st.Trips != 1 {
		t.Errorf("Stats %+v, want 108 calls, 7 failures, 1 trip", st)
	}
}
