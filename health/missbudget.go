package health

import (
	"context"
	"fmt"
	"time"

	"github.com/failsoft/failsoft/middleware"
)

// DefaultSheddingWindow is how long after the miss budget last turned a
// request away the check of [WithMissBudgetCheck] keeps warning: long
// enough for a probe every few seconds to see it, short enough to clear
// soon after the load fits again.
const DefaultSheddingWindow = 10 * time.Second

// WithMissBudgetCheck adds a check on a response cache's miss budget
// ([middleware.WithMissBudget]) to the detailed report under name: it warns
// while the budget sheds (a request was answered 503 or with a stale copy
// for want of a slot within the last [DefaultSheddingWindow]) and passes
// otherwise, also when the budget is off. It lists the budget's size,
// slots in use, waiting requests and its counters. It is not a readiness
// check: a replica that sheds still answers, and its peers see the same
// outage. fn is typically a [middleware.Cache]'s Stats method; it is called
// on every /healthz request and must be fast and safe for concurrent use.
// Default: no miss budget check.
func WithMissBudgetCheck(name string, fn func() middleware.Stats) Option {
	return func(c *config) error {
		if fn == nil {
			return fmt.Errorf("WithMissBudgetCheck %q: nil function", name)
		}
		return c.add(&check{name: name, run: missBudgetCheck(name, fn)})
	}
}

// missBudgetCheck reports a miss budget's state.
func missBudgetCheck(name string, fn func() middleware.Stats) func(context.Context, *Handler) outcome {
	return func(_ context.Context, h *Handler) outcome {
		s := fn().MissBudget
		o := outcome{status: StatusPass}
		if !s.LastShed.IsZero() && h.now().Sub(s.LastShed) < DefaultSheddingWindow {
			o.status = StatusWarn
			o.output = fmt.Sprintf("miss budget exhausted: requests shed (503 or stale) within the last %v", DefaultSheddingWindow)
		}
		add := func(measurement string, observed any) {
			o.values = append(o.values, value{key: name + ":" + measurement, componentType: "component", observed: observed})
		}
		add("size", s.Size)
		add("inUse", s.InUse)
		add("waiting", s.Waiting)
		add("waited", s.Waited)
		add("shed", s.Shed)
		add("stale", s.Stale)
		if !s.LastShed.IsZero() {
			add("lastShed", s.LastShed.UTC().Format(time.RFC3339Nano))
		}
		return o
	}
}
