// Package store holds everything in failsoft that talks to Redis or holds
// cache entries.
//
// The pieces compose:
//
//   - [Store] is the small interface every tier implements: bytes in and out,
//     a TTL on writes, and a miss ([ErrNotFound]) that is distinct from a
//     failure.
//   - [Redis] is a Store over a caller-built redis.UniversalClient (one node,
//     Sentinel or Cluster); [NewClientFromURL] builds a client for the simple
//     case. With [WithBatchedGets], concurrent reads share pipelines.
//   - [Memory] is a bounded in-process Store with a byte budget.
//   - [Tiered] reads an in-process tier first, fills it from the shared tier,
//     and keeps answering from it while the shared tier is unavailable.
//   - [Guard] wraps any Store with a circuit breaker and a strict operation
//     timeout, so that no call waits longer than the timeout and, while the
//     breaker is open, no call waits at all.
//   - [Hook] is a go-redis hook that gives code calling a *redis.Client
//     directly the same breaker and timeout.
//   - [PendingDeletes] wraps a Store (a Guard) so that a delete refused by an
//     outage is kept and applied when the store is back, before the key is
//     read again: no invalidation is lost.
//   - [Broadcast] subscribes to the invalidations that Redis stores publish
//     ([WithInvalidationChannel]), and makes the Tiered stores listening
//     ([WithBroadcast]) drop their in-process copies at once.
//
// # Options
//
// Each constructor takes options of its own type, so that an option passed
// to a constructor that would not read it does not compile:
//
//	constructor       option type         options
//	NewRedis          RedisOption         WithPrefix, WithMaxKeyBytes, WithMaxValueBytes,
//	                                      WithInvalidationChannel, WithBatchedGets
//	NewMemory         MemoryOption        WithMaxKeyBytes, WithMaxValueBytes, WithClock
//	NewTiered         TieredOption        WithCoherence, WithMaxBackfills, WithLogger, WithClock,
//	                                      WithBroadcast
//	NewGuard, Bound   GuardOption         WithName, WithOpTimeout, WithFailureThreshold,
//	                                      WithOpenPeriod, WithHalfOpenRequests, WithMaxInFlight,
//	                                      WithOnStateChange, WithObserver, WithLogger, WithClock
//	NewNodeGuards     NodeGuardsOption    every GuardOption, WithPrefix, WithMaxKeyBytes,
//	                                      WithMaxValueBytes
//	NewHook           HookOption          WithCacheMode
//	NewPendingDeletes PendingOption       WithMaxPending, WithLogger
//	NewBroadcast      BroadcastOption     WithLogger
//
// [NodeGuards.Bound] returns an error for WithFailureThreshold,
// WithOpenPeriod and WithHalfOpenRequests: its breaker never opens.
//
// An option read by one constructor returns that constructor's option type
// (WithPrefix, read by NewRedis and NewNodeGuards, returns a
// [PrefixOption]); one read by several returns a small concrete type
// ([LoggerOption], [ClockOption], [LimitOption]) that implements the option
// types of exactly those constructors. Options apply in order, a later one
// overriding an earlier one. A constructor validates its options and returns
// an error for a nil option or a bad value; each option's doc states its
// default.
//
// Errors are classified by [Classify]: a miss and a Redis command error (wrong
// type, OOM on a write) are not outages; connection errors, timeouts, pool
// timeouts and the LOADING, READONLY, MASTERDOWN and CLUSTERDOWN replies are.
//
// A request's context can carry a failure tracker ([TrackFailures]); the guard
// and the hook record each outage they see in it, so that HTTP middleware can
// tell that a handler's 5xx came from a Redis outage ([FailureSeen]).
package store
