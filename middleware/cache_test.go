package middleware

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsoft/failsoft/store"
)

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// mapStore is a Store in a map with injectable failures.
type mapStore struct {
	mu                     sync.Mutex
	m                      map[string][]byte
	getErr, setErr, delErr error
	gets, sets, dels       int
	setGate                chan struct{} // when non-nil, Set waits for it
}

func newMapStore() *mapStore { return &mapStore{m: make(map[string][]byte)} }

func (s *mapStore) Get(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	if s.getErr != nil {
		return nil, s.getErr
	}
	v, ok := s.m[key]
	if !ok {
		return nil, store.ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

func (s *mapStore) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	s.mu.Lock()
	gate := s.setGate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sets++
	if ttl <= 0 {
		return store.ErrInvalidTTL
	}
	if s.setErr != nil {
		return s.setErr
	}
	s.m[key] = append([]byte(nil), value...)
	return nil
}

func (s *mapStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dels++
	if s.delErr != nil {
		return s.delErr
	}
	delete(s.m, key)
	return nil
}

func (s *mapStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func (s *mapStore) put(key string, v []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = v
}

func (s *mapStore) setFailures(get, set, del error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.getErr, s.setErr, s.delErr = get, set, del
}

// newTestCache builds a cache closed at the end of the test.
func newTestCache(t testing.TB, s store.Store, opts ...Option) *Cache {
	t.Helper()
	opts = append([]Option{WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	c, err := New(s, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// do sends one request through h and waits for the cache's background
// writes; hdr is name, value pairs.
func do(c *Cache, h http.Handler, method, target string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	c.bg.wait()
	return w
}

// origin is a test handler: it counts its calls and answers with the
// status, headers and body it holds, which a test may change.
type origin struct {
	mu     sync.Mutex
	calls  atomic.Int64
	status int
	header http.Header
	body   string
	last   *http.Request // the last request seen
}

func newOrigin(status int, body string, hdr ...string) *origin {
	o := &origin{status: status, header: make(http.Header), body: body}
	for i := 0; i+1 < len(hdr); i += 2 {
		o.header.Add(hdr[i], hdr[i+1])
	}
	return o
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.calls.Add(1)
	o.mu.Lock()
	o.last = r
	status, body := o.status, o.body
	for k, v := range o.header {
		w.Header()[k] = append([]string(nil), v...)
	}
	o.mu.Unlock()
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		fmt.Fprint(w, body)
	}
}

func (o *origin) lastRequest() *http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last
}

// sameExceptCache compares two responses' headers, ignoring Age and
// Cache-Status, and their bodies.
func sameExceptCache(t *testing.T, want, got *httptest.ResponseRecorder) {
	t.Helper()
	if want.Code != got.Code {
		t.Errorf("status %d, want %d", got.Code, want.Code)
	}
	if want.Body.String() != got.Body.String() {
		t.Errorf("body %q, want %q", got.Body.String(), want.Body.String())
	}
	wh, gh := want.Header().Clone(), got.Header().Clone()
	for _, h := range []http.Header{wh, gh} {
		delete(h, "Age")
		delete(h, "Cache-Status")
	}
	if fmt.Sprint(wh) != fmt.Sprint(gh) {
		t.Errorf("headers differ:\n got  %v\n want %v", gh, wh)
	}
}

func TestCacheStorageRules(t *testing.T) {
	future := time.Date(2025, 3, 4, 6, 0, 0, 0, time.UTC).Format(http.TimeFormat)
	tests := []struct {
		name   string
		opts   []Option
		status int
		hdr    []string
		reqHdr []string
		stored bool
	}{
		{name: "max-age", status: 200, hdr: []string{"Cache-Control", "max-age=60"}, stored: true},
		{name: "s-maxage", status: 200, hdr: []string{"Cache-Control", "s-maxage=60"}, stored: true},
		{name: "expires", status: 200, hdr: []string{"Expires", future}, stored: true},
		{name: "404 with max-age", status: 404, hdr: []string{"Cache-Control", "max-age=60"}, stored: true},
		{name: "no freshness, no default ttl", status: 200, stored: false},
		{name: "no freshness, default ttl", opts: []Option{WithDefaultTTL(time.Minute)}, status: 200, stored: true},
		{name: "no-store", status: 200, hdr: []string{"Cache-Control", "max-age=60, no-store"}, stored: false},
		{name: "private", status: 200, hdr: []string{"Cache-Control", "private, max-age=60"}, stored: false},
		{name: "set-cookie", status: 200, hdr: []string{"Cache-Control", "max-age=60", "Set-Cookie", "a=b"}, stored: false},
		{name: "vary star", status: 200, hdr: []string{"Cache-Control", "max-age=60", "Vary", "*"}, stored: false},
		{name: "201 not storable", status: 201, hdr: []string{"Cache-Control", "max-age=60"}, stored: false},
		{name: "500 not stored", status: 500, hdr: []string{"Cache-Control", "max-age=60"}, stored: false},
		{name: "status outside WithStatuses", opts: []Option{WithStatuses(200)}, status: 404, hdr: []string{"Cache-Control", "max-age=60"}, stored: false},
		{name: "authorization without public", status: 200, hdr: []string{"Cache-Control", "max-age=60"}, reqHdr: []string{"Authorization", "Bearer x"}, stored: false},
		{name: "authorization with public", status: 200, hdr: []string{"Cache-Control", "public, max-age=60"}, reqHdr: []string{"Authorization", "Bearer x"}, stored: true},
		{name: "authorization with s-maxage", status: 200, hdr: []string{"Cache-Control", "s-maxage=60"}, reqHdr: []string{"Authorization", "Bearer x"}, stored: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newTestClock()
			o := newOrigin(tt.status, `{"data":"x"}`, tt.hdr...)
			c := newTestCache(t, newMapStore(), append([]Option{WithClock(clk.Now)}, tt.opts...)...)
			h := c.Handler(o)
			first := do(c, h, "GET", "http://example.com/a", tt.reqHdr...)
			if !strings.Contains(first.Header().Get("Cache-Status"), "fwd=") {
				t.Errorf("first Cache-Status %q, want a forward", first.Header().Get("Cache-Status"))
			}
			if got := strings.Contains(first.Header().Get("Cache-Status"), "; stored"); got != tt.stored {
				t.Errorf("first Cache-Status %q: stored=%v, want %v", first.Header().Get("Cache-Status"), got, tt.stored)
			}
			second := do(c, h, "GET", "http://example.com/a", tt.reqHdr...)
			wantCalls := int64(2)
			if tt.stored {
				wantCalls = 1
				if cs := second.Header().Get("Cache-Status"); !strings.HasPrefix(cs, "failsoft; hit; ttl=") {
					t.Errorf("second Cache-Status %q, want a hit", cs)
				}
				if second.Header().Get("Age") != "0" {
					t.Errorf("Age %q, want 0", second.Header().Get("Age"))
				}
				sameExceptCache(t, first, second)
			}
			if got := o.calls.Load(); got != wantCalls {
				t.Errorf("handler called %d times, want %d", got, wantCalls)
			}
			st := c.Stats()
			if tt.stored && (st.Hits != 1 || st.Stored != 1 || st.Misses != 1) {
				t.Errorf("stats %+v, want 1 hit, 1 stored, 1 miss", st)
			}
			if !tt.stored && (st.Hits != 0 || st.Stored != 0) {
				t.Errorf("stats %+v, want no hit, nothing stored", st)
			}
		})
	}
}

func TestCacheServesHandlerBytes(t *testing.T) {
	clk := newTestClock()
	body := `{"source":"primary","data":"` + strings.Repeat("x", 100) + `"}`
	o := newOrigin(200, body, "Cache-Control", "max-age=60", "Content-Type", "application/json",
		"X-Custom", "a", "X-Custom", "b", "Etag", `"v1"`)
	c := newTestCache(t, newMapStore(), WithClock(clk.Now))
	h := c.Handler(o)
	first := do(c, h, "GET", "http://example.com/data/1?b=2&a=1")
	clk.Add(30 * time.Second)
	second := do(c, h, "GET", "http://example.com/data/1?a=1&b=2")
	sameExceptCache(t, first, second)
	if got := second.Header().Get("Age"); got != "30" {
		t.Errorf("Age %q, want 30", got)
	}
	if got := second.Header().Get("Cache-Status"); got != "failsoft; hit; ttl=30" {
		t.Errorf("Cache-Status %q", got)
	}
	if got := second.Header().Get("Date"); got != first.Header().Get("Date") || got == "" {
		t.Errorf("Date %q, want the stored %q", got, first.Header().Get("Date"))
	}
	if got := second.Header().Values("X-Custom"); len(got) != 2 {
		t.Errorf("X-Custom %q, want both values", got)
	}
}

func TestCacheRequestDirectives(t *testing.T) {
	tests := []struct {
		name      string
		reqHdr    []string
		wantCode  int
		wantCalls int64
		wantCS    string
	}{
		{name: "plain", wantCode: 200, wantCalls: 1, wantCS: "failsoft; hit; ttl=60"},
		{name: "no-store bypasses", reqHdr: []string{"Cache-Control", "no-store"}, wantCode: 200, wantCalls: 2, wantCS: "failsoft; fwd=bypass; detail=no-store"},
		{name: "no-cache forwards", reqHdr: []string{"Cache-Control", "no-cache"}, wantCode: 200, wantCalls: 2, wantCS: "failsoft; fwd=request; fwd-status=200; stored"},
		{name: "max-age=0 forwards", reqHdr: []string{"Cache-Control", "max-age=0"}, wantCode: 200, wantCalls: 2, wantCS: "failsoft; fwd=request; fwd-status=200; stored"},
		{name: "min-fresh too long forwards", reqHdr: []string{"Cache-Control", "min-fresh=120"}, wantCode: 200, wantCalls: 2, wantCS: "failsoft; fwd=request; fwd-status=200; stored"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newTestClock()
			o := newOrigin(200, "hello", "Cache-Control", "max-age=60")
			c := newTestCache(t, newMapStore(), WithClock(clk.Now))
			h := c.Handler(o)
			do(c, h, "GET", "http://example.com/a")
			w := do(c, h, "GET", "http://example.com/a", tt.reqHdr...)
			if w.Code != tt.wantCode || w.Body.String() != "hello" {
				t.Errorf("got %d %q", w.Code, w.Body.String())
			}
			if got := o.calls.Load(); got != tt.wantCalls {
				t.Errorf("handler called %d times, want %d", got, tt.wantCalls)
			}
			if got := w.Header().Get("Cache-Status"); got != tt.wantCS {
				t.Errorf("Cache-Status %q, want %q", got, tt.wantCS)
			}
		})
	}
	t.Run("only-if-cached miss", func(t *testing.T) {
		o := newOrigin(200, "hello", "Cache-Control", "max-age=60")
		c := newTestCache(t, newMapStore())
		w := do(c, c.Handler(o), "GET", "http://example.com/a", "Cache-Control", "only-if-cached")
		if w.Code != http.StatusGatewayTimeout || o.calls.Load() != 0 {
			t.Errorf("got %d with %d calls, want 504 without calling the handler", w.Code, o.calls.Load())
		}
	})
}

func TestCacheBypass(t *testing.T) {
	tests := []struct {
		name   string
		opts   []Option
		target string
		wantCS string
	}{
		{name: "empty key", opts: []Option{WithKeyFunc(func(*http.Request) string { return "" })}, target: "/a", wantCS: "failsoft; fwd=bypass; detail=no-key"},
		{name: "key too long", opts: []Option{WithMaxKeyBytes(64)}, target: "/" + strings.Repeat("a", 100), wantCS: "failsoft; fwd=bypass; detail=no-key"},
		{name: "cache name", opts: []Option{WithName("edge-1"), WithMaxKeyBytes(8)}, target: "/abcdefgh", wantCS: "edge-1; fwd=bypass; detail=no-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin(200, "x", "Cache-Control", "max-age=60")
			s := newMapStore()
			c := newTestCache(t, s, tt.opts...)
			h := c.Handler(o)
			do(c, h, "GET", tt.target)
			w := do(c, h, "GET", tt.target)
			if o.calls.Load() != 2 || s.len() != 0 {
				t.Errorf("calls %d, stored %d: want 2 calls and nothing stored", o.calls.Load(), s.len())
			}
			if got := w.Header().Get("Cache-Status"); got != tt.wantCS {
				t.Errorf("Cache-Status %q, want %q", got, tt.wantCS)
			}
			if c.Stats().Bypasses != 2 {
				t.Errorf("Bypasses %d, want 2", c.Stats().Bypasses)
			}
		})
	}
}

func TestCacheConditional(t *testing.T) {
	lm := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)
	tests := []struct {
		name     string
		reqHdr   []string
		wantCode int
	}{
		{name: "if-none-match matches", reqHdr: []string{"If-None-Match", `"v1"`}, wantCode: 304},
		{name: "if-none-match weak matches", reqHdr: []string{"If-None-Match", `W/"v1"`}, wantCode: 304},
		{name: "if-none-match list", reqHdr: []string{"If-None-Match", `"a", "v1"`}, wantCode: 304},
		{name: "if-none-match star", reqHdr: []string{"If-None-Match", `*`}, wantCode: 304},
		{name: "if-none-match other", reqHdr: []string{"If-None-Match", `"v2"`}, wantCode: 200},
		{name: "if-none-match garbage", reqHdr: []string{"If-None-Match", `v1, "`}, wantCode: 200},
		{name: "if-modified-since later", reqHdr: []string{"If-Modified-Since", time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)}, wantCode: 304},
		{name: "if-modified-since earlier", reqHdr: []string{"If-Modified-Since", time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)}, wantCode: 200},
		{name: "if-modified-since garbage", reqHdr: []string{"If-Modified-Since", "yesterday"}, wantCode: 200},
		{name: "if-none-match wins over if-modified-since", reqHdr: []string{"If-None-Match", `"v2"`, "If-Modified-Since", time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)}, wantCode: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin(200, "body", "Cache-Control", "max-age=60", "Etag", `"v1"`, "Last-Modified", lm, "X-Other", "1")
			c := newTestCache(t, newMapStore())
			h := c.Handler(o)
			do(c, h, "GET", "http://example.com/a")
			w := do(c, h, "GET", "http://example.com/a", tt.reqHdr...)
			if w.Code != tt.wantCode {
				t.Fatalf("status %d, want %d", w.Code, tt.wantCode)
			}
			if o.calls.Load() != 1 {
				t.Errorf("handler called %d times, want 1", o.calls.Load())
			}
			if w.Code == 304 {
				if w.Body.Len() != 0 || w.Header().Get("Etag") != `"v1"` || w.Header().Get("X-Other") != "" ||
					w.Header().Get("Cache-Control") != "max-age=60" || w.Header().Get("Content-Length") != "" {
					t.Errorf("304 headers %v body %q", w.Header(), w.Body.String())
				}
				if c.Stats().Hits != 1 {
					t.Errorf("Hits %d, want 1", c.Stats().Hits)
				}
			}
		})
	}
}

func TestCacheHead(t *testing.T) {
	o := newOrigin(200, "0123456789", "Cache-Control", "max-age=60")
	c := newTestCache(t, newMapStore())
	h := c.Handler(o)
	do(c, h, "GET", "http://example.com/a")
	w := do(c, h, "HEAD", "http://example.com/a")
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != "10" {
		t.Errorf("HEAD: %d %q Content-Length %q", w.Code, w.Body.String(), w.Header().Get("Content-Length"))
	}
	if o.calls.Load() != 1 {
		t.Errorf("handler called %d times, want 1", o.calls.Load())
	}
	// A HEAD miss is not stored: a later GET calls the handler.
	do(c, h, "HEAD", "http://example.com/b")
	do(c, h, "GET", "http://example.com/b")
	if o.calls.Load() != 3 {
		t.Errorf("handler called %d times, want 3", o.calls.Load())
	}
}

func TestCacheStaleIfError(t *testing.T) {
	type failure int
	const (
		fail500 failure = iota
		fail503
		failPanic
		fail501
		failRedis500
	)
	tests := []struct {
		name      string
		stored    []string // Cache-Control of the stored response
		age       time.Duration
		fail      failure
		wantStale bool
		wantCS    string
	}{
		{name: "500 within default window", stored: []string{"max-age=10"}, age: time.Hour, fail: fail500, wantStale: true,
			wantCS: "failsoft; fwd=stale; fwd-status=500; ttl=-3590; detail=stale-if-error"},
		{name: "503", stored: []string{"max-age=10"}, age: time.Minute, fail: fail503, wantStale: true},
		{name: "panic", stored: []string{"max-age=10"}, age: time.Minute, fail: failPanic, wantStale: true,
			wantCS: "failsoft; fwd=stale; ttl=-50; detail=stale-if-panic"},
		{name: "redis failure seen", stored: []string{"max-age=10"}, age: time.Minute, fail: failRedis500, wantStale: true,
			wantCS: "failsoft; fwd=stale; fwd-status=500; ttl=-50; detail=stale-if-error-redis"},
		{name: "501 is an answer", stored: []string{"max-age=10"}, age: time.Minute, fail: fail501, wantStale: false},
		{name: "beyond default window", stored: []string{"max-age=10"}, age: 25 * time.Hour, fail: fail500, wantStale: false},
		{name: "own stale-if-error", stored: []string{"max-age=10, stale-if-error=30"}, age: 30 * time.Second, fail: fail500, wantStale: true},
		{name: "beyond own stale-if-error", stored: []string{"max-age=10, stale-if-error=30"}, age: time.Minute, fail: fail500, wantStale: false},
		{name: "must-revalidate", stored: []string{"max-age=10, must-revalidate"}, age: time.Minute, fail: fail500, wantStale: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newTestClock()
			var failing atomic.Bool
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !failing.Load() {
					w.Header().Set("Cache-Control", tt.stored[0])
					fmt.Fprint(w, "good")
					return
				}
				switch tt.fail {
				case fail500:
					http.Error(w, "bad", http.StatusInternalServerError)
				case fail503:
					http.Error(w, "bad", http.StatusServiceUnavailable)
				case fail501:
					http.Error(w, "bad", http.StatusNotImplemented)
				case failPanic:
					panic("boom")
				case failRedis500:
					store.RecordFailure(r.Context(), store.ErrUnavailable)
					http.Error(w, "bad", http.StatusInternalServerError)
				}
			})
			c := newTestCache(t, newMapStore(), WithClock(clk.Now), WithMaxRefreshes(0))
			ch := c.Handler(h)
			do(c, ch, "GET", "http://example.com/a")
			clk.Add(tt.age)
			failing.Store(true)
			var w *httptest.ResponseRecorder
			pv := catchPanic(func() { w = do(c, ch, "GET", "http://example.com/a") })
			if tt.fail == failPanic && !tt.wantStale {
				if pv == nil {
					t.Fatal("panic not passed on")
				}
				return
			}
			if pv != nil {
				t.Fatalf("panic %v", pv)
			}
			if tt.wantStale {
				if w.Code != 200 || w.Body.String() != "good" {
					t.Errorf("got %d %q, want the stale copy", w.Code, w.Body.String())
				}
				if c.Stats().StaleServed != 1 {
					t.Errorf("StaleServed %d, want 1", c.Stats().StaleServed)
				}
			} else if w.Code < 500 {
				t.Errorf("got %d %q, want the failure passed on", w.Code, w.Body.String())
			}
			if tt.wantCS != "" && w.Header().Get("Cache-Status") != tt.wantCS {
				t.Errorf("Cache-Status %q, want %q", w.Header().Get("Cache-Status"), tt.wantCS)
			}
		})
	}
}

func catchPanic(f func()) (pv any) {
	defer func() { pv = recover() }()
	f()
	return nil
}

func TestCachePanics(t *testing.T) {
	tests := []struct {
		name  string
		stale bool
		value any
	}{
		{name: "no stale copy: re-panic", stale: false, value: "boom"},
		{name: "abort handler with stale copy: re-panic", stale: true, value: http.ErrAbortHandler},
		{name: "abort handler without stale copy: re-panic", stale: false, value: http.ErrAbortHandler},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newTestClock()
			var panicking atomic.Bool
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if panicking.Load() {
					panic(tt.value)
				}
				w.Header().Set("Cache-Control", "max-age=10")
				fmt.Fprint(w, "good")
			})
			c := newTestCache(t, newMapStore(), WithClock(clk.Now))
			ch := c.Handler(h)
			if tt.stale {
				do(c, ch, "GET", "http://example.com/a")
				clk.Add(time.Minute)
			}
			panicking.Store(true)
			pv := catchPanic(func() { do(c, ch, "GET", "http://example.com/a") })
			if pv != tt.value {
				t.Errorf("recovered %v, want %v", pv, tt.value)
			}
		})
	}
}

func TestCacheHandlerTimeout(t *testing.T) {
	clk := newTestClock()
	var slow atomic.Bool
	var cancelled atomic.Bool
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			<-r.Context().Done()
			cancelled.Store(true)
			fmt.Fprint(w, "late") // discarded
			return
		}
		w.Header().Set("Cache-Control", "max-age=10")
		fmt.Fprint(w, "good")
	})
	c := newTestCache(t, newMapStore(), WithClock(clk.Now), WithHandlerTimeout(20*time.Millisecond))
	ch := c.Handler(h)
	do(c, ch, "GET", "http://example.com/a")
	clk.Add(time.Minute)
	slow.Store(true)
	w := do(c, ch, "GET", "http://example.com/a") // waits for the background handler too
	if w.Code != 200 || w.Body.String() != "good" {
		t.Errorf("got %d %q, want the stale copy", w.Code, w.Body.String())
	}
	if cs := w.Header().Get("Cache-Status"); !strings.Contains(cs, "detail=stale-if-timeout") {
		t.Errorf("Cache-Status %q", cs)
	}
	if !cancelled.Load() {
		t.Error("the timed-out handler's context was not cancelled")
	}
	// Without a stale copy the handler is not timed.
	w = do(c, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "fresh")
	}), "GET", "http://example.com/other")
	if w.Body.String() != "fresh" {
		t.Errorf("got %q", w.Body.String())
	}
}

func TestCacheStaleWhileRevalidate(t *testing.T) {
	clk := newTestClock()
	release := make(chan struct{})
	var calls atomic.Int64
	var version atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if n > 1 {
			<-release // the background refresh waits until the test lets it go
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=60")
		fmt.Fprintf(w, "v%d", version.Add(1))
	})
	c := newTestCache(t, newMapStore(), WithClock(clk.Now))
	ch := c.Handler(h)
	do(c, ch, "GET", "http://example.com/a")
	clk.Add(20 * time.Second)
	for i := range 10 {
		r := httptest.NewRequest("GET", "http://example.com/a", nil)
		w := httptest.NewRecorder()
		ch.ServeHTTP(w, r)
		if w.Body.String() != "v1" {
			t.Fatalf("request %d: got %q, want the stale v1", i, w.Body.String())
		}
		if cs := w.Header().Get("Cache-Status"); cs != "failsoft; hit; ttl=-10; detail=stale-while-revalidate" {
			t.Fatalf("Cache-Status %q", cs)
		}
	}
	close(release)
	c.bg.wait()
	if got := calls.Load(); got != 2 {
		t.Errorf("handler called %d times, want 2 (one refresh for 10 stale answers)", got)
	}
	st := c.Stats()
	if st.Refreshes != 1 || st.StaleServed != 10 {
		t.Errorf("stats %+v, want 1 refresh, 10 stale", st)
	}
	w := do(c, ch, "GET", "http://example.com/a")
	if w.Body.String() != "v2" || !strings.Contains(w.Header().Get("Cache-Status"), "hit; ttl=10") {
		t.Errorf("after the refresh got %q %q, want a fresh v2", w.Body.String(), w.Header().Get("Cache-Status"))
	}
}

func TestCacheRefreshFailureKeepsStale(t *testing.T) {
	clk := newTestClock()
	var fail atomic.Bool
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			panic("refresh boom")
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=60")
		fmt.Fprint(w, "v1")
	})
	c := newTestCache(t, newMapStore(), WithClock(clk.Now))
	ch := c.Handler(h)
	do(c, ch, "GET", "http://example.com/a")
	clk.Add(20 * time.Second)
	fail.Store(true)
	do(c, ch, "GET", "http://example.com/a") // stale + a refresh that panics
	w := do(c, ch, "GET", "http://example.com/a")
	if w.Body.String() != "v1" || c.Stats().Refreshes != 2 {
		t.Errorf("got %q with %d refreshes, want the stale v1 and a second refresh", w.Body.String(), c.Stats().Refreshes)
	}
}

func TestCacheRevalidation(t *testing.T) {
	tests := []struct {
		name      string
		validator []string
		wantReq   string // request header the handler must see
	}{
		{name: "etag", validator: []string{"Etag", `"v1"`}, wantReq: "If-None-Match"},
		{name: "last-modified", validator: []string{"Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"}, wantReq: "If-Modified-Since"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newTestClock()
			var calls atomic.Int64
			var sawConditional atomic.Bool
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				if r.Header.Get(tt.wantReq) == tt.validator[1] {
					sawConditional.Store(true)
					w.Header().Set("Cache-Control", "max-age=100")
					w.Header().Set("X-Updated", "yes")
					w.WriteHeader(http.StatusNotModified)
					return
				}
				w.Header().Set("Cache-Control", "max-age=10")
				w.Header().Set(tt.validator[0], tt.validator[1])
				fmt.Fprint(w, "full body")
			})
			c := newTestCache(t, newMapStore(), WithClock(clk.Now))
			ch := c.Handler(h)
			do(c, ch, "GET", "http://example.com/a")
			clk.Add(time.Minute)
			w := do(c, ch, "GET", "http://example.com/a")
			if !sawConditional.Load() {
				t.Fatal("the handler did not get the stored validator")
			}
			if w.Code != 200 || w.Body.String() != "full body" || w.Header().Get("X-Updated") != "yes" ||
				w.Header().Get("Cache-Control") != "max-age=100" {
				t.Errorf("got %d %q %v, want the stored body with updated headers", w.Code, w.Body.String(), w.Header())
			}
			if cs := w.Header().Get("Cache-Status"); cs != "failsoft; fwd=stale; fwd-status=304; stored" {
				t.Errorf("Cache-Status %q", cs)
			}
			clk.Add(50 * time.Second)
			w = do(c, ch, "GET", "http://example.com/a")
			if calls.Load() != 2 || w.Body.String() != "full body" || w.Header().Get("Cache-Status") != "failsoft; hit; ttl=50" {
				t.Errorf("after revalidation: calls %d, %q, %q", calls.Load(), w.Body.String(), w.Header().Get("Cache-Status"))
			}
			if c.Stats().Revalidated != 1 {
				t.Errorf("Revalidated %d, want 1", c.Stats().Revalidated)
			}
		})
	}
	t.Run("client conditional passes through", func(t *testing.T) {
		clk := newTestClock()
		o := newOrigin(200, "body", "Cache-Control", "max-age=10", "Etag", `"v1"`)
		c := newTestCache(t, newMapStore(), WithClock(clk.Now))
		ch := c.Handler(o)
		do(c, ch, "GET", "http://example.com/a")
		clk.Add(time.Minute)
		do(c, ch, "GET", "http://example.com/a", "If-None-Match", `"zzz"`)
		if got := o.lastRequest().Header.Get("If-None-Match"); got != `"zzz"` {
			t.Errorf("handler saw If-None-Match %q, want the client's", got)
		}
	})
	t.Run("no-cache response revalidated on every use", func(t *testing.T) {
		clk := newTestClock()
		o := newOrigin(200, "body", "Cache-Control", "no-cache", "Etag", `"v1"`)
		c := newTestCache(t, newMapStore(), WithClock(clk.Now))
		ch := c.Handler(o)
		do(c, ch, "GET", "http://example.com/a")
		do(c, ch, "GET", "http://example.com/a")
		if o.calls.Load() != 2 || o.lastRequest().Header.Get("If-None-Match") != `"v1"` {
			t.Errorf("calls %d, If-None-Match %q", o.calls.Load(), o.lastRequest().Header.Get("If-None-Match"))
		}
	})
}

func TestCacheVary(t *testing.T) {
	var calls atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "lang=%s", r.Header.Get("Accept-Language"))
	})
	s := newMapStore()
	c := newTestCache(t, s)
	ch := c.Handler(h)
	for _, step := range []struct {
		lang, want string
		calls      int64
	}{
		{"en", "lang=en", 1},
		{"de", "lang=de", 2},
		{"en", "lang=en", 2},
		{"de", "lang=de", 2},
		{"", "lang=", 3},
	} {
		var w *httptest.ResponseRecorder
		if step.lang == "" {
			w = do(c, ch, "GET", "http://example.com/a")
		} else {
			w = do(c, ch, "GET", "http://example.com/a", "Accept-Language", step.lang)
		}
		if w.Body.String() != step.want || calls.Load() != step.calls {
			t.Errorf("lang %q: got %q after %d calls, want %q after %d", step.lang, w.Body.String(), calls.Load(), step.want, step.calls)
		}
	}
	// Purge drops the marker: every variant is gone.
	if err := c.Purge(context.Background(), "http://example.com/a"); err != nil {
		t.Fatal(err)
	}
	do(c, ch, "GET", "http://example.com/a", "Accept-Language", "en")
	if calls.Load() != 4 {
		t.Errorf("after purge: %d calls, want 4", calls.Load())
	}
}

func TestCachePurge(t *testing.T) {
	o := newOrigin(200, "x", "Cache-Control", "max-age=60")
	c := newTestCache(t, newMapStore())
	h := c.Handler(o)
	do(c, h, "GET", "http://example.com/a?x=1")
	do(c, h, "GET", "http://example.com/b")
	if err := c.Purge(context.Background(), "http://EXAMPLE.com:80/a?x=1"); err != nil {
		t.Fatal(err)
	}
	do(c, h, "GET", "http://example.com/a?x=1")
	do(c, h, "GET", "http://example.com/b")
	if o.calls.Load() != 3 || c.Stats().Invalidated != 1 {
		t.Errorf("calls %d invalidated %d, want 3 and 1", o.calls.Load(), c.Stats().Invalidated)
	}
	for _, bad := range []string{"", "/relative", "ftp://example.com/a", "http://[::1"} {
		if err := c.Purge(context.Background(), bad); err == nil {
			t.Errorf("Purge(%q) = nil, want an error", bad)
		}
	}
}

func TestCacheUnsafeInvalidates(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		status      int
		location    string
		wantCleared []string
	}{
		{name: "post 200", method: "POST", status: 200, wantCleared: []string{"/items"}},
		{name: "delete 204", method: "DELETE", status: 204, wantCleared: []string{"/items"}},
		{name: "put 303 location", method: "PUT", status: 303, location: "/items/7", wantCleared: []string{"/items", "/items/7"}},
		{name: "post absolute location same host", method: "POST", status: 201, location: "http://example.com/items/7", wantCleared: []string{"/items", "/items/7"}},
		{name: "post location other host", method: "POST", status: 201, location: "http://other.example/items/7", wantCleared: []string{"/items"}},
		{name: "post 500", method: "POST", status: 500},
		{name: "options", method: "OPTIONS", status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gets atomic.Int64
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == "GET" {
					gets.Add(1)
					w.Header().Set("Cache-Control", "max-age=60")
					fmt.Fprint(w, r.URL.Path)
					return
				}
				if tt.location != "" {
					w.Header().Set("Location", tt.location)
				}
				w.WriteHeader(tt.status)
			})
			c := newTestCache(t, newMapStore())
			ch := c.Handler(h)
			paths := []string{"/items", "/items/7", "/other"}
			for _, p := range paths {
				do(c, ch, "GET", "http://example.com"+p)
			}
			w := do(c, ch, tt.method, "http://example.com/items")
			if w.Code != tt.status || w.Header().Get("Cache-Status") != "failsoft; fwd=method" {
				t.Errorf("%s: %d %q", tt.method, w.Code, w.Header().Get("Cache-Status"))
			}
			before := gets.Load()
			for _, p := range paths {
				do(c, ch, "GET", "http://example.com"+p)
			}
			if got, want := gets.Load()-before, int64(len(tt.wantCleared)); got != want {
				t.Errorf("%d entries refetched, want %d (%v)", got, want, tt.wantCleared)
			}
			if got := c.Stats().Invalidated; got != uint64(len(tt.wantCleared)) {
				t.Errorf("Invalidated %d, want %d", got, len(tt.wantCleared))
			}
		})
	}
}

func TestCacheStoreFailures(t *testing.T) {
	t.Run("lookup fails: miss, handler answers", func(t *testing.T) {
		s := newMapStore()
		s.setFailures(store.ErrUnavailable, store.ErrUnavailable, nil)
		o := newOrigin(200, "x", "Cache-Control", "max-age=60")
		c := newTestCache(t, s)
		w := do(c, c.Handler(o), "GET", "http://example.com/a")
		if w.Code != 200 || w.Body.String() != "x" {
			t.Errorf("got %d %q", w.Code, w.Body.String())
		}
		if cs := w.Header().Get("Cache-Status"); cs != "failsoft; fwd=miss; fwd-status=200; stored; detail=store-error" {
			t.Errorf("Cache-Status %q", cs)
		}
		st := c.Stats()
		if st.StoreErrors != 2 || st.Dropped != 1 || st.Stored != 0 {
			t.Errorf("stats %+v, want 2 store errors (get, set), 1 dropped", st)
		}
	})
	t.Run("command error is not a drop", func(t *testing.T) {
		s := newMapStore()
		s.setFailures(nil, store.ErrValueTooLarge, nil)
		c := newTestCache(t, s)
		do(c, c.Handler(newOrigin(200, "x", "Cache-Control", "max-age=60")), "GET", "http://example.com/a")
		if st := c.Stats(); st.StoreErrors != 1 || st.Dropped != 0 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("bad entry is a miss and is overwritten", func(t *testing.T) {
		s := newMapStore()
		r := httptest.NewRequest("GET", "http://example.com/a", nil)
		key := hashKey(DefaultKey(r))
		s.put(key, []byte("FSC\x01\x01garbage"))
		o := newOrigin(200, "x", "Cache-Control", "max-age=60")
		c := newTestCache(t, s)
		h := c.Handler(o)
		for range 3 {
			do(c, h, "GET", "http://example.com/a")
		}
		if o.calls.Load() != 1 {
			t.Errorf("handler called %d times, want 1", o.calls.Load())
		}
	})
	t.Run("write queue full: dropped", func(t *testing.T) {
		s := newMapStore()
		gate := make(chan struct{})
		s.setGate = gate
		c := newTestCache(t, s, WithMaxPendingWrites(1))
		h := c.Handler(newOrigin(200, "x", "Cache-Control", "max-age=60"))
		for _, p := range []string{"/a", "/b", "/c"} {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "http://example.com"+p, nil))
		}
		if got := c.Stats().Dropped; got != 2 {
			t.Errorf("Dropped %d, want 2", got)
		}
		close(gate)
		c.bg.wait()
		if got := c.Stats().Stored; got != 1 {
			t.Errorf("Stored %d, want 1", got)
		}
	})
}

func TestCacheLargeBodyStreams(t *testing.T) {
	o := newOrigin(200, strings.Repeat("x", 100), "Cache-Control", "max-age=60")
	s := newMapStore()
	c := newTestCache(t, s, WithMaxBodyBytes(10))
	w := do(c, c.Handler(o), "GET", "http://example.com/a")
	if w.Body.Len() != 100 || s.len() != 0 {
		t.Errorf("body %d bytes, %d stored", w.Body.Len(), s.len())
	}
	if cs := w.Header().Get("Cache-Status"); cs != "failsoft; fwd=uri-miss; fwd-status=200; detail=streamed" {
		t.Errorf("Cache-Status %q", cs)
	}
}

func TestCacheClose(t *testing.T) {
	s := newMapStore()
	gate := make(chan struct{})
	s.setGate = gate
	o := newOrigin(200, "x", "Cache-Control", "max-age=60")
	c := newTestCache(t, s)
	h := c.Handler(o)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "http://example.com/a", nil))
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned before the pending write")
	default:
	}
	close(gate)
	<-closed
	if s.len() != 1 {
		t.Errorf("%d entries, want the pending write done", s.len())
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "http://example.com/a", nil))
	if o.calls.Load() != 2 || w.Header().Get("Cache-Status") != "" {
		t.Errorf("after Close: calls %d, Cache-Status %q; want a pass-through", o.calls.Load(), w.Header().Get("Cache-Status"))
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNewOptions(t *testing.T) {
	tests := []struct {
		name string
		s    store.Store
		opts []Option
		ok   bool
	}{
		{name: "defaults", s: newMapStore(), ok: true},
		{name: "nil store", s: nil},
		{name: "nil option", s: newMapStore(), opts: []Option{nil}},
		{name: "nil key func", s: newMapStore(), opts: []Option{WithKeyFunc(nil)}},
		{name: "bad name", s: newMapStore(), opts: []Option{WithName("a b")}},
		{name: "empty name", s: newMapStore(), opts: []Option{WithName("")}},
		{name: "negative ttl", s: newMapStore(), opts: []Option{WithDefaultTTL(-1)}},
		{name: "negative stale", s: newMapStore(), opts: []Option{WithStaleIfError(-1)}},
		{name: "zero body", s: newMapStore(), opts: []Option{WithMaxBodyBytes(0)}},
		{name: "zero key", s: newMapStore(), opts: []Option{WithMaxKeyBytes(0)}},
		{name: "bad status", s: newMapStore(), opts: []Option{WithStatuses(200, 304)}},
		{name: "negative timeout", s: newMapStore(), opts: []Option{WithHandlerTimeout(-1)}},
		{name: "negative wait", s: newMapStore(), opts: []Option{WithCoalesceWait(-1)}},
		{name: "negative refreshes", s: newMapStore(), opts: []Option{WithMaxRefreshes(-1)}},
		{name: "zero writes", s: newMapStore(), opts: []Option{WithMaxPendingWrites(0)}},
		{name: "zero refresh timeout", s: newMapStore(), opts: []Option{WithRefreshTimeout(0)}},
		{name: "nil clock", s: newMapStore(), opts: []Option{WithClock(nil)}},
		{name: "all valid", s: newMapStore(), ok: true, opts: []Option{WithName("cdn:edge/1"), WithDefaultTTL(time.Second),
			WithStatuses(200), WithHandlerTimeout(time.Second), WithCoalesceWait(0), WithMaxRefreshes(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.s, tt.opts...)
			if (err == nil) != tt.ok {
				t.Fatalf("New: %v, want ok=%v", err, tt.ok)
			}
			if err == nil {
				c.Close()
			} else if !strings.HasPrefix(err.Error(), "middleware:") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	t.Run("nil handler panics", func(t *testing.T) {
		c := newTestCache(t, newMapStore())
		if pv := catchPanic(func() { c.Handler(nil) }); pv == nil {
			t.Error("no panic")
		}
	})
}

func TestCacheWarnRateLimit(t *testing.T) {
	clk := newTestClock()
	var logs strings.Builder
	var mu sync.Mutex
	c := newTestCache(t, newMapStore(), WithClock(clk.Now), WithLogger(newTestLogger(&mu, &logs)))
	for range 5 {
		c.log.warn(warnDecode, "bad entry")
	}
	clk.Add(warnEvery)
	c.log.warn(warnDecode, "bad entry")
	c.log.warn(warnWrite, "write failed")
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Count(logs.String(), "bad entry"); got != 2 {
		t.Errorf("%d warnings of one kind, want 2:\n%s", got, logs.String())
	}
	if got := strings.Count(logs.String(), "write failed"); got != 1 {
		t.Errorf("%d warnings of the other kind, want 1", got)
	}
}

func TestETagScan(t *testing.T) {
	tests := []struct {
		list []string
		etag string
		want bool
	}{
		{[]string{`"a"`}, `"a"`, true},
		{[]string{`W/"a"`}, `"a"`, true},
		{[]string{`"a"`}, `W/"a"`, true},
		{[]string{`"b", W/"a"`}, `"a"`, true},
		{[]string{`"b"`, `"a"`}, `"a"`, true},
		{[]string{`"a,b"`}, `"a,b"`, true},
		{[]string{`"b"`}, `"a"`, false},
		{[]string{`a`}, `"a"`, false},
		{[]string{`"a`}, `"a"`, false},
		{[]string{``}, `"a"`, false},
		{[]string{`W/`}, `"a"`, false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.list, "|"), func(t *testing.T) {
			if got := etagMatchWeak(tt.list, tt.etag); got != tt.want {
				t.Errorf("etagMatchWeak(%q, %q) = %v", tt.list, tt.etag, got)
			}
		})
	}
}

// lockedWriter serialises writes to a builder.
type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newTestLogger(mu *sync.Mutex, b *strings.Builder) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu, b}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
