package echov5

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

	"github.com/labstack/echo/v5"
	echomw "github.com/labstack/echo/v5/middleware"
)

// TestWrapSeesHandlerResponse runs Echo handlers that answer in each of
// Echo's ways, once bare and once under wrapped capturing middleware, and
// checks that the middleware saw the response and replayed it byte for byte.
func TestWrapSeesHandlerResponse(t *testing.T) {
	handlers := []struct {
		name   string
		mws    []echo.MiddlewareFunc // Echo middleware between Wrap and the handler
		h      echo.HandlerFunc
		status int // what the middleware must see
	}{
		{"JSON", nil, func(c *echo.Context) error {
			return c.JSON(http.StatusCreated, map[string]string{"source": "primary", "data": "x"})
		}, http.StatusCreated},
		{"String", nil, func(c *echo.Context) error { return c.String(http.StatusOK, "hello echo") }, http.StatusOK},
		{"NoContent", nil, func(c *echo.Context) error { return c.NoContent(http.StatusNoContent) }, http.StatusNoContent},
		{"Blob with headers", nil, func(c *echo.Context) error {
			c.Response().Header().Set("Cache-Control", "max-age=60")
			c.Response().Header().Add("Vary", "Accept")
			c.Response().Header().Add("Vary", "Accept-Encoding")
			return c.Blob(http.StatusOK, "application/octet-stream", []byte{0, 1, 2, 0xff})
		}, http.StatusOK},
		{"nothing written", nil, func(*echo.Context) error { return nil }, http.StatusOK},
		{"Redirect", nil, func(c *echo.Context) error { return c.Redirect(http.StatusFound, "/elsewhere") }, http.StatusFound},
		{"HTTPError", nil, func(*echo.Context) error {
			return echo.NewHTTPError(http.StatusInternalServerError, "redis: connection refused")
		}, http.StatusInternalServerError},
		{"plain error", nil, func(*echo.Context) error { return errors.New("redis: i/o timeout") }, http.StatusInternalServerError},
		{"HTTPError 404", nil, func(*echo.Context) error { return echo.ErrNotFound }, http.StatusNotFound},
		{"later Echo middleware answers", []echo.MiddlewareFunc{func(echo.HandlerFunc) echo.HandlerFunc {
			return func(c *echo.Context) error { return c.JSON(http.StatusForbidden, map[string]string{"error": "no"}) }
		}}, func(c *echo.Context) error { return c.String(http.StatusOK, "must not run") }, http.StatusForbidden},
		{"later Echo middleware returns an error", []echo.MiddlewareFunc{func(echo.HandlerFunc) echo.HandlerFunc {
			return func(*echo.Context) error { return echo.ErrUnauthorized }
		}}, func(c *echo.Context) error { return c.String(http.StatusOK, "must not run") }, http.StatusUnauthorized},
		{"later Echo middleware around handler", []echo.MiddlewareFunc{func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c *echo.Context) error { c.Response().Header().Set("X-Before", "1"); return next(c) }
		}}, func(c *echo.Context) error { return c.String(http.StatusOK, "inner") }, http.StatusOK},
	}
	mounts := []struct {
		name  string
		build func(cp *capture) []echo.MiddlewareFunc
	}{
		{"one wrap", func(cp *capture) []echo.MiddlewareFunc {
			return []echo.MiddlewareFunc{Wrap(cp.Handler)}
		}},
		{"two wraps", func(cp *capture) []echo.MiddlewareFunc {
			return []echo.MiddlewareFunc{Wrap(passThrough), Wrap(cp.Handler)}
		}},
		{"wrap over a writer wrapper", func(cp *capture) []echo.MiddlewareFunc {
			return []echo.MiddlewareFunc{Wrap(cp.Handler), Wrap(unwrapOnly)}
		}},
	}
	for _, h := range handlers {
		for _, m := range mounts {
			t.Run(h.name+"/"+m.name, func(t *testing.T) {
				bare := newEcho()
				bare.GET("/x", h.h, h.mws...)
				want := serve(bare, http.MethodGet, "/x")

				cp := &capture{}
				wrapped := newEcho()
				wrapped.Use(m.build(cp)...)
				wrapped.GET("/x", h.h, h.mws...)
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
					t.Errorf("status = %d, bare Echo answers %d", got.Code, want.Code)
				}
				if g, w := got.Result().Header, want.Result().Header; !reflect.DeepEqual(g, w) {
					t.Errorf("header = %v, bare Echo answers %v", g, w)
				}
				if g, w := got.Body.String(), want.Body.String(); g != w {
					t.Errorf("body = %q, bare Echo answers %q", g, w)
				}
			})
		}
	}
}

// TestWrapReplacesErrorResponse checks that a middleware sees the response
// for an error the handler returned, and can answer in its place.
func TestWrapReplacesErrorResponse(t *testing.T) {
	tests := []struct {
		name    string
		h       echo.HandlerFunc
		errH    echo.HTTPErrorHandler // nil: Echo's default
		code    int
		body    string
		handled int // calls of the error handler
	}{
		{"HTTPError 500", func(*echo.Context) error {
			return echo.NewHTTPError(http.StatusInternalServerError, "redis down")
		}, nil, http.StatusOK, "stale", 0},
		{"plain error", func(*echo.Context) error { return errors.New("redis down") }, nil, http.StatusOK, "stale", 0},
		{"HTTPError 404 passes", func(*echo.Context) error { return echo.ErrNotFound }, nil,
			http.StatusNotFound, `{"message":"Not Found"}` + "\n", 0},
		{"custom error handler", func(*echo.Context) error { return errors.New("redis down") },
			func(c *echo.Context, err error) { _ = c.String(http.StatusBadGateway, err.Error()) },
			http.StatusOK, "stale", 1},
		{"custom error handler, 4xx passes", func(*echo.Context) error { return echo.ErrBadRequest },
			func(c *echo.Context, err error) { _ = c.String(http.StatusTeapot, "custom") },
			http.StatusTeapot, "custom", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEcho()
			calls := 0
			if tt.errH != nil {
				e.HTTPErrorHandler = func(c *echo.Context, err error) { calls++; tt.errH(c, err) }
			}
			var outerStatus int
			e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
				return func(c *echo.Context) error {
					err := next(c)
					outerStatus = response(c).Status
					return err
				}
			})
			e.Use(Wrap(staleOn5xx))
			e.GET("/x", tt.h)

			rec := serve(e, http.MethodGet, "/x")

			if rec.Code != tt.code || rec.Body.String() != tt.body {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body.String(), tt.code, tt.body)
			}
			if outerStatus != tt.code {
				t.Errorf("outer Echo middleware saw status %d, want %d", outerStatus, tt.code)
			}
			if tt.errH != nil && calls != tt.handled {
				t.Errorf("error handler ran %d times, want %d", calls, tt.handled)
			}
		})
	}
}

// TestWrapAnswerInPlace checks that a middleware answering without calling
// next is what the client gets, that no later handler runs, and that Echo
// middleware around Wrap sees the answer.
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
			var outerErr error
			e := newEcho()
			e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
				return func(c *echo.Context) error {
					outerErr = next(c)
					outerStatus = response(c).Status
					return outerErr
				}
			})
			e.Use(Wrap(answer(tt.status, tt.body, &seen)))
			e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
				return func(c *echo.Context) error { laterRan = true; return next(c) }
			})
			e.GET("/x", func(c *echo.Context) error { handlerRan = true; return c.String(http.StatusTeapot, "handler") })

			rec := serve(e, http.MethodGet, "/x")

			if seen.Load() != 1 {
				t.Errorf("middleware ran %d times, want 1", seen.Load())
			}
			if handlerRan || laterRan {
				t.Errorf("handler ran = %v, later middleware ran = %v; want neither", handlerRan, laterRan)
			}
			if rec.Code != tt.status || rec.Body.String() != tt.body || rec.Header().Get("X-Answered") != "1" {
				t.Errorf("got %d %q (X-Answered %q), want %d %q", rec.Code, rec.Body.String(), rec.Header().Get("X-Answered"), tt.status, tt.body)
			}
			if outerStatus != tt.status || outerErr != nil {
				t.Errorf("outer Echo middleware saw status %d error %v, want %d nil", outerStatus, outerErr, tt.status)
			}
		})
	}
}

// TestWrapPanic checks that a panic in an Echo handler reaches the wrapped
// middleware, whatever Echo's Recover does around it.
func TestWrapPanic(t *testing.T) {
	quietRecover := echomw.RecoverWithConfig(echomw.RecoverConfig{DisablePrintStack: true})
	tests := []struct {
		name       string
		mws        []echo.MiddlewareFunc
		code       int
		retryAfter string
	}{
		{"wrapped recovery", []echo.MiddlewareFunc{Wrap(recover503)}, http.StatusServiceUnavailable, "5"},
		{"Echo Recover outermost", []echo.MiddlewareFunc{quietRecover, Wrap(recover503)}, http.StatusServiceUnavailable, "5"},
		{"recovery outside a second wrap", []echo.MiddlewareFunc{Wrap(recover503), Wrap(passThrough)}, http.StatusServiceUnavailable, "5"},
		{"Echo Recover catches what passes through", []echo.MiddlewareFunc{quietRecover, Wrap(passThrough)}, http.StatusInternalServerError, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEcho()
			e.Use(tt.mws...)
			e.GET("/x", func(*echo.Context) error { panic("redis: connection pool exhausted") })

			rec := serve(e, http.MethodGet, "/x")

			if rec.Code != tt.code || rec.Header().Get("Retry-After") != tt.retryAfter {
				t.Errorf("got %d Retry-After %q, want %d %q", rec.Code, rec.Header().Get("Retry-After"), tt.code, tt.retryAfter)
			}
			if !strings.Contains(rec.Body.String(), `"`) {
				t.Errorf("body = %q, want a JSON error", rec.Body.String())
			}
		})
	}
}

type ctxKey struct{}

// TestWrapRequestFromMiddleware checks that handlers see the request the
// middleware passed, and Echo middleware around Wrap the original one.
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
	e := newEcho()
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			err := next(c)
			outer = c.Request().Context().Value(ctxKey{})
			return err
		}
	})
	e.Use(Wrap(mw))
	e.GET("/x", func(c *echo.Context) error {
		inner, innerHeader = c.Request().Context().Value(ctxKey{}), c.Request().Header.Get("X-Added")
		return nil
	})

	serve(e, http.MethodGet, "/x")

	if inner != "from middleware" || innerHeader != "yes" {
		t.Errorf("handler saw context value %v, header %q; want the middleware's", inner, innerHeader)
	}
	if outer != nil {
		t.Errorf("outer Echo middleware saw context value %v, want the original request", outer)
	}
}

// TestWrapNextTwice checks that the Echo chain runs once however often the
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
	e := newEcho()
	e.Use(Wrap(mw))
	e.GET("/x", func(c *echo.Context) error { runs++; return c.String(http.StatusOK, "once") })

	rec := serve(e, http.MethodGet, "/x")

	if runs != 1 || rec.Body.String() != "once" {
		t.Errorf("handler ran %d times, body %q; want 1, %q", runs, rec.Body.String(), "once")
	}
	if second.calls != 0 {
		t.Errorf("second call of next wrote %d times, want nothing", second.calls)
	}
}

// TestWrapUnrouted checks that Echo's 404 and 405 reach the middleware.
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
			e := newEcho()
			e.Use(Wrap(cp.Handler))
			e.GET("/x", func(c *echo.Context) error { return c.String(http.StatusOK, "x") })

			rec := serve(e, tt.method, tt.path)

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
			e := newEcho()
			e.Use(Wrap(func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					defer func() { got = recover() }()
					next.ServeHTTP(w, r.WithContext(context.Background()))
				})
			}))
			e.GET("/x", func(*echo.Context) error { return nil })
			serve(e, http.MethodGet, "/x")
			panic(got)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				v := recover()
				if s, _ := v.(string); !strings.HasPrefix(s, "echov5: ") {
					t.Errorf("panic value %v, want an echov5 message", v)
				}
			}()
			tt.run()
		})
	}
}

// TestWrapStreaming checks that flushed writes reach the client chunk by
// chunk: the handler sends its second chunk only after the client read the
// first.
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
			e := newEcho()
			e.Use(Wrap(tt.mw))
			e.GET("/stream", func(c *echo.Context) error {
				res := c.Response()
				res.Header().Set(echo.HeaderContentType, "text/plain")
				res.WriteHeader(http.StatusOK)
				_, _ = io.WriteString(res, "one\n")
				_ = http.NewResponseController(res).Flush()
				select {
				case <-firstRead:
				case <-c.Request().Context().Done():
					return nil
				}
				_, _ = io.WriteString(res, "two\n")
				return nil
			})
			srv := httptest.NewServer(e)
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

// TestWrapHead checks HEAD requests through a real server: the status and
// headers, no body.
func TestWrapHead(t *testing.T) {
	handler := func(c *echo.Context) error {
		c.Response().Header().Set("X-Key", "k")
		return c.String(http.StatusOK, "a body that HEAD does not send")
	}
	var seen atomic.Int32
	tests := []struct {
		name   string
		mws    []echo.MiddlewareFunc
		code   int
		header string // a header that must be there
	}{
		{"bare", nil, http.StatusOK, "X-Key"},
		{"capture and replay", []echo.MiddlewareFunc{Wrap((&capture{}).Handler)}, http.StatusOK, "X-Key"},
		{"answer in place", []echo.MiddlewareFunc{Wrap(answer(http.StatusOK, "cached", &seen))}, http.StatusOK, "X-Answered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEcho()
			e.Use(tt.mws...)
			e.HEAD("/x", handler)
			srv := httptest.NewServer(e)
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

// TestWrapHijack checks that Hijack reaches the server's connection through
// the middleware's writer, and fails cleanly where it cannot.
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
			e := newEcho()
			e.Use(Wrap(tt.mw))
			e.GET("/x", func(c *echo.Context) error {
				conn, buf, err := http.NewResponseController(c.Response()).Hijack()
				if errors.Is(err, http.ErrNotSupported) {
					return c.String(http.StatusInternalServerError, "not supported")
				} else if err != nil {
					return err
				}
				defer conn.Close()
				fmt.Fprint(buf, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
				return buf.Flush()
			})
			srv := httptest.NewServer(e)
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

// TestWrapResponseStartsAsEchos checks that Echo middleware inside Wrap sees
// a fresh response as Echo makes it: status 200, nothing committed.
func TestWrapResponseStartsAsEchos(t *testing.T) {
	for _, wrapped := range []bool{false, true} {
		t.Run(fmt.Sprintf("wrapped=%v", wrapped), func(t *testing.T) {
			var status int
			var committed bool
			e := newEcho()
			if wrapped {
				e.Use(Wrap(passThrough))
			}
			e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
				return func(c *echo.Context) error {
					status, committed = response(c).Status, response(c).Committed
					return next(c)
				}
			})
			e.GET("/x", func(*echo.Context) error { return nil })

			serve(e, http.MethodGet, "/x")

			if status != http.StatusOK || committed {
				t.Errorf("inner middleware saw status %d committed %v, want 200 false", status, committed)
			}
		})
	}
}

// TestWrapRoutePattern checks that the middleware sees the route's pattern
// and path values on the request, as with echo.WrapMiddleware.
func TestWrapRoutePattern(t *testing.T) {
	var pattern, key string
	mw := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			pattern, key = r.Pattern, r.PathValue("key")
			next.ServeHTTP(w, r)
		})
	}
	e := newEcho()
	e.GET("/api/data/:key", func(c *echo.Context) error { return c.String(http.StatusOK, c.Param("key")) }, Wrap(mw))

	rec := serve(e, http.MethodGet, "/api/data/k1")

	if pattern != "/api/data/:key" || key != "k1" || rec.Body.String() != "k1" {
		t.Errorf("middleware saw pattern %q key %q, handler answered %q; want /api/data/:key, k1, k1", pattern, key, rec.Body.String())
	}
}
