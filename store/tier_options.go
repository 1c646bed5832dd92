package store

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// redisConfig holds the settings of a [Redis] store.
type redisConfig struct {
	prefix  string
	channel string // WithInvalidationChannel
	lanes   int    // WithBatchedGets; 0: every read on its own
	limits
}

func defaultRedisConfig() redisConfig {
	return redisConfig{prefix: DefaultPrefix, limits: defaultLimits()}
}

func (c redisConfig) validate() error {
	errs := c.limits.validate()
	if c.lanes < 0 {
		errs = append(errs, fmt.Errorf("batched gets: %d lanes is negative", c.lanes))
	}
	return invalid(errs)
}

// newRedisConfig applies opts over the defaults and validates the result.
func newRedisConfig(opts []RedisOption) (redisConfig, error) {
	c := defaultRedisConfig()
	for _, opt := range opts {
		if opt == nil {
			return c, errNilOption("NewRedis")
		}
		opt.applyRedis(&c)
	}
	return c, c.validate()
}

// PrefixOption sets the namespace of the Redis keys a store writes: of a
// [Redis] store, and of the Redis stores through which the node guards of
// [NewNodeGuards] reach their nodes. It is a [RedisOption] and a
// [NodeGuardsOption]. Build it with [WithPrefix].
type PrefixOption struct{ prefix string }

// WithPrefix sets the namespace prepended to every Redis key; "" means no
// namespace. Default: "failsoft:" ([DefaultPrefix]). Accepted by
// [NewRedis] and [NewNodeGuards].
func WithPrefix(p string) PrefixOption { return PrefixOption{p} }

func (o PrefixOption) applyRedis(c *redisConfig)           { c.prefix = o.prefix }
func (o PrefixOption) applyNodeGuards(c *nodeGuardsConfig) { c.redis.prefix = o.prefix }

// BatchOption makes a [Redis] store send concurrent reads together. Build
// it with [WithBatchedGets].
type BatchOption struct{ lanes int }

// WithBatchedGets makes the store's reads (Get, GetTTL) use at most lanes
// connections at once: a read that finds one free is sent at once, as
// without the option; the reads made while all are busy wait, and go
// together in one pipeline as soon as a lane is free (at most 64: the
// waiting read with the latest deadline, which sends the pipeline under
// that deadline, and the oldest others). Under load this saves most of the
// system calls and of Redis' work per read (one pipeline instead of a round
// trip each) at the cost of waiting for a round trip in flight (for more
// only past 64 waiting reads a lane); with few concurrent reads nothing
// changes. Every read still ends by its own context's deadline. The client
// must be a single node or Sentinel client (not Cluster or Ring); hooks on
// it see the pipelines, under the context of the read that sends them. 0
// (the default) sends every read on its own; lanes must not be negative.
// failsoft.New sets 2 for its own client to a single node or Sentinel.
func WithBatchedGets(lanes int) BatchOption { return BatchOption{lanes} }

func (o BatchOption) applyRedis(c *redisConfig) { c.lanes = o.lanes }

// memoryConfig holds the settings of a [Memory] store.
type memoryConfig struct {
	limits
	now func() time.Time
}

// newMemoryConfig applies opts over the defaults and validates the result.
func newMemoryConfig(opts []MemoryOption) (memoryConfig, error) {
	c := memoryConfig{limits: defaultLimits(), now: time.Now}
	for _, opt := range opts {
		if opt == nil {
			return c, errNilOption("NewMemory")
		}
		opt.applyMemory(&c)
	}
	errs := c.limits.validate()
	if c.now == nil {
		errs = append(errs, errors.New("clock is nil"))
	}
	return c, invalid(errs)
}

// tieredConfig holds the settings of a [Tiered] store.
type tieredConfig struct {
	coherence    time.Duration
	maxBackfills int
	logger       *slog.Logger
	now          func() time.Time
	clockSet     bool // WithClock was given: now is not the system clock

	// WithBroadcast
	broadcast       *Broadcast
	broadcastWindow time.Duration
	broadcastSet    bool
}

// newTieredConfig applies opts over the defaults and validates the result.
func newTieredConfig(opts []TieredOption) (tieredConfig, error) {
	c := tieredConfig{coherence: DefaultCoherence, maxBackfills: DefaultMaxBackfills, now: time.Now}
	for _, opt := range opts {
		if opt == nil {
			return c, errNilOption("NewTiered")
		}
		opt.applyTiered(&c)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	var errs []error
	if c.now == nil {
		errs = append(errs, errors.New("clock is nil"))
	}
	if c.coherence < 0 {
		errs = append(errs, fmt.Errorf("coherence window %v is negative", c.coherence))
	}
	if c.maxBackfills <= 0 {
		errs = append(errs, fmt.Errorf("max backfills %d is not positive", c.maxBackfills))
	}
	if c.broadcastSet && (c.broadcast == nil || c.broadcast.cancel == nil) {
		errs = append(errs, errors.New("broadcast is nil (build it with NewBroadcast)"))
	}
	if c.broadcastWindow < 0 {
		errs = append(errs, fmt.Errorf("broadcast coherence window %v is negative", c.broadcastWindow))
	}
	return c, invalid(errs)
}

// tieredOption is an option read only by [NewTiered].
type tieredOption func(*tieredConfig)

func (f tieredOption) applyTiered(c *tieredConfig) { f(c) }

// WithCoherence sets how long a tiered store serves its in-process copy
// before asking the shared tier again, so that a purge or an update made by
// another replica is seen within this window. 0 asks the shared tier on
// every read; a negative window is an error. Default: 2 s
// ([DefaultCoherence]).
func WithCoherence(d time.Duration) TieredOption {
	return tieredOption(func(c *tieredConfig) { c.coherence = d })
}

// WithMaxBackfills bounds the concurrent write-backs of in-process copies to
// a shared tier that came back empty; more are dropped. It must be positive.
// Default: 16 ([DefaultMaxBackfills]).
func WithMaxBackfills(n int) TieredOption {
	return tieredOption(func(c *tieredConfig) { c.maxBackfills = n })
}
