package echov5

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v5"
)

// Wrap adapts mw to Echo v5. It calls mw once, with a next handler that runs
// the rest of the Echo chain, and returns an [echo.MiddlewareFunc] that
// passes each request through the handler mw returned.
//
// Before mw runs, the request's Pattern and path values are set from the
// route, as [echo.WrapMiddleware] does, so that mw can read them. When mw
// calls next with (w, r), the Echo handlers that follow run with c.Request()
// set to r (so a context mw derived is seen by them) and c.Response() an
// [echo.Response] writing to w, and an error they return is turned into a
// response there, by the Echo instance's HTTPErrorHandler. So mw sees an
// [echo.HTTPError] as the status and body Echo sends for it, a 500 that
// failsoft's cache can replace with a stale copy. Flush and Hijack reach w's
// own implementations through [http.ResponseController].
//
// The function Wrap returns always returns nil: an error from the chain has
// been answered inside next, and when mw answers without calling next (a
// cache hit, a 503) the chain does not run at all. A panic in the chain
// travels up through mw. Once mw returns, c.Response() and c.Request() are
// what they were before Wrap ran.
//
// mw must call next synchronously, at most once, with a request whose context
// derives from the one it was given (r.WithContext(ctx) with ctx derived from
// r.Context()); a second call does nothing, and a request with a foreign
// context panics, because the Echo context can no longer be found. mw must
// not keep w or r after it returns: Echo reuses its contexts.
//
// Wrap panics if mw is nil or returns a nil handler. The returned function is
// safe for concurrent use if mw's handler is.
func Wrap(mw func(http.Handler) http.Handler) echo.MiddlewareFunc {
	if mw == nil {
		panic("echov5: Wrap: nil middleware")
	}
	h := mw(http.HandlerFunc(serveNext))
	if h == nil {
		panic("echov5: Wrap: middleware returned a nil handler")
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			st := &state{c: c, next: next}
			res, req := c.Response(), c.Request()
			defer func() {
				c.SetResponse(res)
				c.SetRequest(req)
			}()
			req.Pattern = c.Path()
			for _, p := range c.PathValues() {
				req.SetPathValue(p.Name, p.Value)
			}
			h.ServeHTTP(res, req.WithContext(context.WithValue(req.Context(), stateKey{}, st)))
			return nil
		}
	}
}

// stateKey is the context key under which Wrap passes a request's state to
// serveNext.
type stateKey struct{}

// state is one request's trip through a wrapped middleware.
type state struct {
	c      *echo.Context
	next   echo.HandlerFunc
	called bool
}

// serveNext is the next handler of every wrapped middleware: it runs the rest
// of the Echo chain of the request it is given and answers its error.
func serveNext(w http.ResponseWriter, r *http.Request) {
	st, ok := r.Context().Value(stateKey{}).(*state)
	if !ok {
		panic("echov5: next called with a request whose context does not derive from the one Wrap passed")
	}
	if st.called {
		return
	}
	st.called = true
	c := st.c
	res := echo.NewResponse(w, c.Echo().Logger)
	res.Status = http.StatusOK // as in a Response Echo resets for a request
	c.SetResponse(res)
	c.SetRequest(r)
	if err := st.next(c); err != nil {
		c.Echo().HTTPErrorHandler(c, err)
	}
}
