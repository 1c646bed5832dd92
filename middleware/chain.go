package middleware

import (
	"net/http"

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
//
// A request the in-process tier answers with a fresh hit is answered
// before Recover sets up its per-request state (a tracked context, a copy
// of the request, a writer): such an answer calls neither Redis nor the
// handler, so there is nothing for Recover to track or to turn into a 503.
// The answer is the one the cache would give behind Recover, byte for
// byte; every other request goes through Recover and the cache as above.
func Chain(c *Cache, opts ...RecoverOption) alice.Chain {
	if c == nil {
		panic("middleware: Chain: nil *Cache")
	}
	rc := newRecoverConfig(opts)
	fresh := func(next http.Handler) http.Handler {
		h := rc.handler(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !c.serveFresh(w, r, rc) {
				h.ServeHTTP(w, r)
			}
		})
	}
	return alice.New(fresh, c.Handler)
}
