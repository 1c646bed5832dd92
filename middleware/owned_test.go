package middleware

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failsoft/failsoft/store"
)

// plainStore hides a store's decoded-entry methods: the cache decodes
// every hit on it for that request alone (an owned entry), as it does for
// a Redis store without an in-process tier.
type plainStore struct{ store.Store }

// decodeModes are the two ways a store hands the cache its entries: one
// shared decoded entry per in-process copy (the Memory store), and a new
// entry per request (the same store behind plainStore).
var decodeModes = []struct {
	name string
	s    func(m *store.Memory) store.Store
}{
	{"shared", func(m *store.Memory) store.Store { return m }},
	{"owned", func(m *store.Memory) store.Store { return plainStore{m} }},
}

// TestOwnedHitMatchesSharedHit serves the same stored response from a
// store that keeps decoded entries (shared, copied to the writer) and from
// one that does not (owned, handed to the writer): the answers must be the
// same bytes, a handler's own Age must be replaced, and what a writer
// wrapped around the cache does to one answer's header values must not
// reach the next answer.
func TestOwnedHitMatchesSharedHit(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "max-age=300")
		h.Set("Content-Type", "application/json")
		h.Set("Age", "7")
		h["X-Many"] = []string{"a", "b", "c"}
		w.Write([]byte(`{"ok":true}`))
	})
	answers := map[string][]http.Header{}
	for _, tc := range decodeModes {
		t.Run(tc.name, func(t *testing.T) {
			m := newSharedMemory(t)
			clock := newTestClock() // the same times in both runs
			c := newTestCache(t, tc.s(m), WithClock(clock.Now))
			h := c.Handler(handler)
			start := clock.Now()
			do(c, h, "GET", "http://example.com/x") // the miss that stores it, 7 s old
			for i := range 3 {
				clock.Add(start.Add(time.Duration(i+3) * time.Second).Sub(clock.Now()))
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest("GET", "http://example.com/x", nil))
				if w.Code != 200 || w.Body.String() != `{"ok":true}` {
					t.Fatalf("hit %d: %d %q", i, w.Code, w.Body)
				}
				got := w.Header().Clone()
				answers[tc.name] = append(answers[tc.name], got)
				if v, want := got.Values("Age"), strconv.Itoa(7+3+i); len(v) != 1 || v[0] != want {
					t.Errorf("hit %d: Age %q, want [%s] (the handler's 7 plus the time stored)", i, v, want)
				}
				if v := got.Values("Cache-Status"); len(v) != 1 {
					t.Errorf("hit %d: Cache-Status %q, want one value", i, v)
				}
				// A writer around the cache changes values in place and
				// appends: the next hit must not see it.
				w.Header()["X-Many"][0] = "changed"
				w.Header()["Cache-Status"][0] = "changed"
				w.Header().Add("X-Many", "d")
			}
			if st := c.Stats(); st.Hits != 3 {
				t.Errorf("stats %+v, want 3 hits", st)
			}
		})
	}
	for i := range answers["shared"] {
		if s, o := answers["shared"][i], answers["owned"][i]; !reflect.DeepEqual(s, o) {
			t.Errorf("hit %d: shared entry answered %v, owned %v", i, s, o)
		}
	}
}

func TestFreshHitStatus(t *testing.T) {
	s := newCacheStatus("failsoft")
	// 5 and 261 share a slot (modulo hitStatuses); each must get its own.
	for _, ttl := range []int64{5, 261, 5, 0, 256, 0, 1 << 40, 261, 86400} {
		if got, want := s.freshHit(ttl), s.hitTTL(ttl, ""); got != want {
			t.Errorf("freshHit(%d) = %q, want %q", ttl, got, want)
		}
	}
	if got, want := s.freshHit(-3), s.hitTTL(-3, ""); got != want {
		t.Errorf("freshHit(-3) = %q, want %q", got, want)
	}
	if n := testing.AllocsPerRun(100, func() { s.freshHit(86400) }); n != 0 {
		t.Errorf("a remembered ttl allocates %v times", n)
	}
	var zero cacheStatus // no table: still right
	if got, want := zero.freshHit(9), zero.hitTTL(9, ""); got != want {
		t.Errorf("without a table freshHit(9) = %q, want %q", got, want)
	}
}

// TestOwnedEntryPathsMatchShared takes an owned entry (no Header until a
// path needs one) down every path that reads its fields by name, and the
// same stored response as a shared entry down the same paths: conditional
// requests answered 304 or 200 from a fresh entry, a request that
// revalidates (no-cache) with the stored validators, a stale answer with a
// background refresh, and a revalidation past every window. Both caches
// must answer the same bytes, send the handler the same conditions, and
// count the same.
func TestOwnedEntryPathsMatchShared(t *testing.T) {
	const lastModified = "Mon, 03 Mar 2025 00:00:00 GMT"
	type step struct {
		advance time.Duration
		hdr     []string
	}
	steps := []step{
		{0, nil}, // the miss that stores it
		{time.Second, []string{"If-None-Match", `"v1"`}},
		{0, []string{"If-None-Match", `"other"`}},
		{0, []string{"If-Modified-Since", "Tue, 04 Mar 2025 00:00:00 GMT"}},
		{0, []string{"If-Modified-Since", "Sun, 02 Mar 2025 00:00:00 GMT"}},
		{time.Second, []string{"Cache-Control", "no-cache"}},
		{time.Second, []string{"Cache-Control", "max-age=0", "If-None-Match", `"v1"`}},
		{15 * time.Second, nil},  // stale, within stale-while-revalidate
		{100 * time.Second, nil}, // past every window: revalidated
		{0, nil},
	}
	type answer struct {
		status int
		header http.Header
		body   string
	}
	answers := map[string][]answer{}
	conditions := map[string][]string{}
	stats := map[string]Stats{}
	for _, tc := range decodeModes {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				conditions[tc.name] = append(conditions[tc.name], r.Header.Get("If-None-Match")+"|"+r.Header.Get("If-Modified-Since"))
				mu.Unlock()
				h := w.Header()
				h.Set("Cache-Control", "max-age=10, stale-while-revalidate=30")
				h.Set("Etag", `"v1"`)
				h.Set("Last-Modified", lastModified)
				h["X-Many"] = []string{"a", "b"}
				if r.Header.Get("If-None-Match") == `"v1"` {
					w.WriteHeader(http.StatusNotModified)
					return
				}
				h.Set("Content-Type", "text/plain")
				w.Write([]byte("body v1"))
			})
			m := newSharedMemory(t)
			clock := newTestClock()
			c := newTestCache(t, tc.s(m), WithClock(clock.Now))
			h := c.Handler(handler)
			for _, s := range steps {
				clock.Add(s.advance)
				w := do(c, h, "GET", "http://example.com/x", s.hdr...)
				answers[tc.name] = append(answers[tc.name], answer{w.Code, w.Header().Clone(), w.Body.String()})
			}
			stats[tc.name] = c.Stats()
		})
	}
	shared, owned := answers["shared"], answers["owned"]
	if len(shared) != len(steps) || len(owned) != len(steps) {
		t.Fatalf("%d and %d answers, want %d each", len(shared), len(owned), len(steps))
	}
	for i := range steps {
		if !reflect.DeepEqual(shared[i], owned[i]) {
			t.Errorf("step %d %q: shared entry answered %+v, owned %+v", i, steps[i].hdr, shared[i], owned[i])
		}
	}
	// The paths were taken: 304s from the fresh entry, a revalidation with
	// the stored validator, a stale answer.
	for i, want := range map[int]int{1: 304, 2: 200, 3: 304, 4: 200, 5: 200, 7: 200} {
		if got := shared[i].status; got != want {
			t.Errorf("step %d: status %d, want %d", i, got, want)
		}
	}
	if cs := shared[7].header.Get("Cache-Status"); !strings.Contains(cs, "stale-while-revalidate") {
		t.Errorf("step 7: Cache-Status %q, want a stale answer", cs)
	}
	if !reflect.DeepEqual(conditions["shared"], conditions["owned"]) {
		t.Errorf("the handler saw conditions %q behind the shared entry, %q behind the owned one", conditions["shared"], conditions["owned"])
	}
	if !slices.Contains(conditions["shared"], `"v1"|`) {
		t.Errorf("no revalidation with the stored validators: the handler saw %q", conditions["shared"])
	}
	if stats["shared"] != stats["owned"] {
		t.Errorf("stats: shared %+v, owned %+v", stats["shared"], stats["owned"])
	}
	if st := stats["owned"]; st.Hits == 0 || st.StaleServed == 0 || st.Revalidated == 0 {
		t.Errorf("stats %+v: want hits, a stale answer and revalidations", st)
	}
}
