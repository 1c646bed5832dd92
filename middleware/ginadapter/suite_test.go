package ginadapter

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/failsoft/failsoft/internal/adaptertest"
	"github.com/gin-gonic/gin"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	goleak.VerifyTestMain(m)
}

// TestAdapter runs the adapters' shared suite against Gin.
func TestAdapter(t *testing.T) {
	adaptertest.Run(t, adaptertest.Adapter[*gin.Engine]{
		Package:   "ginadapter",
		Framework: "Gin",
		New: func() *gin.Engine {
			r := gin.New()
			r.HandleMethodNotAllowed = true
			return r
		},
		Wrap: func(mw adaptertest.Middleware) { Wrap(mw) },
		Use:  func(r *gin.Engine, mw adaptertest.Middleware) { r.Use(Wrap(mw)) },
		UseNative: func(r *gin.Engine, f func(adaptertest.Ctx, func() error) error) {
			r.Use(func(c *gin.Context) { _ = f(ginCtx{c}, func() error { c.Next(); return nil }) })
		},
		Handle: func(r *gin.Engine, method, path string, hs ...func(adaptertest.Ctx)) {
			chain := make([]gin.HandlerFunc, len(hs))
			for i, h := range hs {
				chain[i] = func(c *gin.Context) { h(ginCtx{c}) }
			}
			r.Handle(method, path, chain...)
		},
		Mount:          func(r *gin.Engine, method, path string, h http.Handler) { r.Handle(method, path, gin.WrapH(h)) },
		Recovery:       func(r *gin.Engine) { r.Use(gin.RecoveryWithWriter(io.Discard)) },
		RecoveredBody:  "", // gin.Recovery answers 500 with no body
		AbortsOnAnswer: true,
		Writes:         writeCases,
		Failures:       failureCases,
	})
}

// ginCtx is the suite's view of a Gin context.
type ginCtx struct{ c *gin.Context }

func (x ginCtx) Request() *http.Request                       { return x.c.Request }
func (x ginCtx) Param(name string) string                     { return x.c.Param(name) }
func (x ginCtx) Header() http.Header                          { return x.c.Writer.Header() }
func (x ginCtx) String(code int, s string)                    { x.c.String(code, "%s", s) }
func (x ginCtx) JSON(code int, v any)                         { x.c.JSON(code, v) }
func (x ginCtx) Fail(code int, msg string)                    { x.c.JSON(code, gin.H{"error": msg}) }
func (x ginCtx) Stream(step func(io.Writer) bool)             { x.c.Stream(step) }
func (x ginCtx) Hijack() (net.Conn, *bufio.ReadWriter, error) { return x.c.Writer.Hijack() }
func (x ginCtx) Status() int                                  { return x.c.Writer.Status() }
func (x ginCtx) Written() bool                                { return x.c.Writer.Written() }
func (x ginCtx) Aborted() bool                                { return x.c.IsAborted() }

// route returns a WriteCase or FailureCase route for a Gin handler chain.
func route(chain ...gin.HandlerFunc) func(*gin.Engine, string) {
	return func(r *gin.Engine, path string) { r.GET(path, chain...) }
}

// writeCases are Gin's ways for handlers to answer.
var writeCases = []adaptertest.WriteCase[*gin.Engine]{
	{Name: "JSON", Status: http.StatusCreated, Route: route(func(c *gin.Context) {
		c.JSON(http.StatusCreated, gin.H{"source": "primary", "data": "x"})
	})},
	{Name: "String", Status: http.StatusOK, Route: route(func(c *gin.Context) {
		c.String(http.StatusOK, "hello %s", "gin")
	})},
	{Name: "Status only", Status: http.StatusNoContent, Route: route(func(c *gin.Context) {
		c.Status(http.StatusNoContent)
	})},
	{Name: "header after status", Status: http.StatusAccepted, Route: route(func(c *gin.Context) {
		c.Status(http.StatusAccepted)
		c.Header("X-Late", "kept")
		_, _ = c.Writer.WriteString("body")
	})},
	{Name: "Data with headers", Status: http.StatusOK, Route: route(func(c *gin.Context) {
		c.Header("Cache-Control", "max-age=60")
		c.Writer.Header().Add("Vary", "Accept")
		c.Writer.Header().Add("Vary", "Accept-Encoding")
		c.Data(http.StatusOK, "application/octet-stream", []byte{0, 1, 2, 0xff})
	})},
	{Name: "nothing written", Status: http.StatusOK, Route: route(func(*gin.Context) {})},
	{Name: "Redirect", Status: http.StatusFound, Route: route(func(c *gin.Context) {
		c.Redirect(http.StatusFound, "/elsewhere")
	})},
	{Name: "5xx", Status: http.StatusInternalServerError, Route: route(func(c *gin.Context) {
		c.JSON(http.StatusInternalServerError, gin.H{"error": "redis: connection refused"})
	})},
	{Name: "later Gin middleware aborts", Status: http.StatusForbidden, Route: route(
		func(c *gin.Context) { c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "no"}) },
		func(c *gin.Context) { c.String(http.StatusOK, "must not run") },
	)},
	{Name: "later Gin middleware around handler", Status: http.StatusOK, Route: route(
		func(c *gin.Context) { c.Header("X-Before", "1"); c.Next() },
		func(c *gin.Context) { c.String(http.StatusOK, "inner") },
	)},
}

// failureCases are Gin's ways for handlers to fail: a 5xx written, or an
// abort with one; a 4xx passes.
var failureCases = []adaptertest.FailureCase[*gin.Engine]{
	{Name: "JSON 500", Code: http.StatusOK, Body: "stale", Route: route(func(c *gin.Context) {
		c.JSON(http.StatusInternalServerError, gin.H{"error": "redis down"})
	})},
	{Name: "AbortWithStatus 503", Code: http.StatusOK, Body: "stale", Route: route(func(c *gin.Context) {
		c.AbortWithStatus(http.StatusServiceUnavailable)
	})},
	{Name: "String 404 passes", Code: http.StatusNotFound, Body: "not here", Route: route(func(c *gin.Context) {
		c.String(http.StatusNotFound, "not here")
	})},
}
