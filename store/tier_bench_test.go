package store

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/failsoft/failsoft/internal/decoded"
	"github.com/failsoft/failsoft/internal/redistest"
)

// tierBenchValue is the 1 KiB value the tier benchmarks read.
var tierBenchValue = bytes.Repeat([]byte("v"), 1024)

// BenchmarkMemoryGet is a hit in the in-process store: a lookup and a copy
// of the 1 KiB value.
func BenchmarkMemoryGet(b *testing.B) {
	m := newTestMemory(b, 64<<20)
	ctx := context.Background()
	if err := m.Set(ctx, "k", tierBenchValue, time.Hour); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if v, err := m.Get(ctx, "k"); err != nil || len(v) != len(tierBenchValue) {
			b.Fatalf("Get: %d bytes, %v", len(v), err)
		}
	}
}

// benchDecoder is a Decoder that does what a real one costs least: it
// wraps the value.
type benchDecoder struct{}

func (benchDecoder) Decode(value []byte) (any, int, error) { return &value, 24, nil }

// BenchmarkMemoryGetDecoded is a hit in the in-process store through
// GetDecoded: a lookup, and the value decoded once and kept.
func BenchmarkMemoryGetDecoded(b *testing.B) {
	m := newTestMemory(b, 64<<20)
	ctx := context.Background()
	if err := m.Set(ctx, "k", tierBenchValue, time.Hour); err != nil {
		b.Fatal(err)
	}
	var d decoded.Decoder = benchDecoder{}
	b.ReportAllocs()
	for b.Loop() {
		if v, err := m.GetDecoded(ctx, "k", d, time.Time{}); err != nil || len(*v.(*[]byte)) != len(tierBenchValue) {
			b.Fatalf("GetDecoded: %v, %v", v, err)
		}
	}
}

// BenchmarkMemoryGetParallel is BenchmarkMemoryGet from every P at once.
func BenchmarkMemoryGetParallel(b *testing.B) {
	m := newTestMemory(b, 64<<20)
	ctx := context.Background()
	if err := m.Set(ctx, "k", tierBenchValue, time.Hour); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, err := m.Get(ctx, "k"); err != nil || len(v) != len(tierBenchValue) {
				b.Errorf("Get: %d bytes, %v", len(v), err)
				return
			}
		}
	})
}

// BenchmarkMemorySet is a write of a 1 KiB value over a live entry.
func BenchmarkMemorySet(b *testing.B) {
	m := newTestMemory(b, 64<<20)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Set(ctx, "k", tierBenchValue, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTieredGetLocalHit is a Tiered Get answered by the in-process copy
// within the coherence window: the remote (a real Redis) is not asked.
func BenchmarkTieredGetLocalHit(b *testing.B) {
	srv := redistest.Start(b)
	remote := newTestRedis(b, srv)
	local := newTestMemory(b, 64<<20)
	tiered, err := NewTiered(local, remote, WithCoherence(time.Hour),
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tiered.Close() })
	ctx := context.Background()
	if err := tiered.Set(ctx, "k", tierBenchValue, time.Hour); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if v, err := tiered.Get(ctx, "k"); err != nil || len(v) != len(tierBenchValue) {
			b.Fatalf("Get: %d bytes, %v", len(v), err)
		}
	}
}

// BenchmarkTieredGetDecodedLocalHit is BenchmarkTieredGetLocalHit through
// GetDecoded: no copy, and the decoded value kept with the local copy.
func BenchmarkTieredGetDecodedLocalHit(b *testing.B) {
	srv := redistest.Start(b)
	remote := newTestRedis(b, srv)
	local := newTestMemory(b, 64<<20)
	tiered, err := NewTiered(local, remote, WithCoherence(time.Hour),
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tiered.Close() })
	ctx := context.Background()
	if err := tiered.Set(ctx, "k", tierBenchValue, time.Hour); err != nil {
		b.Fatal(err)
	}
	var d decoded.Decoder = benchDecoder{}
	b.ReportAllocs()
	for b.Loop() {
		if v, err := tiered.GetDecoded(ctx, "k", d, time.Time{}); err != nil || len(*v.(*[]byte)) != len(tierBenchValue) {
			b.Fatalf("GetDecoded: %v, %v", v, err)
		}
	}
}

// BenchmarkTieredGetRemoteHit is a Tiered Get with a coherence of 0: every
// call asks Redis (GET and PTTL in one round trip) and refreshes the local
// copy.
func BenchmarkTieredGetRemoteHit(b *testing.B) {
	srv := redistest.Start(b)
	remote := newTestRedis(b, srv)
	local := newTestMemory(b, 64<<20)
	tiered, err := NewTiered(local, remote, WithCoherence(0),
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tiered.Close() })
	ctx := context.Background()
	if err := tiered.Set(ctx, "k", tierBenchValue, time.Hour); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if v, err := tiered.Get(ctx, "k"); err != nil || len(v) != len(tierBenchValue) {
			b.Fatalf("Get: %d bytes, %v", len(v), err)
		}
	}
}

// BenchmarkRedisGetTTL is the Redis store's GetTTL: a pipeline of GET and
// PTTL for a 1 KiB value.
func BenchmarkRedisGetTTL(b *testing.B) {
	srv := redistest.Start(b)
	s := newTestRedis(b, srv)
	ctx := context.Background()
	if err := s.Set(ctx, "k", tierBenchValue, time.Hour); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if v, ttl, err := s.GetTTL(ctx, "k"); err != nil || len(v) != len(tierBenchValue) || ttl <= 0 {
			b.Fatalf("GetTTL: %d bytes, %v, %v", len(v), ttl, err)
		}
	}
}
