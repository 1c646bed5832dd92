package middleware

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
}
