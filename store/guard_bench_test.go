package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// benchValue is the 1 KiB value the Redis benchmarks read.
var benchValue = bytes.Repeat([]byte("x"), 1024)

// benchClient starts a server and returns a client for it, closed at the end.
func benchClient(b *testing.B, hook redis.Hook) *redis.Client {
	return benchClientOpts(b, hook, nil)
}

// benchClientOpts is benchClient with the client's options changed by opt.
func benchClientOpts(b *testing.B, hook redis.Hook, opt func(*redis.Options)) *redis.Client {
	b.Helper()
	srv := redistest.Start(b)
	o := &redis.Options{Addr: srv.Addr(), DisableIdentity: true}
	if opt != nil {
		opt(o)
	}
	rdb := redis.NewClient(o)
	if hook != nil {
		rdb.AddHook(hook)
	}
	b.Cleanup(func() { rdb.Close() })
	if err := rdb.Set(context.Background(), DefaultPrefix+"k", benchValue, 0).Err(); err != nil {
		b.Fatal(err)
	}
	return rdb
}

// BenchmarkRawGet is the baseline: a GET of a 1 KiB value over go-redis,
// nothing in between.
func BenchmarkRawGet(b *testing.B) { benchRawGet(b, benchClient(b, nil)) }

func benchRawGet(b *testing.B, rdb *redis.Client) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		v, err := rdb.Get(ctx, DefaultPrefix+"k").Bytes()
		if err != nil || len(v) != len(benchValue) {
			b.Fatalf("GET: %d bytes, %v", len(v), err)
		}
	}
}

// BenchmarkRedisGet is the Redis store without a guard.
func BenchmarkRedisGet(b *testing.B) { benchRedisGet(b) }

// benchRedisGet measures one caller's Get through a Redis store built with
// opts.
func benchRedisGet(b *testing.B, opts ...RedisOption) {
	rdb := benchClient(b, nil)
	st, err := NewRedis(rdb, opts...)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if v, err := st.Get(ctx, "k"); err != nil || len(v) != len(benchValue) {
			b.Fatalf("Get: %d bytes, %v", len(v), err)
		}
	}
}

// BenchmarkGuardGet is the Redis store behind a guard, on the same kind of
// client as BenchmarkRawGet.
func BenchmarkGuardGet(b *testing.B) { benchGuardGet(b, benchClient(b, nil), false) }

// benchGuardGet measures Gets through a guard over a Redis store on rdb,
// which must run them inline or not as inline says.
func benchGuardGet(b *testing.B, rdb *redis.Client, inline bool) {
	st, err := NewRedis(rdb)
	if err != nil {
		b.Fatal(err)
	}
	g := newTestGuard(b, st)
	if g.inline != inline {
		b.Fatalf("guard runs inline: %v, want %v", g.inline, inline)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if v, err := g.Get(ctx, "k"); err != nil || len(v) != len(benchValue) {
			b.Fatalf("Get: %d bytes, %v", len(v), err)
		}
	}
}

// contextTimeouts gives a client ContextTimeoutEnabled and no maintenance
// notifications, as failsoft.New does for the cache's client: a guard runs
// its calls inline.
func contextTimeouts(o *redis.Options) {
	o.ContextTimeoutEnabled = true
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}

// BenchmarkRawGetContextTimeouts is BenchmarkRawGet on a client with
// ContextTimeoutEnabled: the baseline of BenchmarkGuardGetInline.
func BenchmarkRawGetContextTimeouts(b *testing.B) {
	benchRawGet(b, benchClientOpts(b, nil, contextTimeouts))
}

// BenchmarkGuardGetInline is BenchmarkGuardGet on a client with
// ContextTimeoutEnabled: the guard runs each call on the caller's goroutine.
func BenchmarkGuardGetInline(b *testing.B) {
	benchGuardGet(b, benchClientOpts(b, nil, contextTimeouts), true)
}

// BenchmarkGuardGetParallel is BenchmarkGuardGet from GOMAXPROCS goroutines.
func BenchmarkGuardGetParallel(b *testing.B) {
	rdb := benchClient(b, nil)
	st, err := NewRedis(rdb)
	if err != nil {
		b.Fatal(err)
	}
	benchGetParallel(b, newTestGuard(b, st))
}

// benchGetParallel measures g.Get from every P at once.
func benchGetParallel(b *testing.B, g *Guard) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := g.Get(ctx, "k"); err != nil {
				b.Errorf("Get: %v", err)
				return
			}
		}
	})
}

// nopStore answers every call at once, to measure the guard's own cost.
type nopStore struct{}

func (nopStore) Get(context.Context, string) ([]byte, error) { return benchValue, nil }
func (nopStore) Set(context.Context, string, []byte, time.Duration) error {
	return nil
}
func (nopStore) Delete(context.Context, string) error { return nil }

// BenchmarkGuardOverhead is the guard over a store that costs nothing: the
// guard's own time and allocations per call.
func BenchmarkGuardOverhead(b *testing.B) {
	g := newTestGuard(b, nopStore{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Get(ctx, "k"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGuardOpen is the open-breaker fast path.
func BenchmarkGuardOpen(b *testing.B) {
	fs := newStubStore()
	fs.failWith(errors.New("down"))
	g := newTestGuard(b, fs, WithFailureThreshold(1), WithOpenPeriod(time.Hour))
	ctx := context.Background()
	g.Get(ctx, "k")
	if g.State() != StateOpen {
		b.Fatal("breaker did not open")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Get(ctx, "k"); !errors.Is(err, ErrUnavailable) {
			b.Fatal(err)
		}
	}
}

// BenchmarkHookGet is BenchmarkRawGet on a client with the hook.
func BenchmarkHookGet(b *testing.B) {
	g := newTestGuard(b, unusedStore{})
	h, err := NewHook(g)
	if err != nil {
		b.Fatal(err)
	}
	rdb := benchClient(b, h)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		v, err := rdb.Get(ctx, DefaultPrefix+"k").Bytes()
		if err != nil || len(v) != len(benchValue) {
			b.Fatalf("GET: %d bytes, %v", len(v), err)
		}
	}
}

// BenchmarkHookOpen is a hooked GET while the breaker is open.
func BenchmarkHookOpen(b *testing.B) {
	g := newTestGuard(b, unusedStore{}, WithFailureThreshold(1), WithOpenPeriod(time.Hour))
	h, err := NewHook(g, WithCacheMode(true))
	if err != nil {
		b.Fatal(err)
	}
	rdb := benchClient(b, h)
	ctx := context.Background()
	done, _ := g.cb.Allow() // trip the shared breaker (threshold 1) without a server outage
	done(errBreakerFailure)
	if g.State() != StateOpen {
		b.Fatal("breaker did not open")
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := rdb.Get(ctx, "k").Err(); err != redis.Nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGuardOverheadInline is BenchmarkGuardOverhead for a store that
// ends its calls by their context's deadline: the guard runs them inline.
func BenchmarkGuardOverheadInline(b *testing.B) {
	g := newTestGuard(b, boundedNop{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Get(ctx, "k"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGuardOverheadInlineParallel is BenchmarkGuardOverheadInline
// from every P at once: what calls that all pass one guard cost each other
// (run with -cpu 1,2,4,8,16).
func BenchmarkGuardOverheadInlineParallel(b *testing.B) {
	benchGetParallel(b, newTestGuard(b, boundedNop{}))
}
