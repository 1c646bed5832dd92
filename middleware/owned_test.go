package middleware

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/failsoft/failsoft/store"
)

// plainStore hides a store's decoded-entry methods: the cache decodes
// every hit on it for that request alone (an owned entry), as it does for
// a Redis store without an in-process tier.
type plainStore struct{ store.Store }

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
	for _, tc := range []struct {
		name string
		s    func(m *store.Memory) store.Store
	}{
		{"shared", func(m *store.Memory) store.Store { return m }},
		{"owned", func(m *store.Memory) store.Store { return plainStore{m} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := store.NewMemory(1 << 20)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
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
