// Package failure holds the per-request outage tracker behind
// store.TrackFailures, store.RecordFailure and store.FailureSeen, so that
// failsoft's own middleware can keep a tracked context inside its
// per-request value without a public type for it.
package failure

import (
	"context"
	"sync/atomic"
)

// Tracker is the mutable marker a tracked context carries.
type Tracker struct {
	Seen     atomic.Bool
	TimedOut atomic.Bool
	Class    atomic.Int32
}

// contextKey is the type of this package's context key; a pointer value of
// it cannot collide with anyone else's.
type contextKey struct{ name string }

var trackerKey = &contextKey{"failure-tracker"}

// From returns ctx's tracker, if ctx is tracked.
func From(ctx context.Context) (*Tracker, bool) {
	t, ok := ctx.Value(trackerKey).(*Tracker)
	return t, ok
}

// Context is a tracked context that a caller can allocate inside its own
// per-request value, so that tracking costs no allocation of its own. Its
// zero value is not a usable context: call Track and use what it returns.
// It must not be copied after Track.
type Context struct {
	context.Context
	t Tracker
}

// Track makes c the tracked child of parent and returns c, or returns
// parent itself when parent is tracked already, so that nested middleware
// shares one tracker.
func (c *Context) Track(parent context.Context) context.Context {
	if _, ok := From(parent); ok {
		return parent
	}
	c.Context = parent
	return c
}

// Value implements context.Context: the tracker for this package's key,
// the parent's values for every other.
func (c *Context) Value(key any) any {
	if key == any(trackerKey) {
		return &c.t
	}
	return c.Context.Value(key)
}
