package reliability

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

// TestFaultProxy runs the recommended stack (Cache over Tiered(Memory,
// Guard(Redis))) and a legacy handler whose own go-redis client has the
// cache-mode hook (sharing the stack's guard, as examples/dataapi does)
// through a Toxiproxy proxy in front of a real redis-server, and injects one
// network fault per case. For each it asserts:
//   - every request answers 200 (the handler or a cached copy can always
//     answer) within faultBounded, far below the wait on go-redis' 3 s read
//     timeout that each fault would cause without the library's bounds;
//   - the breaker trips;
//   - once the fault is removed, a request is answered from Redis again (a
//     Cache-Status hit on a cache that has no in-process tier, and the
//     legacy handler's "source":"cache") within the open period plus
//     faultBounded, far below a breaker that kept to its 5 s default.
func TestFaultProxy(t *testing.T) {
	const handlerTime = 20 * time.Millisecond
	// 4 KiB values make every legacy GET reply slow under the trickle
	// toxics, so that successes do not keep resetting the breaker's count,
	// and longer than go-redis' 3 s read timeout to read whole (4 s at
	// 1 KB/s), so that an unbounded read is told from a bounded one.
	legacyValue := strings.Repeat("v", 4096)
	tests := []struct {
		name   string
		typ    string
		stream string
		attrs  map[string]any
	}{
		// Every reply arrives 5 s late: an unbounded call waits out
		// go-redis' 3 s read timeout (it was 400 ms, too close to the
		// bound a loaded runner needs to tell the two apart).
		{"latency", "latency", "downstream", map[string]any{"latency": 5000}},
		// Commands vanish; the connection stays open and nothing answers.
		{"blackhole", "timeout", "upstream", map[string]any{"timeout": 0}},
		// The connection is reset (RST, unsent data discarded) as the
		// reply starts to flow back.
		{"reset mid-reply", "reset_peer", "downstream", map[string]any{"timeout": 0}},
		// Replies trickle back one byte every 20 ms: each socket read
		// returns quickly, the whole reply takes seconds.
		{"trickle (slicer)", "slicer", "downstream", map[string]any{"average_size": 1, "size_variation": 0, "delay": 20000}},
		// Replies are throttled to 1 KB/s.
		{"trickle (bandwidth)", "bandwidth", "downstream", map[string]any{"rate": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t)
			proxy := newFaultProxy(t, srv.Addr())
			log := &faultLog{}
			st := newFaultStack(t, proxy.Addr(), log.logger())
			cached := st.cache.Handler(faultOrigin(handlerTime, "max-age=60"))
			legacyClient, hook := faultHookedClient(t, proxy.Addr(), st.guard, nil)
			legacy := faultLegacyHandler(legacyClient, handlerTime, legacyValue)
			// The probe reads through the guard with no in-process tier,
			// and its handler's answers are never stored: a hit can only
			// come from Redis.
			probeCache, err := middleware.New(st.guard, middleware.WithLogger(faultQuiet()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { probeCache.Close() })
			probe := probeCache.Handler(faultOrigin(0, "no-store"))
			const cachedURL = "http://api.test/api/data/cached"
			const warmURL = "http://api.test/api/data/warm"

			// Healthy: fill Redis through both paths.
			first, _ := faultGet(cached, cachedURL)
			if first.Code != http.StatusOK {
				t.Fatalf("warm-up: %d", first.Code)
			}
			if w, _ := faultGet(legacy, warmURL); faultSource(t, w) != "primary" {
				t.Fatalf("legacy warm-up: %s", w.Body)
			}
			faultWaitFor(t, 2*time.Second, "entries written to Redis", func() bool {
				// The cache entry, the legacy handler's key, and the tiered
				// store's epoch marker once it has written one.
				entries, err1 := srv.Do("KEYS", "failsoft:[ev]:*")
				marker, err2 := srv.Do("EXISTS", store.DefaultPrefix+"\x00failsoft-tiered-epoch")
				n, err3 := srv.Do("DBSIZE")
				want := ":2"
				if marker == ":1" {
					want = ":3"
				}
				return err1 == nil && err2 == nil && err3 == nil && entries == "*1" && n == want
			})
			if w, _ := faultGet(probe, cachedURL); !faultRedisHit(w) {
				t.Fatalf("healthy probe: Cache-Status %q, want a hit from Redis", w.Header().Get("Cache-Status"))
			}
			if w, _ := faultGet(legacy, warmURL); faultSource(t, w) != "cache" {
				t.Fatalf("healthy legacy: %s, want source cache", w.Body)
			}

			proxy.add("fault", tt.typ, tt.stream, tt.attrs)
			faultStart := time.Now()
			stackLimit := faultBounded  // bounded: an op timeout plus handlerTime
			legacyLimit := faultBounded // bounded: two op timeouts plus handlerTime
			var (
				mu                     sync.Mutex
				slowStack, slowLegacy  time.Duration
				firstTrip              atomic.Int64 // ns since faultStart
				requests, afterTripped atomic.Int64
			)
			check := func(kind string, w *httptest.ResponseRecorder, took, limit time.Duration, slowest *time.Duration) {
				mu.Lock()
				*slowest = max(*slowest, took)
				mu.Unlock()
				if code := w.Code; code != http.StatusOK {
					t.Errorf("%s during %s: status %d, want 200", kind, tt.name, code)
				}
				if took > limit {
					t.Errorf("%s during %s took %v, limit %v", kind, tt.name, took, limit)
				}
				requests.Add(1)
				if st.guard.Stats().Trips > 0 {
					firstTrip.CompareAndSwap(0, int64(time.Since(faultStart)))
					afterTripped.Add(1)
				}
			}
			var wg sync.WaitGroup
			for worker := range 4 {
				wg.Go(func() {
					for i := range 10 {
						w, took := faultGet(cached, cachedURL)
						check("cached GET", w, took, stackLimit, &slowStack)
						if w.Body.String() != first.Body.String() {
							t.Errorf("cached GET during %s: body %q, want the cached %q", tt.name, w.Body, first.Body)
						}
						w, took = faultGet(cached, fmt.Sprintf("http://api.test/api/data/new-%d-%d", worker, i))
						check("uncached GET", w, took, stackLimit, &slowStack)
						w, took = faultGet(legacy, fmt.Sprintf("http://api.test/api/data/l-%d-%d", worker, i))
						check("legacy GET", w, took, legacyLimit, &slowLegacy)
						w, took = faultGet(legacy, warmURL)
						check("legacy warm GET", w, took, legacyLimit, &slowLegacy)
					}
				})
			}
			wg.Wait()
			stats := st.guard.Stats()
			if stats.Trips == 0 {
				t.Fatalf("breaker never tripped during %s: %+v", tt.name, stats)
			}
			if hook.Dropped() == 0 {
				t.Errorf("no legacy write was dropped during %s", tt.name)
			}

			proxy.remove("fault")
			// Bounded: the open period plus one probe (an op timeout at
			// most), more when the first probe meets a connection the fault
			// broke.
			recoverLimit := faultOpenPeriod + faultBounded
			var stackBack, legacyBack time.Duration
			stackBack = faultWaitFor(t, 5*time.Second, "a Redis hit after the fault", func() bool {
				w, _ := faultGet(probe, cachedURL)
				return faultRedisHit(w)
			})
			legacyBack = faultWaitFor(t, 5*time.Second, "the legacy handler reading Redis after the fault", func() bool {
				w, _ := faultGet(legacy, warmURL)
				return w.Code == http.StatusOK && faultSource(t, w) == "cache"
			}) + stackBack
			if stackBack > recoverLimit {
				t.Errorf("Redis used again %v after %s ended, limit %v (open period + faultBounded)", stackBack, tt.name, recoverLimit)
			}
			if legacyBack > recoverLimit {
				t.Errorf("legacy handler read Redis again %v after %s ended, limit %v", legacyBack, tt.name, recoverLimit)
			}
			if s := st.guard.State(); s != store.StateClosed {
				t.Errorf("breaker %v after recovery, want closed", s)
			}
			t.Logf("FAULT %s: %d requests, slowest cached-stack %v (limit %v), slowest legacy %v (limit %v); "+
				"tripped after %v, %d requests after the trip; %d trips, %d timeouts, %d failures; %d legacy writes dropped; "+
				"Redis hit again after %v, legacy after %v (limit %v)",
				tt.name, requests.Load(), slowStack, stackLimit, slowLegacy, legacyLimit,
				time.Duration(firstTrip.Load()).Round(time.Millisecond), afterTripped.Load(),
				stats.Trips, stats.Timeouts, stats.Failures, hook.Dropped(),
				stackBack.Round(time.Millisecond), legacyBack.Round(time.Millisecond), recoverLimit)
		})
	}
}

// faultRedisHit reports whether a response was a cache hit.
func faultRedisHit(w *httptest.ResponseRecorder) bool {
	return w.Code == http.StatusOK && strings.Contains(w.Header().Get("Cache-Status"), "; hit")
}

// faultSource returns the "source" field of a data endpoint's JSON answer,
// or "" when the body is not one.
func faultSource(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	var body struct {
		Source string `json:"source"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		return ""
	}
	return body.Source
}
