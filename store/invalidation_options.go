package store

import (
	"fmt"
	"log/slog"
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
// (without the prefix) on channel, in the same round trip as the DEL:
// PUBLISH, or SPUBLISH for a Cluster client (sharded pub/sub). A Delete
// whose publication fails returns the error, so that a [PendingDeletes]
// tries both again. [Broadcast] subscribes to the channel. Default: ""
// (nothing is published).
func WithInvalidationChannel(channel string) ChannelOption { return ChannelOption{channel} }

func (o ChannelOption) applyRedis(c *redisConfig) { c.channel = o.channel }

// errInvalid formats one option error.
func errInvalid(format string, args ...any) error {
	return invalid([]error{fmt.Errorf(format, args...)})
}

