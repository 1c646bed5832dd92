package ginadapter

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"
)

// Wrap adapts mw to Gin. It calls mw once, with a next handler that runs the
// rest of the Gin chain, and returns a [gin.HandlerFunc] that passes each
// request through the handler mw returned.
//
// When mw calls next with (w, r), the Gin handlers that follow run with
// c.Request set to r (so a context mw derived is seen by them) and c.Writer
// set to a [gin.ResponseWriter] over w, so mw sees their status, headers and
// body. Gin writes the status lazily, as gin does itself: it reaches w on the
// first body write, a Flush, or when the chain returns, whichever is first.
// Flush, Hijack and Pusher reach w's own implementations (through Unwrap
// chains, as with [http.ResponseController]) and do nothing, or return
// [http.ErrNotSupported], where w has none. CloseNotify reports the end of r's
// context: the client went away or mw's deadline passed.
//
// When mw answers without calling next (a cache hit, a 503), or next does not
// return normally (a handler panicked and mw recovered), Wrap calls c.Abort so
// that no later handler runs. A context already aborted by earlier Gin
// middleware is left alone: mw is not called. Once mw returns, c.Writer and
// c.Request are what they were before Wrap ran.
//
// A request that matches no route reaches mw too (when Wrap is registered
// with Use), with Gin's 404 or 405 as its status; Gin adds its plain-text
// body afterwards only if mw has written no body.
//
// mw must call next synchronously, at most once, with a request whose context
// derives from the one it was given (r.WithContext(ctx) with ctx derived from
// r.Context()); a second call does nothing, and a request with a foreign
// context panics, because the Gin context can no longer be found. mw must not
// keep w or r after it returns: Gin reuses its contexts.
//
// Wrap panics if mw is nil or returns a nil handler. The returned function is
// safe for concurrent use if mw's handler is.
func Wrap(mw func(http.Handler) http.Handler) gin.HandlerFunc {
	if mw == nil {
		panic("ginadapter: Wrap: nil middleware")
	}
	h := mw(http.HandlerFunc(serveNext))
	if h == nil {
		panic("ginadapter: Wrap: middleware returned a nil handler")
	}
	return func(c *gin.Context) {
		if c.IsAborted() {
			return
		}
		st := &state{c: c}
		w, r := c.Writer, c.Request
		defer func() {
			c.Writer, c.Request = w, r
			if !st.completed {
				c.Abort()
			}
		}()
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
	}
}

// stateKey is the context key under which Wrap passes a request's state to
// serveNext.
type stateKey struct{}

// state is one request's trip through a wrapped middleware.
type state struct {
	c         *gin.Context
	called    bool // next was called
	completed bool // the Gin chain returned normally
}

// serveNext is the next handler of every wrapped middleware: it runs the rest
// of the Gin chain of the request it is given.
func serveNext(w http.ResponseWriter, r *http.Request) {
	st, ok := r.Context().Value(stateKey{}).(*state)
	if !ok {
		panic("ginadapter: next called with a request whose context does not derive from the one Wrap passed")
	}
	if st.called {
		return
	}
	st.called = true
	c := st.c
	rw := newResponseWriter(w, r, c.Writer.Status())
	defer rw.release()
	c.Writer, c.Request = rw, r
	c.Next()
	// Gin's engine sends a status that no handler wrote once the chain
	// returns; do it here, where mw can see it.
	rw.WriteHeaderNow()
	st.completed = true
}
