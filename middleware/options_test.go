package middleware

import (
	"strings"
	"testing"
	"time"

	"github.com/failsoft/failsoft/store"
)

func TestNewOptions(t *testing.T) {
	tests := []struct {
		name string
		s    store.Store
		opts []Option
		ok   bool
	}{
		{name: "defaults", s: newMapStore(), ok: true},
		{name: "nil store", s: nil},
		{name: "nil option", s: newMapStore(), opts: []Option{nil}},
		{name: "nil key func", s: newMapStore(), opts: []Option{WithKeyFunc(nil)}},
		{name: "bad name", s: newMapStore(), opts: []Option{WithName("a b")}},
		{name: "empty name", s: newMapStore(), opts: []Option{WithName("")}},
		{name: "negative ttl", s: newMapStore(), opts: []Option{WithDefaultTTL(-1)}},
		{name: "negative stale", s: newMapStore(), opts: []Option{WithStaleIfError(-1)}},
		{name: "zero body", s: newMapStore(), opts: []Option{WithMaxBodyBytes(0)}},
		{name: "zero key", s: newMapStore(), opts: []Option{WithMaxKeyBytes(0)}},
		{name: "bad status", s: newMapStore(), opts: []Option{WithStatuses(200, 304)}},
		{name: "negative timeout", s: newMapStore(), opts: []Option{WithHandlerTimeout(-1)}},
		{name: "negative wait", s: newMapStore(), opts: []Option{WithCoalesceWait(-1)}},
		{name: "negative refreshes", s: newMapStore(), opts: []Option{WithMaxRefreshes(-1)}},
		{name: "zero writes", s: newMapStore(), opts: []Option{WithMaxPendingWrites(0)}},
		{name: "zero refresh timeout", s: newMapStore(), opts: []Option{WithRefreshTimeout(0)}},
		{name: "nil clock", s: newMapStore(), opts: []Option{WithClock(nil)}},
		{name: "all valid", s: newMapStore(), ok: true, opts: []Option{WithName("cdn:edge/1"), WithDefaultTTL(time.Second),
			WithStatuses(200), WithHandlerTimeout(time.Second), WithCoalesceWait(0), WithMaxRefreshes(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.s, tt.opts...)
			if (err == nil) != tt.ok {
				t.Fatalf("New: %v, want ok=%v", err, tt.ok)
			}
			if err == nil {
				c.Close()
			} else if !strings.HasPrefix(err.Error(), "middleware:") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	t.Run("nil handler panics", func(t *testing.T) {
		c := newTestCache(t, newMapStore())
		if pv := catchPanic(func() { c.Handler(nil) }); pv == nil {
			t.Error("no panic")
		}
	})
}
