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

func catchPanic(f func()) (pv any) {
	defer func() { pv = recover() }()
	f()
	return nil
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
