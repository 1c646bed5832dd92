package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/failsoft/failsoft/store"
	"github.com/redis/go-redis/v9"
)

// A Memory store is a bounded in-process cache: here 64 MiB.
func ExampleMemory() {
	m, err := store.NewMemory(64 << 20)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	ctx := context.Background()

	if err := m.Set(ctx, "greeting", []byte("hello"), time.Minute); err != nil {
		fmt.Println(err)
		return
	}
	v, err := m.Get(ctx, "greeting")
	fmt.Printf("%s %v\n", v, err)

	_, err = m.Get(ctx, "missing")
	fmt.Println("miss:", errors.Is(err, store.ErrNotFound))

	err = m.Set(ctx, "huge", make([]byte, 100<<20), time.Minute)
	fmt.Println("too large:", errors.Is(err, store.ErrValueTooLarge))
	// Output:
	// hello <nil>
	// miss: true
	// too large: true
}

// A Tiered store keeps answering from its in-process copies while Redis is
// down. The example uses an in-memory Redis (miniredis) that it can stop; in
// production the remote is a Redis store, usually behind a Guard.
func ExampleTiered() {
	mr, err := miniredis.Run()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer mr.Close()
	// No retries, so that the outage below shows at once.
	client := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, DialerRetries: 1})
	defer client.Close()

	remote, err := store.NewRedis(client)
	if err != nil {
		fmt.Println(err)
		return
	}
	local, err := store.NewMemory(64 << 20)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer local.Close()
	tiered, err := store.NewTiered(local, remote,
		store.WithCoherence(0), // ask Redis on every read, to show the fallback
		store.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tiered.Close() // runs first: waits for write-backs

	ctx := context.Background()
	if err := tiered.Set(ctx, "greeting", []byte("hello"), time.Hour); err != nil {
		fmt.Println(err)
		return
	}
	v, err := tiered.Get(ctx, "greeting")
	fmt.Printf("redis up:   %s %v\n", v, err)

	mr.Close() // Redis goes away
	v, err = tiered.Get(ctx, "greeting")
	fmt.Printf("redis down: %s %v\n", v, err)

	_, err = tiered.Get(ctx, "never-cached")
	fmt.Println("no copy, outage:", store.IsUnavailable(err))
	// Output:
	// redis up:   hello <nil>
	// redis down: hello <nil>
	// no copy, outage: true
}
