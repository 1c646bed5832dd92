// Command dataapi serves the documented data endpoint, GET /api/data/{key},
// behind failsoft: the legacy handler in legacy.go is unchanged; main wires
// the go-redis hook, the recovery and cache middleware, and the health and
// metrics endpoints around it.
//
// Configuration comes from the environment (flags of the same meaning win):
//
//	ADDR             listen address                    (default 127.0.0.1:8080)
//	REDIS_URL        redis:// or rediss:// URL          (default: an embedded in-process Redis)
//	PRIMARY_LATENCY  latency of the primary source     (default 500ms)
//	PRIMARY_CAPACITY fetches the primary serves at once; beyond it a fetch
//	                 fails after PRIMARY_LATENCY and the handler answers 500,
//	                 as with an exhausted database pool (default 0: unlimited)
//	MISS_BUDGET      handler calls for misses at once while Redis is
//	                 unavailable, "off" or 0 for none (default: failsoft's, 64)
//	MISS_BUDGET_WAIT how long a miss over the budget waits (default 1s)
//	MISS_BUDGET_MODE "unavailable" (only while Redis is unavailable) or
//	                 "always" (default unavailable)
//	LOG_LEVEL        debug, info, warn or error         (default info)
//	FAILSOFT         "off" serves the same handler unprotected, for comparison
//
// It serves /api/data/{key}, /livez, /readyz, /healthz and /metrics, and
// shuts down gracefully on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

// config is the program's settings.
type config struct {
	addr           string
	redisURL       string
	primaryLatency time.Duration
	logLevel       slog.Level
	failsoft       bool

	primaryCapacity  int           // 0: unlimited
	missBudget       int           // -1: failsoft's default
	missBudgetWait   time.Duration // with missBudget >= 0
	missBudgetAlways bool
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dataapi:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, logger, nil); err != nil {
		logger.Error("dataapi stopped", "err", err)
		os.Exit(1)
	}
}

// parseConfig reads the environment through getenv, then flags from args;
// usage and flag errors are printed to stderr.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("dataapi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", env("ADDR", "127.0.0.1:8080"), "listen address (ADDR)")
	redisURL := fs.String("redis-url", env("REDIS_URL", ""), "Redis URL; empty runs an embedded Redis (REDIS_URL)")
	latency := fs.String("primary-latency", env("PRIMARY_LATENCY", "500ms"), "latency of the primary source (PRIMARY_LATENCY)")
	level := fs.String("log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (LOG_LEVEL)")
	mode := fs.String("failsoft", env("FAILSOFT", "on"), `"off" runs the handler unprotected (FAILSOFT)`)
	capacity := fs.Int("primary-capacity", 0, "fetches the primary serves at once, 0 unlimited (PRIMARY_CAPACITY)")
	budget := fs.String("miss-budget", env("MISS_BUDGET", ""), `handler calls for misses at once while Redis is unavailable; "off" or 0 for none; empty for failsoft's default (MISS_BUDGET)`)
	budgetMode := fs.String("miss-budget-mode", env("MISS_BUDGET_MODE", "unavailable"), `when the miss budget applies: "unavailable" or "always" (MISS_BUDGET_MODE)`)
	budgetWait := fs.String("miss-budget-wait", env("MISS_BUDGET_WAIT", "1s"), "how long a miss over the budget waits (MISS_BUDGET_WAIT)")
	if v := getenv("PRIMARY_CAPACITY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return config{}, fmt.Errorf("PRIMARY_CAPACITY %q: want a non-negative integer", v)
		}
		*capacity = n
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if *capacity < 0 {
		return config{}, fmt.Errorf("PRIMARY_CAPACITY %d: want a non-negative integer", *capacity)
	}
	cfg := config{addr: *addr, redisURL: *redisURL, primaryCapacity: *capacity, missBudget: -1}
	var err error
	switch b := strings.ToLower(*budget); b {
	case "":
	case "off":
		cfg.missBudget = 0
	default:
		if cfg.missBudget, err = strconv.Atoi(b); err != nil || cfg.missBudget < 0 {
			return config{}, fmt.Errorf("MISS_BUDGET %q: want a non-negative integer or off", *budget)
		}
	}
	switch strings.ToLower(*budgetMode) {
	case "unavailable", "":
	case "always":
		cfg.missBudgetAlways = true
	default:
		return config{}, fmt.Errorf("MISS_BUDGET_MODE %q: want unavailable or always", *budgetMode)
	}
	if cfg.missBudget >= 0 {
		if cfg.missBudgetWait, err = time.ParseDuration(*budgetWait); err != nil || cfg.missBudgetWait < 0 {
			return config{}, fmt.Errorf("MISS_BUDGET_WAIT %q: want a non-negative Go duration such as 1s", *budgetWait)
		}
	}
	if cfg.primaryLatency, err = time.ParseDuration(*latency); err != nil || cfg.primaryLatency < 0 {
		return config{}, fmt.Errorf("PRIMARY_LATENCY %q: want a non-negative Go duration such as 500ms", *latency)
	}
	if err := cfg.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return config{}, fmt.Errorf("LOG_LEVEL %q: want debug, info, warn or error", *level)
	}
	switch strings.ToLower(*mode) {
	case "on", "true", "1", "":
		cfg.failsoft = true
	case "off", "false", "0":
		cfg.failsoft = false
	default:
		return config{}, fmt.Errorf("FAILSOFT %q: want on or off", *mode)
	}
	return cfg, nil
}

// run serves until ctx ends. When ready is not nil it receives the listening
// address once the server accepts connections (tests use it).
func run(ctx context.Context, cfg config, logger *slog.Logger, ready chan<- string) error {
	redisURL := cfg.redisURL
	if redisURL == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("embedded redis: %w", err)
		}
		defer mr.Close()
		redisURL = "redis://" + mr.Addr()
		logger.Info("using an embedded in-process Redis; set REDIS_URL for a real one", "addr", mr.Addr())
	}
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return fmt.Errorf("REDIS_URL %s: invalid", store.RedactURL(redisURL))
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	fetches := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dataapi_primary_fetches_total",
		Help: "Calls to the primary source behind the cache.",
	})
	overloads := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dataapi_primary_overloads_total",
		Help: "Fetches the primary source failed because more than PRIMARY_CAPACITY ran at once.",
	})
	pri := &primary{latency: cfg.primaryLatency, capacity: cfg.primaryCapacity, fetches: fetches, overloads: overloads}
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dataapi_primary_in_flight",
		Help: "Fetches from the primary source running now.",
	}, func() float64 { return float64(pri.inFlight.Load()) })
	reg.MustRegister(fetches, overloads, inFlight)

	if cfg.failsoft {
		// go-redis retries a refused dial 5 times, 100 ms apart: against a
		// dead Redis each of the handler's own commands would wait out the
		// op timeout until the breaker trips, and so would every half-open
		// probe. One attempt makes a refused connection fail at once.
		// (failsoft.New tunes the cache's own client so by itself.)
		opt.DialerRetries = 1
	}
	// The legacy service's own client, as it always built it.
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	api := &dataHandler{rdb: rdb, primary: pri}

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if !cfg.failsoft {
		logger.Warn("FAILSOFT=off: serving the handler unprotected")
		mux.Handle("GET /api/data/{key}", api)
		mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
		return serve(ctx, cfg.addr, mux, logger, ready)
	}

	opts := []failsoft.Option{failsoft.WithLogger(logger)}
	if cfg.missBudgetAlways {
		opts = append(opts, failsoft.WithMissBudgetMode(middleware.MissBudgetAlways))
	}
	if cfg.missBudget >= 0 {
		opts = append(opts, failsoft.WithMissBudget(cfg.missBudget, cfg.missBudgetWait))
	}
	fs, err := wire(rdb, reg, opts...)
	if err != nil {
		return err
	}
	defer fs.Close()
	mux.Handle("GET /api/data/{key}", fs.Then(api))
	for _, p := range []string{"/livez", "/readyz", "/healthz"} {
		mux.Handle(p, fs.Health())
	}
	return serve(ctx, cfg.addr, mux, logger, ready)
}

// serve runs an http.Server on addr until ctx ends, then shuts it down
// gracefully.
func serve(ctx context.Context, addr string, h http.Handler, logger *slog.Logger, ready chan<- string) error {
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
	logger.Info("stopped")
	return err
}
