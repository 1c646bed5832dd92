package store

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Hook is a go-redis hook that runs every command and pipeline of a client
// through a [Guard]'s breaker and op timeout, for code that calls a
// *redis.Client directly. It is added with one line where the client is
// built:
//
//	rdb := redis.NewClient(opt)
//	rdb.AddHook(hook)
//
// It must be added before the client's first command, so that its dial hook
// wraps every pooled connection: it bounds each socket write, and the reads
// of each reply taken together (so a reply that trickles in byte by byte
// too), by the op timeout (or an earlier deadline go-redis set), because
// go-redis ignores context deadlines on socket reads unless the client was
// built with ContextTimeoutEnabled. Connections dialed before AddHook keep go-redis'
// own timeouts. Blocking commands (BLPOP, BRPOP, XREAD BLOCK, WAIT …) and
// pub/sub outlive any op timeout: run them on a client without the hook.
// go-redis retries a refused dial (5 attempts, 100 ms apart, by default), so
// against a dead server each command waits the op timeout until the breaker
// opens; build the client with DialerRetries: 1 for it to fail at once.
//
// The hook shares the guard's breaker, counts and observer (op is the
// lower-case command name, or "pipeline"); each command or pipeline is one
// breaker request. Its context carries the op timeout as a deadline; with
// go-redis' retries the total still stays near the op timeout, because the
// retry backoff honours that deadline. While the breaker is open, or after
// the guard is closed, commands fail at once with the guard's
// [ErrUnavailable] (or [ErrClosed]) error, set on the command, without
// touching the network. Every outage is recorded in the command's context
// with [RecordFailure], so pass the request's context. Commands go-redis
// runs inside one of the hook's own (the connection handshake) pass through
// unguarded: they are part of the outer command.
//
// Outside cache mode an outage error is returned as it is (an expired op
// timeout as the guard's timeout error, which wraps
// context.DeadlineExceeded). In cache mode ([WithCacheMode]), an outage on a
// read command (see [IsCacheRead]) comes back as redis.Nil, a miss, and an
// outage on a write command (see [IsCacheWrite]) is dropped: the command
// reports success with its zero value ("OK" for a status reply) and
// [Hook.Dropped] counts it. Other commands, and every command of a MULTI/EXEC
// transaction, keep their errors. Command errors (WRONGTYPE, OOM, syntax)
// are not outages: they pass through unchanged in every mode.
//
// The hook does not use the guard's in-flight limit ([WithMaxInFlight]):
// commands run on the caller's goroutine and end within the op timeout.
//
// A Hook is safe for concurrent use and may be added to several clients,
// which then share one breaker.
type Hook struct {
	g         *Guard
	cacheMode bool
	dropped   atomic.Uint64
}

var _ redis.Hook = (*Hook)(nil)

// hookKey marks the context of a command running through a hook, so that
// commands go-redis issues within it (the connection handshake) are not
// counted twice.
var hookKey = &contextKey{"hook"}

// contextKey is the type of this package's context keys; pointer values of
// it cannot collide with anyone else's.
type contextKey struct{ name string }

// NewHook returns a hook over g's breaker and op timeout. Its one option is
// [WithCacheMode] (default off); the breaker settings, op timeout, name,
// clock and observer are g's, and the hook logs nothing. It returns an
// error for a nil or unbuilt guard or a nil option.
func NewHook(g *Guard, opts ...HookOption) (*Hook, error) {
	if g == nil {
		return nil, errors.New("store: NewHook: nil Guard")
	}
	if !g.usable() {
		return nil, errors.New("store: NewHook: Guard not built by NewGuard")
	}
	var c hookConfig
	for _, opt := range opts {
		if opt == nil {
			return nil, errNilOption("NewHook")
		}
		opt.applyHook(&c)
	}
	return newHook(g, c), nil
}

// newHook returns a hook over g, which must be usable, with settings c.
func newHook(g *Guard, c hookConfig) *Hook { return &Hook{g: g, cacheMode: c.cacheMode} }

// hookConfig holds the settings of a [Hook].
type hookConfig struct {
	cacheMode bool
}

// hookOption is an option read only by [NewHook].
type hookOption func(*hookConfig)

func (f hookOption) applyHook(c *hookConfig) { f(c) }

// WithCacheMode makes a [Hook] turn outages into cache semantics: a failed
// read command returns redis.Nil (a miss) and a failed write is dropped
// and counted, so a handler's miss path runs instead of its error path.
// Default: off (outages return [ErrUnavailable] or the Redis error).
func WithCacheMode(on bool) HookOption {
	return hookOption(func(c *hookConfig) { c.cacheMode = on })
}

// Dropped returns how many write commands cache mode has dropped because of
// an outage since the hook was built.
func (h *Hook) Dropped() uint64 { return h.dropped.Load() }

// Guard returns the guard whose breaker the hook uses.
func (h *Hook) Guard() *Guard { return h.g }

// DialHook implements redis.Hook: it wraps each new connection so that every
// socket read and write waits at most the op timeout.
func (h *Hook) DialHook(next redis.DialHook) redis.DialHook {
	bound := h.g.opts.opTimeout
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil || conn == nil {
			return conn, err
		}
		return bindConn(conn, bound), nil
	}
}

// ProcessHook implements redis.Hook: it runs each command through the
// guard's breaker and op timeout.
func (h *Hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if ctx.Value(hookKey) == h {
			return next(ctx, cmd)
		}
		g := h.g
		var start time.Time
		if g.opts.observer != nil {
			start = time.Now()
		}
		name := cmd.Name()
		t, err := h.admit(ctx)
		if err != nil {
			g.refusedName(ctx, name, start, err)
			return h.fail(cmd, err)
		}
		g.nCalls.Add(1)
		cctx, cancel := context.WithTimeout(ctx, g.opts.opTimeout)
		err = next(context.WithValue(cctx, hookKey, h), cmd)
		cancel()
		class := h.classify(ctx, err)
		if class == ClassTimeout && errors.Is(err, context.DeadlineExceeded) && cctx.Err() == context.DeadlineExceeded {
			err = g.errs[opHook].timeout
		}
		g.settleName(ctx, name, start, t, class, err)
		if class.Outage() {
			return h.fail(cmd, err)
		}
		return err
	}
}

// ProcessPipelineHook implements redis.Hook: it runs each pipeline (and
// transaction) through the guard's breaker and op timeout as one request,
// a failure when any of its commands saw an outage.
func (h *Hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if ctx.Value(hookKey) == h {
			return next(ctx, cmds)
		}
		g := h.g
		var start time.Time
		if g.opts.observer != nil {
			start = time.Now()
		}
		t, err := h.admit(ctx)
		if err != nil {
			g.refusedName(ctx, "pipeline", start, err)
			for _, cmd := range cmds {
				cmd.SetErr(err)
			}
			return h.failPipeline(cmds, err)
		}
		g.nCalls.Add(1)
		cctx, cancel := context.WithTimeout(ctx, g.opts.opTimeout)
		err = next(context.WithValue(cctx, hookKey, h), cmds)
		cancel()
		worst := err
		if !Classify(err).Outage() {
			for _, cmd := range cmds {
				if cerr := cmd.Err(); cerr != nil && Classify(cerr).Outage() {
					worst = cerr
					break
				}
			}
		}
		class := h.classify(ctx, worst)
		g.settleName(ctx, "pipeline", start, t, class, worst)
		if class.Outage() {
			return h.failPipeline(cmds, err)
		}
		return err
	}
}

// admit asks the guard's breaker for a turn.
func (h *Hook) admit(ctx context.Context) (turn, error) {
	errs := &h.g.errs[opHook]
	if h.g.closed.Load() {
		return turn{}, errs.closed
	}
	if budgetSpent(ctx) {
		return turn{}, errs.spent
	}
	return h.g.allow(errs)
}

// classify returns the class of a hooked command's result; an outage seen
// after the caller's own context ended counts as ClassCanceled.
func (h *Hook) classify(parent context.Context, err error) Class {
	class := Classify(err)
	if class.Outage() && parent.Err() != nil {
		return ClassCanceled
	}
	return class
}

// fail settles a command that saw an outage err: in cache mode a read
// becomes a miss and a write is dropped; otherwise cmd keeps err.
func (h *Hook) fail(cmd redis.Cmder, err error) error {
	if h.cacheMode {
		name := cmd.Name()
		switch {
		case IsCacheRead(name):
			cmd.SetErr(redis.Nil)
			return redis.Nil
		case IsCacheWrite(name):
			h.drop(cmd)
			return nil
		}
	}
	cmd.SetErr(err)
	return err
}

// failPipeline settles a pipeline that saw an outage; err is what the
// pipeline returned. In cache mode each command with an outage error is
// settled as by fail, and the pipeline returns its first remaining error;
// a transaction keeps its errors.
func (h *Hook) failPipeline(cmds []redis.Cmder, err error) error {
	if !h.cacheMode || len(cmds) == 0 || cmds[0].Name() == "multi" {
		return err
	}
	var first error
	for _, cmd := range cmds {
		cerr := cmd.Err()
		if cerr != nil && Classify(cerr).Outage() {
			name := cmd.Name()
			switch {
			case IsCacheRead(name):
				cmd.SetErr(redis.Nil)
				cerr = redis.Nil
			case IsCacheWrite(name):
				h.drop(cmd)
				cerr = nil
			}
		}
		if first == nil {
			first = cerr
		}
	}
	return first
}

// drop clears a write command's error and counts it.
func (h *Hook) drop(cmd redis.Cmder) {
	h.dropped.Add(1)
	cmd.SetErr(nil)
	if sc, ok := cmd.(*redis.StatusCmd); ok {
		sc.SetVal("OK")
	}
}

// IsCacheRead reports whether the Redis command name (lower case, as
// redis.Cmder's Name returns it) is one that cache mode turns into a miss
// (redis.Nil) on an outage: a command that reads keys and replies with what
// it read — GET, GETEX, GETDEL, GETSET, MGET, STRLEN, GETRANGE, EXISTS,
// TYPE, TTL, PTTL, the hash, list, set and sorted-set readers (HGET, HGETALL,
// HMGET, HEXISTS, LRANGE, LINDEX, SMEMBERS, SISMEMBER, ZRANGE, ZSCORE …),
// GETBIT, BITCOUNT, PFCOUNT, the GEO readers, XRANGE, XLEN and JSON.GET.
func IsCacheRead(name string) bool {
	switch name {
	case "get", "getex", "getdel", "getset", "getrange", "substr", "mget", "strlen",
		"exists", "type", "ttl", "pttl", "expiretime", "pexpiretime", "dump",
		"hget", "hgetall", "hmget", "hexists", "hkeys", "hvals", "hlen", "hstrlen", "hrandfield",
		"lrange", "lindex", "llen", "lpos",
		"smembers", "sismember", "smismember", "scard", "srandmember", "sinter", "sunion", "sdiff",
		"zrange", "zrangebyscore", "zrangebylex", "zrevrange", "zrevrangebyscore", "zrevrangebylex",
		"zscore", "zmscore", "zcard", "zcount", "zlexcount", "zrank", "zrevrank", "zrandmember",
		"getbit", "bitcount", "bitpos", "pfcount",
		"geopos", "geodist", "geohash", "geosearch", "georadius_ro", "georadiusbymember_ro",
		"xrange", "xrevrange", "xlen", "json.get", "json.mget":
		return true
	}
	return false
}

// IsCacheWrite reports whether the Redis command name (lower case) is one
// that cache mode drops on an outage: a command that only stores or removes
// cache data and whose reply a caller does not act on — SET, SETEX, PSETEX,
// MSET, DEL, UNLINK, EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, PERSIST, TOUCH,
// HSET, HMSET, HDEL, SADD, SREM, ZADD, ZREM, PFADD, GEOADD, JSON.SET and
// JSON.DEL. Commands whose reply is data the caller uses (INCR and the other
// counters, SETNX, APPEND, XADD, list pushes for queues) are not dropped:
// faking their reply would corrupt rate limiters, ID generators and queues,
// so they return the outage error in every mode.
func IsCacheWrite(name string) bool {
	switch name {
	case "set", "setex", "psetex", "mset",
		"del", "unlink", "expire", "pexpire", "expireat", "pexpireat", "persist", "touch",
		"hset", "hmset", "hdel", "sadd", "srem", "zadd", "zrem",
		"pfadd", "geoadd", "json.set", "json.del":
		return true
	}
	return false
}
