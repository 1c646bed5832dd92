package middleware

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/failsoft/failsoft/internal/failure"
	"github.com/failsoft/failsoft/store"
)

// DefaultRetryAfter is the Retry-After that [Recover] sends when no
// configured breaker is open to say how long to wait: the same as a guard's
// default open period ([store.DefaultOpenPeriod]), so a client retries about
// when a tripped breaker would probe again.
const DefaultRetryAfter = 5 * time.Second

// unavailableError is the "error" member of Recover's JSON body.
const unavailableError = "Service unavailable"

// unavailableDetails is the default "details" member of Recover's JSON body:
// generic on purpose, so that a panic value never reaches the client.
const unavailableDetails = "The service cannot answer this request right now; retry later."

// BreakerState is what [Recover] reads from a circuit breaker: its state and,
// while it is open, how long it stays open. A *[store.Guard] satisfies it.
// Implementations must be safe for concurrent use and must not block.
type BreakerState interface {
	State() store.State
	RetryAfter() time.Duration
}

// RecoverOption configures [Recover] (and [Chain], which passes its options
// to Recover). Options are applied in order; a later option overrides an
// earlier one, except [WithBreakers], which adds. Only this package's With
// functions make RecoverOptions (its method is unexported), so an option of
// another constructor does not compile here. A nil RecoverOption makes
// Recover panic with a message that starts with "middleware:".
type RecoverOption interface {
	applyRecover(*recoverConfig)
}

// recoverOption is a [RecoverOption] that is a function of the settings.
type recoverOption func(*recoverConfig)

func (f recoverOption) applyRecover(c *recoverConfig) { f(c) }

type recoverConfig struct {
	logger       *slog.Logger
	breakers     []BreakerState
	retryAfter   time.Duration
	outage503    bool
	panicDetails bool
	panicLog     *logGate
}

// panicLogInterval is how often Recover logs a panic in full (value and
// stack); panics in between are counted and the count is logged with the
// next full line, so that a handler panicking on every request during an
// outage cannot flood the log.
const panicLogInterval = time.Second

// logGate lets one log line through per interval and counts the rest. It is
// safe for concurrent use.
type logGate struct {
	next       atomic.Int64 // unix nanoseconds before which lines are suppressed
	suppressed atomic.Uint64
}

// allow reports whether a line may be logged at now, and how many were
// suppressed since the last one that was.
func (g *logGate) allow(now time.Time) (bool, uint64) {
	n := g.next.Load()
	if now.UnixNano() < n || !g.next.CompareAndSwap(n, now.Add(panicLogInterval).UnixNano()) {
		g.suppressed.Add(1)
		return false, 0
	}
	return true, g.suppressed.Swap(0)
}

// WithBreakers adds circuit breakers (typically the *[store.Guard] of each
// store the handlers use) for [Recover] to consult: while any of them is
// open, Retry-After is the longest remaining open time among the open ones,
// and a 5xx from the handler is answered as 503 (see [WithOutage503]).
// It may be given several times; each call adds. Default: none. A nil
// breaker panics.
func WithBreakers(bs ...BreakerState) RecoverOption {
	for _, b := range bs {
		if b == nil {
			panic("middleware: WithBreakers: nil breaker")
		}
	}
	bs = append([]BreakerState(nil), bs...) // never keep the caller's slice
	return recoverOption(func(c *recoverConfig) { c.breakers = append(c.breakers, bs...) })
}

// WithRetryAfter sets the Retry-After sent when no configured breaker is
// open (or none is configured). It is sent in whole seconds, rounded up.
// Default: 5 s ([DefaultRetryAfter]). A duration that is not positive
// panics.
func WithRetryAfter(d time.Duration) RecoverOption {
	if d <= 0 {
		panic(fmt.Sprintf("middleware: WithRetryAfter: %v is not positive", d))
	}
	return recoverOption(func(c *recoverConfig) { c.retryAfter = d })
}

// WithOutage503 sets whether [Recover] turns a 500, 502, 503 or 504 answered by the handler
// into 503 Service Unavailable with Retry-After when the request saw a Redis
// outage (recorded in its context, see [store.FailureSeen]) or a configured
// breaker is open. The handler's headers and body are kept; a Retry-After
// header the handler set is kept too. Default: on.
//
// To change the status before it is sent, Recover holds back a 5xx
// WriteHeader until the handler's first Write or Flush, or its return.
func WithOutage503(on bool) RecoverOption {
	return recoverOption(func(c *recoverConfig) { c.outage503 = on })
}

// WithPanicDetails sets whether the "details" member of the 503 body after a
// panic carries the panic value (formatted with %v) instead of a generic
// text. Panic values can hold internal details; turn this on only where the
// clients are trusted, such as in development. Default: off.
func WithPanicDetails(on bool) RecoverOption {
	return recoverOption(func(c *recoverConfig) { c.panicDetails = on })
}

// Recover returns middleware that keeps a panic or a Redis outage below it
// from reaching the client as a broken connection or a bare 500.
//
// A panic in the handlers below it is logged with its stack (see
// [WithLogger]) and answered with 503 Service Unavailable, a
// Retry-After header (see [WithBreakers] and [WithRetryAfter]),
// Cache-Control: no-store and the JSON body
//
//	{"error":"Service unavailable","details":"..."}
//
// with Content-Type application/json. Headers the handler had set are
// dropped; those set before Recover are kept. The details are generic unless
// [WithPanicDetails] is on. A panic with [http.ErrAbortHandler] is passed on
// unchanged, unlogged. When the handler had already sent its status (or
// hijacked the connection), nothing more can be said over HTTP: Recover
// logs the panic and aborts the response by panicking with
// [http.ErrAbortHandler], which net/http handles by closing the connection
// without logging.
//
// A 5xx from the handler during a Redis outage becomes a 503 with
// Retry-After; see [WithOutage503]. Recover tracks failures on the request's
// context ([store.TrackFailures]) for this, so the stores and hooks below it
// can record what they see.
//
// Recover has alice's shape: alice.New(middleware.Recover()). Invalid options
// panic when Recover is called, a nil option with the message
// "middleware: Recover: nil RecoverOption". The ResponseWriter it passes down keeps
// http.Flusher, http.Hijacker (when the server's writer has it) and Unwrap
// for [http.ResponseController].
func Recover(opts ...RecoverOption) func(http.Handler) http.Handler {
	return newRecoverConfig(opts).handler
}

// newRecoverConfig returns Recover's settings for opts, panicking as
// Recover does on a nil option.
func newRecoverConfig(opts []RecoverOption) *recoverConfig {
	c := &recoverConfig{retryAfter: DefaultRetryAfter, outage503: true, panicLog: &logGate{}}
	for _, opt := range opts {
		if opt == nil {
			panic("middleware: Recover: nil RecoverOption")
		}
		opt.applyRecover(c)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return c
}

// handler is Recover's middleware: next wrapped.
func (c *recoverConfig) handler(next http.Handler) http.Handler {
	if next == nil {
		panic("middleware: Recover: nil handler")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.serve(next, w, r)
	})
}

// recoverState is what Recover keeps for one request, in one allocation:
// the tracked context (when the request's is not tracked yet), the request
// passed down with it, and the writer passed down.
type recoverState struct {
	ctx failure.Context
	req http.Request
	rw  recoverWriter
}

// serve runs one request through next.
func (c *recoverConfig) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	st := &recoverState{rw: recoverWriter{w: w}}
	rw := &st.rw
	if c.outage503 {
		if ctx := st.ctx.Track(r.Context()); ctx != r.Context() {
			// The copy WithContext makes stays on the stack: the
			// request passed down is st.req, in st's allocation.
			st.req = *r.WithContext(ctx)
			r = &st.req
		}
		rw.cfg, rw.req = c, r
	}
	// Headers set before Recover (by outer middleware) survive a panic; the
	// handler's own are dropped with its response.
	var before http.Header
	if h := w.Header(); len(h) > 0 {
		before = h.Clone()
	}
	defer func() {
		p := recover()
		if p == nil {
			rw.finish()
			return
		}
		if isAbort(p) {
			panic(p)
		}
		c.logPanic(r, p)
		if rw.started {
			panic(http.ErrAbortHandler)
		}
		c.writePanic(w, before, p)
	}()
	var h http.ResponseWriter = rw
	if _, ok := w.(http.Hijacker); ok {
		h = hijackWriter{rw}
	}
	next.ServeHTTP(h, r)
}

// logPanic logs the panic p serving r, with its stack, unless the log gate
// suppresses it.
func (c *recoverConfig) logPanic(r *http.Request, p any) {
	if ok, suppressed := c.panicLog.allow(time.Now()); ok {
		c.logger.ErrorContext(r.Context(), "failsoft: panic serving request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Any("panic", p),
			slog.String("stack", string(debug.Stack())),
			slog.Uint64("suppressed", suppressed),
		)
	}
}

// isAbort reports whether the panic value pv is, or wraps,
// [http.ErrAbortHandler] (errors.Is): a handler's way to abort the response,
// which net/http handles by closing the connection without logging. Recover
// and the cache both pass such a panic on unchanged; it is never answered,
// logged as a failure or replaced by a stale copy.
func isAbort(pv any) bool {
	err, ok := pv.(error)
	return ok && errors.Is(err, http.ErrAbortHandler)
}

// writePanic answers a panic before anything was sent.
func (c *recoverConfig) writePanic(w http.ResponseWriter, before http.Header, p any) {
	h := w.Header()
	clear(h)
	for k, v := range before {
		h[k] = v
	}
	details := unavailableDetails
	if c.panicDetails {
		details = fmt.Sprint(p)
	}
	writeUnavailable(w, details, c.retryAfterFor())
}

// writeUnavailable answers 503 Service Unavailable with Retry-After (whole
// seconds), Cache-Control: no-store and the JSON body
// {"error":"Service unavailable","details":details}, keeping the headers
// already set on w: the answer of Recover after a panic and of the cache's
// miss budget.
func writeUnavailable(w http.ResponseWriter, details string, retryAfter time.Duration) {
	body, err := json.Marshal(struct {
		Error   string `json:"error"`
		Details string `json:"details"`
	}{unavailableError, details})
	if err != nil { // cannot happen with two strings; stay safe anyway
		body = []byte(`{"error":"Service unavailable"}`)
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("Retry-After", retryAfterSeconds(retryAfter))
	w.WriteHeader(http.StatusServiceUnavailable)
	w.Write(body) // the client may be gone; nothing more to do
}

// breakerOpen reports whether any configured breaker is open.
func (c *recoverConfig) breakerOpen() bool {
	for _, b := range c.breakers {
		if b.State() == store.StateOpen {
			return true
		}
	}
	return false
}

// retryAfterFor returns the longest remaining open time of the open
// breakers, or the configured default when none is open.
func (c *recoverConfig) retryAfterFor() time.Duration {
	var d time.Duration
	for _, b := range c.breakers {
		if b.State() == store.StateOpen {
			d = max(d, b.RetryAfter())
		}
	}
	if d <= 0 {
		return c.retryAfter
	}
	return d
}

// retryAfterSeconds formats d as a Retry-After delay: whole seconds, rounded
// up, at least 1.
func retryAfterSeconds(d time.Duration) string {
	s := (d + time.Second - 1) / time.Second
	return strconv.FormatInt(int64(max(s, 1)), 10)
}

// recoverWriter is the thin pass-through writer of [Recover]. It records
// whether the response has started (a final status was sent or the
// connection hijacked) and, when cfg is set, holds back a 5xx status
// until the first Write or Flush or the handler's return, so that decide can
// replace it. It is not safe for concurrent use, like any ResponseWriter.
type recoverWriter struct {
	w       http.ResponseWriter
	cfg     *recoverConfig // nil: never hold a status back
	req     *http.Request  // the request as passed down, with its tracked context
	held    int            // a 5xx held back, 0 if none
	started bool           // a final status went to w, or the connection was hijacked
}

// decide returns the status to send for a held-back one: 503 with
// Retry-After (unless the handler set one) when the request saw an outage
// or a configured breaker is open, status itself otherwise.
func (rw *recoverWriter) decide(status int) int {
	c := rw.cfg
	if _, seen := store.FailureSeen(rw.req.Context()); !seen && !c.breakerOpen() {
		return status
	}
	if rw.w.Header().Get("Retry-After") == "" {
		rw.w.Header().Set("Retry-After", retryAfterSeconds(c.retryAfterFor()))
	}
	return http.StatusServiceUnavailable
}

var (
	_ http.Flusher                              = (*recoverWriter)(nil)
	_ http.Hijacker                             = hijackWriter{}
	_ interface{ Unwrap() http.ResponseWriter } = (*recoverWriter)(nil)
)

// Header implements http.ResponseWriter.
func (rw *recoverWriter) Header() http.Header { return rw.w.Header() }

// WriteHeader implements http.ResponseWriter. 1xx statuses pass through; the
// first final status wins.
func (rw *recoverWriter) WriteHeader(code int) {
	switch {
	case rw.started:
		rw.w.WriteHeader(code) // let net/http report the superfluous call
	case rw.held != 0:
		// The first final status wins.
	case code >= 100 && code < 200 && code != http.StatusSwitchingProtocols:
		rw.w.WriteHeader(code)
	case outageStatus(code) && rw.cfg != nil:
		rw.held = code
	default:
		rw.started = true
		rw.w.WriteHeader(code)
	}
}

// outageStatus reports whether a handler's status may stand for an outage
// and so be turned into 503: 500, 502, 503 and 504. Other 5xx (501 Not
// Implemented, 505, ...) are answers, and may be served from the cache:
// Recover leaves them alone.
func outageStatus(code int) bool {
	switch code {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// commit sends the status if it has not been sent: the held one (as decided)
// or, when none is held, nothing (w sends 200 on its first Write or Flush).
func (rw *recoverWriter) commit() {
	if rw.started {
		return
	}
	rw.started = true
	if rw.held != 0 {
		rw.w.WriteHeader(rw.decide(rw.held))
	}
}

// Write implements http.ResponseWriter.
func (rw *recoverWriter) Write(b []byte) (int, error) {
	rw.commit()
	return rw.w.Write(b)
}

// Flush implements http.Flusher; it does nothing when the underlying writer
// cannot flush.
func (rw *recoverWriter) Flush() { rw.FlushError() }

// FlushError flushes like Flush and returns the underlying writer's error,
// for [http.ResponseController].
func (rw *recoverWriter) FlushError() error {
	if rw.held != 0 {
		rw.commit()
	}
	err := http.NewResponseController(rw.w).Flush()
	if err == nil {
		rw.started = true // a flush sends the status (200 when none was set)
	}
	return err
}

// Unwrap returns the underlying writer, for [http.ResponseController].
func (rw *recoverWriter) Unwrap() http.ResponseWriter { return rw.w }

// finish sends a status still held back when the handler returns.
func (rw *recoverWriter) finish() {
	if !rw.started && rw.held != 0 {
		rw.commit()
	}
}

// hijackWriter is a recoverWriter over a writer that implements
// http.Hijacker.
type hijackWriter struct{ *recoverWriter }

// Hijack implements http.Hijacker. Once hijacked, the connection is the
// handler's: Recover writes nothing more on a panic.
func (hw hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := hw.w.(http.Hijacker).Hijack()
	if err == nil {
		hw.started = true
	}
	return conn, brw, err
}
