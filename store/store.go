package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Store holds cache entries: opaque byte values under string keys, each
// written with a time to live.
//
// Implementations are safe for concurrent use. Get returns [ErrNotFound]
// (matched with errors.Is) for a miss; any other error is a failure, which
// [Classify] sorts into outages and command errors. Values returned by Get
// belong to the caller; values passed to Set are not retained after Set
// returns unless the implementation copies them.
type Store interface {
	// Get returns the value stored under key, or an error wrapping
	// ErrNotFound when there is none.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value under key for ttl, which must be positive.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// TTLGetter is implemented by stores that can return an entry's remaining
// time to live together with its value in one call. [Tiered] uses it to keep
// an in-process copy no longer than the shared tier keeps the entry.
type TTLGetter interface {
	// GetTTL is Get that also returns the entry's remaining time to live;
	// a ttl of 0 means the entry has no expiry.
	GetTTL(ctx context.Context, key string) (value []byte, ttl time.Duration, err error)
}

// Pinger is implemented by stores that can check their backend cheaply. The
// health package uses it.
type Pinger interface {
	Ping(ctx context.Context) error
}

var (
	// ErrNotFound is returned (wrapped) by Get for a miss. A miss is not a
	// failure: it never trips a breaker.
	ErrNotFound = errors.New("store: not found")
	// ErrUnavailable is returned (wrapped) when a store cannot be used right
	// now without trying it: a [Guard]'s breaker is open, or too many calls
	// to a hung backend are still outstanding.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrInvalidKey is returned for an empty key or one longer than the
	// store's limit.
	ErrInvalidKey = errors.New("store: invalid key")
	// ErrValueTooLarge is returned by Set for a value over the store's limit.
	ErrValueTooLarge = errors.New("store: value too large")
	// ErrInvalidTTL is returned by Set for a ttl that is not positive.
	ErrInvalidTTL = errors.New("store: invalid ttl")
	// ErrClosed is returned by a store used after Close.
	ErrClosed = errors.New("store: closed")
)

const (
	// DefaultMaxKeyBytes is the default limit on a key's length in bytes
	// (before any prefix is added).
	DefaultMaxKeyBytes = 1024
	// DefaultMaxValueBytes is the default limit on a value's size: room for
	// the middleware's 1 MiB body limit plus headers and framing.
	DefaultMaxValueBytes = 2 << 20
)

// checkKey validates a key against a length limit.
func checkKey(key string, max int) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(key) > max {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidKey, len(key), max)
	}
	return nil
}

// checkSet validates the arguments of a Set.
func checkSet(key string, value []byte, ttl time.Duration, maxKey, maxValue int) error {
	if err := checkKey(key, maxKey); err != nil {
		return err
	}
	if len(value) > maxValue {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrValueTooLarge, len(value), maxValue)
	}
	if ttl <= 0 {
		return fmt.Errorf("%w: %v", ErrInvalidTTL, ttl)
	}
	return nil
}
