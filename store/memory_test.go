package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// manualClock is a clock that moves only when told to.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func newManualClock() *manualClock {
	return &manualClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestMemory builds a Memory that is closed when the test ends.
func newTestMemory(t testing.TB, maxBytes int64, opts ...MemoryOption) *Memory {
	t.Helper()
	m, err := NewMemory(maxBytes, opts...)
	if err != nil {
		t.Fatalf("NewMemory: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestMemoryNew(t *testing.T) {
	tests := []struct {
		name     string
		maxBytes int64
		opts     []MemoryOption
		wantErr  string
	}{
		{name: "ok", maxBytes: 1 << 20},
		{name: "one byte", maxBytes: 1},
		{name: "largest", maxBytes: 1 << 53},
		{name: "zero", maxBytes: 0, wantErr: "not positive"},
		{name: "negative", maxBytes: -1, wantErr: "not positive"},
		{name: "too big for otter", maxBytes: 1<<53 + 1, wantErr: "over the limit"},
		{name: "nil option", maxBytes: 1 << 20, opts: []MemoryOption{nil}, wantErr: "nil Option"},
		{name: "nil clock", maxBytes: 1 << 20, opts: []MemoryOption{WithClock(nil)}, wantErr: "clock is nil"},
		{name: "bad key limit", maxBytes: 1 << 20, opts: []MemoryOption{WithMaxKeyBytes(0)}, wantErr: "max key bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMemory(tt.maxBytes, tt.opts...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewMemory: %v", err)
				}
				if got := m.MaxBytes(); got != tt.maxBytes {
					t.Errorf("MaxBytes() = %d, want %d", got, tt.maxBytes)
				}
				m.Close()
				return
			}
			if err == nil {
				m.Close()
				t.Fatalf("NewMemory: no error, want one containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewMemory: %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestMemoryRoundTrip(t *testing.T) {
	ctx := context.Background()
	m := newTestMemory(t, 1<<20)
	tests := []struct {
		name  string
		key   string
		value []byte
	}{
		{name: "bytes", key: "k1", value: []byte("hello")},
		{name: "empty value", key: "k2", value: []byte{}},
		{name: "nil value", key: "k3", value: nil},
		{name: "binary", key: "k4", value: []byte{0, 1, 2, 255}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := m.Set(ctx, tt.key, tt.value, time.Minute); err != nil {
				t.Fatalf("Set: %v", err)
			}
			got, ttl, err := m.GetTTL(ctx, tt.key)
			if err != nil {
				t.Fatalf("GetTTL: %v", err)
			}
			if got == nil || !bytes.Equal(got, tt.value) {
				t.Errorf("GetTTL = %q (nil: %v), want %q, not nil", got, got == nil, tt.value)
			}
			if ttl <= 0 || ttl > time.Minute {
				t.Errorf("ttl = %v, want in (0, 1m]", ttl)
			}
			if err := m.Delete(ctx, tt.key); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if _, err := m.Get(ctx, tt.key); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get after Delete: %v, want ErrNotFound", err)
			}
			if err := m.Delete(ctx, tt.key); err != nil {
				t.Errorf("Delete of a missing key: %v, want nil", err)
			}
		})
	}
}

func TestMemoryBadInput(t *testing.T) {
	ctx := context.Background()
	m := newTestMemory(t, 1<<20, WithMaxKeyBytes(8), WithMaxValueBytes(16))
	tests := []struct {
		name  string
		key   string
		value []byte
		ttl   time.Duration
		want  error
	}{
		{name: "empty key", key: "", value: []byte("v"), ttl: time.Minute, want: ErrInvalidKey},
		{name: "key over limit", key: "123456789", value: []byte("v"), ttl: time.Minute, want: ErrInvalidKey},
		{name: "value over limit", key: "k", value: make([]byte, 17), ttl: time.Minute, want: ErrValueTooLarge},
		{name: "zero ttl", key: "k", value: []byte("v"), ttl: 0, want: ErrInvalidTTL},
		{name: "negative ttl", key: "k", value: []byte("v"), ttl: -time.Second, want: ErrInvalidTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := m.Set(ctx, tt.key, tt.value, tt.ttl); !errors.Is(err, tt.want) {
				t.Errorf("Set: %v, want %v", err, tt.want)
			}
			if Classify(m.Set(ctx, tt.key, tt.value, tt.ttl)) != ClassInvalid {
				t.Errorf("Set error is not ClassInvalid")
			}
			if tt.want == ErrInvalidKey {
				if _, err := m.Get(ctx, tt.key); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("Get: %v, want ErrInvalidKey", err)
				}
				if err := m.Delete(ctx, tt.key); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("Delete: %v, want ErrInvalidKey", err)
				}
			}
		})
	}
	if n := m.Len(); n != 0 {
		t.Errorf("Len() = %d after refused writes, want 0", n)
	}
}

func TestMemoryEntryOverBudget(t *testing.T) {
	ctx := context.Background()
	const budget = 4096
	m := newTestMemory(t, budget)
	tests := []struct {
		name    string
		size    int
		wantErr error
	}{
		{name: "one byte over", size: budget - MemoryEntryOverhead - len("big") + 1, wantErr: ErrValueTooLarge},
		{name: "far over", size: 10 * budget, wantErr: ErrValueTooLarge},
		{name: "exactly the budget", size: budget - MemoryEntryOverhead - len("big"), wantErr: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := m.Set(ctx, "small", []byte("v"), time.Minute); err != nil {
				t.Fatalf("Set small: %v", err)
			}
			err := m.Set(ctx, "big", make([]byte, tt.size), time.Minute)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Set %d bytes: %v, want %v", tt.size, err, tt.wantErr)
			}
			if err != nil {
				m.cache.CleanUp()
				if _, err := m.Get(ctx, "small"); err != nil {
					t.Errorf("refused entry evicted another: Get small: %v", err)
				}
				return
			}
			// Accepted; admission may still prefer the more frequently used
			// entry, but the budget holds either way.
			m.cache.CleanUp()
			if w := m.WeightedSize(); w > budget {
				t.Errorf("WeightedSize() = %d, over the budget of %d", w, budget)
			}
		})
	}
}

func TestMemoryBudget(t *testing.T) {
	ctx := context.Background()
	const budget = 64 << 10
	m := newTestMemory(t, budget)
	value := make([]byte, 1000)
	const n = 1000 // about 18 times the budget
	for i := range n {
		if err := m.Set(ctx, fmt.Sprintf("key-%d", i), value, time.Hour); err != nil {
			t.Fatalf("Set %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		m.cache.CleanUp()
		size := m.WeightedSize()
		if size <= budget {
			perEntry := uint64(len("key-000") + len(value) + MemoryEntryOverhead)
			if size < perEntry {
				t.Errorf("WeightedSize() = %d: everything evicted", size)
			}
			if held := m.Len(); uint64(held)*perEntry > budget+perEntry {
				t.Errorf("Len() = %d entries of about %d bytes, over the budget of %d", held, perEntry, budget)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("WeightedSize() = %d, still over the budget of %d", size, budget)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMemoryExpiry(t *testing.T) {
	ctx := context.Background()
	clock := newManualClock()
	m := newTestMemory(t, 1<<20, WithClock(clock.Now))
	if err := m.Set(ctx, "short", []byte("s"), time.Second); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(ctx, "long", []byte("l"), time.Hour); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		advance   time.Duration
		key       string
		wantFound bool
		wantTTL   time.Duration
	}{
		{name: "fresh", advance: 0, key: "short", wantFound: true, wantTTL: time.Second},
		{name: "almost expired", advance: 999 * time.Millisecond, key: "short", wantFound: true, wantTTL: time.Millisecond},
		{name: "expired", advance: time.Millisecond, key: "short", wantFound: false},
		{name: "other entry still there", advance: 0, key: "long", wantFound: true, wantTTL: time.Hour - time.Second},
		{name: "other entry expired", advance: time.Hour, key: "long", wantFound: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.Advance(tt.advance)
			v, ttl, err := m.GetTTL(ctx, tt.key)
			if !tt.wantFound {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("GetTTL = %q, %v; want ErrNotFound", v, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetTTL: %v", err)
			}
			if ttl != tt.wantTTL {
				t.Errorf("ttl = %v, want %v", ttl, tt.wantTTL)
			}
		})
	}
	m.cache.CleanUp()
	if n := m.Len(); n != 0 {
		t.Errorf("Len() = %d after everything expired and a clean-up, want 0", n)
	}
}

func TestMemoryCopies(t *testing.T) {
	ctx := context.Background()
	m := newTestMemory(t, 1<<20)
	tests := []struct {
		name   string
		mutate func(t *testing.T, set []byte)
	}{
		{name: "caller changes the slice it set", mutate: func(t *testing.T, set []byte) { set[0] = 'X' }},
		{name: "caller changes the slice it got", mutate: func(t *testing.T, _ []byte) {
			got, err := m.Get(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			got[0] = 'Y'
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := []byte("value")
			if err := m.Set(ctx, "k", set, time.Minute); err != nil {
				t.Fatal(err)
			}
			tt.mutate(t, set)
			got, err := m.Get(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "value" {
				t.Errorf("Get = %q, want %q: the store shares memory with its caller", got, "value")
			}
		})
	}
}

func TestMemoryClosed(t *testing.T) {
	ctx := context.Background()
	m, err := NewMemory(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	var zero Memory
	for _, s := range []struct {
		name string
		m    *Memory
	}{{"closed", m}, {"zero value", &zero}, {"nil", nil}} {
		t.Run(s.name, func(t *testing.T) {
			calls := []struct {
				name string
				err  error
			}{
				{"Get", func() error { _, err := s.m.Get(ctx, "k"); return err }()},
				{"Set", s.m.Set(ctx, "k", []byte("v"), time.Minute)},
				{"Delete", s.m.Delete(ctx, "k")},
			}
			for _, c := range calls {
				if !errors.Is(c.err, ErrClosed) {
					t.Errorf("%s: %v, want ErrClosed", c.name, c.err)
				}
			}
			if n, w := s.m.Len(), s.m.WeightedSize(); n != 0 || w != 0 {
				t.Errorf("Len, WeightedSize = %d, %d; want 0, 0", n, w)
			}
			if err := s.m.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

func TestMemoryConcurrent(t *testing.T) {
	ctx := context.Background()
	m := newTestMemory(t, 32<<10)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				key := fmt.Sprintf("k%d", (g*31+i)%64)
				switch i % 3 {
				case 0:
					if err := m.Set(ctx, key, []byte(key), time.Minute); err != nil {
						t.Errorf("Set: %v", err)
					}
				case 1:
					if v, err := m.Get(ctx, key); err == nil && string(v) != key {
						t.Errorf("Get(%q) = %q", key, v)
					} else if err != nil && !errors.Is(err, ErrNotFound) {
						t.Errorf("Get: %v", err)
					}
				default:
					if err := m.Delete(ctx, key); err != nil {
						t.Errorf("Delete: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
}
