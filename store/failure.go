package store

import (
	"context"
	"sync/atomic"
)

// failureTracker is the mutable marker a tracked context carries.
type failureTracker struct {
	seen     atomic.Bool
	timedOut atomic.Bool
	class    atomic.Int32
}

// contextKey is the type of this package's context keys; pointer values of
// it cannot collide with anyone else's.
type contextKey struct{ name string }

var failureKey = &contextKey{"failure-tracker"}

// TrackFailures returns a context in which [RecordFailure] leaves a mark that
// [FailureSeen] reads. HTTP middleware calls it on the request's context
// before calling the handler; the [Guard] and the [Hook] record every outage
// they see through a context derived from it. A context that is already
// tracked is returned unchanged, so nested middleware shares one tracker.
//
// A tracked context is also the request's budget for waiting on Redis: once
// a call made with it has waited out its op timeout ([ClassTimeout]), later
// calls through a [Guard] or a [Hook] with the same context fail at once
// with an error wrapping [ErrUnavailable], so that a request making several
// Redis calls (a cache lookup, then the handler's own GET and SET) waits
// about one op timeout in all, not one per call.
func TrackFailures(ctx context.Context) context.Context {
	if _, ok := ctx.Value(failureKey).(*failureTracker); ok {
		return ctx
	}
	return new(FailureContext).Track(ctx)
}

// FailureContext is a tracked context, as [TrackFailures] returns, that a
// caller can allocate inside its own per-request value, so that tracking
// costs no allocation of its own (middleware.Recover keeps it beside its
// response writer). Its zero value is not a usable context: call Track,
// and use what Track returns. It must not be copied after Track.
type FailureContext struct {
	context.Context
	t failureTracker
}

// Track makes c the tracked child of parent and returns c, or returns
// parent itself when parent is tracked already (as TrackFailures does, so
// that nested middleware shares one tracker).
func (c *FailureContext) Track(parent context.Context) context.Context {
	if _, ok := parent.Value(failureKey).(*failureTracker); ok {
		return parent
	}
	c.Context = parent
	return c
}

// Value implements context.Context: the tracker for this package's key,
// the parent's values for every other.
func (c *FailureContext) Value(key any) any {
	if key == any(failureKey) {
		return &c.t
	}
	return c.Context.Value(key)
}

// RecordFailure marks ctx's tracker with err if err is an outage (see
// [Class.Outage]); it does nothing for other errors or an untracked context.
// It is safe for concurrent use.
func RecordFailure(ctx context.Context, err error) {
	c := Classify(err)
	if !c.Outage() {
		return
	}
	if t, ok := ctx.Value(failureKey).(*failureTracker); ok {
		t.class.Store(int32(c))
		t.seen.Store(true)
		if c == ClassTimeout {
			t.timedOut.Store(true)
		}
	}
}

// FailureSeen reports whether an outage was recorded in ctx's tracker, and
// the class of the last one. It returns false for an untracked context.
func FailureSeen(ctx context.Context) (Class, bool) {
	t, ok := ctx.Value(failureKey).(*failureTracker)
	if !ok || !t.seen.Load() {
		return ClassNone, false
	}
	return Class(t.class.Load()), true
}

// budgetSpent reports whether a call made with ctx's tracker has already
// waited out an op timeout (see [TrackFailures]).
func budgetSpent(ctx context.Context) bool {
	t, ok := ctx.Value(failureKey).(*failureTracker)
	return ok && t.timedOut.Load()
}
