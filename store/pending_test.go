package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func newTestPending(t *testing.T, remote Store, opts ...PendingOption) *PendingDeletes {
	t.Helper()
	p, err := NewPendingDeletes(remote, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestPendingDeletes checks that a delete refused by an outage is applied
// once the remote is back: before a read of the key, by the background
// flusher, or overtaken by a Set; and that the queue is bounded.
func TestPendingDeletes(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// after the failed delete of "k" and the remote coming back, do
		// reads "k" through p and returns what it read.
		do   func(t *testing.T, p *PendingDeletes, r *tierRemote) (string, error)
		want string // "" for a miss
	}{
		{"read applies the delete first", func(t *testing.T, p *PendingDeletes, r *tierRemote) (string, error) {
			v, err := p.Get(ctx, "k")
			return string(v), err
		}, ""},
		{"GetTTL applies the delete first", func(t *testing.T, p *PendingDeletes, r *tierRemote) (string, error) {
			v, _, err := p.GetTTL(ctx, "k")
			return string(v), err
		}, ""},
		{"background flusher", func(t *testing.T, p *PendingDeletes, r *tierRemote) (string, error) {
			pollUntil(t, 5*time.Second, "the pending delete applied", func() bool { return !r.has("k") })
			v, _, err := r.peek("k")
			return string(v), err
		}, ""},
		{"a later Set replaces the old copy", func(t *testing.T, p *PendingDeletes, r *tierRemote) (string, error) {
			if err := p.Set(ctx, "k", []byte("new"), time.Minute); err != nil {
				t.Fatal(err)
			}
			v, err := p.Get(ctx, "k")
			return string(v), err
		}, "new"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTierRemote(time.Now)
			if err := r.Set(ctx, "k", []byte("old"), time.Minute); err != nil {
				t.Fatal(err)
			}
			p := newTestPending(t, r)
			r.setDown(true)
			err := p.Delete(ctx, "k")
			if !errors.Is(err, ErrDeletePending) || !IsUnavailable(err) {
				t.Fatalf("Delete during the outage = %v, want ErrDeletePending and an outage", err)
			}
			if err := p.Delete(ctx, "k"); !errors.Is(err, ErrDeletePending) {
				t.Fatalf("second Delete = %v", err)
			}
			if st := p.Stats(); st.Pending != 1 || st.Queued != 1 {
				t.Fatalf("stats after two failed deletes of one key = %+v, want one pending", st)
			}
			if _, err := p.Get(ctx, "k"); !IsUnavailable(err) {
				t.Fatalf("Get of a pending key while down = %v, want an outage", err)
			}
			r.setDown(false)
			got, err := tc.do(t, p, r)
			switch {
			case tc.want == "" && !errors.Is(err, ErrNotFound):
				t.Fatalf("read = %q, %v; want a miss: the delete was lost", got, err)
			case tc.want != "" && (err != nil || got != tc.want):
				t.Fatalf("read = %q, %v; want %q", got, err, tc.want)
			}
			pollUntil(t, 5*time.Second, "nothing pending", func() bool { return p.Pending() == 0 })
			if st := p.Stats(); st.AppliedLate != 1 || st.Dropped != 0 {
				t.Fatalf("stats = %+v, want one applied late", st)
			}
		})
	}
}

func TestPendingDeletesBound(t *testing.T) {
	ctx := context.Background()
	r := newTierRemote(time.Now)
	p := newTestPending(t, r, WithMaxPending(2))
	r.setDown(true)
	for _, k := range []string{"a", "b", "a"} {
		if err := p.Delete(ctx, k); !errors.Is(err, ErrDeletePending) {
			t.Fatalf("Delete(%q) = %v, want pending", k, err)
		}
	}
	if err := p.Delete(ctx, "c"); !errors.Is(err, ErrDeleteDropped) || !IsUnavailable(err) {
		t.Fatalf("Delete past the bound = %v, want ErrDeleteDropped", err)
	}
	if st := p.Stats(); st.Pending != 2 || st.Dropped != 1 || st.Queued != 2 {
		t.Fatalf("stats = %+v, want 2 pending, 1 dropped", st)
	}
	r.setDown(false)
	pollUntil(t, 5*time.Second, "the queue flushed", func() bool { return p.Pending() == 0 })
	if st := p.Stats(); st.AppliedLate != 2 {
		t.Fatalf("stats = %+v, want 2 applied late", st)
	}
}

func TestPendingDeletesErrors(t *testing.T) {
	var nilRemote *tierRemote
	for _, tc := range []struct {
		name   string
		remote Store
		opts   []PendingOption
	}{
		{"nil remote", nil, nil},
		{"typed nil remote", nilRemote, nil},
		{"nil option", newTierRemote(time.Now), []PendingOption{nil}},
		{"zero bound", newTierRemote(time.Now), []PendingOption{WithMaxPending(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if p, err := NewPendingDeletes(tc.remote, tc.opts...); err == nil {
				p.Close()
				t.Fatal("no error")
			}
		})
	}
	p := newTestPending(t, newTierRemote(time.Now))
	p.Close()
	if err := p.Delete(context.Background(), "k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Delete after Close = %v, want ErrClosed", err)
	}
	var zero PendingDeletes
	if _, err := zero.Get(context.Background(), "k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("zero value Get = %v, want ErrClosed", err)
	}
}
