package middleware

import (
	"github.com/justinas/alice"
)

// Chain returns failsoft's middleware in the recommended order: [Recover]
// (configured by opts) outermost, then c's response cache, so that a panic
// or a Redis outage anywhere below recovery, the cache included, becomes a
// 503 with Retry-After rather than a broken connection. Wrapping a mux is
// one line:
//
//	http.ListenAndServe(addr, middleware.Chain(cache, middleware.WithBreakers(guard)).Then(mux))
//
// The chain is an ordinary alice.Chain: Append adds middleware inside the
// cache, and alice.New(...).Extend(chain) puts some outside recovery. It
// panics if c is nil (and, like Recover, on an invalid or nil option, with a
// message that starts with "middleware:").
func Chain(c *Cache, opts ...RecoverOption) alice.Chain {
	if c == nil {
		panic("middleware: Chain: nil *Cache")
	}
	return alice.New(Recover(opts...), c.Handler)
}
