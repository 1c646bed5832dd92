package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/failsoft/failsoft/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// app is run() serving on a free loopback port for one test.
type app struct {
	base   string
	client *http.Client
}

// startApp runs run(cfg) until the test ends, and checks then that it
// returned nil (a graceful shutdown).
func startApp(t *testing.T, cfg config) *app {
	t.Helper()
	a, stop := startAppStop(t, cfg)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("run returned %v after its context ended, want nil", err)
		}
	})
	return a
}

// startAppStop runs run(cfg); stop cancels its context and returns what run
// returned.
func startAppStop(t *testing.T, cfg config) (*app, func() error) {
	t.Helper()
	cfg.addr = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, cfg, slog.New(slog.DiscardHandler), ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("run did not listen within 10s")
	}
	transport := &http.Transport{Proxy: nil}
	a := &app{base: "http://" + addr, client: &http.Client{Transport: transport, Timeout: 10 * time.Second}}
	stopped := false
	var runErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-errc:
			case <-time.After(15 * time.Second):
				runErr = fmt.Errorf("run did not return within 15s of its context ending")
			}
			transport.CloseIdleConnections()
		}
		return runErr
	}
	return a, stop
}

// response is one answer of the app.
type response struct {
	status  int
	header  http.Header
	body    string
	elapsed time.Duration
}

func (a *app) get(t *testing.T, path string) response {
	t.Helper()
	start := time.Now()
	resp, err := a.client.Get(a.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", path, err)
	}
	return response{resp.StatusCode, resp.Header, string(b), time.Since(start)}
}

// data decodes the documented contract, {"source","data"} and nothing else,
// failing the test when the answer breaks it.
func data(t *testing.T, key string, r response) dataResponse {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("GET /api/data/%s: status %d %q, want 200", key, r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var d dataResponse
	dec := json.NewDecoder(strings.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("body %q breaks the contract: %v", r.body, err)
	}
	if d.Source != "cache" && d.Source != "primary" {
		t.Errorf("source %q, want cache or primary", d.Source)
	}
	if !strings.HasPrefix(d.Data, "Data for "+key+" fetched at ") {
		t.Errorf("data %q, want the primary's answer for %s", d.Data, key)
	}
	return d
}

// fetches reads dataapi_primary_fetches_total from /metrics.
func (a *app) fetches(t *testing.T) int {
	t.Helper()
	r := a.get(t, "/metrics")
	for line := range strings.Lines(r.body) {
		if v, ok := strings.CutPrefix(line, "dataapi_primary_fetches_total "); ok {
			var n float64
			if _, err := fmt.Sscan(v, &n); err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return int(n)
		}
	}
	t.Fatalf("no dataapi_primary_fetches_total in /metrics:\n%s", r.body)
	return 0
}

// waitFor polls cond every 5 ms until it holds, failing after 10 s.
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

// testConfig is the protected app over redisURL ("" for the embedded Redis)
// with a fast primary source.
func testConfig(redisURL string) config {
	return config{redisURL: redisURL, primaryLatency: 10 * time.Millisecond, logLevel: slog.LevelError, failsoft: true}
}

// TestDataEndpoint checks the contract and the cache hit on the second
// request, against a real redis-server and against the embedded default.
func TestDataEndpoint(t *testing.T) {
	tests := []struct {
		name     string
		redisURL func(t *testing.T) string
	}{
		{"redis-server", func(t *testing.T) string { return "redis://" + redistest.Start(t).Addr() }},
		{"embedded", func(*testing.T) string { return "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := startApp(t, testConfig(tt.redisURL(t)))

			first := a.get(t, "/api/data/k1")
			second := a.get(t, "/api/data/k1")

			if d := data(t, "k1", first); d.Source != "primary" {
				t.Errorf("first answer's source %q, want primary", d.Source)
			}
			data(t, "k1", second)
			if second.body != first.body {
				t.Errorf("second body %q, want the first %q", second.body, first.body)
			}
			if cs := second.header.Get("Cache-Status"); !strings.Contains(cs, "; hit") {
				t.Errorf("second Cache-Status %q, want a hit", cs)
			}
			if n := a.fetches(t); n != 1 {
				t.Errorf("primary fetched %d times, want 1", n)
			}
		})
	}
}

// TestRedisKilled checks that with Redis dead the app still answers every
// request with 200 and the contract: cached keys from its cache, new keys
// from the primary.
func TestRedisKilled(t *testing.T) {
	srv := redistest.Start(t)
	a := startApp(t, testConfig("redis://"+srv.Addr()))
	warm := data(t, "k1", a.get(t, "/api/data/k1"))
	srv.Kill()

	for i := range 20 {
		key := []string{"k1", fmt.Sprintf("new%d", i)}[i%2]
		r := a.get(t, "/api/data/"+key)
		d := data(t, key, r)
		if key == "k1" && d.Data != warm.Data {
			t.Errorf("k1 answered %q, want the cached %q", d.Data, warm.Data)
		}
	}
}

// TestRedisPaused checks that a hung Redis (SIGSTOP) bounds every request:
// a cached key waits at most one op timeout for Redis, a new key at most
// one per Redis command on its path (the cache's lookup, the handler's GET
// and SET), and none waits for the client's own read timeout. Shutting down
// with Redis still hung does not wait for it either.
func TestRedisPaused(t *testing.T) {
	// The client's own timeouts are 10 s (set in the URL), so that a request
	// or a shutdown that waited on the paused Redis itself would take 10 s
	// at least. A bounded request takes one to three op timeouts plus the
	// primary's 10 ms (a few hundred ms on a loaded CI runner under -race);
	// 2 s tells the two apart with room to spare.
	const limit = 2 * time.Second
	srv := redistest.Start(t)
	cfg := testConfig("redis://" + srv.Addr() + "?read_timeout=10s&write_timeout=10s")
	a, stop := startAppStop(t, cfg)
	defer stop()
	data(t, "k1", a.get(t, "/api/data/k1"))
	srv.Pause()
	t.Cleanup(srv.Resume) // before redistest's own cleanup kills it

	for i := range 20 {
		key := "k1"
		if i%2 == 1 {
			key = fmt.Sprintf("new%d", i)
		}
		r := a.get(t, "/api/data/"+key)
		data(t, key, r)
		if r.elapsed > limit {
			t.Errorf("GET %s took %v with Redis paused, want at most %v (op timeout %v each)", key, r.elapsed, limit, store.DefaultOpTimeout)
		}
	}

	start := time.Now()
	if err := stop(); err != nil {
		t.Errorf("run returned %v, want nil", err)
	}
	if took := time.Since(start); took > limit {
		t.Errorf("shutting down with Redis paused took %v, want well under the client's 10 s read timeout", took)
	}
}

// TestFailsoftOff checks that FAILSOFT=off serves the same handler naively:
// 200 with Redis up, 500 once Redis is dead.
func TestFailsoftOff(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig("redis://" + srv.Addr())
	cfg.failsoft = false
	a := startApp(t, cfg)

	data(t, "k1", a.get(t, "/api/data/k1"))
	if cs := a.get(t, "/api/data/k1").header.Get("Cache-Status"); cs != "" {
		t.Errorf("Cache-Status %q with FAILSOFT=off, want none", cs)
	}
	srv.Kill()
	for _, key := range []string{"k1", "new"} {
		if r := a.get(t, "/api/data/"+key); r.status != http.StatusInternalServerError {
			t.Errorf("GET %s with Redis dead: %d %q, want the naive 500", key, r.status, r.body)
		}
	}
}

// TestOperationalEndpoints checks /livez, /readyz, /healthz and /metrics.
func TestOperationalEndpoints(t *testing.T) {
	a := startApp(t, testConfig("redis://"+redistest.Start(t).Addr()))
	data(t, "k1", a.get(t, "/api/data/k1"))

	tests := []struct {
		path        string
		contentType string // prefix
		contains    []string
	}{
		{"/livez", "", nil},
		{"/readyz", "", nil},
		{"/healthz", "application/health+json", []string{`"status":"pass"`, `"redis:breaker"`}},
		{"/metrics", "text/plain", []string{"dataapi_primary_fetches_total 1", "failsoft_breaker_state"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := a.get(t, tt.path)
			if r.status != http.StatusOK {
				t.Fatalf("status %d %q, want 200", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
				t.Errorf("Content-Type %q, want %s", ct, tt.contentType)
			}
			for _, s := range tt.contains {
				if !strings.Contains(r.body, s) {
					t.Errorf("body lacks %q:\n%s", s, r.body)
				}
			}
		})
	}
}

// TestGracefulShutdown checks that cancelling run's context lets a request
// in flight finish and makes run return nil.
func TestGracefulShutdown(t *testing.T) {
	cfg := testConfig("")
	cfg.primaryLatency = 300 * time.Millisecond
	a, stop := startAppStop(t, cfg)
	defer stop()

	got := make(chan response, 1)
	go func() {
		resp, err := a.client.Get(a.base + "/api/data/slow")
		if err != nil {
			got <- response{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- response{status: resp.StatusCode, body: string(b)}
	}()
	waitFor(t, "the request to reach the primary", func() bool { return a.fetches(t) == 1 })

	if err := stop(); err != nil {
		t.Errorf("run returned %v, want nil", err)
	}
	r := <-got
	if r.status != http.StatusOK || !strings.Contains(r.body, "Data for slow") {
		t.Errorf("request in flight during shutdown got %d %q, want its 200", r.status, r.body)
	}
	if _, err := a.client.Get(a.base + "/livez"); err == nil {
		t.Error("the server still answers after run returned")
	}
}

// TestParseConfig checks the environment, the flags that override it, and
// the errors for bad values.
func TestParseConfig(t *testing.T) {
	def := config{addr: "127.0.0.1:8080", primaryLatency: 500 * time.Millisecond, logLevel: slog.LevelInfo, failsoft: true, missBudget: -1}
	with := func(f func(*config)) config { c := def; f(&c); return c }
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    config
		wantErr string // substring; "" means no error
	}{
		{name: "defaults", want: def},
		{
			name: "environment",
			env:  map[string]string{"ADDR": ":9000", "REDIS_URL": "redis://r:6379/1", "PRIMARY_LATENCY": "20ms", "LOG_LEVEL": "debug", "FAILSOFT": "off"},
			want: config{addr: ":9000", redisURL: "redis://r:6379/1", primaryLatency: 20 * time.Millisecond, logLevel: slog.LevelDebug, missBudget: -1},
		},
		{
			name: "flags override the environment",
			env:  map[string]string{"PRIMARY_LATENCY": "20ms", "FAILSOFT": "off"},
			args: []string{"-primary-latency", "1s", "-failsoft", "on", "-log-level", "warn"},
			want: config{addr: def.addr, primaryLatency: time.Second, logLevel: slog.LevelWarn, failsoft: true, missBudget: -1},
		},
		{name: "FAILSOFT is case-insensitive", env: map[string]string{"FAILSOFT": "OFF"}, want: func() config { c := def; c.failsoft = false; return c }()},
		{name: "zero latency", env: map[string]string{"PRIMARY_LATENCY": "0s"}, want: func() config { c := def; c.primaryLatency = 0; return c }()},
		{name: "latency not a duration", env: map[string]string{"PRIMARY_LATENCY": "500"}, wantErr: "PRIMARY_LATENCY"},
		{name: "negative latency", args: []string{"-primary-latency", "-1s"}, wantErr: "PRIMARY_LATENCY"},
		{name: "bad log level", env: map[string]string{"LOG_LEVEL": "loud"}, wantErr: "LOG_LEVEL"},
		{name: "bad FAILSOFT", env: map[string]string{"FAILSOFT": "maybe"}, wantErr: "FAILSOFT"},
		{name: "unknown flag", args: []string{"-port", "80"}, wantErr: "flag provided but not defined"},
		{name: "primary capacity", env: map[string]string{"PRIMARY_CAPACITY": "8"}, want: with(func(c *config) { c.primaryCapacity = 8 })},
		{name: "primary capacity flag wins", env: map[string]string{"PRIMARY_CAPACITY": "8"}, args: []string{"-primary-capacity", "3"}, want: with(func(c *config) { c.primaryCapacity = 3 })},
		{name: "bad primary capacity", env: map[string]string{"PRIMARY_CAPACITY": "-1"}, wantErr: "PRIMARY_CAPACITY"},
		{name: "miss budget", env: map[string]string{"MISS_BUDGET": "16"}, want: with(func(c *config) { c.missBudget, c.missBudgetWait = 16, time.Second })},
		{name: "miss budget off", env: map[string]string{"MISS_BUDGET": "off", "MISS_BUDGET_WAIT": "2s"}, want: with(func(c *config) { c.missBudget, c.missBudgetWait = 0, 2*time.Second })},
		{name: "miss budget always", env: map[string]string{"MISS_BUDGET": "8", "MISS_BUDGET_MODE": "always"}, want: with(func(c *config) { c.missBudget, c.missBudgetWait, c.missBudgetAlways = 8, time.Second, true })},
		{name: "bad miss budget mode", env: map[string]string{"MISS_BUDGET_MODE": "sometimes"}, wantErr: "MISS_BUDGET_MODE"},
		{name: "bad miss budget", env: map[string]string{"MISS_BUDGET": "many"}, wantErr: "MISS_BUDGET"},
		{name: "bad miss budget wait", env: map[string]string{"MISS_BUDGET": "4", "MISS_BUDGET_WAIT": "soon"}, wantErr: "MISS_BUDGET_WAIT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			got, err := parseConfig(tt.args, getenv, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestPrimaryCapacity: fetches beyond the primary's capacity fail after its
// latency, are counted, and the legacy handler answers them with 500.
func TestPrimaryCapacity(t *testing.T) {
	tests := []struct {
		name         string
		capacity     int
		concurrent   int
		wantFailures int
	}{
		{"unlimited", 0, 5, 0},
		{"within capacity", 5, 5, 0},
		{"over capacity", 2, 5, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := make(chan struct{})
			entered := make(chan struct{}, tt.concurrent)
			overloads := prometheus.NewCounter(prometheus.CounterOpts{Name: "o"})
			p := &primary{capacity: tt.capacity, fetches: prometheus.NewCounter(prometheus.CounterOpts{Name: "f"}), overloads: overloads,
				sleep: func(time.Duration) { entered <- struct{}{}; <-gate }}
			mr := miniredis.RunT(t)
			rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
			defer rdb.Close()
			h := &dataHandler{rdb: rdb, primary: p}
			errs := make(chan error, tt.concurrent)
			for i := range tt.concurrent {
				go func() {
					r := httptest.NewRequest("GET", "/api/data/key", nil)
					r.SetPathValue("key", "key-"+strconv.Itoa(i))
					w := httptest.NewRecorder()
					h.ServeHTTP(w, r)
					switch {
					case w.Code == 200:
						errs <- nil
					case w.Code == 500 && strings.Contains(w.Body.String(), errOverloaded.Error()):
						errs <- errOverloaded
					default:
						errs <- fmt.Errorf("%d %s", w.Code, w.Body)
					}
				}()
			}
			for range tt.concurrent {
				<-entered // every fetch runs at once
			}
			close(gate)
			failures := 0
			for range tt.concurrent {
				if err := <-errs; err != nil {
					if !errors.Is(err, errOverloaded) {
						t.Errorf("err = %v", err)
					}
					failures++
				}
			}
			if failures != tt.wantFailures {
				t.Errorf("failed fetches = %d, want %d", failures, tt.wantFailures)
			}
			if got := testutil.ToFloat64(overloads); got != float64(tt.wantFailures) {
				t.Errorf("dataapi_primary_overloads_total = %v, want %d", got, tt.wantFailures)
			}
			if p.inFlight.Load() != 0 {
				t.Error("in-flight fetches left")
			}
		})
	}
}
