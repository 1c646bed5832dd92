package middleware

import "sync/atomic"

// Stats are a [Cache]'s lifetime counters, read with Cache.Stats. All
// counters only grow.
type Stats struct {
	Hits        uint64 // answered from a stored fresh entry (any tier), including 304s to conditional requests
	Misses      uint64 // no usable entry: the handler was called
	StaleServed uint64 // answered from a stale entry (stale-while-revalidate or stale-if-error)
	Revalidated uint64 // a stale entry refreshed by a 304 from the handler
	Bypasses    uint64 // requests the cache did not handle (method, no-store request, key too long, ...)
	Stored      uint64 // entries written
	StoreErrors uint64 // store calls that failed (outages, refused writes); misses are not errors
	Dropped     uint64 // background writes dropped because the write queue was full or the store unavailable
	Coalesced   uint64 // requests that waited for another request's handler call and used its response
	Refreshes   uint64 // background refreshes started
	Invalidated uint64 // entries purged by unsafe requests or Purge

	MissBudget MissBudgetStats // the miss budget's state (WithMissBudget); its gauges do not only grow
}

// counters are the atomic form of [Stats], shared by the parts of a Cache
// that count. Every request adds to one of them from whatever CPU it runs
// on, so each has a cache line of its own (and the first is kept off the
// line of the fields before it): a hit's add never contends with a miss's,
// a write's or a neighbouring field's reads. 11 counters cost 1.4 KiB per
// Cache.
type counters struct {
	_ cacheLinePad
	hits, misses, staleServed, revalidated, bypasses, stored, storeErrors,
	dropped, coalesced, refreshes, invalidated paddedCounter
}

// cacheLinePad is a cache line's worth of padding: 128 bytes covers the
// 64-byte lines of amd64 with their adjacent-line prefetch, and the
// 128-byte lines of some arm64 CPUs.
type cacheLinePad [128]byte

// paddedCounter is an atomic counter alone on its cache line.
type paddedCounter struct {
	atomic.Uint64
	_ [128 - 8]byte
}

// snapshot reads every counter.
func (s *counters) snapshot() Stats {
	return Stats{
		Hits:        s.hits.Load(),
		Misses:      s.misses.Load(),
		StaleServed: s.staleServed.Load(),
		Revalidated: s.revalidated.Load(),
		Bypasses:    s.bypasses.Load(),
		Stored:      s.stored.Load(),
		StoreErrors: s.storeErrors.Load(),
		Dropped:     s.dropped.Load(),
		Coalesced:   s.coalesced.Load(),
		Refreshes:   s.refreshes.Load(),
		Invalidated: s.invalidated.Load(),
	}
}
