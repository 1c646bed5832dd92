package health

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

// Breaker is what a breaker check reads: a name and a snapshot of the
// breaker's state and counters. A *[store.Guard] satisfies it.
type Breaker interface {
	Name() string
	Stats() store.BreakerStats
}

// stateReporter is implemented by pingers that sit behind a breaker, such as
// a *store.Guard.
type stateReporter interface {
	State() store.State
}

const componentDatastore = "datastore"

// breakerCheck reads b's snapshot.
func breakerCheck(b Breaker) func(context.Context, *Handler) outcome {
	return func(_ context.Context, h *Handler) outcome {
		st := b.Stats()
		name := b.Name()
		o := outcome{status: StatusPass}
		switch st.State {
		case store.StateClosed:
		case store.StateHalfOpen:
			o.status, o.output = StatusWarn, "circuit breaker half-open: probing the store"
		case store.StateOpen:
			o.status = StatusFail
			o.output = "circuit breaker open"
			if st.RetryAfter > 0 {
				o.output += fmt.Sprintf(", next probe in %v", st.RetryAfter.Round(time.Millisecond))
			}
		default:
			o.status, o.output = StatusFail, "circuit breaker in unknown state "+st.State.String()
		}
		add := func(measurement string, observed any, unit string) {
			o.values = append(o.values, value{key: name + ":" + measurement, componentType: componentDatastore, observed: observed, unit: unit})
		}
		add("breaker", st.State.String(), "")
		if !st.Since.IsZero() {
			add("lastStateChange", st.Since.UTC().Format(time.RFC3339Nano), "")
		}
		if st.State == store.StateOpen {
			add("retryAfter", st.RetryAfter.Seconds(), "s")
		}
		add("consecutiveFailures", st.ConsecutiveFailures, "")
		add("calls", st.Calls, "")
		add("failures", st.Failures, "")
		add("timeouts", st.Timeouts, "")
		add("rejected", st.Rejected, "")
		add("trips", st.Trips, "")
		add("inFlight", st.InFlight, "")
		return o
	}
}

// pingCheck pings p unless its breaker is open.
func pingCheck(name string, p store.Pinger) func(context.Context, *Handler) outcome {
	return func(ctx context.Context, h *Handler) outcome {
		if sr, ok := p.(stateReporter); ok && sr.State() == store.StateOpen {
			return outcome{status: StatusFail, output: "not pinged: circuit breaker open"}
		}
		start := time.Now()
		err := p.Ping(ctx)
		took := time.Since(start)
		o := outcome{status: StatusPass, values: []value{{
			key:           name + ":responseTime",
			componentType: componentDatastore,
			observed:      float64(took.Microseconds()) / 1000,
			unit:          "ms",
		}}}
		if err != nil {
			o.status = StatusFail
			o.output = "ping failed: " + store.Classify(err).String()
			if h.errorDetails {
				o.output = "ping failed: " + err.Error()
			}
			h.logger.DebugContext(ctx, "health: ping failed", slog.String("check", name), slog.Any("error", err))
		}
		return o
	}
}

// customCheck adapts a WithCheck function.
func customCheck(name string, fn func(context.Context) CheckResult) func(context.Context, *Handler) outcome {
	return func(ctx context.Context, _ *Handler) outcome {
		r := fn(ctx)
		o := outcome{status: r.Status, output: r.Output}
		if r.Status.severity() == 2 && r.Status != StatusFail {
			o.status = StatusFail
			if o.output == "" {
				o.output = fmt.Sprintf("check returned status %q", r.Status)
			}
		}
		o.values = []value{{key: name, componentType: r.ComponentType, observed: r.ObservedValue, unit: r.ObservedUnit}}
		return o
	}
}

// cacheStatsCheck reports a response cache's counters.
func cacheStatsCheck(name string, fn func() middleware.Stats) func(context.Context, *Handler) outcome {
	return func(context.Context, *Handler) outcome {
		s := fn()
		counters := []struct {
			measurement string
			v           uint64
		}{
			{"hits", s.Hits},
			{"misses", s.Misses},
			{"staleServed", s.StaleServed},
			{"revalidated", s.Revalidated},
			{"bypasses", s.Bypasses},
			{"coalesced", s.Coalesced},
			{"stored", s.Stored},
			{"storeErrors", s.StoreErrors},
			{"dropped", s.Dropped},
			{"refreshes", s.Refreshes},
			{"invalidated", s.Invalidated},
		}
		o := outcome{status: StatusPass, values: make([]value, 0, len(counters))}
		for _, c := range counters {
			o.values = append(o.values, value{key: name + ":" + c.measurement, componentType: "component", observed: c.v})
		}
		return o
	}
}
