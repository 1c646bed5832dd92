// Package appkit holds what the Gin and Echo examples share: their settings,
// the simulated primary source, failsoft's pieces built around the legacy
// service's go-redis client, and a server that shuts down gracefully. Each
// example keeps its handler and its router; the point of those examples is
// how failsoft mounts on the framework, which stays in their main.go.
package appkit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft/health"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

// Config is an example's settings, read from the environment by
// ConfigFromEnv:
//
//	ADDR             listen address                 (default 127.0.0.1:8080)
//	REDIS_URL        redis:// or rediss:// URL       (default: an embedded in-process Redis)
//	PRIMARY_LATENCY  latency of the primary source  (default 500ms)
type Config struct {
	Addr           string
	RedisURL       string
	PrimaryLatency time.Duration
}

// ConfigFromEnv reads Config through getenv (os.Getenv in main).
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cfg := Config{Addr: getenv("ADDR"), RedisURL: getenv("REDIS_URL"), PrimaryLatency: 500 * time.Millisecond}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8080"
	}
	if v := getenv("PRIMARY_LATENCY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return Config{}, fmt.Errorf("PRIMARY_LATENCY %q: want a non-negative Go duration such as 500ms", v)
		}
		cfg.PrimaryLatency = d
	}
	return cfg, nil
}

// Primary is the slow source of truth behind the cache, simulated by a
// sleep. It is safe for concurrent use.
type Primary struct {
	Latency time.Duration
	fetches atomic.Int64
}

// Fetch returns the data for key after the primary's latency.
func (p *Primary) Fetch(key string) string {
	p.fetches.Add(1)
	time.Sleep(p.Latency)
	return fmt.Sprintf("Data for %s fetched at %s", key, time.Now().UTC().Format(time.RFC3339Nano))
}

// Fetches returns how many times Fetch was called.
func (p *Primary) Fetches() int64 { return p.fetches.Load() }

// DataResponse is the documented data endpoint's answer.
type DataResponse struct {
	Source string `json:"source"` // "cache" or "primary"
	Data   string `json:"data"`
}

// RedisOptions parses rawURL, or starts an embedded in-process Redis when it
// is empty; release stops the embedded Redis (it does nothing otherwise).
func RedisOptions(rawURL string, logger *slog.Logger) (opt *redis.Options, release func(), err error) {
	release = func() {}
	if rawURL == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return nil, nil, fmt.Errorf("embedded redis: %w", err)
		}
		release = mr.Close
		rawURL = "redis://" + mr.Addr()
		logger.Info("using an embedded in-process Redis; set REDIS_URL for a real one", "addr", mr.Addr())
	}
	if opt, err = redis.ParseURL(rawURL); err != nil {
		release()
		return nil, nil, fmt.Errorf("REDIS_URL %s: invalid", store.RedactURL(rawURL))
	}
	return opt, release, nil
}

// Tune adjusts opt for a client that failsoft protects, before any client is
// built from it (examples/dataapi/wire.go explains each setting).
func Tune(opt *redis.Options) {
	opt.DialerRetries = 1            // a refused dial fails at once
	opt.ContextTimeoutEnabled = true // an abandoned call ends at the op timeout
}

// Failsoft is failsoft built around a legacy service's client: a guard (one
// breaker and op timeout) shared by the go-redis hook on that client and the
// cache's own Redis store, an in-process tier in front of it, the response
// cache, recovery and the health handlers.
type Failsoft struct {
	Guard   *store.Guard
	Cache   *middleware.Cache
	Health  *health.Handler
	logger  *slog.Logger
	closers []func() error
}

// freshFor is how long an answer without Cache-Control is served from the
// cache (see examples/dataapi/wire.go).
const freshFor = time.Minute

// New builds failsoft around rdb, whose options opt are (Tune them before
// building rdb), and adds the hook to rdb: call it before rdb's first
// command. Close releases what it built; it does not close rdb.
func New(rdb *redis.Client, opt *redis.Options, logger *slog.Logger) (*Failsoft, error) {
	f := &Failsoft{logger: logger}
	cacheClient := redis.NewClient(opt)
	remote, err := store.NewRedis(cacheClient)
	if err != nil {
		cacheClient.Close()
		return nil, err
	}
	if f.Guard, err = store.NewGuard(remote, store.WithName("redis"), store.WithLogger(logger)); err != nil {
		cacheClient.Close()
		return nil, err
	}
	// Closed in reverse: the client before the guard.
	f.closers = append(f.closers, f.Guard.Close, cacheClient.Close)

	hook, err := store.NewHook(f.Guard, store.WithCacheMode(true))
	if err != nil {
		f.Close()
		return nil, err
	}
	rdb.AddHook(hook)

	local, err := store.NewMemory(64 << 20)
	if err != nil {
		f.Close()
		return nil, err
	}
	f.closers = append(f.closers, local.Close)
	tiered, err := store.NewTiered(local, f.Guard, store.WithLogger(logger))
	if err != nil {
		f.Close()
		return nil, err
	}
	f.closers = append(f.closers, tiered.Close)
	if f.Cache, err = middleware.New(tiered, middleware.WithDefaultTTL(freshFor), middleware.WithLogger(logger)); err != nil {
		f.Close()
		return nil, err
	}
	f.closers = append(f.closers, f.Cache.Close)
	f.Health, err = health.New(
		health.WithBreakerCheck(f.Guard, false),
		health.WithPinger("redis-ping", f.Guard, false),
		health.WithCacheStats("cache", f.Cache.Stats),
		health.WithLogger(logger),
	)
	if err != nil {
		f.Close()
		return nil, err
	}
	f.closers = append(f.closers, f.Health.Close)
	return f, nil
}

// Recover is failsoft's recovery middleware, reading the guard's breaker for
// Retry-After.
func (f *Failsoft) Recover() func(http.Handler) http.Handler {
	return middleware.Recover(middleware.WithBreakers(f.Guard), middleware.WithLogger(f.logger))
}

// Close releases everything New built, in reverse order.
func (f *Failsoft) Close() {
	for i := len(f.closers) - 1; i >= 0; i-- {
		f.closers[i]()
	}
	f.closers = nil
}

// Serve runs an http.Server with h on addr until ctx ends, then shuts it
// down gracefully. When ready is not nil it receives the listening address
// once the server accepts connections.
func Serve(ctx context.Context, addr string, h http.Handler, logger *slog.Logger, ready chan<- string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("serving", "addr", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
