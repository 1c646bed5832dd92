package health

import (
	"context"
	"fmt"
	"strings"
)

// WithBreakerChecks adds one readiness check, called name, over a set of
// breakers that changes at run time: the per-node guards of a Redis Cluster
// client, whose nodes are discovered after the handler is built. list is
// called on every run of the check and returns the breakers of the moment;
// a *[store.NodeGuards]' Guards method fits as it is:
//
//	health.WithBreakerChecks("redis-cluster", guards.Guards, false)
//
// The check passes while every breaker is closed (and when list returns
// none); it warns while one is half-open; while one is open it warns, or
// fails when critical is true, which turns /readyz to 503. Its output names
// each breaker that is not closed, for example "2 of 3 breakers not closed:
// redis@127.0.0.1:7001: circuit breaker open, next probe in 3.2s", so the
// report says which node is down. The detailed report lists each breaker's
// measurements as [WithBreakerCheck] does, keyed by the breaker's name.
// list and the breakers' Stats must be safe for concurrent use and must not
// block.
// Default: no such check.
func WithBreakerChecks[B Breaker](name string, list func() []B, critical bool) Option {
	return func(c *config) error {
		if list == nil {
			return fmt.Errorf("WithBreakerChecks %q: nil list", name)
		}
		return c.add(&check{name: name, critical: critical, ready: true, run: breakersCheck(list)})
	}
}

// breakersCheck reads the snapshots of list's breakers: the worst status,
// an output naming those that are not closed, and every breaker's values.
func breakersCheck[B Breaker](list func() []B) func(context.Context, *Handler) outcome {
	return func(ctx context.Context, h *Handler) outcome {
		bs := list()
		o := outcome{status: StatusPass}
		var down []string
		for _, b := range bs {
			one := breakerCheck(b)(ctx, h)
			o.status = worse(o.status, one.status)
			if one.status != StatusPass {
				down = append(down, b.Name()+": "+one.output)
			}
			o.values = append(o.values, one.values...)
		}
		if len(down) > 0 {
			o.output = fmt.Sprintf("%d of %d breakers not closed: %s", len(down), len(bs), strings.Join(down, "; "))
		}
		return o
	}
}
