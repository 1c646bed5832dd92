package ginadapter

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// TestWrapSeesHandlerResponse runs Gin handlers that write in each of Gin's
// ways, once bare and once under wrapped capturing middleware, and checks
// that the middleware saw the response and replayed it byte for byte.
func TestWrapSeesHandlerResponse(t *testing.T) {
	handlers := []struct {
		name   string
		chain  []gin.HandlerFunc
		status int // what the middleware must see
	}{
		{"JSON", []gin.HandlerFunc{func(c *gin.Context) {
			c.JSON(http.StatusCreated, gin.H{"source": "primary", "data": "x"})
		}}, http.StatusCreated},
		{"String", []gin.HandlerFunc{func(c *gin.Context) {
			c.String(http.StatusOK, "hello %s", "gin")
		}}, http.StatusOK},
		{"Status only", []gin.HandlerFunc{func(c *gin.Context) {
			c.Status(http.StatusNoContent)
		}}, http.StatusNoContent},
		{"header after status", []gin.HandlerFunc{func(c *gin.Context) {
			c.Status(http.StatusAccepted)
			c.Header("X-Late", "kept")
			_, _ = c.Writer.WriteString("body")
		}}, http.StatusAccepted},
		{"Data with headers", []gin.HandlerFunc{func(c *gin.Context) {
			c.Header("Cache-Control", "max-age=60")
			c.Writer.Header().Add("Vary", "Accept")
			c.Writer.Header().Add("Vary", "Accept-Encoding")
			c.Data(http.StatusOK, "application/octet-stream", []byte{0, 1, 2, 0xff})
		}}, http.StatusOK},
		{"nothing written", []gin.HandlerFunc{func(*gin.Context) {}}, http.StatusOK},
		{"Redirect", []gin.HandlerFunc{func(c *gin.Context) {
			c.Redirect(http.StatusFound, "/elsewhere")
		}}, http.StatusFound},
		{"5xx", []gin.HandlerFunc{func(c *gin.Context) {
			c.JSON(http.StatusInternalServerError, gin.H{"error": "redis: connection refused"})
		}}, http.StatusInternalServerError},
		{"later Gin middleware aborts", []gin.HandlerFunc{
			func(c *gin.Context) { c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "no"}) },
			func(c *gin.Context) { c.String(http.StatusOK, "must not run") },
		}, http.StatusForbidden},
		{"later Gin middleware around handler", []gin.HandlerFunc{
			func(c *gin.Context) { c.Header("X-Before", "1"); c.Next() },
			func(c *gin.Context) { c.String(http.StatusOK, "inner") },
		}, http.StatusOK},
	}
	type mounted struct {
		name  string
		build func(cp *capture) []gin.HandlerFunc
	}
	mounts := []mounted{
		{"one wrap", func(cp *capture) []gin.HandlerFunc {
			return []gin.HandlerFunc{Wrap(cp.Handler)}
		}},
		{"two wraps", func(cp *capture) []gin.HandlerFunc {
			return []gin.HandlerFunc{Wrap(passThrough), Wrap(cp.Handler)}
		}},
		{"wrap over a writer wrapper", func(cp *capture) []gin.HandlerFunc {
			return []gin.HandlerFunc{Wrap(cp.Handler), Wrap(unwrapOnly)}
		}},
	}
	for _, h := range handlers {
		for _, m := range mounts {
			t.Run(h.name+"/"+m.name, func(t *testing.T) {
				bare := gin.New()
				bare.GET("/x", h.chain...)
				want := serve(bare, http.MethodGet, "/x")

				cp := &capture{}
				wrapped := gin.New()
				wrapped.Use(m.build(cp)...)
				wrapped.GET("/x", h.chain...)
				got := serve(wrapped, http.MethodGet, "/x")

				if cp.got == nil {
					t.Fatal("middleware did not run")
				}
				if cp.got.Code != h.status {
					t.Errorf("middleware saw status %d, want %d", cp.got.Code, h.status)
				}
				if !reflect.DeepEqual(cp.got.Body.Bytes(), want.Body.Bytes()) {
					t.Errorf("middleware saw body %q, want %q", cp.got.Body.Bytes(), want.Body.Bytes())
				}
				if got.Code != want.Code {
					t.Errorf("status = %d, bare Gin answers %d", got.Code, want.Code)
				}
				if g, w := got.Result().Header, want.Result().Header; !reflect.DeepEqual(g, w) {
					t.Errorf("header = %v, bare Gin answers %v", g, w)
				}
				if g, w := got.Body.String(), want.Body.String(); g != w {
					t.Errorf("body = %q, bare Gin answers %q", g, w)
				}
			})
		}
	}
}

// TestWrapAnswerInPlace checks that a middleware answering without calling
// next is what the client gets, that no later handler runs, and that Gin
// middleware around Wrap sees the answer and the abort.
func TestWrapAnswerInPlace(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"cache hit", http.StatusOK, `{"source":"cache","data":"x"}`},
		{"unavailable", http.StatusServiceUnavailable, `{"error":"Service unavailable"}`},
		{"no body", http.StatusNotModified, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen atomic.Int32
			var handlerRan, laterRan bool
			var outerStatus int
			var outerAborted bool
			r := gin.New()
			r.Use(func(c *gin.Context) {
				c.Next()
				outerStatus, outerAborted = c.Writer.Status(), c.IsAborted()
			})
			r.Use(Wrap(answer(tt.status, tt.body, &seen)))
			r.Use(func(c *gin.Context) { laterRan = true; c.Next() })
			r.GET("/x", func(c *gin.Context) { handlerRan = true; c.String(http.StatusTeapot, "handler") })

			rec := serve(r, http.MethodGet, "/x")

			if seen.Load() != 1 {
				t.Errorf("middleware ran %d times, want 1", seen.Load())
			}
			if handlerRan || laterRan {
				t.Errorf("handler ran = %v, later middleware ran = %v; want neither", handlerRan, laterRan)
			}
			if rec.Code != tt.status || rec.Body.String() != tt.body || rec.Header().Get("X-Answered") != "1" {
				t.Errorf("got %d %q (X-Answered %q), want %d %q", rec.Code, rec.Body.String(), rec.Header().Get("X-Answered"), tt.status, tt.body)
			}
			if outerStatus != tt.status || !outerAborted {
				t.Errorf("outer Gin middleware saw status %d aborted %v, want %d true", outerStatus, outerAborted, tt.status)
			}
		})
	}
}

// TestWrapRespectsEarlierAbort checks that a context aborted before Wrap is
// left alone, whether Gin's own chain stops it or a Gin middleware calls the
// wrapped function itself after aborting.
func TestWrapRespectsEarlierAbort(t *testing.T) {
	aborts := []struct {
		name  string
		abort gin.HandlerFunc
		code  int
	}{
		{"AbortWithStatus", func(c *gin.Context) { c.AbortWithStatus(http.StatusUnauthorized) }, http.StatusUnauthorized},
		{"AbortWithStatusJSON", func(c *gin.Context) {
			c.AbortWithStatusJSON(http.StatusTooManyRequests, gin.H{"error": "slow down"})
		}, http.StatusTooManyRequests},
	}
	mounts := []struct {
		name  string
		chain func(abort, wrapped gin.HandlerFunc) []gin.HandlerFunc
	}{
		{"earlier middleware", func(abort, wrapped gin.HandlerFunc) []gin.HandlerFunc {
			return []gin.HandlerFunc{abort, wrapped}
		}},
		{"same middleware", func(abort, wrapped gin.HandlerFunc) []gin.HandlerFunc {
			return []gin.HandlerFunc{func(c *gin.Context) { abort(c); wrapped(c) }}
		}},
	}
	for _, a := range aborts {
		for _, m := range mounts {
			t.Run(a.name+"/"+m.name, func(t *testing.T) {
				var seen atomic.Int32
				handlerRan := false
				r := gin.New()
				r.Use(m.chain(a.abort, Wrap(answer(http.StatusOK, "from middleware", &seen)))...)
				r.GET("/x", func(c *gin.Context) { handlerRan = true })

				rec := serve(r, http.MethodGet, "/x")

				if seen.Load() != 0 || handlerRan {
					t.Errorf("middleware ran %d times, handler ran %v; want neither", seen.Load(), handlerRan)
				}
				if rec.Code != a.code {
					t.Errorf("status = %d, want %d", rec.Code, a.code)
				}
			})
		}
	}
}

// TestWrapPanic checks that a panic in a Gin handler reaches the wrapped
// middleware, whatever gin.Recovery does around it.
func TestWrapPanic(t *testing.T) {
	boom := func(*gin.Context) { panic("redis: connection pool exhausted") }
	tests := []struct {
		name       string
		mws        []gin.HandlerFunc
		code       int
		retryAfter string
	}{
		{"wrapped recovery", []gin.HandlerFunc{Wrap(recover503)}, http.StatusServiceUnavailable, "5"},
		{"gin.Recovery outermost", []gin.HandlerFunc{gin.Recovery(), Wrap(recover503)}, http.StatusServiceUnavailable, "5"},
		{"recovery outside a second wrap", []gin.HandlerFunc{Wrap(recover503), Wrap(passThrough)}, http.StatusServiceUnavailable, "5"},
		{"gin.Recovery catches what passes through", []gin.HandlerFunc{gin.RecoveryWithWriter(io.Discard), Wrap(passThrough)}, http.StatusInternalServerError, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			laterRan := false
			r := gin.New()
			r.Use(tt.mws...)
			r.GET("/x", boom, func(*gin.Context) { laterRan = true })

			rec := serve(r, http.MethodGet, "/x")

			if rec.Code != tt.code || rec.Header().Get("Retry-After") != tt.retryAfter {
				t.Errorf("got %d Retry-After %q, want %d %q", rec.Code, rec.Header().Get("Retry-After"), tt.code, tt.retryAfter)
			}
			if tt.code == http.StatusServiceUnavailable && !strings.Contains(rec.Body.String(), `"error"`) {
				t.Errorf("body = %q, want the JSON error", rec.Body.String())
			}
			if laterRan {
				t.Error("a handler after the panicking one ran")
			}
		})
	}
}

type ctxKey struct{}

// TestWrapRequestFromMiddleware checks that handlers see the request the
// middleware passed, and Gin middleware around Wrap the original one.
func TestWrapRequestFromMiddleware(t *testing.T) {
	mw := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, "from middleware"))
			r.Header.Set("X-Added", "yes")
			next.ServeHTTP(w, r)
		})
	}
	var inner, outer any
	var innerHeader string
	r := gin.New()
	r.Use(func(c *gin.Context) { c.Next(); outer = c.Request.Context().Value(ctxKey{}) })
	r.Use(Wrap(mw))
	r.GET("/x", func(c *gin.Context) {
		inner, innerHeader = c.Request.Context().Value(ctxKey{}), c.GetHeader("X-Added")
	})

	serve(r, http.MethodGet, "/x")

	if inner != "from middleware" || innerHeader != "yes" {
		t.Errorf("handler saw context value %v, header %q; want the middleware's", inner, innerHeader)
	}
	if outer != nil {
		t.Errorf("outer Gin middleware saw context value %v, want the original request", outer)
	}
}

// TestWrapNextTwice checks that the Gin chain runs once however often the
// middleware calls next, and that a second call writes nothing.
func TestWrapNextTwice(t *testing.T) {
	second := &countingWriter{header: http.Header{}}
	mw := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			next.ServeHTTP(second, r)
		})
	}
	runs := 0
	r := gin.New()
	r.Use(Wrap(mw))
	r.GET("/x", func(c *gin.Context) { runs++; c.String(http.StatusOK, "once") })

	rec := serve(r, http.MethodGet, "/x")

	if runs != 1 || rec.Body.String() != "once" {
		t.Errorf("handler ran %d times, body %q; want 1, %q", runs, rec.Body.String(), "once")
	}
	if second.calls != 0 {
		t.Errorf("second call of next wrote %d times, want nothing", second.calls)
	}
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

// TestWrapUnrouted checks that Gin's 404 and 405 reach the middleware.
func TestWrapUnrouted(t *testing.T) {
	tests := []struct {
		name   string
		method string
		path   string
		code   int
	}{
		{"no route", http.MethodGet, "/missing", http.StatusNotFound},
		{"no method", http.MethodPost, "/x", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cp := &capture{}
			r := gin.New()
			r.HandleMethodNotAllowed = true
			r.Use(Wrap(cp.Handler))
			r.GET("/x", func(c *gin.Context) { c.String(http.StatusOK, "x") })

			rec := serve(r, tt.method, tt.path)

			if cp.got == nil || cp.got.Code != tt.code || rec.Code != tt.code {
				t.Errorf("client got %d, middleware saw %v; want %d", rec.Code, cp.got, tt.code)
			}
		})
	}
}

// TestWrapPanicsOnMisuse checks the programmer errors.
func TestWrapPanicsOnMisuse(t *testing.T) {
	tests := []struct {
		name string
		run  func()
	}{
		{"nil middleware", func() { Wrap(nil) }},
		{"nil handler", func() { Wrap(func(http.Handler) http.Handler { return nil }) }},
		{"foreign context", func() {
			var got any
			r := gin.New()
			r.Use(Wrap(func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					defer func() { got = recover() }()
					next.ServeHTTP(w, r.WithContext(context.Background()))
				})
			}))
			r.GET("/x", func(*gin.Context) {})
			serve(r, http.MethodGet, "/x")
			panic(got)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				v := recover()
				if s, _ := v.(string); !strings.HasPrefix(s, "ginadapter: ") {
					t.Errorf("panic value %v, want a ginadapter message", v)
				}
			}()
			tt.run()
		})
	}
}

// TestWrapStreaming checks that c.Stream reaches the client chunk by chunk:
// the handler sends its second chunk only after the client read the first.
func TestWrapStreaming(t *testing.T) {
	tests := []struct {
		name string
		mw   func(http.Handler) http.Handler
	}{
		{"pass-through", passThrough},
		{"writer with Unwrap only", unwrapOnly},
		{"recovering middleware", recover503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			firstRead := make(chan struct{})
			r := gin.New()
			r.Use(Wrap(tt.mw))
			r.GET("/stream", func(c *gin.Context) {
				step := 0
				c.Stream(func(w io.Writer) bool {
					step++
					switch step {
					case 1:
						_, _ = io.WriteString(w, "one\n")
						return true
					default:
						select {
						case <-firstRead:
						case <-c.Request.Context().Done():
							return false
						}
						_, _ = io.WriteString(w, "two\n")
						return false
					}
				})
			})
			srv := httptest.NewServer(r)
			defer srv.Close()

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/stream", nil)
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			br := bufio.NewReader(res.Body)
			line, err := br.ReadString('\n')
			if err != nil || line != "one\n" {
				t.Fatalf("first chunk = %q, %v; want it before the handler goes on", line, err)
			}
			close(firstRead)
			rest, err := io.ReadAll(br)
			if err != nil || string(rest) != "two\n" {
				t.Errorf("rest = %q, %v; want %q", rest, err, "two\n")
			}
		})
	}
}

// TestWrapHead checks HEAD requests through a real server: same status and
// headers as bare Gin, no body.
func TestWrapHead(t *testing.T) {
	handler := func(c *gin.Context) {
		c.Header("X-Key", "k")
		c.String(http.StatusOK, "a body that HEAD does not send")
	}
	var seen atomic.Int32
	tests := []struct {
		name   string
		mws    []gin.HandlerFunc
		code   int
		header string // a header that must be there
	}{
		{"bare", nil, http.StatusOK, "X-Key"},
		{"capture and replay", []gin.HandlerFunc{Wrap((&capture{}).Handler)}, http.StatusOK, "X-Key"},
		{"answer in place", []gin.HandlerFunc{Wrap(answer(http.StatusOK, "cached", &seen))}, http.StatusOK, "X-Answered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := gin.New()
			r.Use(tt.mws...)
			r.HEAD("/x", handler)
			srv := httptest.NewServer(r)
			defer srv.Close()

			res, err := srv.Client().Head(srv.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.code || res.Header.Get(tt.header) == "" || len(body) != 0 {
				t.Errorf("got %d %s=%q body %q; want %d, the header, no body", res.StatusCode, tt.header, res.Header.Get(tt.header), body, tt.code)
			}
		})
	}
}

// TestWrapHijack checks that c.Writer.Hijack reaches the server's connection
// through the middleware's writer, and fails cleanly where it cannot.
func TestWrapHijack(t *testing.T) {
	tests := []struct {
		name string
		mw   func(http.Handler) http.Handler
		want string
	}{
		{"pass-through", passThrough, "hijacked"},
		{"writer with Unwrap only", unwrapOnly, "hijacked"},
		{"capturing writer", (&capture{}).Handler, "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := gin.New()
			r.Use(Wrap(tt.mw))
			r.GET("/x", func(c *gin.Context) {
				conn, buf, err := c.Writer.Hijack()
				if err != nil {
					if errors.Is(err, http.ErrNotSupported) {
						c.String(http.StatusInternalServerError, "not supported")
					} else {
						c.String(http.StatusInternalServerError, err.Error())
					}
					return
				}
				defer conn.Close()
				fmt.Fprint(buf, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
				_ = buf.Flush()
			})
			srv := httptest.NewServer(r)
			defer srv.Close()

			res, err := srv.Client().Get(srv.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(body) != tt.want {
				t.Errorf("body = %q, want %q", body, tt.want)
			}
		})
	}
}
