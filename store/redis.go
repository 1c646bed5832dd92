package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Redis is a [Store] over a caller-built redis.UniversalClient: a single
// node, Sentinel (failover) or Cluster client. Every key is written as the
// store's prefix followed by the key, so that stores with different prefixes
// share one Redis without seeing each other's entries.
//
// A Redis is safe for concurrent use; it holds no state besides the client,
// its settings, a counter of published invalidations and, with
// [WithBatchedGets], the reads waiting for a connection. The zero value is
// not usable: build one with [NewRedis]; its methods return [ErrClosed] on
// the zero value.
//
// Failures: a miss is [ErrNotFound]; bad input is [ErrInvalidKey],
// [ErrValueTooLarge] or [ErrInvalidTTL] and never reaches Redis; every other
// error is the go-redis error wrapped with a "store: redis <op>:" prefix, so
// [Classify] sees the reply or network error underneath. Redis does not
// bound how long a call may take beyond the client's own timeouts: wrap it in
// a [Guard] for that. Errors never contain the client's password: go-redis
// does not put it in its errors, and neither does Redis.
type Redis struct {
	client        redis.UniversalClient
	prefix        string
	maxKeyBytes   int
	maxValueBytes int
	channel       string      // WithInvalidationChannel; "" publishes nothing
	sharded       bool        // client is a Cluster client: SPUBLISH
	bounded       bool        // client ends every call by its context's deadline; see boundsCalls
	batch         *getBatcher // WithBatchedGets; nil sends every read on its own
	published     atomic.Uint64
}

var (
	_ Store     = (*Redis)(nil)
	_ TTLGetter = (*Redis)(nil)
	_ Pinger    = (*Redis)(nil)
)

// NewRedis returns a Store that keeps its entries in Redis through client.
//
// Its options are [WithPrefix] (default "failsoft:", [DefaultPrefix]; ""
// means no namespace), [WithMaxKeyBytes] (default 1024, not counting the
// prefix), [WithMaxValueBytes] (default 2 MiB), [WithInvalidationChannel]
// and [WithBatchedGets] (default off; a *redis.Client only). A nil client
// (also a typed nil such as a nil *redis.Client), a nil option or a bad
// value is an error.
//
// The store does not own client: it never closes it, and the caller closes
// it after the last use of the store. NewRedis does not contact the server.
//
// A *redis.Client built with ContextTimeoutEnabled ends every call by its
// context's deadline, so a [Guard] over the store runs calls on the
// caller's goroutine, which is cheaper (see [Guard]), provided that its
// read and write timeouts are not -2, it is not a Sentinel client, it has
// no OnConnect, Limiter or credentials callback, and it speaks RESP2 or has
// maintenance notifications disabled (MaintNotificationsConfig Mode
// "disabled", as failsoft.New's cache client has). Any hook on such a
// client must not block past the context's deadline either.
func NewRedis(client redis.UniversalClient, opts ...RedisOption) (*Redis, error) {
	if isNil(client) {
		return nil, errors.New("store: NewRedis: nil redis client")
	}
	c, err := newRedisConfig(opts)
	if err != nil {
		return nil, err
	}
	if _, single := client.(*redis.Client); c.lanes > 0 && !single {
		return nil, fmt.Errorf("store: NewRedis: WithBatchedGets needs a single node or Sentinel client (*redis.Client), not %T", client)
	}
	return newRedis(client, c), nil
}

// newRedis returns a store over client, which must not be nil, with the
// validated settings c.
func newRedis(client redis.UniversalClient, c redisConfig) *Redis {
	return &Redis{
		client:        client,
		prefix:        c.prefix,
		maxKeyBytes:   c.maxKeyBytes,
		maxValueBytes: c.maxValueBytes,
		channel:       c.channel,
		sharded:       isCluster(client),
		bounded:       endsByDeadline(client),
		batch:         newGetBatcher(client, c.lanes),
	}
}

// newGetBatcher returns the batcher of WithBatchedGets(lanes), nil for 0.
func newGetBatcher(client redis.UniversalClient, lanes int) *getBatcher {
	if lanes == 0 {
		return nil
	}
	return &getBatcher{client: client, lanes: lanes}
}

// endsByDeadline reports whether client ends every call by the deadline of
// the call's context on its own, so that a [Guard] may run a call on its
// caller's goroutine instead of waiting for it on another: a *redis.Client
// built with ContextTimeoutEnabled, which sets its socket deadlines from
// the context (and whose read and write timeouts do not turn deadlines
// off), and waits for a pooled connection, for a dial and between retries
// only until the context is done. Excluded, because something on the
// caller's goroutine would then wait by other clocks: a Sentinel client
// (its dialer asks the sentinels through a client of their own), Cluster
// and Ring clients (they route through clients of their own), a client
// with an OnConnect, Limiter or credentials callback (user code run on the
// call's goroutine), and a RESP3 client with maintenance notifications on
// (go-redis drains push frames under read deadlines of its own, of seconds
// while a maintenance event relaxes them). A hook added to the client must
// not block past the context's deadline either.
func endsByDeadline(client redis.UniversalClient) bool {
	c, ok := client.(*redis.Client)
	if !ok {
		return false
	}
	o := c.Options()
	switch {
	case !o.ContextTimeoutEnabled, o.ReadTimeout < 0, o.WriteTimeout < 0, o.Addr == failoverAddr:
		return false
	case o.OnConnect != nil, o.Limiter != nil, o.CredentialsProvider != nil,
		o.CredentialsProviderContext != nil, o.StreamingCredentialsProvider != nil:
		return false
	}
	return o.Protocol == 2 || o.MaintNotificationsConfig != nil && o.MaintNotificationsConfig.Mode == maintnotifications.ModeDisabled
}

// failoverAddr is the Addr go-redis gives the options of a Sentinel
// (failover) client.
const failoverAddr = "FailoverClient"

// boundsCalls reports whether s ends every call by its context's deadline;
// see endsByDeadline.
func (s *Redis) boundsCalls() bool { return s != nil && s.bounded }

// isCluster reports whether client is a Cluster client.
func isCluster(client redis.UniversalClient) bool {
	_, ok := client.(*redis.ClusterClient)
	return ok
}

// isNil reports whether v is nil or an interface holding a nil pointer, map,
// func, chan or slice. It is used once per constructor, never on a hot path.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Chan, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// Prefix returns the namespace prepended to every key.
func (s *Redis) Prefix() string {
	if s == nil {
		return ""
	}
	return s.prefix
}

// usable returns ErrClosed for a Redis not built by NewRedis.
func (s *Redis) usable() error {
	if s == nil || s.client == nil {
		return fmt.Errorf("%w: Redis store not built by NewRedis", ErrClosed)
	}
	return nil
}

// Get returns a copy of the value stored under key (the caller owns it), or
// [ErrNotFound] when there is none. It sends one GET: on its own, or with
// [WithBatchedGets] in a pipeline with other reads.
func (s *Redis) Get(ctx context.Context, key string) ([]byte, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	if err := checkKey(key, s.maxKeyBytes); err != nil {
		return nil, err
	}
	var get *redis.StringCmd
	if s.batch != nil {
		var err error
		if get, _, err = s.batch.get(ctx, s.prefix+key, false); err != nil {
			return nil, fmt.Errorf("store: redis get: %w", err)
		}
	} else {
		get = s.client.Get(ctx, s.prefix+key)
	}
	v, err := get.Bytes()
	switch {
	case err == nil:
		return v, nil
	case errors.Is(err, redis.Nil):
		return nil, ErrNotFound
	}
	return nil, fmt.Errorf("store: redis get: %w", err)
}

// GetTTL is Get that also returns the entry's remaining time to live, in one
// round trip (a pipeline of GET and PTTL, with [WithBatchedGets] maybe with
// other reads). A ttl of 0 means the entry has no
// expiry (it was written without one, by something other than Set). An entry
// that expires between the two commands is a miss.
func (s *Redis) GetTTL(ctx context.Context, key string) ([]byte, time.Duration, error) {
	if err := s.usable(); err != nil {
		return nil, 0, err
	}
	if err := checkKey(key, s.maxKeyBytes); err != nil {
		return nil, 0, err
	}
	k := s.prefix + key
	var get *redis.StringCmd
	var pttl *redis.DurationCmd
	if s.batch != nil {
		var err error
		if get, pttl, err = s.batch.get(ctx, k, true); err != nil {
			return nil, 0, fmt.Errorf("store: redis get: %w", err)
		}
	} else {
		// The pipeline's own error is the first failed command's; each
		// command's error is checked below instead, so that a miss is told
		// from a failure.
		_, _ = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			get = p.Get(ctx, k)
			pttl = p.PTTL(ctx, k)
			return nil
		})
	}
	v, err := get.Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, 0, ErrNotFound
	case err != nil:
		return nil, 0, fmt.Errorf("store: redis get: %w", err)
	}
	ttl, err := pttl.Result()
	if err != nil {
		return nil, 0, fmt.Errorf("store: redis pttl: %w", err)
	}
	switch {
	case ttl == -2: // gone since the GET
		return nil, 0, ErrNotFound
	case ttl < 0: // -1: no expiry
		return v, 0, nil
	case ttl < time.Millisecond: // PTTL 0: less than a millisecond left
		return v, time.Millisecond, nil
	}
	return v, ttl, nil
}

// Set stores value under key for ttl, which must be positive; Redis keeps
// millisecond precision and a ttl under 1 ms is rounded up to 1 ms. The
// value is sent as is and not retained. An entry of another type under the
// key (a hash, say) is replaced, as SET does.
func (s *Redis) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.usable(); err != nil {
		return err
	}
	if err := checkSet(key, value, ttl, s.maxKeyBytes, s.maxValueBytes); err != nil {
		return err
	}
	// go-redis logs through its global logger for a sub-millisecond ttl.
	ttl = max(ttl, time.Millisecond)
	if err := s.client.Set(ctx, s.prefix+key, value, ttl).Err(); err != nil {
		return fmt.Errorf("store: redis set: %w", err)
	}
	return nil
}

// Delete removes key with DEL. Deleting a missing key is not an error.
// With [WithInvalidationChannel], key is then published on the channel:
// PUBLISH in the DEL's pipeline, or, on a Cluster, SPUBLISH once the DEL is
// done (a second round trip), so that the announcement never arrives before
// the entry is gone; an error of either is returned.
func (s *Redis) Delete(ctx context.Context, key string) error {
	if err := s.usable(); err != nil {
		return err
	}
	if err := checkKey(key, s.maxKeyBytes); err != nil {
		return err
	}
	if s.channel == "" {
		if err := s.client.Del(ctx, s.prefix+key).Err(); err != nil {
			return fmt.Errorf("store: redis delete: %w", err)
		}
		return nil
	}
	var err error
	if s.sharded {
		// A Cluster pipeline sends to each node at once: the announcement
		// could overtake the DEL, and a replica re-read the old entry. One
		// after the other.
		if err = s.client.Del(ctx, s.prefix+key).Err(); err == nil {
			err = s.client.SPublish(ctx, s.channel, key).Err()
		}
	} else {
		// One connection: the DEL runs before the PUBLISH.
		var cmds []redis.Cmder
		cmds, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, s.prefix+key)
			p.Publish(ctx, s.channel, key)
			return nil
		})
		if err == nil && len(cmds) == 2 {
			err = cmds[1].Err()
		}
	}
	if err != nil {
		return fmt.Errorf("store: redis delete: %w", err)
	}
	s.published.Add(1)
	return nil
}

// Published returns how many deletes were announced on the invalidation
// channel ([WithInvalidationChannel]).
func (s *Redis) Published() uint64 {
	if s == nil {
		return 0
	}
	return s.published.Load()
}

// Ping sends PING and returns its error, wrapped. For a Cluster client it
// pings one node, as go-redis does.
func (s *Redis) Ping(ctx context.Context) error {
	if err := s.usable(); err != nil {
		return err
	}
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("store: redis ping: %w", err)
	}
	return nil
}
