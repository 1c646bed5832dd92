package failsoft

import (
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ErrUnsupportedClient is returned by [New] for a client it cannot wire: a
// *redis.Ring, or an implementation of redis.UniversalClient of its own.
// Such a service builds the parts itself (package store).
var ErrUnsupportedClient = errors.New("failsoft: unsupported redis client")

// cacheClient returns the cache's own client, built from the options of
// the caller's client with the tuning the cache needs; the caller's client
// keeps its settings. It is a second client so that the hook on the
// caller's client does not count the cache's commands twice, and so that
// its cache mode does not turn the outages the cache must see into misses.
//
// The tuning: DialerRetries 1, so that a refused connection fails at once
// (go-redis retries a dial 5 times, 100 ms apart, so every call to a dead
// Redis would wait out the op timeout until the breaker trips); and
// ContextTimeoutEnabled, so that the client ends every call at its
// context's deadline by itself (socket I/O, the waits for a pooled
// connection and for a dial, retries): a call on a hung Redis gives its
// pooled connection up at the op timeout instead of the client's read
// timeout; and maintenance notifications off, since while one is under way
// go-redis relaxes its read deadlines to seconds. With both, the guard runs
// the cache's calls on the caller's goroutine, without a goroutine and a
// timer per call (see store.Guard and store.NewRedis; a Sentinel client's
// copy, or one with an OnConnect, Limiter or credentials callback, keeps a
// goroutine per call). The cache does not need maintenance notifications:
// a maintenance event that breaks its connections is an outage like any
// other, which its breaker and in-process tier ride out.
//
// A Sentinel client (redis.NewFailoverClient) is a *redis.Client whose
// dialer asks the sentinels for the master: the copy shares that dialer,
// and with it the caller's sentinel connections, so it follows a failover
// too (a connection to a demoted master answers READONLY, which makes
// go-redis drop it and dial the new master).
func cacheClient(c redis.UniversalClient) (redis.UniversalClient, error) {
	switch c := c.(type) {
	case *redis.Client:
		if c == nil {
			return nil, errors.New("nil *redis.Client")
		}
		opt := *c.Options()
		uninit(&opt.ReadTimeout, &opt.WriteTimeout, &opt.MaxRetries, &opt.MinRetryBackoff, &opt.MaxRetryBackoff)
		opt.DialerRetries, opt.ContextTimeoutEnabled = 1, true
		opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		// go-redis keeps the client's push-notification processor in its
		// options; the copy needs its own. Client-side caching is the
		// caller's business: the cache has its in-process tier.
		opt.PushNotificationProcessor = nil
		opt.ClientSideCache, opt.ClientSideCacheConfig = nil, nil
		return redis.NewClient(&opt), nil
	case *redis.ClusterClient:
		if c == nil {
			return nil, errors.New("nil *redis.ClusterClient")
		}
		opt := clusterOptions(c)
		opt.DialerRetries, opt.ContextTimeoutEnabled = 1, true
		opt.PushNotificationProcessor = nil
		// Callbacks registered with the caller's OnNewNode stay on the
		// caller's client; the copy gets the node guards' (see New).
		return redis.NewClusterClient(&opt), nil
	case nil:
		return nil, errors.New("nil client")
	default:
		return nil, fmt.Errorf("%w: %T", ErrUnsupportedClient, c)
	}
}

// clusterOptions returns a copy of c's options that builds a cluster
// client with the same settings (see [uninit]).
func clusterOptions(c *redis.ClusterClient) redis.ClusterOptions {
	opt := *c.Options()
	uninit(&opt.ReadTimeout, &opt.WriteTimeout, nil, &opt.MinRetryBackoff, &opt.MaxRetryBackoff)
	if opt.MaxRedirects == 0 {
		opt.MaxRedirects = -1
	}
	return opt
}

// uninit undoes what go-redis' option init did to the fields whose zero
// means "the default", so that building a client from options a client
// already holds keeps their meaning: init turned -1 ("none") into 0, and
// would now turn that 0 into the default (3 retries, a 5 s read timeout).
// A timeout of -1 after init ("no deadline at all", from -2) goes back to
// -2. A nil pointer is skipped.
func uninit(readTimeout, writeTimeout *time.Duration, maxRetries *int, minBackoff, maxBackoff *time.Duration) {
	for _, d := range []*time.Duration{readTimeout, writeTimeout} {
		switch *d {
		case 0:
			*d = -1
		case -1:
			*d = -2
		}
	}
	for _, d := range []*time.Duration{minBackoff, maxBackoff} {
		if *d == 0 {
			*d = -1
		}
	}
	if maxRetries != nil && *maxRetries == 0 {
		*maxRetries = -1
	}
}
