package middleware

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// captureMode is the state of a capture.
type captureMode uint8

const (
	// modeBuffer holds status, headers and body back from the client.
	modeBuffer captureMode = iota
	// modeStream passes everything through to the real writer: the
	// response is no longer captured and will not be stored.
	modeStream
	// modeAbandoned discards everything: the cache answered for the
	// handler (it timed out) and the handler's writes go nowhere.
	modeAbandoned
)

// capture is the http.ResponseWriter the cache hands its handler.
//
// While buffering it keeps the status, the header map as of the first final
// WriteHeader, and up to limit body bytes, and passes nothing to the client,
// so that a 5xx can still be replaced by a stale copy and a cacheable answer
// stored. It gives up, commits what it holds to the real writer and streams
// the rest through uncached, when the handler calls Flush or Hijack, when
// the body grows over the limit, or when the response declares trailers.
// What streaming gives up: the response is not stored, cannot be shared
// with coalesced requests, and cannot be replaced by a stale copy if the
// handler fails later.
//
// The first final status wins (later WriteHeader calls are ignored); a Write
// without WriteHeader means 200; 1xx informational responses (103 Early
// Hints) pass through at once. Header changes after WriteHeader have no
// effect, as with net/http. A capture is safe for use by the handler's
// goroutine and the cache's goroutine at once (the handler may run on its
// own goroutine under [WithHandlerTimeout]).
type capture struct {
	mu       sync.Mutex
	w        http.ResponseWriter
	mode     captureMode
	header   http.Header // the handler's map until the final WriteHeader
	snap     http.Header // the map as of the final WriteHeader
	late     http.Header // handed out after the final WriteHeader; discarded
	status   int         // final status; 0 until written
	body     []byte
	limit    int
	reason   string            // why it streams: "flush", "hijack", "too-large", "trailer"
	onCommit func(http.Header) // called with the real header map just before a commit
}

var (
	_ http.ResponseWriter = (*capture)(nil)
	_ http.Flusher        = (*capture)(nil)
	_ http.Hijacker       = (*capture)(nil)
)

// newCapture returns a buffering capture over w that keeps up to limit body
// bytes.
func newCapture(w http.ResponseWriter, limit int) *capture {
	return &capture{w: w, header: make(http.Header), limit: limit}
}

// newPassthrough returns a capture that streams from the start and only
// records the status; the cache uses it for requests it does not cache.
func newPassthrough(w http.ResponseWriter) *capture {
	return &capture{w: w, mode: modeStream}
}

// Header returns the header map the handler sets. After the final
// WriteHeader it returns a map whose changes are discarded.
func (c *capture) Header() http.Header {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.mode == modeStream:
		return c.w.Header()
	case c.status == 0 && c.mode == modeBuffer:
		return c.header
	}
	if c.late == nil {
		c.late = make(http.Header)
	}
	return c.late
}

// WriteHeader records the first final status and the header as of now; 1xx
// statuses pass through to the client.
func (c *capture) WriteHeader(code int) {
	if code < 100 || code > 999 {
		// As net/http does: this is a bug in the handler.
		panic(fmt.Sprintf("middleware: invalid WriteHeader code %v", code))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writeHeaderLocked(code)
}

func (c *capture) writeHeaderLocked(code int) {
	switch c.mode {
	case modeAbandoned:
		return
	case modeStream:
		if code >= 200 && c.status == 0 {
			c.status = code
		}
		c.w.WriteHeader(code)
		return
	}
	if c.status != 0 {
		return // superfluous: the first final status wins
	}
	if code < 200 {
		dst := c.w.Header()
		for k, v := range c.header {
			dst[k] = v
		}
		c.w.WriteHeader(code)
		return
	}
	c.status = code
	c.snap, c.header = c.header, nil
	if _, ok := c.snap["Trailer"]; ok {
		c.commitLocked("trailer")
	}
}

// Write buffers p, or passes it through once the capture streams.
func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mode == modeAbandoned {
		return 0, http.ErrHandlerTimeout
	}
	if c.status == 0 {
		c.writeHeaderLocked(http.StatusOK)
	}
	if c.mode == modeStream {
		return c.w.Write(p)
	}
	if !bodyAllowed(c.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if len(c.body)+len(p) > c.limit {
		c.commitLocked("too-large")
		return c.w.Write(p)
	}
	c.body = append(c.body, p...)
	return len(p), nil
}

// Flush commits what is buffered and flushes the real writer (when it can):
// from then on the response streams through uncached.
func (c *capture) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.mode {
	case modeAbandoned:
		return
	case modeBuffer:
		if c.status == 0 {
			c.writeHeaderLocked(http.StatusOK)
		}
		c.commitLocked("flush")
	}
	_ = http.NewResponseController(c.w).Flush()
}

// Hijack hands the connection over when the real writer supports it (else
// an error wrapping [http.ErrNotSupported]); the response then is the
// handler's alone and is not stored.
func (c *capture) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mode == modeAbandoned {
		return nil, nil, http.ErrHandlerTimeout
	}
	if c.mode == modeBuffer && c.status != 0 {
		c.commitLocked("hijack")
	}
	conn, rw, err := http.NewResponseController(c.w).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("middleware: hijack: %w", err)
	}
	c.mode, c.reason = modeStream, "hijack"
	return conn, rw, nil
}

// Unwrap returns the real writer, for [http.ResponseController].
func (c *capture) Unwrap() http.ResponseWriter { return c.w }

// commitLocked writes the buffered status, header and body to the real
// writer and switches to streaming.
func (c *capture) commitLocked(reason string) {
	c.mode, c.reason = modeStream, reason
	dst := c.w.Header()
	for k, v := range c.snap {
		dst[k] = v
	}
	if c.onCommit != nil {
		c.onCommit(dst)
	}
	c.w.WriteHeader(c.status)
	if len(c.body) > 0 {
		_, _ = c.w.Write(c.body)
	}
	c.body = nil
}

// captured is what a buffering capture holds once the handler returned.
type captured struct {
	status   int
	header   http.Header
	body     []byte
	streamed bool   // the capture streamed: nothing to store or replace
	reason   string // why it streamed
}

// finish ends the handler's part: it returns what was captured (a handler
// that wrote nothing answered 200 with an empty body) and, when abandon is
// true and the capture still buffers, makes it discard all later writes.
func (c *capture) finish(abandon bool) captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mode == modeStream {
		return captured{status: c.status, streamed: true, reason: c.reason}
	}
	if c.status == 0 {
		c.status, c.snap, c.header = http.StatusOK, c.header, nil
	}
	res := captured{status: c.status, header: c.snap, body: c.body}
	if abandon {
		c.mode = modeAbandoned
	}
	return res
}

// bodyAllowed reports whether a response with this status may have a body
// (RFC 9110 §6.4.1).
func bodyAllowed(status int) bool {
	return !(status >= 100 && status < 200 || status == http.StatusNoContent || status == http.StatusNotModified)
}

// lengthMatches reports whether a captured response's Content-Length, if it
// has one, says what the handler wrote: every line the same decimal number,
// len(body). net/http cuts off or aborts a live response that disagrees, and
// a cache must not keep such a response to replay for its whole lifetime.
// Statuses without a body have nothing to check.
func lengthMatches(status int, h http.Header, body []byte) bool {
	if !bodyAllowed(status) {
		return true
	}
	want := strconv.Itoa(len(body))
	for _, v := range h["Content-Length"] {
		if strings.TrimSpace(v) != want {
			return false
		}
	}
	return true
}

// discard is the real writer of a background refresh: nobody reads it.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header {
	if d.h == nil {
		d.h = make(http.Header)
	}
	return d.h
}
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}
