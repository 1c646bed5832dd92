package echov5

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/labstack/echo/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// answer is a middleware that answers in place of the handler and counts the
// requests it saw.
func answer(status int, body string, seen *atomic.Int32) func(http.Handler) http.Handler {
	return func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen.Add(1)
			w.Header().Set("X-Answered", "1")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		})
	}
}

// capture is a middleware that records the handler's response, then replays
// it byte for byte. The last recorded response is kept in got.
type capture struct {
	got *httptest.ResponseRecorder
}

func (cp *capture) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		cp.got = rec
		res := rec.Result()
		for k, v := range res.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

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

// passThrough is a middleware that calls next with w unchanged.
func passThrough(next http.Handler) http.Handler { return next }

// unwrapOnly wraps the writer in a type that has only Unwrap beyond
// http.ResponseWriter, so Flush and Hijack must go through
// http.ResponseController.
func unwrapOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(unwrapWriter{w}, r)
	})
}

type unwrapWriter struct{ http.ResponseWriter }

func (u unwrapWriter) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// serve runs one request through h and returns the recorder.
func serve(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

// countingWriter counts WriteHeader and Write calls.
type countingWriter struct {
	header http.Header
	codes  []int
	calls  int
}

func (w *countingWriter) Header() http.Header { return w.header }
func (w *countingWriter) WriteHeader(code int) {
	w.calls++
	w.codes = append(w.codes, code)
}
func (w *countingWriter) Write(p []byte) (int, error) { w.calls++; return len(p), nil }

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
		for k, v := range rec.Result().Header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// newEcho returns an Echo that logs nothing.
func newEcho() *echo.Echo {
	e := echo.New()
	e.Logger = slog.New(slog.DiscardHandler)
	return e
}

// response returns the Echo Response under c.Response().
func response(c *echo.Context) *echo.Response {
	r, err := echo.UnwrapResponse(c.Response())
	if err != nil {
		panic(err)
	}
	return r
}
