package store

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// Each option is accepted where it is read.
var (
	_ RedisOption      = WithPrefix("")
	_ NodeGuardsOption = WithPrefix("")
	_ RedisOption      = WithMaxKeyBytes(0)
	_ MemoryOption     = WithMaxKeyBytes(0)
	_ NodeGuardsOption = WithMaxKeyBytes(0)
	_ RedisOption      = WithMaxValueBytes(0)
	_ MemoryOption     = WithMaxValueBytes(0)
	_ NodeGuardsOption = WithMaxValueBytes(0)
	_ MemoryOption     = WithClock(nil)
	_ TieredOption     = WithClock(nil)
	_ GuardOption      = WithClock(nil)
	_ NodeGuardsOption = WithClock(nil)
	_ TieredOption     = WithLogger(nil)
	_ GuardOption      = WithLogger(nil)
	_ NodeGuardsOption = WithLogger(nil)
	_ TieredOption     = WithCoherence(0)
	_ TieredOption     = WithMaxBackfills(0)
	_ GuardOption      = WithName("")
	_ GuardOption      = WithOpTimeout(0)
	_ GuardOption      = WithFailureThreshold(0)
	_ GuardOption      = WithOpenPeriod(0)
	_ GuardOption      = WithHalfOpenRequests(0)
	_ GuardOption      = WithMaxInFlight(0)
	_ GuardOption      = WithOnStateChange(nil)
	_ GuardOption      = WithObserver(nil)
	_ NodeGuardsOption = WithOpTimeout(0) // every GuardOption
	_ HookOption       = WithCacheMode(false)
	_ PendingOption    = WithMaxPending(0)
	_ PendingOption    = WithLogger(nil)
	_ BroadcastOption  = WithLogger(nil)
	_ RedisOption      = WithInvalidationChannel("")
	_ TieredOption     = WithBroadcast(nil, 0)
)

// staticType returns the static type of its argument: the interface type
// for the options that return one.
func staticType[T any](T) reflect.Type { return reflect.TypeFor[T]() }

// TestOptionsAcceptedExactlyWhereRead checks every option against every
// option type: it implements the option types of the constructors that read
// it and no other, so that a misplaced option does not compile (a value is
// assignable to an interface type exactly when its type implements it).
func TestOptionsAcceptedExactlyWhereRead(t *testing.T) {
	kinds := []struct {
		name string
		typ  reflect.Type
	}{
		{"Redis", reflect.TypeFor[RedisOption]()},
		{"Memory", reflect.TypeFor[MemoryOption]()},
		{"Tiered", reflect.TypeFor[TieredOption]()},
		{"Guard", reflect.TypeFor[GuardOption]()},
		{"NodeGuards", reflect.TypeFor[NodeGuardsOption]()},
		{"Hook", reflect.TypeFor[HookOption]()},
		{"Pending", reflect.TypeFor[PendingOption]()},
		{"Broadcast", reflect.TypeFor[BroadcastOption]()},
	}
	guard := "Guard NodeGuards"
	tests := []struct {
		option string
		typ    reflect.Type
		want   string // the kinds that accept it
	}{
		{"WithPrefix", staticType(WithPrefix("")), "Redis NodeGuards"},
		{"WithMaxKeyBytes", staticType(WithMaxKeyBytes(1)), "Redis Memory NodeGuards"},
		{"WithMaxValueBytes", staticType(WithMaxValueBytes(1)), "Redis Memory NodeGuards"},
		{"WithClock", staticType(WithClock(time.Now)), "Memory Tiered Guard NodeGuards"},
		{"WithLogger", staticType(WithLogger(nil)), "Tiered Guard NodeGuards Pending Broadcast"},
		{"WithCoherence", staticType(WithCoherence(0)), "Tiered"},
		{"WithMaxBackfills", staticType(WithMaxBackfills(1)), "Tiered"},
		{"WithName", staticType(WithName("")), guard},
		{"WithOpTimeout", staticType(WithOpTimeout(1)), guard},
		{"WithFailureThreshold", staticType(WithFailureThreshold(1)), guard},
		{"WithOpenPeriod", staticType(WithOpenPeriod(1)), guard},
		{"WithHalfOpenRequests", staticType(WithHalfOpenRequests(1)), guard},
		{"WithMaxInFlight", staticType(WithMaxInFlight(1)), guard},
		{"WithOnStateChange", staticType(WithOnStateChange(nil)), guard},
		{"WithObserver", staticType(WithObserver(nil)), guard},
		{"WithCacheMode", staticType(WithCacheMode(true)), "Hook"},
		{"WithMaxPending", staticType(WithMaxPending(1)), "Pending"},
		{"WithInvalidationChannel", staticType(WithInvalidationChannel("")), "Redis"},
		{"WithBroadcast", staticType(WithBroadcast(nil, 0)), "Tiered"},
	}
	for _, tt := range tests {
		t.Run(tt.option, func(t *testing.T) {
			var got []string
			for _, k := range kinds {
				if tt.typ.Implements(k.typ) {
					got = append(got, k.name)
				}
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("%s (%v) is accepted by the constructors of %q, want %q", tt.option, tt.typ, got, tt.want)
			}
		})
	}
}
