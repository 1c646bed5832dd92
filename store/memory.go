package store

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/failsoft/failsoft/internal/decoded"
)

// MemoryEntryOverhead is the fixed weight, in bytes, that a [Memory] store
// adds to each entry's key and value lengths: an estimate of what otter's
// node, its hash-table slot, the eviction and expiry links and this
// package's item header cost on a 64-bit platform. An entry weighs
// len(key) + len(value) + MemoryEntryOverhead, plus, while a decoded form
// of the value is kept with it ([decoded.Getter]), the weight its [decoded.Decoder]
// declared and 48 bytes for keeping it.
const MemoryEntryOverhead = 160

// maxMemoryBytes is the largest budget NewMemory accepts: otter sizes its
// eviction regions in float64, exact up to 2^53.
const maxMemoryBytes = 1 << 53

// noExpiry is an item's expiresAt when it never expires.
const noExpiry = math.MaxInt64

// item is what a Memory keeps under a key. Items are values and never
// change once stored: a new version is stored in their place, sharing the
// value's bytes, which nothing ever modifies.
type item struct {
	// value is owned by the store: copied in by Set, copied out by Get.
	value []byte
	// expiresAt is when the entry expires, in Unix nanoseconds by the
	// Memory's clock; noExpiry for never.
	expiresAt int64
	// checkedAt is when a Tiered store last wrote the entry or confirmed it
	// against its remote tier, in Unix nanoseconds by the Tiered's clock;
	// 0 for entries written by Memory.Set.
	checkedAt int64
	// gen is the Tiered store's remote generation at that moment.
	gen uint64
	// decoded is value as a reader decoded it ([decoded.Getter]), nil until
	// one asks; it adds its weight to the item's. A copy of the item stored
	// again (same value) keeps it; a new value starts without.
	decoded *decodedForm
}

// decodedForm is what a Decoder made of an item's value.
type decodedForm struct {
	v      any
	by     decoded.Decoder
	weight uint64 // what by declared, plus decodedFormOverhead
}

// decodedFormOverhead is the weight of a decodedForm itself.
const decodedFormOverhead = 48

// weight returns the item's weight under key, unsaturated.
func (it item) weight(key string) uint64 {
	w := uint64(len(key)) + uint64(len(it.value)) + MemoryEntryOverhead
	if it.decoded != nil {
		w += it.decoded.weight
	}
	return w
}

// ttl returns the item's remaining time to live at nowNano: 0 for an item
// without expiry, and at least 1ns for a live one.
func (it item) ttl(nowNano int64) time.Duration {
	if it.expiresAt == noExpiry {
		return 0
	}
	return time.Duration(max(it.expiresAt-nowNano, 1))
}

// live reports whether the item has not expired at nowNano.
func (it item) live(nowNano int64) bool { return it.expiresAt > nowNano }

// deadline returns nowNano+ttl, saturated below noExpiry.
func deadline(nowNano int64, ttl time.Duration) int64 {
	if int64(ttl) >= noExpiry-nowNano {
		return noExpiry - 1
	}
	return nowNano + int64(ttl)
}

// Memory is a bounded in-process [Store]: entries live in this process only,
// expire after the ttl given to Set, and are evicted (least likely to be
// used again first, by otter's W-TinyLFU policy) to keep their total weight
// within a byte budget. Admission is part of that policy: a new entry that
// would push out entries read more often than it may be evicted at once, so
// a successful Set does not promise a later hit. An entry weighs len(key) + len(value) +
// [MemoryEntryOverhead]; one heavier than the whole budget is refused with
// [ErrValueTooLarge] instead of evicting everything else.
//
// Memory is safe for concurrent use. Get returns a copy that the caller
// owns, and Set copies the value it is given. [Memory.GetDecoded] is the
// exception: it lends the stored bytes to a [decoded.Decoder] and keeps what it
// decodes with the entry, weighed with it. The budget is enforced by
// otter's maintenance, which runs on the calling goroutines after writes:
// the weight held may exceed the budget briefly, by the entries written
// since the last pass. Expired entries are never returned, and are removed
// by that maintenance or by a clean-up goroutine once a second.
//
// The zero value is not usable: build one with [NewMemory], and call Close
// when done with it, which stops the clean-up goroutine. Methods of a closed
// (or zero) Memory return [ErrClosed].
type Memory struct {
	cache         *otter.Cache[string, item]
	now           func() time.Time
	maxBytes      int64
	maxKeyBytes   int
	maxValueBytes int
	closed        atomic.Bool
}

var (
	_ Store          = (*Memory)(nil)
	_ TTLGetter      = (*Memory)(nil)
	_ decoded.Getter = (*Memory)(nil)
)

// NewMemory returns an in-process store that holds at most maxBytes of
// entries, weighed as described on [Memory]. maxBytes must be positive and
// at most 2^53.
//
// Its options are [WithMaxKeyBytes] (default 1024), [WithMaxValueBytes]
// (default 2 MiB) and [WithClock] (default time.Now; expiry follows this
// clock, so a test can move it on). A nil option or a bad value is an
// error. A Memory logs nothing.
func NewMemory(maxBytes int64, opts ...MemoryOption) (*Memory, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("store: NewMemory: budget of %d bytes is not positive", maxBytes)
	}
	if maxBytes > maxMemoryBytes {
		return nil, fmt.Errorf("store: NewMemory: budget of %d bytes is over the limit of 2^53", maxBytes)
	}
	o, err := newMemoryConfig(opts)
	if err != nil {
		return nil, err
	}
	m := &Memory{
		now:           o.now,
		maxBytes:      maxBytes,
		maxKeyBytes:   o.maxKeyBytes,
		maxValueBytes: o.maxValueBytes,
	}
	c, err := otter.New(&otter.Options[string, item]{
		MaximumWeight: uint64(maxBytes),
		Weigher:       func(key string, it item) uint32 { return weigh(key, it) },
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, item]) time.Duration {
			if e.Value.expiresAt == noExpiry {
				return time.Duration(math.MaxInt64)
			}
			return time.Duration(e.Value.expiresAt - e.SnapshotAtNano)
		}),
		Clock: otterClock{now: o.now},
		// Maintenance runs on the goroutine that triggers it, so that no
		// goroutine outlives Close (the only one otter keeps is the
		// periodic clean-up, which Close stops).
		Executor: func(fn func()) { fn() },
	})
	if err != nil {
		return nil, fmt.Errorf("store: NewMemory: %w", err)
	}
	m.cache = c
	return m, nil
}

// weigh returns an entry's weight, saturated at the largest uint32.
func weigh(key string, it item) uint32 {
	w := it.weight(key)
	if w > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(w)
}

// otterClock adapts a WithClock function to otter's Clock. Its ticks, which
// pace the periodic clean-up, are real time.
type otterClock struct{ now func() time.Time }

func (c otterClock) NowNano() int64 { return c.now().UnixNano() }

func (c otterClock) Tick(d time.Duration) <-chan time.Time {
	// The ticker is dropped when the clean-up goroutine returns; since Go
	// 1.23 an unreferenced ticker is collected.
	return time.NewTicker(d).C
}

// usable returns ErrClosed for a closed Memory or one not built by NewMemory.
func (m *Memory) usable() error {
	if m == nil || m.cache == nil {
		return fmt.Errorf("%w: Memory store not built by NewMemory", ErrClosed)
	}
	if m.closed.Load() {
		return ErrClosed
	}
	return nil
}

// nowNano returns the Memory's clock in Unix nanoseconds.
func (m *Memory) nowNano() int64 { return m.now().UnixNano() }

// Get returns a copy of the value stored under key, or [ErrNotFound] when
// there is none or it has expired.
func (m *Memory) Get(_ context.Context, key string) ([]byte, error) {
	if err := m.usable(); err != nil {
		return nil, err
	}
	if err := checkKey(key, m.maxKeyBytes); err != nil {
		return nil, err
	}
	// otter checks expiry against the same clock.
	it, ok := m.cache.GetIfPresent(key)
	if !ok {
		return nil, ErrNotFound
	}
	return clone(it.value), nil
}

// GetDecoded returns d.Decode of the value under key, decoding it only if
// d (or an equal Decoder) has not decoded this stored value before; see
// [decoded.Getter]. The stored bytes are lent to d, not copied. The last
// argument, a caller's reading of the clock, is not used: a Memory's
// expiry reads its own clock. It panics if d is nil or not comparable.
func (m *Memory) GetDecoded(_ context.Context, key string, d decoded.Decoder, _ time.Time) (any, error) {
	checkDecoder(d)
	if err := m.usable(); err != nil {
		return nil, err
	}
	if err := checkKey(key, m.maxKeyBytes); err != nil {
		return nil, err
	}
	it, ok := m.cache.GetIfPresent(key)
	if !ok {
		return nil, ErrNotFound
	}
	return m.decode(key, it, d)
}

// PeekDecoded is GetDecoded without its error: a Memory is in-process
// only, so it answers whenever GetDecoded would answer with a value.
func (m *Memory) PeekDecoded(key string, d decoded.Decoder, now time.Time) (any, bool) {
	v, err := m.GetDecoded(context.Background(), key, d, now)
	return v, err == nil
}

// GetTTL is Get that also returns the entry's remaining time to live.
func (m *Memory) GetTTL(_ context.Context, key string) ([]byte, time.Duration, error) {
	if err := m.usable(); err != nil {
		return nil, 0, err
	}
	if err := checkKey(key, m.maxKeyBytes); err != nil {
		return nil, 0, err
	}
	e, ok := m.cache.GetEntry(key)
	if !ok || !e.Value.live(e.SnapshotAtNano) {
		return nil, 0, ErrNotFound
	}
	return clone(e.Value.value), e.Value.ttl(e.SnapshotAtNano), nil
}

// Set stores a copy of value under key for ttl, which must be positive. A
// key or value over the limits set by the options, or an entry heavier than
// the whole budget, is refused with an error and leaves any previous entry
// under key in place. A stored entry may be evicted at any time to respect
// the budget, even before it expires.
func (m *Memory) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if err := m.usable(); err != nil {
		return err
	}
	if err := checkSet(key, value, ttl, m.maxKeyBytes, m.maxValueBytes); err != nil {
		return err
	}
	return m.setItem(key, item{value: clone(value), expiresAt: deadline(m.nowNano(), ttl)})
}

// Delete removes key. Deleting a missing key is not an error.
func (m *Memory) Delete(_ context.Context, key string) error {
	if err := m.usable(); err != nil {
		return err
	}
	if err := checkKey(key, m.maxKeyBytes); err != nil {
		return err
	}
	m.cache.Invalidate(key)
	return nil
}

// Len returns the approximate number of entries held, which may count
// entries that have expired but not been removed yet. It returns 0 after
// Close.
func (m *Memory) Len() int {
	if m.usable() != nil {
		return 0
	}
	return m.cache.EstimatedSize()
}

// WeightedSize returns the total weight of the entries held, in bytes as
// weighed by [MemoryEntryOverhead]'s rule: at most the budget once
// maintenance has caught up with recent writes. It returns 0 after Close.
func (m *Memory) WeightedSize() uint64 {
	if m.usable() != nil {
		return 0
	}
	return m.cache.WeightedSize()
}

// MaxBytes returns the byte budget given to [NewMemory].
func (m *Memory) MaxBytes() int64 {
	if m == nil {
		return 0
	}
	return m.maxBytes
}

// Close drops every entry, stops the clean-up goroutine and makes later
// calls return [ErrClosed]. It is safe to call more than once and
// concurrently with other methods; it always returns nil.
func (m *Memory) Close() error {
	if m == nil || m.cache == nil || !m.closed.CompareAndSwap(false, true) {
		return nil
	}
	m.cache.StopAllGoroutines()
	m.cache.InvalidateAll()
	return nil
}

// getItem returns the item under key, live when otter read it, without
// copying its value, for [Tiered]; the value must not be modified. It
// reports false after Close.
func (m *Memory) getItem(key string) (item, bool) {
	if m.closed.Load() {
		return item{}, false
	}
	return m.cache.GetIfPresent(key)
}

// setItem stores it under key as is, taking ownership of it.value. It
// returns ErrValueTooLarge for an entry heavier than the budget and
// ErrClosed after Close.
func (m *Memory) setItem(key string, it item) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if w := it.weight(key); w > uint64(m.maxBytes) || w > math.MaxUint32 {
		return fmt.Errorf("%w: entry of %d bytes (with overhead) over the in-process budget of %d",
			ErrValueTooLarge, w, m.maxBytes)
	}
	m.cache.Set(key, it)
	return nil
}

// decode returns d's decoding of it.value, it being the item read under
// key: the one kept with the item when d made it, else a new one, which is
// then kept with the item if the item is still the one stored under key and
// the extra weight fits the budget.
func (m *Memory) decode(key string, it item, d decoded.Decoder) (any, error) {
	if it.decoded != nil && it.decoded.by == d {
		return it.decoded.v, nil
	}
	v, weight, err := d.Decode(it.value)
	if err != nil || v == nil || len(it.value) == 0 || m.closed.Load() {
		return v, err
	}
	it.decoded = &decodedForm{v: v, by: d, weight: uint64(max(weight, 0)) + decodedFormOverhead}
	if w := it.weight(key); w > uint64(m.maxBytes) || w > math.MaxUint32 {
		return v, nil
	}
	same := &it.value[0]
	m.cache.ComputeIfPresent(key, func(old item) (item, otter.ComputeOp) {
		// Only the same stored bytes: a newer value may have replaced it.
		if len(old.value) != len(it.value) || &old.value[0] != same {
			return old, otter.CancelOp
		}
		old.decoded = it.decoded
		return old, otter.WriteOp
	})
	return v, nil
}

// checkDecoder panics, as a programmer error, for a Decoder that GetDecoded
// cannot use: nil, or one that == cannot compare.
func checkDecoder(d decoded.Decoder) {
	if d == nil || !reflect.TypeOf(d).Comparable() {
		panic(fmt.Sprintf("store: GetDecoded: Decoder %T is nil or not comparable", d))
	}
}

// deleteItem removes key, for [Tiered].
func (m *Memory) deleteItem(key string) {
	if !m.closed.Load() {
		m.cache.Invalidate(key)
	}
}

// clone returns a copy of b that is never nil, so that an empty value reads
// back as empty, not as nil.
func clone(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	return out
}
