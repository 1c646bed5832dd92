package failsoft_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft"
	"github.com/failsoft/failsoft/health"
	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

// legacy is a handler written without failsoft in mind: it reads Redis
// itself, falls back to its primary on a miss, stores what it fetched, and
// answers 500 when Redis fails.
type legacy struct {
	rdb     redis.UniversalClient
	fetches atomic.Int64
}

func (h *legacy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, "/api/data/")
	val, err := h.rdb.Get(r.Context(), key).Result()
	source := "cache"
	switch {
	case errors.Is(err, redis.Nil):
		h.fetches.Add(1)
		val, source = "data for "+key, "primary"
		if err := h.rdb.Set(r.Context(), key, val, time.Hour).Err(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"source": source, "data": val})
}

// get serves one GET through h and returns the recorder.
func get(h http.Handler, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec
}

// healthStatus returns the "status" member of the /healthz report.
func healthStatus(t *testing.T, h http.Handler) (int, string) {
	t.Helper()
	rec := get(h, "/healthz")
	var rep struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatalf("/healthz body %q: %v", rec.Body, err)
	}
	return rec.Code, rep.Status
}

// waitOpen sends GETs of fresh keys through h (each a Redis miss, so each
// reaches the dead Redis) until fs's breaker is open.
func waitOpen(t *testing.T, fs *failsoft.Protector, h http.Handler) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if st := fs.Stats().Breakers; len(st) == 1 && st[0].State == store.StateOpen {
			return
		}
		if rec := get(h, fmt.Sprintf("/api/data/trip-%d", i)); rec.Code != http.StatusOK {
			t.Fatalf("GET during the outage: %d %s", rec.Code, rec.Body)
		}
	}
	t.Fatalf("breaker never opened: %+v", fs.Stats().Breakers)
}

// TestProtectLegacyHandler is the ten-line program of the README: New,
// Then, Health, Close around a handler that calls Redis itself. With Redis
// killed, it keeps answering 200 and the health report says warn.
func TestProtectLegacyHandler(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	app := &legacy{rdb: rdb}

	fs, err := failsoft.New(rdb, failsoft.WithDefaultTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	mux := http.NewServeMux()
	mux.Handle("/api/data/", app)
	mux.Handle("/health/", fs.Health())
	h := fs.Then(mux)

	first := get(h, "/api/data/k")
	if first.Code != http.StatusOK || !strings.Contains(first.Body.String(), `"source":"primary"`) {
		t.Fatalf("first GET: %d %s", first.Code, first.Body)
	}
	if code, status := healthStatus(t, fs.Health()); code != http.StatusOK || status != "pass" {
		t.Fatalf("healthy /healthz = %d %q, want 200 pass", code, status)
	}

	srv.Kill()
	waitOpen(t, fs, h)
	again := get(h, "/api/data/k")
	if again.Code != http.StatusOK || again.Body.String() != first.Body.String() {
		t.Fatalf("GET of a cached key with Redis dead: %d %s, want the first answer %s", again.Code, again.Body, first.Body)
	}
	if cs := again.Header().Get("Cache-Status"); !strings.HasPrefix(cs, "failsoft; hit") {
		t.Errorf("Cache-Status = %q, want a hit", cs)
	}
	fresh := get(h, "/api/data/new")
	if fresh.Code != http.StatusOK || !strings.Contains(fresh.Body.String(), `"source":"primary"`) {
		t.Fatalf("GET of a new key with Redis dead: %d %s, want 200 from the primary", fresh.Code, fresh.Body)
	}
	for _, path := range []string{"/health/healthz", "/health/readyz", "/health/livez"} {
		if rec := get(h, path); rec.Code != http.StatusOK {
			t.Errorf("%s with the breaker open = %d, want 200", path, rec.Code)
		}
	}
	if code, status := healthStatus(t, fs.Health()); code != http.StatusOK || status != "warn" {
		t.Fatalf("/healthz with Redis dead = %d %q, want 200 warn", code, status)
	}
	if err := fs.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := fs.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestCriticalFailsReadiness(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	fs, err := failsoft.New(rdb, failsoft.WithCritical(true), failsoft.WithFailureThreshold(2), failsoft.WithOpenPeriod(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	h := fs.Then(&legacy{rdb: rdb})
	if rec := get(fs.Readyz(), "/readyz"); rec.Code != http.StatusOK {
		t.Fatalf("/readyz with Redis up = %d %s", rec.Code, rec.Body)
	}
	srv.Kill()
	waitOpen(t, fs, h)
	if rec := get(fs.Readyz(), "/readyz"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with a critical breaker open = %d %s, want 503", rec.Code, rec.Body)
	}
	if rec := get(fs.Livez(), "/livez"); rec.Code != http.StatusOK {
		t.Fatalf("/livez = %d, want 200 whatever Redis does", rec.Code)
	}
	if code, status := healthStatus(t, fs.Healthz()); code != http.StatusServiceUnavailable || status != "fail" {
		t.Fatalf("/healthz = %d %q, want 503 fail", code, status)
	}
}

// TestCacheOwnClient checks that the cache writes through a client of its
// own, under the name's prefix, while the caller's client keeps its
// settings and gets the hook.
func TestCacheOwnClient(t *testing.T) {
	srv := redistest.Start(t)
	opt := &redis.Options{Addr: srv.Addr(), DialerRetries: 3}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	fs, err := failsoft.New(rdb, failsoft.WithName("svc"), failsoft.WithMemory(0), failsoft.WithDefaultTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if got := rdb.Options().DialerRetries; got != 3 {
		t.Errorf("caller's DialerRetries = %d, want 3 (unchanged)", got)
	}
	if rdb.Options().ContextTimeoutEnabled {
		t.Error("caller's ContextTimeoutEnabled was switched on")
	}
	h := fs.Then(&legacy{rdb: rdb})
	if rec := get(h, "/api/data/a"); rec.Code != http.StatusOK {
		t.Fatalf("GET: %d %s", rec.Code, rec.Body)
	}
	// The entry is written after the response: wait for it.
	waitFor(t, "the cache entry under svc:", func() bool {
		keys, err := rdb.Keys(context.Background(), "svc:*").Result()
		return err == nil && len(keys) > 0
	})
	if rec := get(h, "/api/data/a"); rec.Header().Get("Cache-Status") == "" || !strings.HasPrefix(rec.Header().Get("Cache-Status"), "svc; hit") {
		t.Fatalf("second GET Cache-Status = %q, want svc; hit", rec.Header().Get("Cache-Status"))
	}
	if st := fs.Stats(); st.Cache.Hits != 1 || len(st.Breakers) != 1 || st.Breakers[0].Calls == 0 {
		t.Errorf("Stats = %+v, want 1 hit and one breaker with calls", st)
	}
	// Purge reaches Redis: the next GET is a miss again.
	if err := fs.Purge(context.Background(), "http://example.com/api/data/a"); err != nil {
		t.Fatal(err)
	}
	if rec := get(h, "/api/data/a"); strings.Contains(rec.Header().Get("Cache-Status"), "hit") {
		t.Fatalf("GET after Purge Cache-Status = %q, want a miss", rec.Header().Get("Cache-Status"))
	}

	// Behind a proxy the forwarding headers are part of the key:
	// PurgeRequest with the same headers reaches the entry.
	proxied := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/api/data/b", nil)
		r.Header.Set("X-Forwarded-Proto", "https")
		return r
	}
	// The entry reaches Redis after the response: wait for a hit.
	waitFor(t, "a hit for the proxied GET", func() bool {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, proxied())
		return strings.Contains(rec.Header().Get("Cache-Status"), "hit")
	})
	if err := fs.PurgeRequest(proxied()); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, proxied())
	if cs := rec.Header().Get("Cache-Status"); strings.Contains(cs, "hit") {
		t.Fatalf("proxied GET after PurgeRequest Cache-Status = %q, want a miss", cs)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHealthMounts(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	fs, err := failsoft.New(rdb)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	mux := http.NewServeMux()
	mux.Handle("/ops/", http.StripPrefix("/ops", fs.Health()))
	mux.Handle("/livez", fs.Health())
	cases := []struct {
		path string
		code int
		ct   string
	}{
		{"/ops/livez", 200, "text/plain"},
		{"/ops/readyz", 200, "text/plain"},
		{"/ops/healthz", 200, "application/health+json"},
		{"/livez", 200, "text/plain"},
		{"/ops/other", 404, ""},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			rec := get(mux, c.path)
			if rec.Code != c.code || !strings.HasPrefix(rec.Header().Get("Content-Type"), c.ct) {
				t.Fatalf("%s = %d %q, want %d %q", c.path, rec.Code, rec.Header().Get("Content-Type"), c.code, c.ct)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	defer ring.Close()
	cases := []struct {
		name   string
		client redis.UniversalClient
		opts   []failsoft.Option
		want   string
	}{
		{"nil client", nil, nil, "nil client"},
		{"nil *redis.Client", (*redis.Client)(nil), nil, "nil *redis.Client"},
		{"ring", ring, nil, "unsupported redis client"},
		{"nil option", rdb, []failsoft.Option{nil}, "nil Option"},
		{"negative memory", rdb, []failsoft.Option{failsoft.WithMemory(-1)}, "in-process budget"},
		{"negative ttl", rdb, []failsoft.Option{failsoft.WithDefaultTTL(-time.Second)}, "default TTL"},
		{"zero op timeout", rdb, []failsoft.Option{failsoft.WithOpTimeout(0)}, "op timeout"},
		{"zero threshold", rdb, []failsoft.Option{failsoft.WithFailureThreshold(0)}, "failure threshold"},
		{"zero open period", rdb, []failsoft.Option{failsoft.WithOpenPeriod(0)}, "open period"},
		{"bad name", rdb, []failsoft.Option{failsoft.WithName("a b")}, "token"},
		{"nil key func", rdb, []failsoft.Option{failsoft.WithKeyFunc(nil)}, "key function"},
		{"nil metrics", rdb, []failsoft.Option{failsoft.WithMetrics(nil)}, "metrics"},
		{"negative broadcast window", rdb, []failsoft.Option{failsoft.WithBroadcastCoherence(-time.Second)}, "broadcast coherence"},
		{"negative miss budget", rdb, []failsoft.Option{failsoft.WithMissBudget(-1, time.Second)}, "miss budget"},
		{"negative miss budget wait", rdb, []failsoft.Option{failsoft.WithMissBudget(1, -time.Second)}, "miss budget"},
		{"unknown miss budget mode", rdb, []failsoft.Option{failsoft.WithMissBudgetMode(9)}, "miss budget mode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs, err := failsoft.New(c.client, c.opts...)
			if err == nil {
				fs.Close()
				t.Fatalf("New succeeded, want an error containing %q", c.want)
			}
			if !strings.HasPrefix(err.Error(), "failsoft: ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New error %q, want it to contain %q", err, c.want)
			}
		})
	}
	if _, err := failsoft.New(ring); !errors.Is(err, failsoft.ErrUnsupportedClient) {
		t.Errorf("New(ring) = %v, want ErrUnsupportedClient", err)
	}
}

// TestFailedNewAddsNoHook: a New that fails leaves the caller's client as
// it was: its commands still reach Redis unguarded.
func TestFailedNewAddsNoHook(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	if _, err := failsoft.New(rdb, failsoft.WithName("not a token")); err == nil {
		t.Fatal("New succeeded with a bad name")
	}
	if err := rdb.Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET after a failed New: %v", err)
	}
}

// countingMetrics records what failsoft reports to it.
type countingMetrics struct {
	calls, changes atomic.Int64
	breakers       []string
	stats          func() any
}

func (m *countingMetrics) Observer() func(string, string, time.Duration, store.Class) {
	return func(string, string, time.Duration, store.Class) { m.calls.Add(1) }
}
func (m *countingMetrics) OnStateChange() func(string, store.State, store.State) {
	return func(string, store.State, store.State) { m.changes.Add(1) }
}
func (m *countingMetrics) WatchBreaker(b failsoft.Breaker) { m.breakers = append(m.breakers, b.Name()) }
func (m *countingMetrics) WatchCache(stats func() middleware.Stats) {
	m.stats = func() any { return stats() }
}

func TestMetrics(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	m := &countingMetrics{}
	// A New that fails tells the metrics nothing.
	if _, err := failsoft.New(rdb, failsoft.WithMetrics(m), failsoft.WithName("not a token")); err == nil {
		t.Fatal("New succeeded with a bad name")
	}
	if len(m.breakers) != 0 || m.stats != nil {
		t.Fatalf("a failed New watched breakers %v, cache %v", m.breakers, m.stats != nil)
	}
	fs, err := failsoft.New(rdb, failsoft.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if len(m.breakers) != 1 || m.breakers[0] != "redis" || m.stats == nil {
		t.Fatalf("watched breakers %v, cache watched %v; want [redis], true", m.breakers, m.stats != nil)
	}
	get(fs.Then(&legacy{rdb: rdb}), "/api/data/x")
	if m.calls.Load() == 0 {
		t.Error("no guarded call was observed")
	}
}

func TestUnsupportedClient(t *testing.T) {
	// A client type of the caller's own is refused by name.
	_, err := failsoft.New(otherClient{})
	if err == nil || !strings.Contains(err.Error(), "otherClient") {
		t.Fatalf("New(otherClient) = %v, want an error naming the type", err)
	}
}

type otherClient struct{ redis.UniversalClient }

// testLogger logs to the test's log, so a failing test shows what failsoft
// saw.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// TestMissBudgetDefault: New turns the miss budget on (64 slots) unless
// told otherwise, and reports it in the detailed health report.
func TestMissBudgetDefault(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	cases := []struct {
		name string
		opts []failsoft.Option
		want int
	}{
		{"default", nil, failsoft.DefaultMissBudget},
		{"sized", []failsoft.Option{failsoft.WithMissBudget(8, time.Second)}, 8},
		{"off", []failsoft.Option{failsoft.WithMissBudget(0, 0)}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs, err := failsoft.New(rdb, c.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			if got := fs.Stats().Cache.MissBudget.Size; got != c.want {
				t.Errorf("miss budget size = %d, want %d", got, c.want)
			}
			w := httptest.NewRecorder()
			fs.Healthz().ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
			var rep health.Report
			if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
			if m := rep.Checks["missBudget:size"]; len(m) != 1 || m[0].ObservedValue != float64(c.want) {
				t.Errorf("report missBudget:size = %+v, want %d", m, c.want)
			}
		})
	}
}
