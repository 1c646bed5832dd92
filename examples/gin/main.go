// Command gin serves the documented data endpoint, GET /api/data/{key}, with
// the Gin framework, and gives it failsoft's degradation without changing the
// handler: the handler (getData) reads and writes Redis directly, as a legacy
// Gin service does, and answers 500 when Redis fails; newRouter adds the
// go-redis hook where the client is built, mounts failsoft's recovery and
// response cache with ginadapter.Wrap, and the health handlers with gin.WrapH.
//
// With Redis paused or dead, a key answered before is served from the
// in-process cache (or stale, when its handler fails), and a new key from the
// primary source: the hook turns the failed read into a miss and drops the
// failed write, so the handler never sees the outage.
//
// Configuration comes from the environment:
//
//	ADDR             listen address                 (default 127.0.0.1:8080)
//	REDIS_URL        redis:// or rediss:// URL       (default: an embedded in-process Redis)
//	PRIMARY_LATENCY  latency of the primary source  (default 500ms)
//
// It serves /api/data/:key, /livez, /readyz and /healthz, and shuts down
// gracefully on SIGINT or SIGTERM. Run it from the repository root:
//
//	go run ./examples/gin
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft"
	"github.com/failsoft/failsoft/examples/internal/appkit"
	"github.com/failsoft/failsoft/middleware/ginadapter"
)

func main() {
	cfg, err := appkit.ConfigFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gin example:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	gin.SetMode(gin.ReleaseMode)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, logger, nil); err != nil {
		logger.Error("stopped", "err", err)
		os.Exit(1)
	}
}

// api is the legacy Gin service: its Redis client and its primary source.
type api struct {
	rdb     *redis.Client
	primary *appkit.Primary
}

// getData serves GET /api/data/:key as a legacy Gin handler does: Redis
// first, the primary source on a miss, 500 on a Redis error.
func (a *api) getData(c *gin.Context) {
	key := c.Param("key")
	val, err := a.rdb.Get(c.Request.Context(), key).Result()
	switch {
	case err == nil:
		c.JSON(http.StatusOK, appkit.DataResponse{Source: "cache", Data: val})
	case errors.Is(err, redis.Nil):
		data := a.primary.Fetch(key)
		if err := a.rdb.Set(c.Request.Context(), key, data, time.Hour).Err(); err != nil {
			c.JSON(http.StatusInternalServerError, gin.H{"error": err.Error()})
			return
		}
		c.JSON(http.StatusOK, appkit.DataResponse{Source: "primary", Data: data})
	default:
		c.JSON(http.StatusInternalServerError, gin.H{"error": err.Error()})
	}
}

// run serves until ctx ends. When ready is not nil it receives the listening
// address once the server accepts connections.
func run(ctx context.Context, cfg appkit.Config, logger *slog.Logger, ready chan<- string) error {
	router, closeAll, err := newRouter(cfg, logger, &appkit.Primary{Latency: cfg.PrimaryLatency})
	if err != nil {
		return err
	}
	defer closeAll()
	return appkit.Serve(ctx, cfg.Addr, router, logger, ready)
}

// newRouter builds the Gin router with failsoft around the data endpoint,
// the handler fetching from primary; closeAll releases what it built.
func newRouter(cfg appkit.Config, logger *slog.Logger, primary *appkit.Primary) (*gin.Engine, func(), error) {
	opt, release, err := appkit.RedisOptions(cfg.RedisURL, logger)
	if err != nil {
		return nil, nil, err
	}
	appkit.Tune(opt)
	rdb := redis.NewClient(opt)
	fs, err := failsoft.New(rdb, failsoft.WithDefaultTTL(appkit.FreshFor), failsoft.WithLogger(logger))
	if err != nil {
		rdb.Close()
		release()
		return nil, nil, err
	}
	closeAll := func() {
		fs.Close()
		rdb.Close()
		release()
	}

	r := gin.New()
	r.Use(gin.Recovery()) // outermost: panics outside the wrapped part
	r.GET("/livez", gin.WrapH(fs.Livez()))
	r.GET("/readyz", gin.WrapH(fs.Readyz()))
	r.GET("/healthz", gin.WrapH(fs.Healthz()))

	// failsoft in front of the data endpoint only: fs.Handler is the whole
	// chain (recovery, then the response cache), as fs.Then is for net/http.
	a := &api{rdb: rdb, primary: primary}
	data := r.Group("/api/data", ginadapter.Wrap(fs.Handler))
	data.GET("/:key", a.getData)
	return r, closeAll, nil
}
