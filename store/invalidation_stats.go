package store

// InvalidationStats counts what happened to a cache's invalidations (unsafe
// requests and purges) across its [PendingDeletes], [Broadcast] and the
// [Redis] store that publishes them; failsoft.Protector reports them, and
// metrics read them.
type InvalidationStats struct {
	// Published counts the invalidations announced to the other replicas.
	Published uint64
	// Received counts the invalidations received (this replica's own
	// included).
	Received uint64
	// Pending is the number of invalidations refused by an outage and not
	// yet applied in Redis; AppliedLate counts those applied since.
	Pending     int
	AppliedLate uint64
	// Dropped counts the invalidations lost because too many were pending.
	Dropped uint64
	// Subscribed reports whether the broadcast subscription is confirmed
	// now; Reconnects counts the times it was lost.
	Subscribed bool
	Reconnects uint64
}
