package store

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// tierOutage is the error a tierRemote returns while it is down: a refused
// connection, as go-redis reports it.
var tierOutage = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

type tierEntry struct {
	value     []byte
	expiresAt time.Time // zero: no expiry
}

// tierRemote is a remote Store for Tiered tests: a map that expires entries
// by a test clock, counts calls, can be switched down (every call fails with
// tierOutage) or made to fail with a given error, and can hold Set calls
// until released.
type tierRemote struct {
	now func() time.Time

	mu       sync.Mutex
	data     map[string]tierEntry
	down     bool
	failErr  error
	epochErr error         // when not nil, calls on the epoch marker fail with it
	gate     chan struct{} // when not nil, Set waits for it to be closed

	// Calls counted, but for those on the epoch marker, which epochGets and
	// epochSets count.
	gets, sets, dels, pings atomic.Int64
	epochGets, epochSets    atomic.Int64
	setsStarted             chan string // receives the key of each Set, if not nil
}

func newTierRemote(now func() time.Time) *tierRemote {
	return &tierRemote{now: now, data: map[string]tierEntry{}}
}

func (r *tierRemote) fail() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return tierOutage
	}
	return r.failErr
}

func (r *tierRemote) epochFail() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.epochErr
}

func (r *tierRemote) setDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
}

// flush empties the remote, as a restart does.
func (r *tierRemote) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.data)
}

func (r *tierRemote) has(key string) bool {
	_, _, err := r.peek(key)
	return err == nil
}

func (r *tierRemote) peek(key string) ([]byte, time.Duration, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.data[key]
	if !ok {
		return nil, 0, ErrNotFound
	}
	if e.expiresAt.IsZero() {
		return clone(e.value), 0, nil
	}
	ttl := e.expiresAt.Sub(r.now())
	if ttl <= 0 {
		delete(r.data, key)
		return nil, 0, ErrNotFound
	}
	return clone(e.value), ttl, nil
}

func (r *tierRemote) Get(ctx context.Context, key string) ([]byte, error) {
	v, _, err := r.GetTTL(ctx, key)
	return v, err
}

func (r *tierRemote) GetTTL(_ context.Context, key string) ([]byte, time.Duration, error) {
	if key == epochKey {
		r.epochGets.Add(1)
		if err := r.epochFail(); err != nil {
			return nil, 0, err
		}
	} else {
		r.gets.Add(1)
	}
	if err := r.fail(); err != nil {
		return nil, 0, err
	}
	return r.peek(key)
}

func (r *tierRemote) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if key == epochKey {
		r.epochSets.Add(1)
		if err := r.epochFail(); err != nil {
			return err
		}
		if err := r.fail(); err != nil {
			return err
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.data[key] = tierEntry{value: clone(value), expiresAt: r.now().Add(ttl)}
		return nil
	}
	r.sets.Add(1)
	if r.setsStarted != nil {
		r.setsStarted <- key
	}
	r.mu.Lock()
	gate := r.gate
	r.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if err := r.fail(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.data[key] = tierEntry{value: clone(value), expiresAt: r.now().Add(ttl)}
	return nil
}

func (r *tierRemote) Delete(_ context.Context, key string) error {
	r.dels.Add(1)
	if err := r.fail(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.data, key)
	return nil
}

func (r *tierRemote) Ping(context.Context) error {
	r.pings.Add(1)
	return r.fail()
}

// tierReply is a Redis error reply, as go-redis returns one.
type tierReply string

func (e tierReply) Error() string { return string(e) }
func (tierReply) RedisError()     {}

var _ redis.Error = tierReply("")

// plainStore hides every method of a Store but the Store interface's, so a
// Tiered cannot use GetTTL or Ping.
type plainStore struct{ Store }

// tierLogs is a slog handler that keeps the messages logged at Info and above.
type tierLogs struct {
	mu   sync.Mutex
	msgs []string
}

func (h *tierLogs) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h *tierLogs) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}
func (h *tierLogs) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *tierLogs) WithGroup(string) slog.Handler      { return h }

func (h *tierLogs) count(substr string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

// tierFixture is a Tiered over a Memory and a tierRemote sharing one clock.
type tierFixture struct {
	clock  *manualClock
	local  *Memory
	remote *tierRemote
	tiered *Tiered
	logs   *tierLogs
}

func newTierFixture(t *testing.T, opts ...TieredOption) *tierFixture {
	t.Helper()
	f := &tierFixture{clock: newManualClock(), logs: &tierLogs{}}
	f.local = newTestMemory(t, 1<<20, WithClock(f.clock.Now))
	f.remote = newTierRemote(f.clock.Now)
	opts = append([]TieredOption{WithClock(f.clock.Now), WithLogger(slog.New(f.logs))}, opts...)
	tiered, err := NewTiered(f.local, f.remote, opts...)
	if err != nil {
		t.Fatalf("NewTiered: %v", err)
	}
	t.Cleanup(func() { tiered.Close() })
	f.tiered = tiered
	return f
}

// holdSets makes the remote's Set calls wait until the returned release is
// called; release is also called when the test ends, before Close.
func (f *tierFixture) holdSets(t *testing.T) (release func()) {
	t.Helper()
	gate := make(chan struct{})
	f.remote.mu.Lock()
	f.remote.gate = gate
	f.remote.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			f.remote.mu.Lock()
			f.remote.gate = nil
			f.remote.mu.Unlock()
			close(gate)
		})
	}
	t.Cleanup(release)
	return release
}

// get calls Tiered.Get and fails the test unless it returns want.
func (f *tierFixture) get(t *testing.T, key, want string) {
	t.Helper()
	got, err := f.tiered.Get(context.Background(), key)
	if err != nil || string(got) != want {
		t.Fatalf("Get(%q) = %q, %v; want %q", key, got, err, want)
	}
}

// miss calls Tiered.Get and fails the test unless it returns ErrNotFound.
func (f *tierFixture) miss(t *testing.T, key string) {
	t.Helper()
	got, err := f.tiered.Get(context.Background(), key)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", key, got, err)
	}
}

// pollUntil polls cond until it holds or within has passed.
func pollUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNewTieredErrors(t *testing.T) {
	local := newTestMemory(t, 1<<20)
	remote := newTierRemote(time.Now)
	var nilRemote *tierRemote
	tests := []struct {
		name    string
		local   *Memory
		remote  Store
		opts    []TieredOption
		wantErr string
	}{
		{name: "nil local", local: nil, remote: remote, wantErr: "nil local"},
		{name: "zero local", local: &Memory{}, remote: remote, wantErr: "nil local"},
		{name: "nil remote", local: local, remote: nil, wantErr: "nil remote"},
		{name: "typed nil remote", local: local, remote: nilRemote, wantErr: "nil remote"},
		{name: "same store", local: local, remote: local, wantErr: "same store"},
		{name: "negative coherence", local: local, remote: remote, opts: []TieredOption{WithCoherence(-1)}, wantErr: "coherence"},
		{name: "no backfills", local: local, remote: remote, opts: []TieredOption{WithMaxBackfills(0)}, wantErr: "max backfills"},
		{name: "ok", local: local, remote: remote},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tiered, err := NewTiered(tt.local, tt.remote, tt.opts...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewTiered: %v", err)
				}
				tiered.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewTiered: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestTieredLocalHitWithinCoherence(t *testing.T) {
	f := newTierFixture(t, WithCoherence(2*time.Second))
	ctx := context.Background()
	if err := f.tiered.Set(ctx, "k", []byte("v1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		advance   time.Duration
		wantGets  int64
		remoteSet string // written straight to the remote before the Get
		want      string
	}{
		{name: "just written", advance: 0, wantGets: 0, want: "v1"},
		{name: "within the window", advance: 1999 * time.Millisecond, wantGets: 0, want: "v1"},
		{name: "other replica updates, not seen yet", advance: 0, remoteSet: "v2", wantGets: 0, want: "v1"},
		{name: "window over: asks the remote", advance: time.Millisecond, wantGets: 1, want: "v2"},
		{name: "confirmed again", advance: time.Second, wantGets: 1, want: "v2"},
		{name: "next window", advance: time.Second, wantGets: 2, want: "v2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.clock.Advance(tt.advance)
			if tt.remoteSet != "" {
				if err := f.remote.Set(ctx, "k", []byte(tt.remoteSet), time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			f.get(t, "k", tt.want)
			if got := f.remote.gets.Load(); got != tt.wantGets {
				t.Errorf("remote Gets = %d, want %d", got, tt.wantGets)
			}
		})
	}
}

func TestTieredZeroCoherence(t *testing.T) {
	f := newTierFixture(t, WithCoherence(0))
	ctx := context.Background()
	if err := f.tiered.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		f.get(t, "k", "v")
		if got := f.remote.gets.Load(); got != int64(i+1) {
			t.Fatalf("after %d Gets, remote Gets = %d", i+1, got)
		}
	}
}

func TestTieredRemotePurgeWins(t *testing.T) {
	tests := []struct {
		name  string
		purge func(f *tierFixture)
	}{
		{name: "deleted elsewhere", purge: func(f *tierFixture) { f.remote.Delete(context.Background(), "k") }},
		{name: "flushed while up", purge: func(f *tierFixture) { f.remote.flush() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTierFixture(t, WithCoherence(time.Second))
			ctx := context.Background()
			if err := f.tiered.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
				t.Fatal(err)
			}
			tt.purge(f)
			f.get(t, "k", "v") // within the window: the purge is not seen yet
			f.clock.Advance(time.Second)
			f.miss(t, "k")
			if _, ok := f.local.getItem("k"); ok {
				t.Error("local copy still there after the remote miss")
			}
			if err := f.tiered.Close(); err != nil {
				t.Fatal(err)
			}
			if f.remote.has("k") || f.remote.sets.Load() != 1 {
				t.Errorf("remote has k: %v, Sets = %d; want no backfill", f.remote.has("k"), f.remote.sets.Load())
			}
		})
	}
}

func TestTieredRemoteTTLBoundsLocalCopy(t *testing.T) {
	tests := []struct {
		name   string
		remote func(r *tierRemote) Store
		// the local copy's ttl right after the fill
		wantTTL time.Duration
	}{
		{name: "ttl getter: the remote's ttl", remote: func(r *tierRemote) Store { return r }, wantTTL: 10 * time.Second},
		{name: "plain store: the coherence window", remote: func(r *tierRemote) Store { return plainStore{r} }, wantTTL: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newManualClock()
			local := newTestMemory(t, 1<<20, WithClock(clock.Now))
			remote := newTierRemote(clock.Now)
			tiered, err := NewTiered(local, tt.remote(remote), WithClock(clock.Now), WithCoherence(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tiered.Close() })
			ctx := context.Background()
			if err := remote.Set(ctx, "k", []byte("v"), 10*time.Second); err != nil {
				t.Fatal(err)
			}
			v, ttl, err := tiered.GetTTL(ctx, "k")
			if err != nil || string(v) != "v" {
				t.Fatalf("GetTTL = %q, %v", v, err)
			}
			if ttl != tt.wantTTL {
				t.Errorf("GetTTL ttl = %v, want %v", ttl, tt.wantTTL)
			}
			if _, ttl, err := local.GetTTL(ctx, "k"); err != nil || ttl != tt.wantTTL {
				t.Errorf("local copy: ttl %v, err %v; want %v", ttl, err, tt.wantTTL)
			}
			// The remote goes away: the local copy answers only until its
			// own expiry.
			remote.setDown(true)
			clock.Advance(tt.wantTTL - time.Millisecond)
			if v, err := tiered.Get(ctx, "k"); err != nil || string(v) != "v" {
				t.Errorf("Get before the local copy expires = %q, %v", v, err)
			}
			clock.Advance(time.Millisecond)
			if _, err := tiered.Get(ctx, "k"); !IsUnavailable(err) {
				t.Errorf("Get after the local copy expired: %v, want an outage", err)
			}
		})
	}
}

func TestTieredRemoteNoExpiry(t *testing.T) {
	f := newTierFixture(t, WithCoherence(time.Second))
	f.remote.mu.Lock()
	f.remote.data["k"] = tierEntry{value: []byte("forever")}
	f.remote.mu.Unlock()
	v, ttl, err := f.tiered.GetTTL(context.Background(), "k")
	if err != nil || string(v) != "forever" || ttl != 0 {
		t.Fatalf("GetTTL = %q, %v, %v; want forever, 0, nil", v, ttl, err)
	}
	f.clock.Advance(1000 * time.Hour)
	f.remote.setDown(true)
	f.get(t, "k", "forever")
}

func TestTieredNoExpiryCopyNotBackfilled(t *testing.T) {
	f := newTierFixture(t, WithCoherence(time.Second))
	f.remote.mu.Lock()
	f.remote.data["k"] = tierEntry{value: []byte("forever")}
	f.remote.mu.Unlock()
	f.get(t, "k", "forever")
	f.remote.setDown(true)
	f.clock.Advance(time.Second)
	f.get(t, "k", "forever")
	f.remote.flush()
	f.remote.setDown(false)
	f.miss(t, "k")
	if err := f.tiered.Close(); err != nil {
		t.Fatal(err)
	}
	if n := f.remote.sets.Load(); n != 0 {
		t.Errorf("remote Sets = %d, want 0", n)
	}
}

func TestTieredClockSteppedBack(t *testing.T) {
	f := newTierFixture(t, WithCoherence(time.Second))
	ctx := context.Background()
	if err := f.tiered.Set(ctx, "k", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(-time.Minute)
	f.get(t, "k", "v")
	if n := f.remote.gets.Load(); n != 1 {
		t.Errorf("remote Gets = %d after the clock stepped back, want 1", n)
	}
}

func TestTieredOutage(t *testing.T) {
	f := newTierFixture(t, WithCoherence(time.Second))
	ctx := context.Background()
	if err := f.tiered.Set(ctx, "cached", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	f.remote.setDown(true)
	f.clock.Advance(time.Second)
	tests := []struct {
		name    string
		key     string
		want    string
		wantErr bool
	}{
		{name: "local copy answers", key: "cached", want: "v"},
		{name: "again, still down", key: "cached", want: "v"},
		{name: "no local copy", key: "other", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.tiered.Get(ctx, tt.key)
			if tt.wantErr {
				if !IsUnavailable(err) || !strings.HasPrefix(err.Error(), "store: tiered get: ") {
					t.Fatalf("Get = %q, %v; want a wrapped outage", got, err)
				}
				if !errors.Is(err, syscall.ECONNREFUSED) {
					t.Errorf("error %v does not wrap the remote's", err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("Get = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	t.Run("set during the outage", func(t *testing.T) {
		err := f.tiered.Set(ctx, "new", []byte("n"), time.Minute)
		if !IsUnavailable(err) {
			t.Fatalf("Set: %v, want the remote's outage", err)
		}
		f.get(t, "new", "n")
	})
	if n := f.logs.count("unavailable"); n != 1 {
		t.Errorf("logged 'unavailable' %d times, want once", n)
	}
	if n := f.logs.count("available again"); n != 0 {
		t.Errorf("logged 'available again' %d times, want 0", n)
	}
}

func TestTieredCommandError(t *testing.T) {
	f := newTierFixture(t, WithCoherence(time.Second))
	ctx := context.Background()
	if err := f.tiered.Set(ctx, "cached", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	f.remote.mu.Lock()
	f.remote.failErr = tierReply("WRONGTYPE Operation against a key holding the wrong kind of value")
	f.remote.mu.Unlock()
	f.clock.Advance(time.Second)
	f.get(t, "cached", "v")
	_, err := f.tiered.Get(ctx, "other")
	if c := Classify(err); c != ClassCommand {
		t.Errorf("Get without a local copy: %v (class %v), want a command error", err, c)
	}
	if n := f.logs.count("unavailable"); n != 0 {
		t.Errorf("a command error was logged as an outage")
	}
}

// TestTieredBackfill: a copy written before an outage is written back when
// the remote answers empty after it.
func TestTieredBackfill(t *testing.T) {
	tests := []struct {
		name string
		// write puts k in the tiered store; the remote goes down after it.
		write func(t *testing.T, f *tierFixture)
	}{
		{name: "written before the outage", write: func(t *testing.T, f *tierFixture) {
			if err := f.tiered.Set(context.Background(), "k", []byte("v"), time.Minute); err != nil {
				t.Fatal(err)
			}
			f.remote.setDown(true)
			f.clock.Advance(time.Second)
			f.get(t, "k", "v") // sees the outage
		}},
		{name: "written during the outage", write: func(t *testing.T, f *tierFixture) {
			f.remote.setDown(true)
			if err := f.tiered.Set(context.Background(), "k", []byte("v"), time.Minute); !IsUnavailable(err) {
				t.Fatalf("Set: %v, want an outage", err)
			}
			f.clock.Advance(time.Second)
		}},
		{name: "outage seen by a ping", write: func(t *testing.T, f *tierFixture) {
			if err := f.tiered.Set(context.Background(), "k", []byte("v"), time.Minute); err != nil {
				t.Fatal(err)
			}
			f.remote.setDown(true)
			if err := f.tiered.Ping(context.Background()); !IsUnavailable(err) {
				t.Fatalf("Ping: %v, want an outage", err)
			}
			f.clock.Advance(time.Second)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTierFixture(t, WithCoherence(time.Second))
			tt.write(t, f)
			f.remote.flush() // restarted empty
			f.remote.setDown(false)
			f.get(t, "k", "v")
			pollUntil(t, 5*time.Second, "the backfill", func() bool { return f.remote.has("k") })
			_, ttl, _ := f.remote.peek("k")
			if want := time.Minute - time.Second; ttl != want {
				t.Errorf("backfilled ttl = %v, want the remaining %v", ttl, want)
			}
			if n := f.logs.count("available again"); n != 1 {
				t.Errorf("logged 'available again' %d times, want once", n)
			}
			// Now in sync: a later purge wins.
			if err := f.tiered.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTieredBackfillOnce: a backfilled copy is confirmed, so a purge after
// the recovery is not undone by a second backfill.
func TestTieredBackfillOnce(t *testing.T) {
	f := newTierFixture(t, WithCoherence(time.Second))
	ctx := context.Background()
	if err := f.tiered.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	f.remote.setDown(true)
	f.clock.Advance(time.Second)
	f.get(t, "k", "v")
	f.remote.flush()
	f.remote.setDown(false)
	f.get(t, "k", "v")
	pollUntil(t, 5*time.Second, "the backfill", func() bool { return f.remote.has("k") })
	if err := f.remote.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	f.miss(t, "k")
	if f.remote.sets.Load() != 2 {
		t.Errorf("remote Sets = %d, want 2 (the write and one backfill)", f.remote.sets.Load())
	}
}

func TestTieredBackfillBound(t *testing.T) {
	const limit, keys = 2, 5
	f := newTierFixture(t, WithCoherence(time.Second), WithMaxBackfills(limit))
	ctx := context.Background()
	names := []string{"a", "b", "c", "d", "e"}
	for _, k := range names {
		if err := f.tiered.Set(ctx, k, []byte("v-"+k), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	f.remote.setDown(true)
	f.clock.Advance(time.Second)
	f.get(t, "a", "v-a") // sees the outage
	f.remote.flush()
	f.remote.setDown(false)

	release := f.holdSets(t)
	setsBefore := f.remote.sets.Load()
	for _, k := range names {
		f.get(t, k, "v-"+k) // every copy answers, backfilled or not
	}
	pollUntil(t, 5*time.Second, "the backfills to start", func() bool { return f.remote.sets.Load()-setsBefore == limit })

	// Close must wait for the held backfills.
	closed := make(chan struct{})
	go func() {
		f.tiered.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while backfills were running")
	case <-time.After(20 * time.Millisecond):
	}
	release()
	<-closed
	if got := f.remote.sets.Load() - setsBefore; got != limit {
		t.Errorf("backfills run = %d, want %d", got, limit)
	}
	n := 0
	for _, k := range names {
		if f.remote.has(k) {
			n++
		}
	}
	if n != limit {
		t.Errorf("%d keys back in the remote, want %d", n, limit)
	}
	if _, err := f.tiered.Get(ctx, "a"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
}

// TestTieredBackfillRetried: a dropped backfill is tried again on a later Get.
func TestTieredBackfillRetried(t *testing.T) {
	f := newTierFixture(t, WithCoherence(time.Second), WithMaxBackfills(1))
	ctx := context.Background()
	for _, k := range []string{"a", "b"} {
		if err := f.tiered.Set(ctx, k, []byte("v-"+k), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	f.remote.setDown(true)
	f.clock.Advance(time.Second)
	f.get(t, "a", "v-a")
	f.remote.flush()
	f.remote.setDown(false)

	release := f.holdSets(t)
	f.get(t, "a", "v-a") // takes the only slot
	pollUntil(t, 5*time.Second, "a's backfill", func() bool { return f.remote.sets.Load() == 3 })
	f.get(t, "b", "v-b") // dropped
	if f.remote.sets.Load() != 3 {
		t.Fatalf("remote Sets = %d, want 3: b's backfill was not dropped", f.remote.sets.Load())
	}
	release()
	pollUntil(t, 5*time.Second, "a back", func() bool { return f.remote.has("a") })
	// b's slot is free once a's goroutine has returned; Get until it runs.
	pollUntil(t, 5*time.Second, "b back", func() bool {
		f.get(t, "b", "v-b")
		return f.remote.has("b")
	})
}

func TestTieredSetDelete(t *testing.T) {
	f := newTierFixture(t)
	ctx := context.Background()
	t.Run("set writes both", func(t *testing.T) {
		if err := f.tiered.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, ok := f.local.getItem("k"); !ok || !f.remote.has("k") {
			t.Errorf("local has k: %v, remote has k: %v; want both", ok, f.remote.has("k"))
		}
	})
	t.Run("caller's slice not retained", func(t *testing.T) {
		v := []byte("orig")
		if err := f.tiered.Set(ctx, "c", v, time.Minute); err != nil {
			t.Fatal(err)
		}
		v[0] = 'X'
		got, _ := f.tiered.Get(ctx, "c")
		got[1] = 'Y'
		f.get(t, "c", "orig")
	})
	t.Run("delete removes both", func(t *testing.T) {
		if err := f.tiered.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if _, ok := f.local.getItem("k"); ok || f.remote.has("k") {
			t.Errorf("local has k: %v, remote has k: %v; want neither", ok, f.remote.has("k"))
		}
		f.miss(t, "k")
	})
	t.Run("delete returns the remote's error", func(t *testing.T) {
		if err := f.tiered.Set(ctx, "d", []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
		f.remote.setDown(true)
		defer f.remote.setDown(false)
		if err := f.tiered.Delete(ctx, "d"); !IsUnavailable(err) {
			t.Errorf("Delete: %v, want an outage", err)
		}
		if _, ok := f.local.getItem("d"); ok {
			t.Error("local copy kept after Delete")
		}
	})
	t.Run("bad input", func(t *testing.T) {
		sets := f.remote.sets.Load()
		for _, err := range []error{
			f.tiered.Set(ctx, "", []byte("v"), time.Minute),
			f.tiered.Set(ctx, "k", []byte("v"), 0),
			f.tiered.Delete(ctx, ""),
			func() error { _, err := f.tiered.Get(ctx, ""); return err }(),
		} {
			if Classify(err) != ClassInvalid {
				t.Errorf("err = %v, want invalid input", err)
			}
		}
		if f.remote.sets.Load() != sets {
			t.Error("bad input reached the remote")
		}
	})
}

func TestTieredValueOverLocalBudget(t *testing.T) {
	clock := newManualClock()
	local := newTestMemory(t, 4096, WithClock(clock.Now))
	remote := newTierRemote(clock.Now)
	tiered, err := NewTiered(local, remote, WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tiered.Close() })
	ctx := context.Background()
	big := make([]byte, 8192)
	if err := tiered.Set(ctx, "big", big, time.Minute); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if _, ok := local.getItem("big"); ok || !remote.has("big") {
		t.Errorf("local has big: %v, remote has big: %v; want the remote only", ok, remote.has("big"))
	}
	got, err := tiered.Get(ctx, "big")
	if err != nil || len(got) != len(big) {
		t.Errorf("Get = %d bytes, %v; want %d", len(got), err, len(big))
	}
}

func TestTieredPing(t *testing.T) {
	tests := []struct {
		name      string
		remote    func(r *tierRemote) Store
		down      bool
		wantErr   bool
		wantPings int64
	}{
		{name: "pinger up", remote: func(r *tierRemote) Store { return r }, wantPings: 1},
		{name: "pinger down", remote: func(r *tierRemote) Store { return r }, down: true, wantErr: true, wantPings: 1},
		{name: "not a pinger", remote: func(r *tierRemote) Store { return plainStore{r} }, down: true, wantPings: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local := newTestMemory(t, 1<<20)
			remote := newTierRemote(time.Now)
			remote.setDown(tt.down)
			tiered, err := NewTiered(local, tt.remote(remote), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
			if err != nil {
				t.Fatal(err)
			}
			defer tiered.Close()
			err = tiered.Ping(context.Background())
			if (err != nil) != tt.wantErr {
				t.Errorf("Ping: %v, want error: %v", err, tt.wantErr)
			}
			if got := remote.pings.Load(); got != tt.wantPings {
				t.Errorf("remote Pings = %d, want %d", got, tt.wantPings)
			}
		})
	}
}

func TestTieredClosed(t *testing.T) {
	f := newTierFixture(t)
	ctx := context.Background()
	if err := f.tiered.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.tiered.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	var zero Tiered
	for _, s := range []struct {
		name string
		t    *Tiered
	}{{"closed", f.tiered}, {"zero value", &zero}} {
		t.Run(s.name, func(t *testing.T) {
			for _, err := range []error{
				func() error { _, err := s.t.Get(ctx, "k"); return err }(),
				s.t.Set(ctx, "k", []byte("v"), time.Minute),
				s.t.Delete(ctx, "k"),
				s.t.Ping(ctx),
			} {
				if !errors.Is(err, ErrClosed) {
					t.Errorf("err = %v, want ErrClosed", err)
				}
			}
		})
	}
	// The tiers are the caller's: still open.
	if err := f.local.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Errorf("local store after Tiered.Close: %v", err)
	}
}

// TestTieredRedisRestart runs the backfill against a real Redis that is
// killed and restarted empty.
func TestTieredRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	remote := newTestRedis(t, srv)
	local := newTestMemory(t, 1<<20)
	logs := &tierLogs{}
	tiered, err := NewTiered(local, remote, WithCoherence(0), WithLogger(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tiered.Close() })
	ctx := context.Background()

	if err := tiered.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := tiered.Set(ctx, "purged", []byte("p"), time.Minute); err != nil {
		t.Fatal(err)
	}
	// Purged while Redis is up: the purge wins.
	if _, err := srv.Do("DEL", DefaultPrefix+"purged"); err != nil {
		t.Fatal(err)
	}
	if _, err := tiered.Get(ctx, "purged"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get purged: %v, want ErrNotFound", err)
	}

	srv.Kill()
	if got, err := tiered.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get during the outage = %q, %v; want the local copy", got, err)
	}
	if logs.count("unavailable") != 1 {
		t.Fatalf("outage not observed")
	}
	srv.Restart()
	if line, _ := srv.Do("EXISTS", DefaultPrefix+"k"); line != ":0" {
		t.Fatalf("EXISTS after restart = %q, want :0 (empty)", line)
	}
	if got, err := tiered.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get after the restart = %q, %v; want the local copy", got, err)
	}
	pollUntil(t, 5*time.Second, "k back in Redis", func() bool {
		line, _ := srv.Do("EXISTS", DefaultPrefix+"k")
		return line == ":1"
	})
	if ms := pttl(t, srv, DefaultPrefix+"k"); ms <= 0 || ms > 60000 {
		t.Errorf("PTTL of the backfilled key = %d ms, want in (0, 60000]", ms)
	}
	if line, _ := srv.Do("EXISTS", DefaultPrefix+"purged"); line != ":0" {
		t.Errorf("purged key came back: EXISTS = %q", line)
	}
	if logs.count("available again") != 1 {
		t.Errorf("recovery logged %d times, want once", logs.count("available again"))
	}
}

// TestTieredBlipThenPurge: after an outage that the remote survived with its
// data (the epoch marker is still there), a miss is a purge made by another
// replica: the local copy is dropped, not written back.
func TestTieredBlipThenPurge(t *testing.T) {
	tests := []struct {
		name string
		// blip makes the remote unavailable for one call, seen by the
		// Tiered store, then available again; k was written before.
		blip func(t *testing.T, f *tierFixture)
		// recoverWithK: the first call after the blip is the Get of k.
		recoverWithK bool
	}{
		{name: "seen by a get, purged after the recovery", blip: func(t *testing.T, f *tierFixture) {
			f.remote.setDown(true)
			f.clock.Advance(time.Second)
			f.get(t, "k", "v") // the outage: the local copy answers
			f.remote.setDown(false)
			f.miss(t, "other") // the recovery
		}},
		{name: "seen by a ping, purged after the recovery", blip: func(t *testing.T, f *tierFixture) {
			f.remote.setDown(true)
			if err := f.tiered.Ping(context.Background()); !IsUnavailable(err) {
				t.Fatalf("Ping: %v, want an outage", err)
			}
			f.remote.setDown(false)
			if err := f.tiered.Set(context.Background(), "other", []byte("o"), time.Minute); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "seen by a get, purged during the outage", recoverWithK: true, blip: func(t *testing.T, f *tierFixture) {
			f.remote.setDown(true)
			f.clock.Advance(time.Second)
			f.get(t, "k", "v")
			f.remote.setDown(false)
		}},
		{name: "marker confirmed before the outage", blip: func(t *testing.T, f *tierFixture) {
			f.clock.Advance(flapInterval)
			f.get(t, "k", "v") // the marker is read back
			f.remote.setDown(true)
			f.clock.Advance(time.Second)
			f.get(t, "k", "v")
			f.remote.setDown(false)
			f.miss(t, "other")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTierFixture(t, WithCoherence(time.Second))
			ctx := context.Background()
			if err := f.tiered.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
				t.Fatal(err)
			}
			if tt.recoverWithK {
				// Another replica purges k while this one cannot reach the
				// remote.
				if err := f.remote.Delete(ctx, "k"); err != nil {
					t.Fatal(err)
				}
				tt.blip(t, f)
			} else {
				tt.blip(t, f)
				if err := f.remote.Delete(ctx, "k"); err != nil {
					t.Fatal(err)
				}
			}
			sets := f.remote.sets.Load()
			f.clock.Advance(time.Second)
			f.miss(t, "k")
			if n := f.logs.count("available again"); n != 1 {
				t.Fatalf("logged 'available again' %d times, want once: the blip was not seen", n)
			}
			if _, ok := f.local.getItem("k"); ok {
				t.Error("local copy still there after the remote miss")
			}
			if err := f.tiered.Close(); err != nil {
				t.Fatal(err)
			}
			if f.remote.has("k") || f.remote.sets.Load() != sets {
				t.Errorf("remote has k: %v, Sets = %d; want no backfill", f.remote.has("k"), f.remote.sets.Load()-sets)
			}
			if n := f.logs.count("without its data"); n != 0 {
				t.Errorf("logged a data loss %d times, want none", n)
			}
			if n := f.remote.epochGets.Load(); n != 2 && n != 3 {
				t.Errorf("epoch marker read %d times, want 2 or 3 (first contact, read back, recovery)", n)
			}
		})
	}
}

// TestTieredRestartOtherReplicaFirst: two replicas share a remote that
// restarts empty; the one that comes back first writes a new marker, and the
// other still sees the restart, from the changed token.
func TestTieredRestartOtherReplicaFirst(t *testing.T) {
	clock := newManualClock()
	remote := newTierRemote(clock.Now)
	replica := func() (*Tiered, *tierLogs) {
		logs := &tierLogs{}
		local := newTestMemory(t, 1<<20, WithClock(clock.Now))
		tiered, err := NewTiered(local, remote, WithClock(clock.Now), WithCoherence(time.Second), WithLogger(slog.New(logs)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tiered.Close() })
		return tiered, logs
	}
	a, aLogs := replica()
	b, bLogs := replica()
	ctx := context.Background()
	get := func(s *Tiered, key, want string) {
		t.Helper()
		if got, err := s.Get(ctx, key); err != nil || string(got) != want {
			t.Fatalf("Get(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
	if err := a.Set(ctx, "ka", []byte("va"), time.Minute); err != nil { // writes the marker
		t.Fatal(err)
	}
	if err := b.Set(ctx, "kb", []byte("vb"), time.Minute); err != nil { // adopts it
		t.Fatal(err)
	}
	clock.Advance(flapInterval)
	get(a, "ka", "va") // both read the marker back
	get(b, "kb", "vb")
	if n := remote.epochGets.Load(); n != 4 {
		t.Fatalf("epoch marker read %d times, want 4", n)
	}

	remote.setDown(true)
	clock.Advance(time.Second)
	get(a, "ka", "va")
	get(b, "kb", "vb")
	remote.flush()
	remote.setDown(false)
	get(b, "kb", "vb") // b sees no marker, writes its own
	get(a, "ka", "va") // a sees b's
	pollUntil(t, 5*time.Second, "both backfills", func() bool { return remote.has("ka") && remote.has("kb") })
	for _, l := range []*tierLogs{aLogs, bLogs} {
		if n := l.count("without its data"); n != 1 {
			t.Errorf("logged a data loss %d times, want once", n)
		}
	}
}

// TestTieredMarkerUnproven: a marker token this store wrote but never read
// back proves nothing when another is found: another replica may have
// written its own at the same time. The miss wins.
func TestTieredMarkerUnproven(t *testing.T) {
	f := newTierFixture(t, WithCoherence(time.Second))
	ctx := context.Background()
	if err := f.tiered.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	f.remote.mu.Lock()
	f.remote.data[epochKey] = tierEntry{value: []byte("another replica's"), expiresAt: f.clock.Now().Add(time.Hour)}
	delete(f.remote.data, "k")
	f.remote.down = true
	f.remote.mu.Unlock()
	f.clock.Advance(time.Second)
	f.get(t, "k", "v")
	f.remote.setDown(false)
	f.miss(t, "k")
	if err := f.tiered.Close(); err != nil {
		t.Fatal(err)
	}
	if f.remote.has("k") {
		t.Error("k backfilled")
	}
	if v, _, _ := f.remote.peek(epochKey); string(v) != "another replica's" {
		t.Errorf("marker = %q, want the other replica's token, adopted", v)
	}
}

// TestTieredMarkerReadFails: a recovery whose marker read fails backfills
// nothing; the read is tried again flapInterval later, and a restart it then
// finds backfills the copies still there.
func TestTieredMarkerReadFails(t *testing.T) {
	f := newTierFixture(t, WithCoherence(time.Second))
	ctx := context.Background()
	for _, k := range []string{"a", "b"} {
		if err := f.tiered.Set(ctx, k, []byte("v-"+k), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	f.remote.setDown(true)
	f.clock.Advance(time.Second)
	f.get(t, "a", "v-a")
	f.remote.flush()
	f.remote.mu.Lock()
	f.remote.down = false
	f.remote.epochErr = tierOutage
	f.remote.mu.Unlock()
	f.miss(t, "a") // the marker cannot be read: the miss wins
	f.remote.mu.Lock()
	f.remote.epochErr = nil
	f.remote.mu.Unlock()
	f.clock.Advance(flapInterval - time.Millisecond)
	gets := f.remote.epochGets.Load()
	if err := f.tiered.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.remote.epochGets.Load() - gets; n != 0 {
		t.Errorf("marker read %d times within %v of the failed read, want 0", n, flapInterval)
	}
	f.clock.Advance(time.Millisecond)
	if err := f.tiered.Ping(ctx); err != nil { // the read again: no marker
		t.Fatal(err)
	}
	if n := f.remote.epochGets.Load() - gets; n != 1 {
		t.Errorf("marker read %d times %v after the failed read, want once", n, flapInterval)
	}
	f.get(t, "b", "v-b") // a copy from before the outage: backfilled
	pollUntil(t, 5*time.Second, "b's backfill", func() bool { return f.remote.has("b") })
	if err := f.tiered.Close(); err != nil {
		t.Fatal(err)
	}
	if f.remote.has("a") {
		t.Error("a backfilled after a failed marker read")
	}
}

// TestTieredFlapping: a remote that fails every other call (a dead shard of
// a cluster) logs each state change at most once per flapInterval, reads
// the marker at most once per flapInterval, and brings back no purged entry.
func TestTieredFlapping(t *testing.T) {
	f := newTierFixture(t, WithCoherence(0))
	ctx := context.Background()
	if err := f.tiered.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	const calls = 400 // 4 s at 10 ms each
	for i := range calls {
		f.remote.setDown(i%2 == 0)
		f.get(t, "k", "v")
		f.clock.Advance(10 * time.Millisecond)
	}
	if n := f.logs.count("unavailable"); n != 1 {
		t.Errorf("logged 'unavailable' %d times in %d flips, want once", n, calls)
	}
	if n := f.logs.count("available again"); n != 1 {
		t.Errorf("logged 'available again' %d times in %d flips, want once", n, calls)
	}
	if n := f.remote.epochGets.Load(); n != 2 {
		t.Errorf("epoch marker read %d times, want 2 (first contact, first recovery)", n)
	}

	// Left down, unlogged: logged by the first call after the limit.
	f.remote.setDown(true)
	f.get(t, "k", "v")
	if n := f.logs.count("unavailable"); n != 1 {
		t.Errorf("logged 'unavailable' %d times, want once", n)
	}
	f.clock.Advance(flapInterval)
	f.get(t, "k", "v")
	if n := f.logs.count("unavailable"); n != 2 {
		t.Errorf("logged 'unavailable' %d times after %v, want twice", n, flapInterval)
	}

	// The remote kept its data: a purge wins.
	f.remote.setDown(false)
	if err := f.remote.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	f.miss(t, "k")
	if err := f.tiered.Close(); err != nil {
		t.Fatal(err)
	}
	if f.remote.has("k") || f.remote.sets.Load() != 1 {
		t.Errorf("remote has k: %v, Sets = %d; want no backfill", f.remote.has("k"), f.remote.sets.Load())
	}
}

// TestTieredRedisBlip runs the blip against a real Redis that is paused for
// one timed-out call and keeps its data: a key purged by another writer
// after it stays purged.
func TestTieredRedisBlip(t *testing.T) {
	srv := redistest.Start(t)
	// One call waits out the op timeout during the pause; every other call
	// must succeed, so the op timeout is far above a round trip on a loaded
	// runner (a healthy call cut off would log a second outage).
	guard := newTestGuard(t, newTestRedis(t, srv), WithOpTimeout(500*time.Millisecond))
	local := newTestMemory(t, 1<<20)
	logs := &tierLogs{}
	tiered, err := NewTiered(local, guard, WithCoherence(0), WithLogger(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tiered.Close() })
	ctx := context.Background()
	if err := tiered.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if ms := pttl(t, srv, DefaultPrefix+epochKey); ms <= 0 || ms > int(epochTTL/time.Millisecond) {
		t.Errorf("PTTL of the epoch marker = %d ms, want in (0, %d]", ms, epochTTL/time.Millisecond)
	}

	srv.Pause()
	t.Cleanup(srv.Resume) // before the client and the guard close
	if got, err := tiered.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get during the pause = %q, %v; want the local copy", got, err)
	}
	if logs.count("unavailable") != 1 {
		t.Fatalf("outage not observed")
	}
	srv.Resume()
	pollUntil(t, 5*time.Second, "the recovery", func() bool {
		_, err := tiered.Get(ctx, "other")
		return errors.Is(err, ErrNotFound)
	})
	if _, err := srv.Do("DEL", DefaultPrefix+"k"); err != nil {
		t.Fatal(err)
	}
	if _, err := tiered.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after the purge: %v, want ErrNotFound", err)
	}
	if err := tiered.Close(); err != nil {
		t.Fatal(err)
	}
	if line, _ := srv.Do("EXISTS", DefaultPrefix+"k"); line != ":0" {
		t.Errorf("purged key came back: EXISTS = %q", line)
	}
	if logs.count("available again") != 1 || logs.count("without its data") != 0 {
		t.Errorf("logged recovery %d times, data loss %d times; want 1, 0",
			logs.count("available again"), logs.count("without its data"))
	}
}
