// Write-behind and invalidation state: store writes that do not delay the
// client, the read-your-writes view of those in flight, and the epochs that
// keep a write in flight from bringing back what an invalidation deleted.

package middleware

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsoft/failsoft/store"
)

// writeBehind writes a Cache's entries to its store and deletes them on
// invalidation. Writes from the request path run in the background
// (writeAsync), at most cap(sem) at once; a write beyond that is dropped
// and counted. Its goroutines are registered with the cache's tasks, so
// that Close waits for them. It is safe for concurrent use; the zero value
// is not usable (Cache's New builds it).
type writeBehind struct {
	store        store.Store
	bg           *tasks    // the cache's background goroutines
	st           *counters // the cache's counters
	log          *cacheLog
	now          func() time.Time
	staleIfError time.Duration // the default stale-if-error window, for ttl
	sem          chan struct{} // semaphore of background writes

	// pending holds the entries of background writes not yet done, so that
	// this process reads its own writes at once: the next request after a
	// miss is a hit, not a second handler call, even while the write to
	// Redis is on its way. It is bounded by WithMaxPendingWrites. npending
	// is len(pending), read without mu on the hit path.
	mu       sync.Mutex
	pending  map[string]*entry
	npending atomic.Int64

	epochs epochs
}

// epochSlots is the number of invalidation epochs (see [epochs]).
const epochSlots = 1024

// epochs count the invalidations (unsafe methods, Purge) of primary keys,
// in a fixed number of slots that keys share by hash, so that memory does
// not grow with the keys. A response records its key's epoch before the
// handler runs; its store write is skipped, or undone, when the epoch moved
// in between: a write in flight never brings back what an invalidation
// deleted. Keys that share a slot only cost each other a skipped write.
type epochs struct {
	seed  maphash.Seed
	slots [epochSlots]atomic.Uint64
}

// slot is the epoch slot of a primary key.
func (g *epochs) slot(primary string) *atomic.Uint64 {
	return &g.slots[maphash.String(g.seed, primary)%epochSlots]
}

// epoch reads primary's invalidation epoch.
func (w *writeBehind) epoch(primary string) uint64 { return w.epochs.slot(primary).Load() }

// pendingEntry returns the entry a background write of key has on its way,
// or nil. The entry is read-only. With no write on its way (the common
// case) it takes no lock and inlines.
func (w *writeBehind) pendingEntry(key string) *entry {
	if w.npending.Load() == 0 {
		return nil
	}
	return w.pendingLocked(key)
}

// pendingLocked is pendingEntry's lookup under mu.
func (w *writeBehind) pendingLocked(key string) *entry {
	w.mu.Lock()
	e := w.pending[key]
	w.mu.Unlock()
	return e
}

// writeAsync stores e under key (and marker under primary) in the
// background, bounded by WithMaxPendingWrites; a write beyond the bound is
// dropped and counted. epoch is primary's invalidation epoch before the
// handler ran: when it moved since, e is neither stored nor read back.
func (w *writeBehind) writeAsync(ctx context.Context, key string, e *entry, primary string, marker *entry, epoch uint64) {
	select {
	case w.sem <- struct{}{}:
	default:
		w.st.dropped.Add(1)
		return
	}
	if !w.bg.start() {
		<-w.sem
		w.st.dropped.Add(1)
		return
	}
	ctx = context.WithoutCancel(ctx)
	w.mu.Lock()
	// Checked under mu, which forget takes after the epoch moves: an
	// invalidation either sees e pending and drops it, or is seen here.
	if w.epoch(primary) != epoch {
		w.mu.Unlock()
		<-w.sem
		w.bg.done()
		return
	}
	w.pending[key] = e
	if marker != nil {
		w.pending[primary] = marker
	}
	w.npending.Store(int64(len(w.pending)))
	w.mu.Unlock()
	go func() {
		defer func() {
			w.mu.Lock()
			if w.pending[key] == e {
				delete(w.pending, key)
			}
			if marker != nil && w.pending[primary] == marker {
				delete(w.pending, primary)
			}
			w.npending.Store(int64(len(w.pending)))
			w.mu.Unlock()
			<-w.sem
			w.bg.done()
		}()
		w.save(ctx, key, e, primary, marker, epoch)
	}()
}

// invalidate removes the entry under primary from the store and from the
// read-your-writes view, after moving its epoch so that no write in flight
// brings it back. It counts the outcome (Invalidated or StoreErrors) and
// returns the store's error.
func (w *writeBehind) invalidate(ctx context.Context, primary string) error {
	w.epochs.slot(primary).Add(1)
	w.forget(primary)
	if err := w.store.Delete(ctx, primary); err != nil {
		w.st.storeErrors.Add(1)
		return err
	}
	w.st.invalidated.Add(1)
	return nil
}

// forget drops a pending write's entry from the read-your-writes view.
// invalidate calls it after moving the epoch; it always takes mu (no fast
// path on npending), so that a writeAsync that checked the old epoch has
// published its entry, which is then dropped here.
func (w *writeBehind) forget(key string) {
	w.mu.Lock()
	delete(w.pending, key)
	w.npending.Store(int64(len(w.pending)))
	w.mu.Unlock()
}

// save writes e (and its Vary marker, if any) with a TTL that ends with the
// entry's stale-if-error window, unless primary was invalidated since epoch
// was read. An invalidation that lands while the write is on its way (its
// Delete may run before the Set) is seen after the Set, which is then
// undone: the epoch moves before the invalidation's Delete, so a check
// after the Set that still sees the old epoch comes before that Delete.
func (w *writeBehind) save(ctx context.Context, key string, e *entry, primary string, marker *entry, epoch uint64) {
	ttl := w.ttl(e, w.now())
	if ttl <= 0 || w.epoch(primary) != epoch {
		return
	}
	if !w.set(ctx, key, e, ttl) {
		return
	}
	markerSet := marker != nil && w.set(ctx, primary, marker, ttl)
	if w.epoch(primary) != epoch {
		w.undo(ctx, key)
		if markerSet {
			w.undo(ctx, primary)
		}
		return
	}
	w.st.stored.Add(1)
}

// undo deletes what save stored after an invalidation moved the key's
// epoch.
func (w *writeBehind) undo(ctx context.Context, key string) {
	if err := w.store.Delete(ctx, key); err != nil {
		w.st.storeErrors.Add(1)
		w.log.warn(warnWrite, "failsoft: undoing a cache write that an invalidation overtook failed", "err", err)
	}
}

// ttl is how long the store keeps e: to the end of its stale-if-error
// window, and, for an entry with a validator, at least the default
// stale-if-error window, so that a no-cache or must-revalidate response can
// be revalidated instead of fetched again.
func (w *writeBehind) ttl(e *entry, now time.Time) time.Duration {
	ttl := e.StaleUntil.Sub(now)
	if hasValidator(e) {
		ttl = max(ttl, e.StoredAt.Add(w.staleIfError).Sub(now))
	}
	return ttl
}

// set encodes and stores one entry, counting a failure.
func (w *writeBehind) set(ctx context.Context, key string, e *entry, ttl time.Duration) bool {
	// A fresh buffer each time: a Guard whose op timeout expired returns
	// while its abandoned call may still read the value.
	err := w.store.Set(ctx, key, encodeEntry(nil, e), ttl)
	if err == nil {
		return true
	}
	w.st.storeErrors.Add(1)
	if store.IsUnavailable(err) {
		w.st.dropped.Add(1)
	}
	w.log.warn(warnWrite, "failsoft: storing a cache entry failed", "err", err)
	return false
}
