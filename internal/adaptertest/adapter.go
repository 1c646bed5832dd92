package adaptertest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
)

// Middleware is net/http middleware, the shape failsoft's middleware has and
// every adapter's Wrap takes.
type Middleware = func(http.Handler) http.Handler

// Adapter describes one router framework and its failsoft adapter. E is the
// framework's router (for example *gin.Engine or *echo.Echo). Every func
// field is required, and each is called with a router that New returned.
type Adapter[E http.Handler] struct {
	// Package is the adapter's package name, the prefix of its panic
	// messages ("ginadapter").
	Package string
	// Framework names the framework in failure messages ("Gin").
	Framework string

	// New returns a fresh router that logs nothing. Requests for a known
	// path with an unknown method must get 405.
	New func() E
	// Wrap calls the adapter's Wrap with mw and drops the result: the cases
	// that check its programmer-error panics call it.
	Wrap func(mw Middleware)
	// Use mounts Wrap(mw) on e as router-wide middleware, after what is
	// already mounted.
	Use func(e E, mw Middleware)
	// UseNative mounts a middleware written against [Ctx] as the framework's
	// own router-wide middleware. next runs the rest of the chain and
	// returns what it returned (nil where the framework's handlers return
	// nothing); f's result is the middleware's.
	UseNative func(e E, f func(c Ctx, next func() error) error)
	// Handle registers handlers for method and path (a path may hold a
	// ":name" parameter) as the framework's own handlers, run in order, as
	// Gin's handler chain runs them. A framework with one handler per route
	// runs all but the last as route middleware that calls the next one
	// after it.
	Handle func(e E, method, path string, handlers ...func(Ctx))
	// Mount registers h for method and path with the framework's own
	// conversion of a net/http handler (gin.WrapH, echo.WrapHandler).
	Mount func(e E, method, path string, h http.Handler)
	// Recovery mounts the framework's own panic recovery, logging nothing.
	Recovery func(e E)

	// RecoveredBody is a part of the body the framework's recovery sends
	// for a panic ("" where it sends none).
	RecoveredBody string
	// AbortsOnAnswer says that the framework marks the request aborted
	// when a wrapped middleware answers without calling next (Gin's
	// c.IsAborted); [Ctx.Aborted] must then report it to outer middleware.
	AbortsOnAnswer bool

	// Writes are the framework's ways for a handler (and the framework's
	// middleware between Wrap and the handler) to answer: each one must
	// reach a wrapped middleware, and the client, as bare routing sends it.
	Writes []WriteCase[E]
	// Failures are the framework's ways for a handler to fail, each run
	// under a middleware that replaces a 5xx with a stale copy.
	Failures []FailureCase[E]
}

// WriteCase is one way of a framework's handlers to answer.
type WriteCase[E http.Handler] struct {
	Name string
	// Route registers, for GET path, the handler (and any framework
	// middleware before it).
	Route func(e E, path string)
	// Status is the status a wrapped middleware must see.
	Status int
}

// FailureCase is one way of a framework's handlers to fail (or not), run
// under a wrapped middleware that answers 200 "stale" in place of a 5xx.
type FailureCase[E http.Handler] struct {
	Name string
	// Route registers the handler for GET path.
	Route func(e E, path string)
	// ErrorHandler, if not nil, installs a custom handler of the framework
	// for the errors that handlers return, and returns how often it ran so
	// far.
	ErrorHandler func(e E) (calls func() int)
	// Code and Body are what the client must get; Handled, how often the
	// custom error handler must have run.
	Code    int
	Body    string
	Handled int
}

// Ctx is what the shared handlers and middleware use of a framework's
// request context. Each adapter implements it with the framework's own
// calls, so that the shared cases exercise the framework's writing paths.
type Ctx interface {
	// Request is the request the handler sees.
	Request() *http.Request
	// Param is the value of the route parameter name.
	Param(name string) string
	// Header is the response header.
	Header() http.Header
	// String answers code with the body s, as text.
	String(code int, s string)
	// JSON answers code with v encoded as JSON.
	JSON(code int, v any)
	// Fail reports a failure the way the framework's handlers do: Gin
	// writes a JSON error; Echo returns an HTTP error for its error handler
	// to answer.
	Fail(code int, msg string)
	// Stream sends the framework's streaming way: step writes one chunk,
	// which is flushed to the client; it goes on while step returns true.
	Stream(step func(w io.Writer) bool)
	// Hijack takes over the connection through the framework's writer.
	Hijack() (net.Conn, *bufio.ReadWriter, error)
	// Status and Written are the response's status and whether it was
	// sent (Gin: Written; Echo: Committed), as the framework reports them.
	Status() int
	Written() bool
	// Aborted is Gin's c.IsAborted, false where the framework has no such
	// notion.
	Aborted() bool
}

// Run runs every shared case against a, each as a subtest named after the
// test it replaced in the adapters (WrapSeesHandlerResponse, FailsoftStale,
// HealthMount, ...).
func Run[E http.Handler](t *testing.T, a Adapter[E]) {
	t.Helper()
	if a.New == nil || a.Wrap == nil || a.Use == nil || a.UseNative == nil ||
		a.Handle == nil || a.Mount == nil || a.Recovery == nil {
		t.Fatal("adaptertest: Adapter with a nil func field")
	}
	cases := []struct {
		name string
		run  func(*testing.T, Adapter[E])
	}{
		{"WrapSeesHandlerResponse", wrapSeesHandlerResponse[E]},
		{"WrapReplacesFailure", wrapReplacesFailure[E]},
		{"WrapAnswerInPlace", wrapAnswerInPlace[E]},
		{"WrapPanic", wrapPanic[E]},
		{"WrapRequestFromMiddleware", wrapRequestFromMiddleware[E]},
		{"WrapNextTwice", wrapNextTwice[E]},
		{"WrapUnrouted", wrapUnrouted[E]},
		{"WrapPanicsOnMisuse", wrapPanicsOnMisuse[E]},
		{"WrapStreaming", wrapStreaming[E]},
		{"WrapHead", wrapHead[E]},
		{"WrapHijack", wrapHijack[E]},
		{"WrapResponseStartsFresh", wrapResponseStartsFresh[E]},
		{"FailsoftCacheHit", failsoftCacheHit[E]},
		{"FailsoftStale", failsoftStale[E]},
		{"FailsoftPanic", failsoftPanic[E]},
		{"HealthMount", healthMount[E]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, a) })
	}
}
