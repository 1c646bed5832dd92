// Package appkit holds what the Gin and Echo examples share: their settings,
// the simulated primary source, and a server that shuts down gracefully. Each
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

// Tune adjusts opt for the legacy client that failsoft hooks, before the
// client is built: one dial attempt, so that a refused connection fails at
// once (examples/dataapi/main.go explains it), and context deadlines on
// socket reads, so that a command the hook gave up on ends then too.
// failsoft.New tunes the cache's own client this way by itself; the
// caller's client keeps what its owner chose.
func Tune(opt *redis.Options) {
	opt.DialerRetries = 1            // a refused dial fails at once
	opt.ContextTimeoutEnabled = true // an abandoned call ends at the op timeout
}

// FreshFor is how long an answer without Cache-Control is served from the
// cache (see examples/dataapi/wire.go): failsoft.WithDefaultTTL(FreshFor).
const FreshFor = time.Minute

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
