package adaptertest

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

// This file holds the cases of an adapter's Wrap that need no server: what a
// wrapped middleware sees of the framework's answers, and what the framework
// sees of the middleware's.

// wrapSeesHandlerResponse runs the framework's handlers that answer in each of
// its ways, once bare and once under wrapped capturing middleware, and checks
// that the middleware saw the response and replayed it byte for byte.
func wrapSeesHandlerResponse[E http.Handler](t *testing.T, a Adapter[E]) {
	if len(a.Writes) == 0 {
		t.Fatal("Adapter.Writes is empty")
	}
	mounts := []struct {
		name  string
		build func(e E, cp *Capture)
	}{
		{"one wrap", func(e E, cp *Capture) { a.Use(e, cp.Handler) }},
		{"two wraps", func(e E, cp *Capture) { a.Use(e, PassThrough); a.Use(e, cp.Handler) }},
		{"wrap over a writer wrapper", func(e E, cp *Capture) { a.Use(e, cp.Handler); a.Use(e, UnwrapOnly) }},
	}
	for _, h := range a.Writes {
		for _, m := range mounts {
			t.Run(h.Name+"/"+m.name, func(t *testing.T) {
				bare := a.New()
				h.Route(bare, "/x")
				want := Serve(bare, http.MethodGet, "/x")

				cp := &Capture{}
				wrapped := a.New()
				m.build(wrapped, cp)
				h.Route(wrapped, "/x")
				got := Serve(wrapped, http.MethodGet, "/x")

				if cp.Got == nil {
					t.Fatal("middleware did not run")
				}
				if cp.Got.Code != h.Status {
					t.Errorf("middleware saw status %d, want %d", cp.Got.Code, h.Status)
				}
				if !reflect.DeepEqual(cp.Got.Body.Bytes(), want.Body.Bytes()) {
					t.Errorf("middleware saw body %q, want %q", cp.Got.Body.Bytes(), want.Body.Bytes())
				}
				if got.Code != want.Code {
					t.Errorf("status = %d, bare %s answers %d", got.Code, a.Framework, want.Code)
				}
				if g, w := got.Result().Header, want.Result().Header; !reflect.DeepEqual(g, w) {
					t.Errorf("header = %v, bare %s answers %v", g, a.Framework, w)
				}
				if g, w := got.Body.String(), want.Body.String(); g != w {
					t.Errorf("body = %q, bare %s answers %q", g, a.Framework, w)
				}
			})
		}
	}
}

// wrapReplacesFailure checks that a middleware sees the response for each of
// the framework's ways to fail (an error returned, a 5xx written) and can
// answer in its place, and that outer framework middleware sees its answer.
func wrapReplacesFailure[E http.Handler](t *testing.T, a Adapter[E]) {
	if len(a.Failures) == 0 {
		t.Fatal("Adapter.Failures is empty")
	}
	for _, tt := range a.Failures {
		t.Run(tt.Name, func(t *testing.T) {
			e := a.New()
			calls := func() int { return 0 }
			if tt.ErrorHandler != nil {
				calls = tt.ErrorHandler(e)
			}
			outer := observe(a, e)
			a.Use(e, staleOn5xx)
			tt.Route(e, "/x")

			rec := Serve(e, http.MethodGet, "/x")

			if rec.Code != tt.Code || rec.Body.String() != tt.Body {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body.String(), tt.Code, tt.Body)
			}
			if outer.status != tt.Code || outer.err != nil {
				t.Errorf("outer %s middleware saw status %d error %v, want %d nil", a.Framework, outer.status, outer.err, tt.Code)
			}
			if n := calls(); n != tt.Handled {
				t.Errorf("error handler ran %d times, want %d", n, tt.Handled)
			}
		})
	}
}

// wrapAnswerInPlace checks that a middleware answering without calling next
// is what the client gets, that no later handler runs, and that framework
// middleware around Wrap sees the answer (and, in Gin, the abort).
func wrapAnswerInPlace[E http.Handler](t *testing.T, a Adapter[E]) {
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
			e := a.New()
			outer := observe(a, e)
			a.Use(e, Answer(tt.status, tt.body, &seen))
			a.UseNative(e, func(_ Ctx, next func() error) error { laterRan = true; return next() })
			a.Handle(e, http.MethodGet, "/x", func(c Ctx) { handlerRan = true; c.String(http.StatusTeapot, "handler") })

			rec := Serve(e, http.MethodGet, "/x")

			if seen.Load() != 1 {
				t.Errorf("middleware ran %d times, want 1", seen.Load())
			}
			if handlerRan || laterRan {
				t.Errorf("handler ran = %v, later middleware ran = %v; want neither", handlerRan, laterRan)
			}
			if rec.Code != tt.status || rec.Body.String() != tt.body || rec.Header().Get("X-Answered") != "1" {
				t.Errorf("got %d %q (X-Answered %q), want %d %q", rec.Code, rec.Body.String(), rec.Header().Get("X-Answered"), tt.status, tt.body)
			}
			if outer.status != tt.status || outer.aborted != a.AbortsOnAnswer || outer.err != nil {
				t.Errorf("outer %s middleware saw status %d aborted %v error %v, want %d %v nil",
					a.Framework, outer.status, outer.aborted, outer.err, tt.status, a.AbortsOnAnswer)
			}
		})
	}
}

// wrapPanic checks that a panic in a handler reaches the wrapped middleware,
// whatever the framework's own recovery does around it, and that no handler
// after the panicking one runs.
func wrapPanic[E http.Handler](t *testing.T, a Adapter[E]) {
	tests := []struct {
		name       string
		mount      func(e E)
		code       int
		retryAfter string
		body       string // a part of the body
	}{
		{"wrapped recovery", func(e E) { a.Use(e, recover503) }, http.StatusServiceUnavailable, "5", `"error"`},
		{a.Framework + " recovery outermost", func(e E) { a.Recovery(e); a.Use(e, recover503) }, http.StatusServiceUnavailable, "5", `"error"`},
		{"recovery outside a second wrap", func(e E) { a.Use(e, recover503); a.Use(e, PassThrough) }, http.StatusServiceUnavailable, "5", `"error"`},
		{a.Framework + " recovery catches what passes through", func(e E) { a.Recovery(e); a.Use(e, PassThrough) },
			http.StatusInternalServerError, "", a.RecoveredBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			laterRan := false
			e := a.New()
			tt.mount(e)
			a.Handle(e, http.MethodGet, "/x",
				func(Ctx) { panic("redis: connection pool exhausted") },
				func(Ctx) { laterRan = true })

			rec := Serve(e, http.MethodGet, "/x")

			if rec.Code != tt.code || rec.Header().Get("Retry-After") != tt.retryAfter {
				t.Errorf("got %d Retry-After %q, want %d %q", rec.Code, rec.Header().Get("Retry-After"), tt.code, tt.retryAfter)
			}
			if !strings.Contains(rec.Body.String(), tt.body) {
				t.Errorf("body = %q, want it to contain %q", rec.Body.String(), tt.body)
			}
			if laterRan {
				t.Error("a handler after the panicking one ran")
			}
		})
	}
}

type ctxKey struct{}

// wrapRequestFromMiddleware checks that handlers see the request the
// middleware passed, and framework middleware around Wrap the original one.
func wrapRequestFromMiddleware[E http.Handler](t *testing.T, a Adapter[E]) {
	mw := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, "from middleware"))
			r.Header.Set("X-Added", "yes")
			next.ServeHTTP(w, r)
		})
	}
	var inner any
	var innerHeader string
	e := a.New()
	outer := observe(a, e)
	a.Use(e, mw)
	a.Handle(e, http.MethodGet, "/x", func(c Ctx) {
		inner, innerHeader = c.Request().Context().Value(ctxKey{}), c.Request().Header.Get("X-Added")
	})

	Serve(e, http.MethodGet, "/x")

	if inner != "from middleware" || innerHeader != "yes" {
		t.Errorf("handler saw context value %v, header %q; want the middleware's", inner, innerHeader)
	}
	if outer.request == nil {
		t.Fatalf("outer %s middleware did not run", a.Framework)
	}
	if v := outer.request.Context().Value(ctxKey{}); v != nil {
		t.Errorf("outer %s middleware saw context value %v, want the original request", a.Framework, v)
	}
}

// wrapNextTwice checks that the framework's chain runs once however often the
// middleware calls next, and that a second call writes nothing.
func wrapNextTwice[E http.Handler](t *testing.T, a Adapter[E]) {
	second := &CountingWriter{}
	mw := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			next.ServeHTTP(second, r)
		})
	}
	runs := 0
	e := a.New()
	a.Use(e, mw)
	a.Handle(e, http.MethodGet, "/x", func(c Ctx) { runs++; c.String(http.StatusOK, "once") })

	rec := Serve(e, http.MethodGet, "/x")

	if runs != 1 || rec.Body.String() != "once" {
		t.Errorf("handler ran %d times, body %q; want 1, %q", runs, rec.Body.String(), "once")
	}
	if second.Calls != 0 {
		t.Errorf("second call of next wrote %d times, want nothing", second.Calls)
	}
}

// wrapUnrouted checks that the framework's 404 and 405 reach the middleware.
func wrapUnrouted[E http.Handler](t *testing.T, a Adapter[E]) {
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
			cp := &Capture{}
			e := a.New()
			a.Use(e, cp.Handler)
			a.Handle(e, http.MethodGet, "/x", func(c Ctx) { c.String(http.StatusOK, "x") })

			rec := Serve(e, tt.method, tt.path)

			if cp.Got == nil || cp.Got.Code != tt.code || rec.Code != tt.code {
				t.Errorf("client got %d, middleware saw %v; want %d", rec.Code, cp.Got, tt.code)
			}
		})
	}
}

// wrapPanicsOnMisuse checks the programmer errors.
func wrapPanicsOnMisuse[E http.Handler](t *testing.T, a Adapter[E]) {
	tests := []struct {
		name string
		run  func()
	}{
		{"nil middleware", func() { a.Wrap(nil) }},
		{"nil handler", func() { a.Wrap(func(http.Handler) http.Handler { return nil }) }},
		{"foreign context", func() {
			var got any
			e := a.New()
			a.Use(e, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					defer func() { got = recover() }()
					next.ServeHTTP(w, r.WithContext(context.Background()))
				})
			})
			a.Handle(e, http.MethodGet, "/x", func(Ctx) {})
			Serve(e, http.MethodGet, "/x")
			panic(got)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				v := recover()
				if s, _ := v.(string); !strings.HasPrefix(s, a.Package+": ") {
					t.Errorf("panic value %v, want a %s message", v, a.Package)
				}
			}()
			tt.run()
		})
	}
}

// wrapResponseStartsFresh checks that framework middleware inside Wrap sees a
// fresh response as the framework makes it: status 200, nothing written.
func wrapResponseStartsFresh[E http.Handler](t *testing.T, a Adapter[E]) {
	for _, wrapped := range []bool{false, true} {
		name := "bare"
		if wrapped {
			name = "wrapped"
		}
		t.Run(name, func(t *testing.T) {
			status, written := -1, true
			e := a.New()
			if wrapped {
				a.Use(e, PassThrough)
			}
			a.UseNative(e, func(c Ctx, next func() error) error {
				status, written = c.Status(), c.Written()
				return next()
			})
			a.Handle(e, http.MethodGet, "/x", func(Ctx) {})

			Serve(e, http.MethodGet, "/x")

			if status != http.StatusOK || written {
				t.Errorf("inner middleware saw status %d written %v, want 200 false", status, written)
			}
		})
	}
}
