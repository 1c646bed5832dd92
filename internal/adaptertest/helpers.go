package adaptertest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Serve runs one request through h and returns the recorder.
func Serve(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

// Answer is a middleware that answers in place of the handler (status, body
// and the header X-Answered: 1) and counts the requests it saw in seen.
func Answer(status int, body string, seen *atomic.Int32) Middleware {
	return func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen.Add(1)
			w.Header().Set("X-Answered", "1")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		})
	}
}

// Capture is a middleware that records the handler's response, then replays
// it byte for byte. Got is the last recorded response. It is not safe for
// concurrent requests.
type Capture struct {
	Got *httptest.ResponseRecorder
}

// Handler is the middleware.
func (cp *Capture) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		cp.Got = rec
		replay(w, rec)
	})
}

// replay writes rec's response to w.
func replay(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Result().Header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// PassThrough is a middleware that calls next with w unchanged.
func PassThrough(next http.Handler) http.Handler { return next }

// UnwrapOnly is a middleware that wraps the writer in an [UnwrapWriter], so
// that Flush and Hijack must go through [http.ResponseController].
func UnwrapOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(UnwrapWriter{w}, r)
	})
}

// UnwrapWriter has only Unwrap beyond [http.ResponseWriter].
type UnwrapWriter struct{ http.ResponseWriter }

// Unwrap returns the wrapped writer.
func (u UnwrapWriter) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// CountingWriter is an [http.ResponseWriter] that counts WriteHeader and
// Write calls and keeps the codes. Its zero value is ready to use.
type CountingWriter struct {
	header http.Header
	Codes  []int // the WriteHeader calls' codes, in order
	Calls  int   // WriteHeader and Write calls
}

// Header returns the header map, made on first use.
func (w *CountingWriter) Header() http.Header {
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}

// WriteHeader counts the call and keeps code.
func (w *CountingWriter) WriteHeader(code int) {
	w.Calls++
	w.Codes = append(w.Codes, code)
}

// Write counts the call and drops p.
func (w *CountingWriter) Write(p []byte) (int, error) { w.Calls++; return len(p), nil }

// recover503 is a middleware that turns a panic into 503 with Retry-After and
// a JSON body, as failsoft's recovery does.
func recover503(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", "5")
				w.WriteHeader(http.StatusServiceUnavailable)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": "unavailable"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// staleOn5xx is a middleware that captures the handler's response and, on a
// 5xx, answers 200 with a stale copy instead, as failsoft's cache does.
func staleOn5xx(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		if rec.Code >= 500 {
			w.Header().Set("Cache-Status", "test; hit; detail=stale")
			_, _ = w.Write([]byte("stale"))
			return
		}
		replay(w, rec)
	})
}

// outcome is what native middleware outermost saw once the chain returned.
type outcome struct {
	status  int
	aborted bool
	err     error
	request *http.Request
}

// observe mounts native middleware on e that records the outcome of each
// request in the returned value.
func observe[E http.Handler](a Adapter[E], e E) *outcome {
	o := &outcome{}
	a.UseNative(e, func(c Ctx, next func() error) error {
		err := next()
		*o = outcome{status: c.Status(), aborted: c.Aborted(), err: err, request: c.Request()}
		return err
	})
	return o
}

// fakeClock is a settable clock for the cache and its stores.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
