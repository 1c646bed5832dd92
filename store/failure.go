package store

import (
	"context"

	"github.com/failsoft/failsoft/internal/failure"
)

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
	if _, ok := failure.From(ctx); ok {
		return ctx // nested middleware: no allocation
	}
	return new(failure.Context).Track(ctx)
}

// RecordFailure marks ctx's tracker with err if err is an outage (see
// [Class.Outage]); it does nothing for other errors or an untracked context.
// It is safe for concurrent use.
func RecordFailure(ctx context.Context, err error) {
	c := Classify(err)
	if !c.Outage() {
		return
	}
	if t, ok := failure.From(ctx); ok {
		t.Class.Store(int32(c))
		t.Seen.Store(true)
		if c == ClassTimeout {
			t.TimedOut.Store(true)
		}
	}
}

// FailureSeen reports whether an outage was recorded in ctx's tracker, and
// the class of the last one. It returns false for an untracked context.
func FailureSeen(ctx context.Context) (Class, bool) {
	t, ok := failure.From(ctx)
	if !ok || !t.Seen.Load() {
		return ClassNone, false
	}
	return Class(t.Class.Load()), true
}

// budgetSpent reports whether a call made with ctx's tracker has already
// waited out an op timeout (see [TrackFailures]).
func budgetSpent(ctx context.Context) bool {
	t, ok := failure.From(ctx)
	return ok && t.TimedOut.Load()
}
