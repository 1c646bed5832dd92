package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsoft/failsoft/internal/decoded"
)

// errUndecodable is what testDecoder returns for a value starting with "!".
var errUndecodable = errors.New("test: undecodable")

// testDecoder decodes a value to a *decodedValue that aliases it, declares
// weight, and counts its calls (in calls, shared by copies of the decoder).
// Decoders with different ids are not equal.
type testDecoder struct {
	id     int
	weight int
	calls  *atomic.Int64
}

// decodedValue is what testDecoder decodes: the bytes (aliased) and the
// decoder's id.
type decodedValue struct {
	b  []byte
	id int
}

func newTestDecoder(id, weight int) testDecoder {
	return testDecoder{id: id, weight: weight, calls: new(atomic.Int64)}
}

func (d testDecoder) Decode(value []byte) (any, int, error) {
	d.calls.Add(1)
	if bytes.HasPrefix(value, []byte("!")) {
		return nil, 0, fmt.Errorf("decode %q: %w", value, errUndecodable)
	}
	return &decodedValue{b: value, id: d.id}, d.weight, nil
}

// getDecoded calls GetDecoded and checks the result decodes want.
func getDecoded(t *testing.T, s decoded.Getter, key string, d testDecoder, want string) *decodedValue {
	t.Helper()
	v, err := s.GetDecoded(context.Background(), key, d, time.Time{})
	if err != nil {
		t.Fatalf("GetDecoded(%q): %v", key, err)
	}
	dv, ok := v.(*decodedValue)
	if !ok || string(dv.b) != want || dv.id != d.id {
		t.Fatalf("GetDecoded(%q) = %#v, want %q decoded by %d", key, v, want, d.id)
	}
	return dv
}

func TestMemoryGetDecoded(t *testing.T) {
	ctx := context.Background()
	m := newTestMemory(t, 1<<20)
	if err := m.Set(ctx, "k", []byte("v1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	d := newTestDecoder(1, 100)

	first := getDecoded(t, m, "k", d, "v1")
	if again := getDecoded(t, m, "k", d, "v1"); again != first {
		t.Error("a second GetDecoded decoded again: the decoded value was not kept")
	}
	if n := d.calls.Load(); n != 1 {
		t.Errorf("Decode called %d times, want 1", n)
	}
	// An equal decoder shares it.
	twin := testDecoder{id: 1, weight: 100, calls: d.calls}
	if again := getDecoded(t, m, "k", twin, "v1"); again != first {
		t.Error("an equal decoder did not get the kept value")
	}

	t.Run("Get still returns a copy the caller owns", func(t *testing.T) {
		got, err := m.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		got[0] = 'X'
		if string(first.b) != "v1" {
			t.Fatalf("changing Get's result changed the stored bytes: %q", first.b)
		}
		getDecoded(t, m, "k", d, "v1")
	})

	t.Run("another decoder decodes for itself", func(t *testing.T) {
		other := newTestDecoder(2, 100)
		getDecoded(t, m, "k", other, "v1")
		if n := other.calls.Load(); n != 1 {
			t.Errorf("other decoder called %d times, want 1", n)
		}
	})

	t.Run("a new value is decoded again", func(t *testing.T) {
		if err := m.Set(ctx, "k", []byte("v2"), time.Minute); err != nil {
			t.Fatal(err)
		}
		before := d.calls.Load()
		getDecoded(t, m, "k", d, "v2")
		getDecoded(t, m, "k", d, "v2")
		if n := d.calls.Load() - before; n != 1 {
			t.Errorf("Decode called %d times for the new value, want 1", n)
		}
	})

	t.Run("miss", func(t *testing.T) {
		if _, err := m.GetDecoded(ctx, "absent", d, time.Time{}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetDecoded(absent) = %v, want ErrNotFound", err)
		}
	})

	t.Run("a decode error is returned and not kept", func(t *testing.T) {
		if err := m.Set(ctx, "bad", []byte("!x"), time.Minute); err != nil {
			t.Fatal(err)
		}
		before := d.calls.Load()
		for range 2 {
			if _, err := m.GetDecoded(ctx, "bad", d, time.Time{}); !errors.Is(err, errUndecodable) {
				t.Fatalf("GetDecoded(bad) = %v, want the decoder's error", err)
			}
		}
		if n := d.calls.Load() - before; n != 2 {
			t.Errorf("Decode called %d times, want 2 (errors are not kept)", n)
		}
	})

	t.Run("expired", func(t *testing.T) {
		clock := newManualClock()
		m := newTestMemory(t, 1<<20, WithClock(clock.Now))
		if err := m.Set(ctx, "k", []byte("v"), time.Second); err != nil {
			t.Fatal(err)
		}
		getDecoded(t, m, "k", d, "v")
		clock.Advance(time.Second)
		if _, err := m.GetDecoded(ctx, "k", d, time.Time{}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetDecoded after expiry = %v, want ErrNotFound", err)
		}
	})

	t.Run("closed", func(t *testing.T) {
		m := newTestMemory(t, 1<<20)
		m.Close()
		if _, err := m.GetDecoded(ctx, "k", d, time.Time{}); !errors.Is(err, ErrClosed) {
			t.Fatalf("GetDecoded after Close = %v, want ErrClosed", err)
		}
	})
}

// TestMemoryGetDecodedWeight checks that a kept decoded value counts
// against the budget, and that one that would not fit is not kept.
func TestMemoryGetDecodedWeight(t *testing.T) {
	ctx := context.Background()
	const budget = 4096
	m := newTestMemory(t, budget)
	if err := m.Set(ctx, "k", []byte("value"), time.Minute); err != nil {
		t.Fatal(err)
	}
	base := uint64(len("k") + len("value") + MemoryEntryOverhead)
	if got := m.WeightedSize(); got != base {
		t.Fatalf("WeightedSize = %d, want %d", got, base)
	}

	d := newTestDecoder(1, 1000)
	getDecoded(t, m, "k", d, "value")
	kept := base + 1000 + decodedFormOverhead
	if got := m.WeightedSize(); got != kept {
		t.Errorf("WeightedSize with a kept decoded value = %d, want %d", got, kept)
	}

	heavy := newTestDecoder(2, budget)
	getDecoded(t, m, "k", heavy, "value")
	getDecoded(t, m, "k", heavy, "value")
	if n := heavy.calls.Load(); n != 2 {
		t.Errorf("a decoded value over the budget: Decode called %d times, want 2 (not kept)", n)
	}
	if got := m.WeightedSize(); got != kept {
		t.Errorf("WeightedSize = %d, want %d (the lighter decoded value kept)", got, kept)
	}

	if err := m.Set(ctx, "k", []byte("value"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := m.WeightedSize(); got != base {
		t.Errorf("WeightedSize after a new Set = %d, want %d (the decoded value dropped)", got, base)
	}
}

func TestTieredGetDecoded(t *testing.T) {
	ctx := context.Background()
	f := newTierFixture(t, WithCoherence(2*time.Second))
	if err := f.tiered.Set(ctx, "k", []byte("v1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	d := newTestDecoder(1, 10)

	first := getDecoded(t, f.tiered, "k", d, "v1")
	if again := getDecoded(t, f.tiered, "k", d, "v1"); again != first {
		t.Error("a hit within the coherence window decoded again")
	}
	if n := d.calls.Load(); n != 1 {
		t.Errorf("Decode called %d times, want 1", n)
	}
	if n := f.remote.gets.Load(); n != 0 {
		t.Errorf("remote Gets = %d, want 0", n)
	}

	// Get's copy is the caller's: changing it changes nothing stored.
	got, err := f.tiered.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	got[0] = 'X'
	getDecoded(t, f.tiered, "k", d, "v1")

	// Past the window, the remote's bytes replace the copy: decoded once
	// more, then kept again.
	if err := f.remote.Set(ctx, "k", []byte("v2"), time.Minute); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Second)
	second := getDecoded(t, f.tiered, "k", d, "v2")
	if again := getDecoded(t, f.tiered, "k", d, "v2"); again != second {
		t.Error("the refreshed copy was decoded again within the window")
	}
	if n := d.calls.Load(); n != 2 {
		t.Errorf("Decode called %d times, want 2", n)
	}

	// A purge elsewhere wins past the window.
	if err := f.tiered.Set(ctx, "p", []byte("p"), time.Minute); err != nil {
		t.Fatal(err)
	}
	getDecoded(t, f.tiered, "p", d, "p")
	if err := f.remote.Delete(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Second)
	if _, err := f.tiered.GetDecoded(ctx, "p", d, time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetDecoded after a remote purge = %v, want ErrNotFound", err)
	}

	// While the remote is down the kept value answers.
	f.remote.setDown(true)
	f.clock.Advance(2 * time.Second)
	if again := getDecoded(t, f.tiered, "k", d, "v2"); again != second {
		t.Error("during an outage the local copy was decoded again")
	}
	if _, err := f.tiered.GetDecoded(ctx, "absent", d, time.Time{}); !IsUnavailable(err) {
		t.Errorf("GetDecoded(absent) during an outage = %v, want the outage", err)
	}
	f.remote.setDown(false)
}

// TestTieredGetDecodedNotKeptLocally checks values that do not go into the
// local tier: decoded on every call, and still correct.
func TestTieredGetDecodedNotKeptLocally(t *testing.T) {
	ctx := context.Background()
	f := newTierFixture(t, WithCoherence(0))
	if err := f.remote.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	// The remote is a TTLGetter, so the copy is stored; with coherence 0 it
	// is replaced by the remote's bytes on every call.
	d := newTestDecoder(1, 10)
	for range 3 {
		getDecoded(t, f.tiered, "k", d, "v")
	}
	if n := d.calls.Load(); n != 3 {
		t.Errorf("Decode called %d times, want 3", n)
	}
	if err := f.tiered.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.tiered.GetDecoded(ctx, "k", d, time.Time{}); !errors.Is(err, ErrClosed) {
		t.Errorf("GetDecoded after Close = %v, want ErrClosed", err)
	}
}

// TestGetDecodedConcurrent races GetDecoded with Set and Delete of the same
// keys (run with -race): every result is a value that was stored.
func TestGetDecodedConcurrent(t *testing.T) {
	ctx := context.Background()
	f := newTierFixture(t, WithCoherence(time.Hour))
	d := newTestDecoder(1, 64)
	stores := map[string]decoded.Getter{"memory": f.local, "tiered": f.tiered}
	for name, s := range stores {
		t.Run(name, func(t *testing.T) {
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for i := range 200 {
						key := fmt.Sprintf("k%d", i%4)
						switch {
						case w == 0 && i%3 == 0:
							_ = f.tiered.Set(ctx, key, fmt.Appendf(nil, "v%d", i), time.Minute)
						case w == 0 && i%7 == 0:
							_ = f.tiered.Delete(ctx, key)
						default:
							v, err := s.GetDecoded(ctx, key, d, time.Time{})
							if err != nil {
								continue
							}
							if dv := v.(*decodedValue); !bytes.HasPrefix(dv.b, []byte("v")) {
								t.Errorf("GetDecoded(%s) = %q", key, dv.b)
								return
							}
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// uncomparableDecoder is a decoded.Decoder that == cannot compare.
type uncomparableDecoder struct{ ids []int }

func (d uncomparableDecoder) Decode(value []byte) (any, int, error) { return value, len(d.ids), nil }

func TestGetDecodedBadDecoderPanics(t *testing.T) {
	f := newTierFixture(t)
	if err := f.tiered.Set(context.Background(), "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]decoded.Decoder{"nil": nil, "uncomparable": uncomparableDecoder{}} {
		for sname, s := range map[string]decoded.Getter{"memory": f.local, "tiered": f.tiered} {
			t.Run(name+"/"+sname, func(t *testing.T) {
				defer func() {
					if r := recover(); r == nil || !strings.HasPrefix(fmt.Sprint(r), "store: GetDecoded: ") {
						t.Errorf("recovered %v, want a store: GetDecoded panic", r)
					}
				}()
				_, _ = s.GetDecoded(context.Background(), "k", d, time.Time{})
			})
		}
	}
}

// TestTieredGetDecodedNow checks that a Tiered on the system clock takes
// the caller's reading of it for the coherence window (a reading past the
// window asks the remote, a zero one reads the clock), and that a Tiered
// with a clock of its own ignores the caller's.
func TestTieredGetDecodedNow(t *testing.T) {
	ctx := context.Background()
	const window = time.Hour
	d := newTestDecoder(1, 10)
	t.Run("system clock", func(t *testing.T) {
		local := newTestMemory(t, 1<<20)
		remote := newTierRemote(time.Now)
		tiered, err := NewTiered(local, remote, WithCoherence(window))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tiered.Close() })
		if err := tiered.Set(ctx, "k", []byte("v1"), 2*window); err != nil {
			t.Fatal(err)
		}
		if _, err := tiered.GetDecoded(ctx, "k", d, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := tiered.GetDecoded(ctx, "k", d, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if n := remote.gets.Load(); n != 0 {
			t.Fatalf("remote Gets within the window = %d, want 0", n)
		}
		if _, err := tiered.GetDecoded(ctx, "k", d, time.Now().Add(window+time.Second)); err != nil {
			t.Fatal(err)
		}
		if n := remote.gets.Load(); n != 1 {
			t.Errorf("remote Gets with a reading past the window = %d, want 1", n)
		}
	})
	t.Run("own clock", func(t *testing.T) {
		f := newTierFixture(t, WithCoherence(window))
		if err := f.tiered.Set(ctx, "k", []byte("v1"), 2*window); err != nil {
			t.Fatal(err)
		}
		if _, err := f.tiered.GetDecoded(ctx, "k", d, f.clock.Now().Add(window+time.Second)); err != nil {
			t.Fatal(err)
		}
		if n := f.remote.gets.Load(); n != 0 {
			t.Errorf("remote Gets = %d, want 0: the caller's reading is not this Tiered's clock", n)
		}
	})
}

// TestPeekDecoded: a Tiered answers a peek from a local copy within the
// coherence window (decoded and kept, as GetDecoded would), and declines,
// without asking the remote, for a copy past the window, a missing key, a
// bad key and after Close; a Memory answers whenever it holds the key.
func TestPeekDecoded(t *testing.T) {
	ctx := context.Background()
	d := newTestDecoder(1, 10)
	f := newTierFixture(t, WithCoherence(2*time.Second))
	if err := f.tiered.Set(ctx, "k", []byte("v1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	v, ok := f.tiered.PeekDecoded("k", d, time.Time{})
	if !ok {
		t.Fatal("no peek within the window")
	}
	if got := getDecoded(t, f.tiered, "k", d, "v1"); got != v {
		t.Error("GetDecoded's value is not the one the peek decoded and kept")
	}
	for _, key := range []string{"absent", "", strings.Repeat("k", 2000)} {
		if _, ok := f.tiered.PeekDecoded(key, d, time.Time{}); ok {
			t.Errorf("PeekDecoded(%.20q) answered", key)
		}
	}
	f.clock.Advance(2 * time.Second)
	if _, ok := f.tiered.PeekDecoded("k", d, time.Time{}); ok {
		t.Error("a copy past the coherence window answered a peek")
	}
	if n := f.remote.gets.Load(); n != 0 {
		t.Errorf("peeks asked the remote %d times", n)
	}
	if err := f.tiered.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.tiered.PeekDecoded("k", d, time.Time{}); ok {
		t.Error("a closed Tiered answered a peek")
	}

	m := newTestMemory(t, 1<<20)
	if err := m.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, ok := m.PeekDecoded("k", d, time.Time{}); !ok || string(v.(*decodedValue).b) != "v" {
		t.Errorf("Memory.PeekDecoded = %v, %v", v, ok)
	}
	if _, ok := m.PeekDecoded("absent", d, time.Time{}); ok {
		t.Error("Memory.PeekDecoded answered for a missing key")
	}
}
