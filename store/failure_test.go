package store

import (
	"context"
	"testing"
	"time"

	"github.com/failsoft/failsoft/internal/failure"
)

type failureTestKey struct{}

// TestFailureContext checks a caller-allocated tracked context
// (internal/failure.Context, as middleware.Recover keeps one) against
// what TrackFailures promises: a mark recorded through it (or a context
// derived from it) is seen, the parent's values, deadline and cancellation
// pass through, and an already tracked parent is returned unchanged, so
// that nested middleware shares one tracker.
func TestFailureContext(t *testing.T) {
	tests := []struct {
		name   string
		parent func() (context.Context, context.CancelFunc)
		shared bool // the parent is tracked already: Track returns it
	}{
		{"untracked", func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.WithValue(context.Background(), failureTestKey{}, "v"))
		}, false},
		{"tracked", func() (context.Context, context.CancelFunc) {
			return context.WithCancel(TrackFailures(context.WithValue(context.Background(), failureTestKey{}, "v")))
		}, true},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.WithValue(context.Background(), failureTestKey{}, "v"), time.Hour)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent, cancel := tt.parent()
			var fc failure.Context
			ctx := fc.Track(parent)
			if (ctx == parent) != tt.shared {
				t.Fatalf("Track returned the parent: %v, want %v", ctx == parent, tt.shared)
			}
			if got := ctx.Value(failureTestKey{}); got != "v" {
				t.Errorf("parent's value = %v", got)
			}
			if d1, ok1 := ctx.Deadline(); true {
				d2, ok2 := parent.Deadline()
				if ok1 != ok2 || !d1.Equal(d2) {
					t.Errorf("deadline %v %v, parent's %v %v", d1, ok1, d2, ok2)
				}
			}
			if _, seen := FailureSeen(ctx); seen {
				t.Fatal("a new tracker has seen a failure")
			}
			child, stop := context.WithTimeout(ctx, time.Hour)
			defer stop()
			RecordFailure(child, ErrNotFound)
			if _, seen := FailureSeen(ctx); seen {
				t.Error("a failure that is not an outage was recorded")
			}
			RecordFailure(child, ErrUnavailable)
			if class, seen := FailureSeen(ctx); !seen || class != Classify(ErrUnavailable) {
				t.Errorf("FailureSeen = %v, %v after an outage", class, seen)
			}
			if _, seen := FailureSeen(parent); seen != tt.shared {
				t.Errorf("the parent saw the failure: %v, want %v", seen, tt.shared)
			}
			cancel()
			select {
			case <-child.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("cancelling the parent did not reach a context derived from the tracked one")
			}
		})
	}
}
