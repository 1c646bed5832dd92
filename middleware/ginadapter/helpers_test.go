package ginadapter

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/gin-gonic/gin"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
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
