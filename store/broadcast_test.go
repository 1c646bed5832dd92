package store

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft/internal/redistest"
)

// newTestBroadcast subscribes to channel on srv.
func newTestBroadcast(t *testing.T, srv *redistest.Server, channel string) (*Broadcast, *redis.Client) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b, err := NewBroadcast(rdb, channel, WithLogger(slog.New(&tierLogs{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Close()
		rdb.Close()
	})
	pollUntil(t, 5*time.Second, "the subscription", b.Subscribed)
	return b, rdb
}

// TestTieredBroadcast checks when a Tiered with a broadcast keeps a copy
// past the coherence window, and that an announced key is dropped.
func TestTieredBroadcast(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// setup runs after the copy of "k" was read from the remote.
		setup    func(t *testing.T, b *Broadcast, rdb *redis.Client, p *PendingDeletes, remote *tierRemote)
		wantAsks bool // whether a read past the coherence window asks the remote
		wantMiss bool // whether it misses (the remote lost "k" meanwhile)
	}{
		{"subscribed: the copy answers past the coherence window", nil, false, false},
		{"announced key: the copy is dropped", func(t *testing.T, b *Broadcast, rdb *redis.Client, p *PendingDeletes, remote *tierRemote) {
			if err := remote.Delete(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			before := b.Stats().Received
			if err := rdb.Publish(ctx, "ch", "k").Err(); err != nil {
				t.Fatal(err)
			}
			pollUntil(t, 5*time.Second, "the announcement", func() bool { return b.Stats().Received > before })
		}, true, true},
		{"subscription lost: the coherence window applies", func(t *testing.T, b *Broadcast, rdb *redis.Client, p *PendingDeletes, remote *tierRemote) {
			b.Close()
		}, true, false},
		{"delete pending: the coherence window applies", func(t *testing.T, b *Broadcast, rdb *redis.Client, p *PendingDeletes, remote *tierRemote) {
			remote.setDown(true)
			if err := p.Delete(ctx, "other"); !errors.Is(err, ErrDeletePending) {
				t.Fatalf("Delete = %v, want pending", err)
			}
			remote.setDown(false)
			// hold the queue: the remote refuses deletes of "other" again
		}, true, false},
	}
	srv := redistest.Start(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, rdb := newTestBroadcast(t, srv, "ch")
			clock := newManualClock()
			local := newTestMemory(t, 1<<20, WithClock(clock.Now))
			remote := newTierRemote(clock.Now)
			p := newTestPending(t, &stickyDelete{tierRemote: remote, key: "other"})
			tiered, err := NewTiered(local, p, WithClock(clock.Now), WithBroadcast(b, 0), WithLogger(slog.New(&tierLogs{})))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tiered.Close() })
			if err := remote.Set(ctx, "k", []byte("v"), time.Hour); err != nil {
				t.Fatal(err)
			}
			if v, err := tiered.Get(ctx, "k"); err != nil || string(v) != "v" {
				t.Fatalf("first Get = %q, %v", v, err)
			}
			if tc.setup != nil {
				tc.setup(t, b, rdb, p, remote)
			}
			clock.Advance(10 * DefaultCoherence)
			gets := remote.gets.Load()
			v, err := tiered.Get(ctx, "k")
			if asked := remote.gets.Load() > gets; asked != tc.wantAsks {
				t.Errorf("asked the remote: %v, want %v", asked, tc.wantAsks)
			}
			switch {
			case tc.wantMiss && !errors.Is(err, ErrNotFound):
				t.Errorf("Get = %q, %v; want a miss", v, err)
			case !tc.wantMiss && (err != nil || string(v) != "v"):
				t.Errorf("Get = %q, %v; want v", v, err)
			}
		})
	}
}

// stickyDelete is a tierRemote whose deletes of key fail with an outage.
type stickyDelete struct {
	*tierRemote
	key string
}

func (s *stickyDelete) Delete(ctx context.Context, key string) error {
	if key == s.key {
		return tierOutage
	}
	return s.tierRemote.Delete(ctx, key)
}

// TestBroadcastReconnects checks that the subscription is reported down
// while the server is dead or hung, and comes back after it restarts or
// resumes.
func TestBroadcastReconnects(t *testing.T) {
	for _, tc := range []struct {
		name       string
		down, heal func(*redistest.Server)
	}{
		{"killed and restarted", (*redistest.Server).Kill, (*redistest.Server).Restart},
		{"paused and resumed", (*redistest.Server).Pause, (*redistest.Server).Resume},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t)
			b, rdb := newTestBroadcast(t, srv, "ch")
			tc.down(srv)
			pollUntil(t, 10*time.Second, "the subscription lost", func() bool { return !b.Subscribed() })
			tc.heal(srv)
			pollUntil(t, 10*time.Second, "the subscription back", b.Subscribed)
			before := b.Stats().Received
			pollUntil(t, 5*time.Second, "an announcement received", func() bool {
				_ = rdb.Publish(context.Background(), "ch", "k").Err()
				return b.Stats().Received > before
			})
			if st := b.Stats(); st.Reconnects == 0 {
				t.Errorf("stats = %+v, want a reconnect", st)
			}
		})
	}
}

// TestRedisDeletePublishes checks that a Redis store with an invalidation
// channel announces the keys it deletes, without the prefix.
func TestRedisDeletePublishes(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	s, err := NewRedis(rdb, WithPrefix("p:"), WithInvalidationChannel("p:inv"))
	if err != nil {
		t.Fatal(err)
	}
	ps := rdb.Subscribe(context.Background(), "p:inv")
	defer ps.Close()
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	msg, err := ps.ReceiveMessage(context.Background())
	if err != nil || msg.Payload != "k" {
		t.Fatalf("message = %+v, %v; want k", msg, err)
	}
	if s.Published() != 1 {
		t.Errorf("Published = %d, want 1", s.Published())
	}
}

func TestNewBroadcastErrors(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	defer ring.Close()
	var nilClient *redis.Client
	for _, tc := range []struct {
		name    string
		client  redis.UniversalClient
		channel string
		opts    []BroadcastOption
	}{
		{"nil client", nil, "ch", nil},
		{"typed nil client", nilClient, "ch", nil},
		{"ring", ring, "ch", nil},
		{"empty channel", rdb, "", nil},
		{"nil option", rdb, "ch", []BroadcastOption{nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if b, err := NewBroadcast(tc.client, tc.channel, tc.opts...); err == nil {
				b.Close()
				t.Fatal("no error")
			}
		})
	}
	local := newTestMemory(t, 1<<20)
	if _, err := NewTiered(local, newTierRemote(time.Now), WithBroadcast(nil, 0)); err == nil {
		t.Error("NewTiered with a nil broadcast: no error")
	}
}

// overtaken is a tierRemote that runs during before answering a GetTTL.
type overtaken struct {
	*tierRemote
	during func()
}

func (o *overtaken) GetTTL(ctx context.Context, key string) ([]byte, time.Duration, error) {
	v, ttl, err := o.tierRemote.GetTTL(ctx, key)
	if o.during != nil {
		o.during()
	}
	return v, ttl, err
}

// TestTieredOvertakenRead checks that a remote read that an announcement of
// its key overtook is served but not kept in process: it may be older than
// the delete announced.
func TestTieredOvertakenRead(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	b, _ := newTestBroadcast(t, srv, "ch")
	remote := &overtaken{tierRemote: newTierRemote(time.Now)}
	local := newTestMemory(t, 1<<20)
	tiered, err := NewTiered(local, remote, WithBroadcast(b, 0), WithLogger(slog.New(&tierLogs{})))
	if err != nil {
		t.Fatal(err)
	}
	defer tiered.Close()
	if err := remote.Set(ctx, "k", []byte("old"), time.Hour); err != nil {
		t.Fatal(err)
	}
	remote.during = func() { tiered.evict("k") }
	if v, err := tiered.Get(ctx, "k"); err != nil || string(v) != "old" {
		t.Fatalf("Get = %q, %v; want the remote's answer", v, err)
	}
	if _, ok := local.getItem("k"); ok {
		t.Fatal("the overtaken read was kept in process")
	}
	remote.during = nil
	if _, err := tiered.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, ok := local.getItem("k"); !ok {
		t.Fatal("a read not overtaken was not kept")
	}
}
