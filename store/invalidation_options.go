package store

import (
	"fmt"
	"log/slog"
	"time"
)

// Options of the invalidation parts: [NewPendingDeletes], [NewBroadcast],
// the Redis store's [WithInvalidationChannel] and the tiered store's
// [WithBroadcast].

// PendingOption configures [NewPendingDeletes]: [WithMaxPending] and
// [WithLogger].
type PendingOption interface{ applyPending(*pendingConfig) }

// pendingConfig holds the settings of a [PendingDeletes].
type pendingConfig struct {
	max    int
	logger *slog.Logger
}

type pendingOption func(*pendingConfig)

func (f pendingOption) applyPending(c *pendingConfig) { f(c) }

// WithMaxPending bounds the keys whose delete a [PendingDeletes] keeps
// while the remote is unavailable; a failed delete past the bound is
// dropped and counted. It must be positive. Default: 10,000
// ([DefaultMaxPending]).
func WithMaxPending(n int) PendingOption {
	return pendingOption(func(c *pendingConfig) { c.max = n })
}

func (o LoggerOption) applyPending(c *pendingConfig) { c.logger = o.logger }

// ChannelOption makes a [Redis] store announce each key it deletes on a
// Redis pub/sub channel. Build it with [WithInvalidationChannel].
type ChannelOption struct{ channel string }

// WithInvalidationChannel makes the store publish every key it deletes
// (without the prefix) on channel once the DEL is done: PUBLISH in the same
// round trip, or SPUBLISH for a Cluster client (sharded pub/sub) in a
// second one. A Delete
// whose publication fails returns the error, so that a [PendingDeletes]
// tries both again. [Broadcast] subscribes to the channel. Default: ""
// (nothing is published).
func WithInvalidationChannel(channel string) ChannelOption { return ChannelOption{channel} }

func (o ChannelOption) applyRedis(c *redisConfig) { c.channel = o.channel }

// errInvalid formats one option error.
func errInvalid(format string, args ...any) error {
	return invalid([]error{fmt.Errorf(format, args...)})
}

// BroadcastOption configures [NewBroadcast]: [WithLogger].
type BroadcastOption interface{ applyBroadcast(*broadcastConfig) }

// broadcastConfig holds the settings of a [Broadcast].
type broadcastConfig struct {
	logger *slog.Logger
}

func (o LoggerOption) applyBroadcast(c *broadcastConfig) { c.logger = o.logger }

// WithBroadcast makes a [Tiered] drop its in-process copy of each key that
// b announces as invalidated, and lets it keep a copy for window (0: for
// the copy's whole ttl, which follows the remote entry's) instead of the
// coherence window, under three conditions: b's subscription is confirmed,
// the copy was written or confirmed against the remote after that, and no
// delete is pending in the remote (a [PendingDeletes]). Otherwise the
// coherence window ([WithCoherence]) applies, since announcements may have
// been missed. A nil b or a negative window is an error. Default: no
// broadcast.
func WithBroadcast(b *Broadcast, window time.Duration) TieredOption {
	return tieredOption(func(c *tieredConfig) {
		c.broadcast, c.broadcastWindow, c.broadcastSet = b, window, true
	})
}
