package echoadapter

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/failsoft/failsoft/internal/adaptertest"
	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestAdapter runs the adapters' shared suite against Echo v4.
func TestAdapter(t *testing.T) {
	adaptertest.Run(t, adaptertest.Adapter[*echo.Echo]{
		Package:   "echoadapter",
		Framework: "Echo",
		New: func() *echo.Echo {
			e := echo.New()
			e.Logger.SetOutput(io.Discard)
			return e
		},
		Wrap: func(mw adaptertest.Middleware) { Wrap(mw) },
		Use:  func(e *echo.Echo, mw adaptertest.Middleware) { e.Use(Wrap(mw)) },
		UseNative: func(e *echo.Echo, f func(adaptertest.Ctx, func() error) error) {
			e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
				return func(c echo.Context) error { return f(&echoCtx{c: c}, func() error { return next(c) }) }
			})
		},
		Handle: func(e *echo.Echo, method, path string, hs ...func(adaptertest.Ctx)) {
			// All but the last handler run as route middleware before it.
			run := func(h func(adaptertest.Ctx), c echo.Context) error {
				x := &echoCtx{c: c}
				h(x)
				return x.err
			}
			last := hs[len(hs)-1]
			var mws []echo.MiddlewareFunc
			for _, h := range hs[:len(hs)-1] {
				mws = append(mws, func(next echo.HandlerFunc) echo.HandlerFunc {
					return func(c echo.Context) error {
						if err := run(h, c); err != nil {
							return err
						}
						return next(c)
					}
				})
			}
			e.Add(method, path, func(c echo.Context) error { return run(last, c) }, mws...)
		},
		Mount: func(e *echo.Echo, method, path string, h http.Handler) { e.Add(method, path, echo.WrapHandler(h)) },
		Recovery: func(e *echo.Echo) {
			e.Use(echomw.RecoverWithConfig(echomw.RecoverConfig{DisablePrintStack: true}))
		},
		RecoveredBody: `{"message":"Internal Server Error"}`,
		Writes:        writeCases,
		Failures:      failureCases,
	})
}

// echoCtx is the suite's view of an Echo context; err is what the handler
// returns.
type echoCtx struct {
	c   echo.Context
	err error
}

func (x *echoCtx) Request() *http.Request    { return x.c.Request() }
func (x *echoCtx) Param(name string) string  { return x.c.Param(name) }
func (x *echoCtx) Header() http.Header       { return x.c.Response().Header() }
func (x *echoCtx) String(code int, s string) { x.fail(x.c.String(code, s)) }
func (x *echoCtx) JSON(code int, v any)      { x.fail(x.c.JSON(code, v)) }
func (x *echoCtx) Fail(code int, msg string) { x.fail(echo.NewHTTPError(code, msg)) }
func (x *echoCtx) Stream(step func(io.Writer) bool) {
	res := x.c.Response()
	res.Header().Set(echo.HeaderContentType, echo.MIMETextPlain)
	res.WriteHeader(http.StatusOK)
	for more := true; more; {
		more = step(res)
		res.Flush()
	}
}
func (x *echoCtx) Hijack() (net.Conn, *bufio.ReadWriter, error) { return x.c.Response().Hijack() }
func (x *echoCtx) Status() int                                  { return x.c.Response().Status }
func (x *echoCtx) Written() bool                                { return x.c.Response().Committed }
func (x *echoCtx) Aborted() bool                                { return false }

// fail keeps the first error the handler returns.
func (x *echoCtx) fail(err error) {
	if x.err == nil {
		x.err = err
	}
}

// route returns a WriteCase or FailureCase route for an Echo handler and the
// route middleware before it.
func route(h echo.HandlerFunc, mws ...echo.MiddlewareFunc) func(*echo.Echo, string) {
	return func(e *echo.Echo, path string) { e.GET(path, h, mws...) }
}

// errorHandler returns a FailureCase.ErrorHandler that answers code with body,
// or with the error's text where body is "".
func errorHandler(code int, body string) func(*echo.Echo) func() int {
	return func(e *echo.Echo) func() int {
		calls := 0
		e.HTTPErrorHandler = func(err error, c echo.Context) {
			calls++
			b := body
			if b == "" {
				b = err.Error()
			}
			_ = c.String(code, b)
		}
		return func() int { return calls }
	}
}

// writeCases are Echo's ways for handlers, and middleware between Wrap and
// them, to answer.
var writeCases = []adaptertest.WriteCase[*echo.Echo]{
	{Name: "JSON", Status: http.StatusCreated, Route: route(func(c echo.Context) error {
		return c.JSON(http.StatusCreated, map[string]string{"source": "primary", "data": "x"})
	})},
	{Name: "String", Status: http.StatusOK, Route: route(func(c echo.Context) error { return c.String(http.StatusOK, "hello echo") })},
	{Name: "NoContent", Status: http.StatusNoContent, Route: route(func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })},
	{Name: "Blob with headers", Status: http.StatusOK, Route: route(func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "max-age=60")
		c.Response().Header().Add("Vary", "Accept")
		c.Response().Header().Add("Vary", "Accept-Encoding")
		return c.Blob(http.StatusOK, "application/octet-stream", []byte{0, 1, 2, 0xff})
	})},
	{Name: "nothing written", Status: http.StatusOK, Route: route(func(echo.Context) error { return nil })},
	{Name: "Redirect", Status: http.StatusFound, Route: route(func(c echo.Context) error { return c.Redirect(http.StatusFound, "/elsewhere") })},
	{Name: "HTTPError", Status: http.StatusInternalServerError, Route: route(func(echo.Context) error {
		return echo.NewHTTPError(http.StatusInternalServerError, "redis: connection refused")
	})},
	{Name: "plain error", Status: http.StatusInternalServerError, Route: route(func(echo.Context) error { return errors.New("redis: i/o timeout") })},
	{Name: "HTTPError 404", Status: http.StatusNotFound, Route: route(func(echo.Context) error { return echo.ErrNotFound })},
	{Name: "later Echo middleware answers", Status: http.StatusForbidden, Route: route(
		func(c echo.Context) error { return c.String(http.StatusOK, "must not run") },
		func(echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error { return c.JSON(http.StatusForbidden, map[string]string{"error": "no"}) }
		})},
	{Name: "later Echo middleware returns an error", Status: http.StatusUnauthorized, Route: route(
		func(c echo.Context) error { return c.String(http.StatusOK, "must not run") },
		func(echo.HandlerFunc) echo.HandlerFunc {
			return func(echo.Context) error { return echo.ErrUnauthorized }
		})},
	{Name: "later Echo middleware around handler", Status: http.StatusOK, Route: route(
		func(c echo.Context) error { return c.String(http.StatusOK, "inner") },
		func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error { c.Response().Header().Set("X-Before", "1"); return next(c) }
		})},
}

// failureCases are Echo's ways for handlers to fail: an error returned, under
// Echo's error handler or a custom one; a 4xx passes.
var failureCases = []adaptertest.FailureCase[*echo.Echo]{
	{Name: "HTTPError 500", Code: http.StatusOK, Body: "stale", Route: route(func(echo.Context) error {
		return echo.NewHTTPError(http.StatusInternalServerError, "redis down")
	})},
	{Name: "plain error", Code: http.StatusOK, Body: "stale", Route: route(func(echo.Context) error { return errors.New("redis down") })},
	{Name: "HTTPError 404 passes", Code: http.StatusNotFound, Body: `{"message":"Not Found"}` + "\n",
		Route: route(func(echo.Context) error { return echo.ErrNotFound })},
	{Name: "custom error handler", Code: http.StatusOK, Body: "stale", Handled: 1,
		Route:        route(func(echo.Context) error { return errors.New("redis down") }),
		ErrorHandler: errorHandler(http.StatusBadGateway, "")},
	{Name: "custom error handler, 4xx passes", Code: http.StatusTeapot, Body: "custom", Handled: 1,
		Route:        route(func(echo.Context) error { return echo.ErrBadRequest }),
		ErrorHandler: errorHandler(http.StatusTeapot, "custom")},
}
