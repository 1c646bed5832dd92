package middleware

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCapture(t *testing.T) {
	tests := []struct {
		name       string
		limit      int
		handler    func(w http.ResponseWriter)
		wantStatus int
		wantBody   string
		streamed   string // why it streamed; "" when it buffered
		realCode   int    // what reached the real writer before finish (0: nothing)
		wantHeader string // X-A in the captured or sent header
	}{
		{
			name:       "write without WriteHeader is 200",
			limit:      100,
			handler:    func(w http.ResponseWriter) { fmt.Fprint(w, "hi") },
			wantStatus: 200, wantBody: "hi",
		},
		{
			name:  "first final status wins",
			limit: 100,
			handler: func(w http.ResponseWriter) {
				w.WriteHeader(404)
				w.WriteHeader(500)
				fmt.Fprint(w, "nf")
			},
			wantStatus: 404, wantBody: "nf",
		},
		{
			name:  "header changes after WriteHeader have no effect",
			limit: 100,
			handler: func(w http.ResponseWriter) {
				w.Header().Set("X-A", "before")
				w.WriteHeader(200)
				w.Header().Set("X-A", "after")
			},
			wantStatus: 200, wantHeader: "before",
		},
		{
			name:  "informational passes through",
			limit: 100,
			handler: func(w http.ResponseWriter) {
				w.Header().Set("X-A", "hint")
				w.WriteHeader(http.StatusEarlyHints)
				w.WriteHeader(201)
			},
			wantStatus: 201, realCode: http.StatusEarlyHints, wantHeader: "hint",
		},
		{
			name:  "body over the limit streams",
			limit: 4,
			handler: func(w http.ResponseWriter) {
				fmt.Fprint(w, "abc")
				fmt.Fprint(w, "defg")
			},
			wantStatus: 200, streamed: "too-large", realCode: 200, wantBody: "abcdefg",
		},
		{
			name:  "flush streams",
			limit: 100,
			handler: func(w http.ResponseWriter) {
				fmt.Fprint(w, "abc")
				w.(http.Flusher).Flush()
				fmt.Fprint(w, "d")
			},
			wantStatus: 200, streamed: "flush", realCode: 200, wantBody: "abcd",
		},
		{
			name:  "flush through ResponseController streams",
			limit: 100,
			handler: func(w http.ResponseWriter) {
				w.WriteHeader(202)
				if err := http.NewResponseController(w).Flush(); err != nil {
					panic(err)
				}
			},
			wantStatus: 202, streamed: "flush", realCode: 202,
		},
		{
			name:  "trailers stream",
			limit: 100,
			handler: func(w http.ResponseWriter) {
				w.Header().Set("Trailer", "X-A")
				w.WriteHeader(200)
				w.Header().Set("X-A", "trailer")
			},
			wantStatus: 200, streamed: "trailer", realCode: 200, wantHeader: "trailer",
		},
		{
			name:  "no body for 204",
			limit: 100,
			handler: func(w http.ResponseWriter) {
				w.WriteHeader(204)
				if _, err := fmt.Fprint(w, "x"); !errors.Is(err, http.ErrBodyNotAllowed) {
					panic(fmt.Sprint("write error ", err))
				}
			},
			wantStatus: 204,
		},
		{
			name:       "nothing written is 200",
			limit:      100,
			handler:    func(w http.ResponseWriter) {},
			wantStatus: 200,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			c := newCapture(rec, tt.limit)
			tt.handler(c)
			if tt.streamed == "" && (rec.Flushed || rec.Body.Len() > 0) {
				t.Errorf("buffered capture reached the client: %d %q", rec.Code, rec.Body.String())
			}
			res := c.finish(false)
			if res.status != tt.wantStatus {
				t.Errorf("status %d, want %d", res.status, tt.wantStatus)
			}
			if (res.reason != "") != (tt.streamed != "") || res.reason != tt.streamed || res.streamed != (tt.streamed != "") {
				t.Errorf("streamed=%v reason %q, want %q", res.streamed, res.reason, tt.streamed)
			}
			if tt.streamed != "" {
				if rec.Body.String() != tt.wantBody || rec.Code != tt.realCode {
					t.Errorf("real writer got %d %q, want %d %q", rec.Code, rec.Body.String(), tt.realCode, tt.wantBody)
				}
				if tt.wantHeader != "" && rec.Header().Get("X-A") != tt.wantHeader {
					t.Errorf("sent X-A %q, want %q", rec.Header().Get("X-A"), tt.wantHeader)
				}
				return
			}
			if string(res.body) != tt.wantBody {
				t.Errorf("body %q, want %q", res.body, tt.wantBody)
			}
			if tt.wantHeader != "" && res.header.Get("X-A") != tt.wantHeader {
				t.Errorf("captured X-A %q, want %q", res.header.Get("X-A"), tt.wantHeader)
			}
			if tt.realCode != 0 && rec.Code != tt.realCode {
				t.Errorf("informational %d, want %d", rec.Code, tt.realCode)
			}
		})
	}
}

func TestCaptureInvalidStatusPanics(t *testing.T) {
	c := newCapture(httptest.NewRecorder(), 10)
	if pv := catchPanic(func() { c.WriteHeader(42) }); pv == nil {
		t.Error("no panic for status 42")
	}
}

func TestCaptureAbandoned(t *testing.T) {
	rec := httptest.NewRecorder()
	c := newCapture(rec, 10)
	fmt.Fprint(c, "a")
	c.finish(true)
	if _, err := fmt.Fprint(c, "b"); !errors.Is(err, http.ErrHandlerTimeout) {
		t.Errorf("write after abandon: %v", err)
	}
	c.Flush()
	if _, _, err := c.Hijack(); !errors.Is(err, http.ErrHandlerTimeout) {
		t.Errorf("hijack after abandon: %v", err)
	}
	if rec.Body.Len() != 0 || rec.Flushed {
		t.Error("an abandoned capture reached the client")
	}
	c.Header().Set("X", "y") // must not panic
}

// hijackRecorder is a recorder whose connection can be hijacked.
type hijackRecorder struct {
	*httptest.ResponseRecorder
	conn net.Conn
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(bufio.NewReader(h.conn), bufio.NewWriter(h.conn)), nil
}

func TestCaptureHijack(t *testing.T) {
	t.Run("unsupported", func(t *testing.T) {
		c := newCapture(httptest.NewRecorder(), 10)
		if _, _, err := c.Hijack(); !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("err %v, want ErrNotSupported", err)
		}
		if res := c.finish(false); res.streamed {
			t.Error("a failed hijack stopped the capture")
		}
	})
	t.Run("supported", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		c := newCapture(&hijackRecorder{httptest.NewRecorder(), a}, 10)
		conn, _, err := c.Hijack()
		if err != nil || conn != a {
			t.Fatalf("hijack: %v", err)
		}
		if res := c.finish(false); !res.streamed || res.reason != "hijack" {
			t.Errorf("after hijack: %+v", res)
		}
	})
	t.Run("unwrap", func(t *testing.T) {
		rec := httptest.NewRecorder()
		if newCapture(rec, 1).Unwrap() != rec {
			t.Error("Unwrap does not return the real writer")
		}
	})
}

func TestCacheStreamingHandler(t *testing.T) {
	// A handler that flushes streams through the cache uncached.
	c := newTestCache(t, newMapStore())
	var calls int
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "part1 ")
		w.(http.Flusher).Flush()
		fmt.Fprint(w, "part2")
	}))
	for range 2 {
		w := do(c, h, "GET", "http://example.com/a")
		if w.Body.String() != "part1 part2" || !w.Flushed {
			t.Errorf("got %q flushed=%v", w.Body.String(), w.Flushed)
		}
		if cs := w.Header().Get("Cache-Status"); cs != "failsoft; fwd=uri-miss; fwd-status=200; detail=streamed" {
			t.Errorf("Cache-Status %q", cs)
		}
	}
	if calls != 2 {
		t.Errorf("calls %d, want 2", calls)
	}
}
