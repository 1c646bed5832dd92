package store_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/failsoft/failsoft/store"
	"github.com/redis/go-redis/v9"
)

// flakyBackend is a Store that can be switched off, standing in for Redis.
type flakyBackend struct {
	mu   sync.Mutex
	data map[string][]byte
	down bool
}

var errRefused = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

func (f *flakyBackend) Get(_ context.Context, key string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, errRefused
	}
	v, ok := f.data[key]
	if !ok {
		return nil, store.ErrNotFound
	}
	return v, nil
}

func (f *flakyBackend) Set(_ context.Context, key string, value []byte, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errRefused
	}
	f.data[key] = append([]byte(nil), value...)
	return nil
}

func (f *flakyBackend) Delete(_ context.Context, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errRefused
	}
	delete(f.data, key)
	return nil
}

func ExampleNewGuard() {
	backend := &flakyBackend{data: map[string][]byte{}}
	// Log to stdout without timestamps, so that the example's output is
	// stable; a service would keep its usual logger.
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	g, err := store.NewGuard(backend,
		store.WithName("cache"),
		store.WithFailureThreshold(2), store.WithOpenPeriod(time.Minute), // trip after 2 outages in a row
		store.WithLogger(logger),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()

	ctx := context.Background()
	if err := g.Set(ctx, "greeting", []byte("hello"), time.Hour); err != nil {
		fmt.Println(err)
	}
	v, err := g.Get(ctx, "greeting")
	fmt.Printf("%s %v\n", v, err)
	_, err = g.Get(ctx, "nobody")
	fmt.Println("miss:", errors.Is(err, store.ErrNotFound))

	backend.down = true
	for range 3 {
		_, err := g.Get(ctx, "greeting")
		fmt.Println(store.Classify(err), "unavailable:", errors.Is(err, store.ErrUnavailable))
	}
	fmt.Println(g.State(), g.RetryAfter() > 0)
	// Output:
	// hello <nil>
	// miss: true
	// connection unavailable: false
	// level=WARN msg="store: circuit breaker opened" guard=cache from=closed to=open last_error=connection retry_after=1m0s
	// connection unavailable: false
	// open unavailable: true
	// open true
}

// A handler that calls go-redis itself gets the guard's breaker and op
// timeout from a hook added where the client is built. In cache mode a
// failed GET comes back as redis.Nil and a failed SET is dropped, so the
// handler's miss path runs.
func ExampleNewHook() {
	// The hook uses only the guard's breaker, op timeout and observer; the
	// guard may also wrap a Store of its own.
	g, err := store.NewGuard(&flakyBackend{data: map[string][]byte{}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()
	hook, err := store.NewHook(g, store.WithCacheMode(true))
	if err != nil {
		fmt.Println(err)
		return
	}
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	rdb.AddHook(hook) // before the first command
	defer rdb.Close()

	ctx := store.TrackFailures(context.Background()) // r.Context() in a handler
	v, err := rdb.Get(ctx, "key").Result()
	if errors.Is(err, redis.Nil) {
		v = "fetched from the primary source"
		rdb.Set(ctx, "key", v, time.Hour)
	}
	_, redisFailed := store.FailureSeen(ctx)
	fmt.Println(v, redisFailed)
}
