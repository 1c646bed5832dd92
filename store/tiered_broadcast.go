package store

import (
	"hash/maphash"
	"math"
	"sync/atomic"
)

// The tiered store's side of the [Broadcast] ([WithBroadcast]): dropping
// announced keys, and the long coherence window while announcements can be
// trusted.

// evictSlots is the number of eviction counters (see tierBroadcast).
const evictSlots = 256

// tierBroadcast is a Tiered's broadcast state; its zero value (no
// broadcast) is the short window only.
type tierBroadcast struct {
	b      *Broadcast
	window int64 // nanoseconds; math.MaxInt64 for the copy's whole ttl
	// subAt is t.now when the subscription was last confirmed, noTime while
	// it is down.
	subAt atomic.Int64
	// pending is the remote as a PendingDeletes, nil if it is not one.
	pending *PendingDeletes

	// evicts count the announced keys by hash slot: a read of the remote
	// that an announcement of its key overtook does not keep its value,
	// which may be older than the delete.
	seed   maphash.Seed
	evicts [evictSlots]atomic.Uint64
}

// initBroadcast sets up t's broadcast state from its options and starts
// listening.
func (t *Tiered) initBroadcast(o tieredConfig) {
	t.bc.subAt.Store(noTime)
	t.bc.pending, _ = t.remote.(*PendingDeletes)
	if o.broadcast == nil {
		return
	}
	t.bc.b, t.bc.seed = o.broadcast, maphash.MakeSeed()
	t.bc.window = int64(o.broadcastWindow)
	if t.bc.window == 0 {
		t.bc.window = math.MaxInt64
	}
	o.broadcast.listen(t)
}

// evict drops the in-process copy of key: this replica deletes it, or an
// announcement says that one did.
func (t *Tiered) evict(key string) {
	if s := t.evictSlot(key); s != nil {
		s.Add(1)
	}
	t.local.deleteItem(key)
}

// subscribed records the broadcast subscription's state.
func (t *Tiered) subscribed(up bool) {
	if up {
		t.bc.subAt.Store(t.now().UnixNano())
		return
	}
	t.bc.subAt.Store(noTime)
}

// evictSlot is key's eviction counter; nil without a broadcast.
func (t *Tiered) evictSlot(key string) *atomic.Uint64 {
	if t.bc.b == nil {
		return nil
	}
	return &t.bc.evicts[maphash.String(t.bc.seed, key)%evictSlots]
}

// evictions reads key's eviction counter: 0 without a broadcast.
func (t *Tiered) evictions(key string) uint64 {
	if s := t.evictSlot(key); s != nil {
		return s.Load()
	}
	return 0
}

// longWindow reports whether a local copy confirmed at checkedAt, age ago,
// may be served past the coherence window: the broadcast's subscription was
// confirmed before checkedAt and still is, the copy is within the long
// window, and no delete is pending in the remote.
func (t *Tiered) longWindow(checkedAt, age int64) bool {
	if t.bc.b == nil || age >= t.bc.window {
		return false
	}
	sub := t.bc.subAt.Load()
	return sub != noTime && checkedAt >= sub && t.bc.pending.Pending() == 0
}
