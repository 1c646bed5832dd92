package adaptertest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// This file holds the cases of an adapter's Wrap that need a real server and
// connection: streaming, HEAD, Hijack.

// wrapStreaming checks that the framework's streaming reaches the client chunk
// by chunk: the handler sends its second chunk only after the client read the
// first.
func wrapStreaming[E http.Handler](t *testing.T, a Adapter[E]) {
	tests := []struct {
		name string
		mw   Middleware
	}{
		{"pass-through", PassThrough},
		{"writer with Unwrap only", UnwrapOnly},
		{"recovering middleware", recover503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			firstRead := make(chan struct{})
			e := a.New()
			a.Use(e, tt.mw)
			a.Handle(e, http.MethodGet, "/stream", func(c Ctx) {
				step := 0
				c.Stream(func(w io.Writer) bool {
					step++
					if step == 1 {
						_, _ = io.WriteString(w, "one\n")
						return true
					}
					select {
					case <-firstRead:
					case <-c.Request().Context().Done():
						return false
					}
					_, _ = io.WriteString(w, "two\n")
					return false
				})
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

// wrapHead checks HEAD requests through a real server: the status and the
// headers of the handler or of the middleware answering in its place, no
// body.
func wrapHead[E http.Handler](t *testing.T, a Adapter[E]) {
	handler := func(c Ctx) {
		c.Header().Set("X-Key", "k")
		c.String(http.StatusOK, "a body that HEAD does not send")
	}
	var seen atomic.Int32
	tests := []struct {
		name   string
		mws    []Middleware
		code   int
		header string // a header that must be there
	}{
		{"bare", nil, http.StatusOK, "X-Key"},
		{"capture and replay", []Middleware{(&Capture{}).Handler}, http.StatusOK, "X-Key"},
		{"answer in place", []Middleware{Answer(http.StatusOK, "cached", &seen)}, http.StatusOK, "X-Answered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := a.New()
			for _, mw := range tt.mws {
				a.Use(e, mw)
			}
			a.Handle(e, http.MethodHead, "/x", handler)
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

// wrapHijack checks that the framework's Hijack reaches the server's
// connection through the middleware's writer, and fails cleanly where it
// cannot.
func wrapHijack[E http.Handler](t *testing.T, a Adapter[E]) {
	tests := []struct {
		name string
		mw   Middleware
		want string
	}{
		{"pass-through", PassThrough, "hijacked"},
		{"writer with Unwrap only", UnwrapOnly, "hijacked"},
		{"capturing writer", (&Capture{}).Handler, "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := a.New()
			a.Use(e, tt.mw)
			a.Handle(e, http.MethodGet, "/x", func(c Ctx) {
				conn, buf, err := c.Hijack()
				if errors.Is(err, http.ErrNotSupported) {
					c.String(http.StatusInternalServerError, "not supported")
					return
				} else if err != nil {
					c.Fail(http.StatusInternalServerError, err.Error())
					return
				}
				defer conn.Close()
				fmt.Fprint(buf, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
				_ = buf.Flush()
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
