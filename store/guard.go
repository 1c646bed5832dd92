package store

import (
	"context"
	"time"
)

// API skeleton: the bodies are being written (see the guard work item).

// State is a breaker's state.
type State int

const (
	// StateClosed lets every call through.
	StateClosed State = iota
	// StateHalfOpen lets a limited number of probes through.
	StateHalfOpen
	// StateOpen refuses every call at once with ErrUnavailable.
	StateOpen
)

// String returns "closed", "half-open" or "open".
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateHalfOpen:
		return "half-open"
	case StateOpen:
		return "open"
	}
	return "unknown"
}

// BreakerStats is a snapshot of a guard's breaker and call counters.
type BreakerStats struct {
	Name       string
	State      State
	Since      time.Time // when State was entered (construction time at first)
	RetryAfter time.Duration
	// Counts of the breaker's current window (cleared on each state change).
	Requests             uint32
	ConsecutiveFailures  uint32
	ConsecutiveSuccesses uint32
	// Lifetime counters.
	Calls    uint64 // calls that reached the wrapped store
	Failures uint64 // outage errors
	Timeouts uint64 // calls cut off by the op timeout
	Rejected uint64 // calls refused without trying (open breaker, in-flight limit)
	Trips    uint64 // transitions to open
}

// Guard wraps a Store with a circuit breaker and an operation timeout.
type Guard struct {
	inner Store
	opts  options
}

var (
	_ Store     = (*Guard)(nil)
	_ TTLGetter = (*Guard)(nil)
	_ Pinger    = (*Guard)(nil)
)

// NewGuard wraps s.
func NewGuard(s Store, opts ...Option) (*Guard, error) { panic("todo") }

// Get implements Store.
func (g *Guard) Get(ctx context.Context, key string) ([]byte, error) { panic("todo") }

// GetTTL implements TTLGetter.
func (g *Guard) GetTTL(ctx context.Context, key string) ([]byte, time.Duration, error) {
	panic("todo")
}

// Set implements Store.
func (g *Guard) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	panic("todo")
}

// Delete implements Store.
func (g *Guard) Delete(ctx context.Context, key string) error { panic("todo") }

// Ping implements Pinger.
func (g *Guard) Ping(ctx context.Context) error { panic("todo") }

// Name returns the guard's name.
func (g *Guard) Name() string { return g.opts.name }

// State returns the breaker's state.
func (g *Guard) State() State { panic("todo") }

// RetryAfter returns how long the breaker stays open; 0 unless open.
func (g *Guard) RetryAfter() time.Duration { panic("todo") }

// Stats returns a snapshot.
func (g *Guard) Stats() BreakerStats { panic("todo") }

// Close waits for outstanding calls.
func (g *Guard) Close() error { panic("todo") }
