package ginadapter

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"
)

// notWritten is the size of a response whose header has not been sent.
const notWritten = -1

// errHijackAfterBody mirrors gin's refusal to hijack once body bytes went out.
var errHijackAfterBody = errors.New("ginadapter: hijack after the response body was written")

// responseWriter is the [gin.ResponseWriter] the Gin handlers write to while a
// wrapped middleware runs them. Like gin's own writer it holds the status
// until the first body write, Flush or WriteHeaderNow, so that handlers may
// set headers after choosing a status (c.Status then c.Header, or Render).
// It is used by one request's goroutine only.
type responseWriter struct {
	w      http.ResponseWriter
	req    *http.Request
	status int
	size   int

	closed     chan bool   // CloseNotify's channel, made on first use
	stopNotify func() bool // stops the context.AfterFunc feeding closed
}

var (
	_ gin.ResponseWriter = (*responseWriter)(nil)
	_ http.Flusher       = (*responseWriter)(nil)
	_ http.Hijacker      = (*responseWriter)(nil)
	_ io.StringWriter    = (*responseWriter)(nil)
	_ interface {
		Unwrap() http.ResponseWriter
	} = (*responseWriter)(nil)
)

// newResponseWriter writes to w on behalf of r; status is the status to send
// if no handler chooses one (gin presets 404 or 405 for unrouted requests).
func newResponseWriter(w http.ResponseWriter, r *http.Request, status int) *responseWriter {
	if status <= 0 {
		status = http.StatusOK
	}
	return &responseWriter{w: w, req: r, status: status, size: notWritten}
}

// release stops CloseNotify's context watch.
func (w *responseWriter) release() {
	if w.stopNotify != nil {
		w.stopNotify()
	}
}

// Unwrap returns the writer the middleware passed, for
// [http.ResponseController].
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.w }

// Header returns the header map of the underlying writer.
func (w *responseWriter) Header() http.Header { return w.w.Header() }

// WriteHeader records code as the status to send. As in gin, a status chosen
// after the header went out is ignored. Informational codes (1xx but 101) go
// out at once and leave the final status open.
func (w *responseWriter) WriteHeader(code int) {
	if code <= 0 || w.Written() {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.w.WriteHeader(code)
		return
	}
	w.status = code
}

// WriteHeaderNow sends the recorded status if the header has not gone out.
func (w *responseWriter) WriteHeaderNow() {
	if !w.Written() {
		w.size = 0
		w.w.WriteHeader(w.status)
	}
}

// Write sends the header if needed, then p.
func (w *responseWriter) Write(p []byte) (int, error) {
	w.WriteHeaderNow()
	n, err := w.w.Write(p)
	w.size += n
	return n, err
}

// WriteString sends the header if needed, then s.
func (w *responseWriter) WriteString(s string) (int, error) {
	w.WriteHeaderNow()
	n, err := io.WriteString(w.w, s)
	w.size += n
	return n, err
}

// Status returns the status sent or to be sent.
func (w *responseWriter) Status() int { return w.status }

// Size returns the body bytes written, or -1 before the header went out.
func (w *responseWriter) Size() int { return w.size }

// Written reports whether the header went out.
func (w *responseWriter) Written() bool { return w.size != notWritten }

// Flush sends the header if needed and flushes the underlying writer; it does
// nothing more where that writer cannot flush.
func (w *responseWriter) Flush() {
	w.WriteHeaderNow()
	_ = http.NewResponseController(w.w).Flush() // gin's Flush ignores this too
}

// Hijack hands over the connection if the underlying writer can; it returns
// an error wrapping [http.ErrNotSupported] where it cannot, and refuses once
// body bytes were written.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.size > 0 {
		return nil, nil, errHijackAfterBody
	}
	conn, rw, err := http.NewResponseController(w.w).Hijack()
	if err == nil && w.size < 0 {
		w.size = 0
	}
	return conn, rw, err
}

// CloseNotify returns a channel that receives true once the request's context
// ends: the client went away, or a deadline the middleware set passed. It is
// there for [gin.ResponseWriter] (c.Stream uses it); new code should watch the
// request's context.
func (w *responseWriter) CloseNotify() <-chan bool {
	if w.closed == nil {
		ch := make(chan bool, 1)
		w.closed = ch
		w.stopNotify = context.AfterFunc(w.req.Context(), func() { ch <- true })
	}
	return w.closed
}

// Pusher returns the underlying writer's [http.Pusher], found through Unwrap
// chains, or nil.
func (w *responseWriter) Pusher() http.Pusher {
	for rw := w.w; rw != nil; {
		if p, ok := rw.(http.Pusher); ok {
			return p
		}
		u, ok := rw.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		rw = u.Unwrap()
	}
	return nil
}
