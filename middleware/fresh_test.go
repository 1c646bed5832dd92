package middleware

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/justinas/alice"

	"github.com/failsoft/failsoft/internal/decoded"
	"github.com/failsoft/failsoft/store"
)

// countingGetter is an in-process store that counts how it is read, and
// whose PeekDecoded panics while peekPanics is set.
type countingGetter struct {
	*store.Memory
	peeks, gets atomic.Int64
	peekPanics  atomic.Bool
}

func (s *countingGetter) GetDecoded(ctx context.Context, key string, d decoded.Decoder, now time.Time) (any, error) {
	s.gets.Add(1)
	return s.Memory.GetDecoded(ctx, key, d, now)
}

func (s *countingGetter) PeekDecoded(key string, d decoded.Decoder, now time.Time) (any, bool) {
	s.peeks.Add(1)
	if s.peekPanics.Load() {
		panic("peek")
	}
	return s.Memory.PeekDecoded(key, d, now)
}

// TestChainFreshMatchesRecoverThenCache builds two identical caches on one
// clock, one behind Chain and one behind alice.New(Recover, cache), sends
// both the same requests in the same order, and checks that the answers
// are the same, byte for byte (Age and Cache-Status included), whichever
// path Chain took: fresh hits, HEAD, conditional requests, request
// directives, Vary, a stale entry, a stored 500 while a breaker is open
// (Recover's 503), bypassed requests. It also checks that Chain took its
// fast path exactly for the fresh hits without request directives.
func TestChainFreshMatchesRecoverThenCache(t *testing.T) {
	clock := newTestClock()
	breaker := &fakeBreaker{state: store.StateClosed, after: 7 * time.Second}
	setBreaker := func(s store.State) {
		breaker.mu.Lock()
		breaker.state = s
		breaker.mu.Unlock()
	}
	type side struct {
		c       *Cache
		s       *countingGetter
		h       http.Handler
		origins map[string]*origin
	}
	build := func(fast bool) side {
		s := &countingGetter{Memory: newSharedMemory(t)}
		c := newTestCache(t, s, WithClock(clock.Now), WithServerErrors(true))
		origins := map[string]*origin{
			"/fresh": newOrigin(200, `{"data":"fresh"}`, "Content-Type", "application/json",
				"Cache-Control", "max-age=60", "Etag", `"v1"`, "Last-Modified", "Tue, 04 Mar 2025 05:00:00 GMT", "X-Multi", "a", "X-Multi", "b"),
			"/vary":  newOrigin(200, "vary", "Cache-Control", "max-age=60", "Vary", "Accept-Language"),
			"/stale": newOrigin(200, "stale", "Cache-Control", "max-age=1, stale-while-revalidate=600"),
			"/500":   newOrigin(500, "broken", "Cache-Control", "max-age=60"),
		}
		mux := http.NewServeMux()
		for path, o := range origins {
			mux.Handle(path, o)
		}
		opts := []RecoverOption{WithBreakers(breaker), WithLogger(slog.New(slog.DiscardHandler))}
		h := alice.New(Recover(opts...), c.Handler).Then(mux)
		if fast {
			h = Chain(c, opts...).Then(mux)
		}
		return side{c: c, s: s, h: h, origins: origins}
	}
	fast, slow := build(true), build(false)
	for _, sd := range []side{fast, slow} {
		for path := range sd.origins {
			do(sd.c, sd.h, "GET", "http://example.com"+path)
		}
	}
	clock.Add(2 * time.Second) // /stale is stale now; Age is 2 everywhere

	tests := []struct {
		name     string
		method   string
		path     string
		hdr      []string
		openBrk  bool
		wantFast bool
	}{
		{name: "fresh hit", method: "GET", path: "/fresh", wantFast: true},
		{name: "HEAD", method: "HEAD", path: "/fresh", wantFast: true},
		{name: "If-None-Match", method: "GET", path: "/fresh", hdr: []string{"If-None-Match", `"v1"`}, wantFast: true},
		{name: "If-None-Match other", method: "GET", path: "/fresh", hdr: []string{"If-None-Match", `"v0"`}, wantFast: true},
		{name: "If-Modified-Since", method: "GET", path: "/fresh", hdr: []string{"If-Modified-Since", "Tue, 04 Mar 2025 05:00:00 GMT"}, wantFast: true},
		{name: "max-age=0", method: "GET", path: "/fresh", hdr: []string{"Cache-Control", "max-age=0"}},
		{name: "only-if-cached", method: "GET", path: "/fresh", hdr: []string{"Cache-Control", "only-if-cached"}},
		{name: "vary, first", method: "GET", path: "/vary", hdr: []string{"Accept-Language", "de"}},
		{name: "vary, again", method: "GET", path: "/vary", hdr: []string{"Accept-Language", "de"}},
		{name: "stale", method: "GET", path: "/stale"},
		{name: "stored 500, breaker closed", method: "GET", path: "/500"},
		{name: "stored 500, breaker open", method: "GET", path: "/500", openBrk: true},
		{name: "POST", method: "POST", path: "/fresh"},
		{name: "after the POST", method: "GET", path: "/fresh"},
		{name: "method override", method: "GET", path: "/fresh", hdr: []string{"X-HTTP-Method-Override", "DELETE"}},
		{name: "fresh hit again", method: "GET", path: "/fresh", wantFast: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.openBrk {
				setBreaker(store.StateOpen)
				defer setBreaker(store.StateClosed)
			}
			calls := make(map[string]int64)
			for p, o := range fast.origins {
				calls[p] = o.calls.Load()
			}
			gets, hits := fast.s.gets.Load(), fast.c.Stats().Hits
			got := do(fast.c, fast.h, tt.method, "http://example.com"+tt.path, tt.hdr...)
			want := do(slow.c, slow.h, tt.method, "http://example.com"+tt.path, tt.hdr...)

			if got.Code != want.Code || got.Body.String() != want.Body.String() {
				t.Errorf("Chain: %d %q; Recover then cache: %d %q", got.Code, got.Body, want.Code, want.Body)
			}
			if g, w := fmt.Sprint(got.Header()), fmt.Sprint(want.Header()); g != w {
				t.Errorf("Chain's header fields\n %s\nRecover then cache's\n %s", g, w)
			}
			if tookFast := fast.s.gets.Load() == gets && fast.c.Stats().Hits == hits+1; tookFast != tt.wantFast {
				t.Errorf("Chain answered from its fast path: %v, want %v", tookFast, tt.wantFast)
			}
			if tt.wantFast {
				for p, o := range fast.origins {
					if n := o.calls.Load(); n != calls[p] {
						t.Errorf("%s called %d times for a fresh hit", p, n-calls[p])
					}
				}
			}
		})
	}
	if f, s := fast.c.Stats(), slow.c.Stats(); f != s {
		t.Errorf("stats differ:\n Chain %+v\n Recover then cache %+v", f, s)
	}
}

// TestChainFreshPanicFallsBack: a panic while the fast path looks the
// entry up is not the client's problem: the request goes through Recover
// and the cache, which answer it (here with the hit, as the store's
// GetDecoded works).
func TestChainFreshPanicFallsBack(t *testing.T) {
	s := &countingGetter{Memory: newSharedMemory(t)}
	c := newTestCache(t, s)
	o := newOrigin(200, "body", "Cache-Control", "max-age=60")
	h := Chain(c, WithLogger(slog.New(slog.DiscardHandler))).Then(o)
	do(c, h, "GET", "http://example.com/p")
	s.peekPanics.Store(true)
	peeks, gets := s.peeks.Load(), s.gets.Load()
	w := do(c, h, "GET", "http://example.com/p")
	if w.Code != 200 || w.Body.String() != "body" || !strings.Contains(w.Header().Get("Cache-Status"), "; hit") {
		t.Errorf("got %d %q, Cache-Status %q; want the hit", w.Code, w.Body, w.Header().Get("Cache-Status"))
	}
	if s.peeks.Load() != peeks+1 || s.gets.Load() != gets+1 {
		t.Errorf("peeks +%d, gets +%d; want +1 each (the fast path panicked, the chain answered)",
			s.peeks.Load()-peeks, s.gets.Load()-gets)
	}
	if n := o.calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
}

// panicWriter is a ResponseWriter whose WriteHeader panics with v.
type panicWriter struct {
	*httptest.ResponseRecorder
	v any
}

func (w panicWriter) WriteHeader(int) { panic(w.v) }

// TestChainFreshWriterPanic: a ResponseWriter that panics while the fast
// path writes a hit gets the response aborted (http.ErrAbortHandler) and
// the panic logged, as Recover does once a response has started; its own
// ErrAbortHandler is passed on unlogged.
func TestChainFreshWriterPanic(t *testing.T) {
	var logs bytes.Buffer
	s := &countingGetter{Memory: newSharedMemory(t)}
	c := newTestCache(t, s)
	h := Chain(c, WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))).Then(newOrigin(200, "body", "Cache-Control", "max-age=60"))
	do(c, h, "GET", "http://example.com/p")
	for _, v := range []any{"boom", http.ErrAbortHandler} {
		logs.Reset()
		gets := s.gets.Load()
		pv := catchPanic(func() {
			h.ServeHTTP(panicWriter{httptest.NewRecorder(), v}, httptest.NewRequest("GET", "http://example.com/p", nil))
		})
		if err, ok := pv.(error); !ok || !errors.Is(err, http.ErrAbortHandler) {
			t.Errorf("writer panicking with %v: panic %v, want http.ErrAbortHandler", v, pv)
		}
		if s.gets.Load() != gets {
			t.Errorf("writer panicking with %v: the chain ran too", v)
		}
		logged := strings.Contains(logs.String(), "panic serving request")
		if wantLog := v != http.ErrAbortHandler; logged != wantLog {
			t.Errorf("writer panicking with %v: logged %v, want %v:\n%s", v, logged, wantLog, logs.String())
		}
	}
}
