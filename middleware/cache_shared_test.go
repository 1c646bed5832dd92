package middleware

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failsoft/failsoft/internal/decoded"
	"github.com/failsoft/failsoft/store"
)

// Tests of the in-process fast path: a decoded.Getter keeps one decoded
// entry per in-process copy and every hit shares it, so nothing a response
// writer does may reach it.

func newSharedMemory(t *testing.T) *store.Memory {
	t.Helper()
	m, err := store.NewMemory(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestCacheSharedEntryIsShared checks that a cache over an in-process store
// uses the fast path: two reads give the same decoded entry.
func TestCacheSharedEntryIsShared(t *testing.T) {
	c := newTestCache(t, newSharedMemory(t))
	if c.decoded == nil {
		t.Fatal("a cache over a store.Memory does not use its decoded entries")
	}
	h := c.Handler(newOrigin(200, "body", "Cache-Control", "max-age=60"))
	do(c, h, "GET", "http://example.com/a")
	key := hashKey(DefaultKey(httptest.NewRequest("GET", "http://example.com/a", nil)))
	e1, err1 := c.read(t.Context(), key, c.now())
	e2, err2 := c.read(t.Context(), key, c.now())
	if err1 != nil || err2 != nil {
		t.Fatalf("read: %v, %v", err1, err2)
	}
	if e1 != e2 {
		t.Error("two reads decoded the entry twice")
	}
	if c := newTestCache(t, newMapStore()); c.decoded != nil {
		t.Error("a cache over a plain Store claims decoded entries")
	}
}

// scribble overwrites, in place, every header value and body byte that a
// response writer was given.
func scribble(w *httptest.ResponseRecorder) {
	for _, vs := range w.Header() {
		for i := range vs {
			vs[i] = "scribbled"
		}
	}
	b := w.Body.Bytes()
	for i := range b {
		b[i] = 'X'
	}
}

// TestCacheSharedEntryNotCorrupted serves the same shared entry many times
// while code after the cache changes, in place, what each response got:
// header values (the header map's slices) and the body it received. Every
// answer must still be the handler's.
func TestCacheSharedEntryNotCorrupted(t *testing.T) {
	c := newTestCache(t, newSharedMemory(t))
	o := newOrigin(200, `{"data":"original"}`,
		"Content-Type", "application/json",
		"Cache-Control", "max-age=60",
		"Etag", `"v1"`,
		"X-Multi", "a",
		"X-Multi", "b")
	h := c.Handler(o)
	target := "http://example.com/shared"
	do(c, h, "GET", target)

	tests := []struct {
		name       string
		method     string
		hdr        []string
		wantStatus int
		wantBody   string
	}{
		{name: "hit", method: "GET", wantStatus: 200, wantBody: `{"data":"original"}`},
		{name: "hit again", method: "GET", wantStatus: 200, wantBody: `{"data":"original"}`},
		{name: "HEAD", method: "HEAD", wantStatus: 200},
		{name: "conditional", method: "GET", hdr: []string{"If-None-Match", `"v1"`}, wantStatus: 304},
		{name: "hit after all that", method: "GET", wantStatus: 200, wantBody: `{"data":"original"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(c, h, tt.method, target, tt.hdr...)
			if w.Code != tt.wantStatus || w.Body.String() != tt.wantBody {
				t.Fatalf("got %d %q, want %d %q", w.Code, w.Body, tt.wantStatus, tt.wantBody)
			}
			if got := w.Header()["Etag"]; len(got) != 1 || got[0] != `"v1"` {
				t.Errorf("Etag = %q", got)
			}
			if tt.wantStatus == 200 {
				if got := w.Header()["X-Multi"]; len(got) != 2 || got[0] != "a" || got[1] != "b" {
					t.Errorf("X-Multi = %q", got)
				}
				if got := w.Header().Get("Content-Type"); got != "application/json" {
					t.Errorf("Content-Type = %q", got)
				}
				// Appending to a served field must not write into the
				// entry either.
				w.Header().Add("X-Multi", "c")
			}
			if !strings.Contains(w.Header().Get("Cache-Status"), "; hit") {
				t.Errorf("Cache-Status = %q, want a hit", w.Header().Get("Cache-Status"))
			}
			scribble(w)
		})
	}
	if n := o.calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
}

// TestCacheSharedHeaderNotAliased checks that the header slices a hit puts
// in the writer's header are not the stored entry's.
func TestCacheSharedHeaderNotAliased(t *testing.T) {
	c := newTestCache(t, newSharedMemory(t))
	h := c.Handler(newOrigin(200, "body", "Cache-Control", "max-age=60", "X-A", "1", "X-A", "2"))
	do(c, h, "GET", "http://example.com/a")
	w := do(c, h, "GET", "http://example.com/a")
	key := hashKey(DefaultKey(httptest.NewRequest("GET", "http://example.com/a", nil)))
	e, err := c.read(t.Context(), key, c.now())
	if err != nil {
		t.Fatal(err)
	}
	for k, stored := range e.Header {
		served := w.Header()[k]
		if len(served) != len(stored) {
			t.Fatalf("%s: served %q, stored %q", k, served, stored)
		}
		if len(served) > 0 && &served[0] == &stored[0] {
			t.Errorf("%s: the served header shares the stored entry's slice", k)
		}
	}
}

// TestCacheSharedDecoderLimits checks that caches with different body
// limits over one in-process store do not share decoded entries: each
// decodes with its own limit, as with a store that copies.
func TestCacheSharedDecoderLimits(t *testing.T) {
	mem := newSharedMemory(t)
	big := newTestCache(t, mem, WithMaxBodyBytes(4096))
	small := newTestCache(t, mem, WithMaxBodyBytes(1024))
	o := newOrigin(200, strings.Repeat("x", 2048), "Cache-Control", "max-age=60")
	hBig, hSmall := big.Handler(o), small.Handler(o)

	do(big, hBig, "GET", "http://example.com/a")
	if w := do(big, hBig, "GET", "http://example.com/a"); !strings.Contains(w.Header().Get("Cache-Status"), "; hit") {
		t.Fatalf("big cache: Cache-Status %q, want a hit", w.Header().Get("Cache-Status"))
	}
	// The small cache must not take the big one's decoded entry: the body is
	// over its limit, so to it the entry does not decode.
	calls := o.calls.Load()
	w := do(small, hSmall, "GET", "http://example.com/a")
	if cs := w.Header().Get("Cache-Status"); strings.Contains(cs, "; hit") || o.calls.Load() != calls+1 {
		t.Errorf("small cache: Cache-Status %q, handler calls %d; want a miss", cs, o.calls.Load()-calls)
	}
	if st := small.Stats(); st.Hits != 0 || st.Misses != 1 {
		t.Errorf("small cache: %+v, want one miss", st)
	}
	if w.Body.Len() != 2048 {
		t.Errorf("small cache: body of %d bytes, want 2048", w.Body.Len())
	}
	if w := do(big, hBig, "GET", "http://example.com/a"); !strings.Contains(w.Header().Get("Cache-Status"), "; hit") {
		t.Errorf("big cache after the small one: Cache-Status %q, want a hit", w.Header().Get("Cache-Status"))
	}
}

// TestCacheSharedNotModified checks a 304 answered from a shared entry.
func TestCacheSharedNotModified(t *testing.T) {
	c := newTestCache(t, newSharedMemory(t))
	h := c.Handler(newOrigin(200, "body", "Cache-Control", "max-age=60", "Etag", `"e"`))
	do(c, h, "GET", "http://example.com/a")
	for range 2 {
		w := do(c, h, "GET", "http://example.com/a", "If-None-Match", `"e"`)
		if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
			t.Fatalf("got %d with %d bytes, want 304", w.Code, w.Body.Len())
		}
		if w.Header().Get("Etag") != `"e"` || w.Header().Get("Age") == "" {
			t.Errorf("304 header %v", w.Header())
		}
		scribble(w)
	}
	if w := do(c, h, "GET", "http://example.com/a"); w.Code != 200 || w.Body.String() != "body" || w.Header().Get("Etag") != `"e"` {
		t.Errorf("after 304s: %d %q %v", w.Code, w.Body, w.Header())
	}
}

// TestCacheSharedHitFields checks the Age and Cache-Status of hits on a
// shared entry, which remembers the last ones it was served with: each hit
// gets the values of its own instant, across whole seconds of age and of
// ttl, and two caches of different names over one store each get their
// own name.
func TestCacheSharedHitFields(t *testing.T) {
	m := newSharedMemory(t)
	clock := newTestClock()
	a := newTestCache(t, m, WithName("a"), WithClock(clock.Now))
	b := newTestCache(t, m, WithName("b"), WithClock(clock.Now))
	origin := newOrigin(200, "body", "Cache-Control", "max-age=60")
	ha, hb := a.Handler(origin), b.Handler(origin)
	do(a, ha, "GET", "http://example.com/a") // stored at the clock's start
	start := clock.Now()
	tests := []struct {
		at        time.Duration
		age, name string
		ttl       string
	}{
		{0, "0", "a", "60"},
		{0, "0", "b", "60"},
		{300 * time.Millisecond, "0", "a", "60"},
		{499 * time.Millisecond, "0", "a", "60"},
		{500 * time.Millisecond, "0", "a", "60"}, // ttl rounds to the nearest second, half away from zero
		{501 * time.Millisecond, "0", "a", "59"},
		{999 * time.Millisecond, "0", "b", "59"},
		{time.Second, "1", "b", "59"},
		{time.Second, "1", "a", "59"},
		{1500 * time.Millisecond, "1", "a", "59"},
		{1501 * time.Millisecond, "1", "a", "58"},
		{59400 * time.Millisecond, "59", "a", "1"},
		{59600 * time.Millisecond, "59", "b", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"@"+tt.at.String(), func(t *testing.T) {
			clock.Add(start.Add(tt.at).Sub(clock.Now()))
			c, h := a, ha
			if tt.name == "b" {
				c, h = b, hb
			}
			w := do(c, h, "GET", "http://example.com/a")
			want := tt.name + "; hit; ttl=" + tt.ttl
			if got := w.Header().Values("Cache-Status"); len(got) != 1 || got[0] != want {
				t.Errorf("Cache-Status %q, want %q", got, want)
			}
			if got := w.Header().Values("Age"); len(got) != 1 || got[0] != tt.age {
				t.Errorf("Age %q, want %q", got, tt.age)
			}
		})
	}
}

// nowRecorder is an in-process store that records the clock reading each
// GetDecoded is given.
type nowRecorder struct {
	*store.Memory
	mu   sync.Mutex
	nows []time.Time
}

func (s *nowRecorder) GetDecoded(ctx context.Context, key string, d decoded.Decoder, now time.Time) (any, error) {
	s.mu.Lock()
	s.nows = append(s.nows, now)
	s.mu.Unlock()
	return s.Memory.GetDecoded(ctx, key, d, now)
}

// TestCacheGivesStoreItsClock checks that the cache hands an in-process
// store its reading of the system clock, taken for the request, and hands
// none (the zero Time) when its clock is another (WithClock).
func TestCacheGivesStoreItsClock(t *testing.T) {
	for _, custom := range []bool{false, true} {
		t.Run(fmt.Sprint("custom clock ", custom), func(t *testing.T) {
			s := &nowRecorder{Memory: newSharedMemory(t)}
			var opts []Option
			fake := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			if custom {
				opts = append(opts, WithClock(func() time.Time { return fake }))
			}
			c := newTestCache(t, s, opts...)
			h := c.Handler(newOrigin(200, "x", "Cache-Control", "max-age=60"))
			before := time.Now()
			do(c, h, "GET", "http://example.com/now")
			after := time.Now()
			if w := do(c, h, "GET", "http://example.com/now"); w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.nows) < 2 {
				t.Fatalf("%d GetDecoded calls, want 2 or more", len(s.nows))
			}
			for i, now := range s.nows {
				switch {
				case custom && !now.IsZero():
					t.Errorf("call %d: given %v, want the zero Time (the cache's clock is not the system clock)", i, now)
				case !custom && (now.Before(before) || i == 0 && now.After(after)):
					t.Errorf("call %d: given %v, want a reading of the system clock (first request between %v and %v)", i, now, before, after)
				}
			}
		})
	}
}
