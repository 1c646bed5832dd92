package health

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Status is a check's or the report's status, as the health-check draft
// spells it.
type Status string

const (
	// StatusPass is healthy.
	StatusPass Status = "pass"
	// StatusWarn is healthy with a concern: the service still answers, for
	// example from its in-process tier while a breaker is open.
	StatusWarn Status = "warn"
	// StatusFail is unhealthy: a critical check failed, readiness is 503.
	StatusFail Status = "fail"
)

// severity orders statuses; an unknown status is a failure.
func (s Status) severity() int {
	switch s {
	case StatusPass:
		return 0
	case StatusWarn:
		return 1
	}
	return 2
}

// worse returns the worse of two statuses.
func worse(a, b Status) Status {
	if b.severity() > a.severity() {
		return b
	}
	return a
}

// CheckResult is what a [WithCheck] function returns. It becomes one entry
// of the detailed report, keyed by the check's name.
type CheckResult struct {
	// Status is the outcome. A Status other than StatusPass, StatusWarn or
	// StatusFail (the zero value included) counts as StatusFail.
	Status Status
	// Output says why, for warn and fail; it is shown by /readyz?verbose and
	// in the report, so it must not hold secrets.
	Output string
	// ComponentType, ObservedValue and ObservedUnit fill the report's members
	// of the same names (for example "datastore", 12.5, "ms"); all optional.
	ComponentType string
	ObservedValue any
	ObservedUnit  string
}

// outcome is a check run's result before it is stamped with a time.
type outcome struct {
	status Status
	output string
	values []value // the report's measurements
}

// value is one measurement of a check in the detailed report.
type value struct {
	key           string // "component:measurement"
	componentType string
	observed      any
	unit          string
}

// result is a stamped outcome.
type result struct {
	outcome
	at time.Time
}

// check is one registered check and, for bounded checks, its cached result.
type check struct {
	name     string
	critical bool // a failure fails readiness; otherwise it is reported as warn
	ready    bool // part of /readyz; otherwise of the detailed report only
	bounded  bool // does I/O: run with a timeout, one at a time, cached
	run      func(ctx context.Context, h *Handler) outcome

	mu         sync.Mutex
	last       result  // the cached result of a bounded check
	has        bool    // last is set
	flight     *flight // the run in progress, nil if none
	running    bool    // a run's function has not returned yet (it may outlive its flight)
	lastStatus Status  // the last status reported, for logging changes
}

// flight is one run of a bounded check that callers wait for.
type flight struct {
	done chan struct{} // closed when res is set
	res  result
}

// evaluate returns the results of checks, in order: bounded checks from
// their cache or one shared run each (all runs in parallel), the others
// computed now.
func (h *Handler) evaluate(ctx context.Context, checks []*check) []result {
	results := make([]result, len(checks))
	flights := make([]*flight, len(checks))
	for i, c := range checks {
		if c.bounded {
			results[i], flights[i] = h.lookup(ctx, c)
		} else {
			results[i] = h.finish(ctx, c, h.call(ctx, c))
		}
	}
	for i, f := range flights {
		if f == nil {
			continue
		}
		select {
		case <-f.done:
			results[i] = f.res
		case <-ctx.Done():
			results[i] = result{outcome: h.adjust(checks[i], outcome{status: StatusFail, output: "request ended before the check"}), at: h.now()}
		}
	}
	return results
}

// lookup returns c's cached result while it is fresh, or else the flight to
// wait for, starting one when none is running.
func (h *Handler) lookup(ctx context.Context, c *check) (result, *flight) {
	now := h.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.has && now.Sub(c.last.at) < h.ttl {
		return c.last, nil
	}
	if c.flight != nil {
		return result{}, c.flight
	}
	if c.running {
		// The last run outlived its timeout and has not returned: do not
		// pile up another. Report it, and cache that like any result.
		c.last = result{outcome: h.adjust(c, outcome{status: StatusFail, output: "previous run still going after its timeout"}), at: now}
		c.has = true
		return c.last, nil
	}
	h.closeMu.RLock()
	defer h.closeMu.RUnlock()
	if h.closed {
		return result{outcome: h.adjust(c, outcome{status: StatusFail, output: "health handler closed"}), at: now}, nil
	}
	f := &flight{done: make(chan struct{})}
	c.flight, c.running = f, true
	h.wg.Add(1)
	// The run serves every waiter, so the first caller's cancellation must
	// not end it; its deadline is the timeout.
	runCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.timeout)
	var once sync.Once
	complete := func(o outcome) { once.Do(func() { h.complete(runCtx, c, f, o) }) }
	timedOut := outcome{status: StatusFail, output: fmt.Sprintf("timed out after %v", h.timeout)}
	stop := context.AfterFunc(runCtx, func() { complete(timedOut) })
	go func() {
		defer h.wg.Done()
		o := h.call(runCtx, c)
		stop()
		if runCtx.Err() != nil {
			o = timedOut // whatever fn said once its time was up
		}
		c.mu.Lock()
		c.running = false // before complete, so no caller sees a finished run as still going
		c.mu.Unlock()
		complete(o)
		cancel()
	}()
	return result{}, f
}

// complete records a bounded check's run and releases its waiters.
func (h *Handler) complete(ctx context.Context, c *check, f *flight, o outcome) {
	r := h.finish(ctx, c, o)
	c.mu.Lock()
	c.last, c.has, c.flight = r, true, nil
	c.mu.Unlock()
	f.res = r
	close(f.done)
}

// finish adjusts an outcome for c's criticality, stamps it, and logs a
// change of status.
func (h *Handler) finish(ctx context.Context, c *check, o outcome) result {
	o = h.adjust(c, o)
	r := result{outcome: o, at: h.now()}
	c.mu.Lock()
	prev := c.lastStatus
	c.lastStatus = o.status
	c.mu.Unlock()
	if prev != o.status && (prev != "" || o.status != StatusPass) {
		level := slog.LevelWarn
		if o.status == StatusPass {
			level = slog.LevelInfo
		}
		h.logger.Log(ctx, level, "health: check status changed",
			slog.String("check", c.name), slog.String("from", string(prev)),
			slog.String("to", string(o.status)), slog.String("output", o.output))
	}
	return r
}

// adjust applies c's criticality: a non-critical check never fails, it
// warns. An unknown status is a failure.
func (h *Handler) adjust(c *check, o outcome) outcome {
	if o.status.severity() == 2 {
		o.status = StatusFail
		if !c.critical {
			o.status = StatusWarn
		}
	}
	return o
}

// call runs c's function, turning a panic into a failure.
func (h *Handler) call(ctx context.Context, c *check) (o outcome) {
	defer func() {
		if p := recover(); p != nil {
			h.logger.ErrorContext(ctx, "health: check panicked",
				slog.String("check", c.name), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			o = outcome{status: StatusFail, output: "check panicked"}
		}
	}()
	return c.run(ctx, h)
}
