package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeBreaker is a Breaker with a settable state.
type fakeBreaker struct {
	name string
	mu   sync.Mutex
	st   store.BreakerStats
}

func newBreaker(name string, s store.State) *fakeBreaker {
	b := &fakeBreaker{name: name}
	b.set(s)
	return b
}

func (b *fakeBreaker) set(s store.State) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st = store.BreakerStats{
		Name:                b.name,
		State:               s,
		Since:               time.Date(2025, 3, 1, 11, 59, 0, 0, time.UTC),
		ConsecutiveFailures: 2,
		Calls:               100,
		Failures:            7,
		Timeouts:            3,
		Rejected:            11,
		Trips:               1,
	}
	if s == store.StateOpen {
		b.st.RetryAfter = 4 * time.Second
	}
}

func (b *fakeBreaker) Name() string { return b.name }

func (b *fakeBreaker) Stats() store.BreakerStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st
}

// State makes fakeBreaker usable as a pinger's breaker too.
func (b *fakeBreaker) State() store.State { return b.Stats().State }

// countingPinger counts pings; each ping waits for release (when set) and
// returns err.
type countingPinger struct {
	pings   atomic.Int64
	release chan struct{} // nil: answer at once
	err     error
}

func (p *countingPinger) Ping(ctx context.Context) error {
	p.pings.Add(1)
	if p.release != nil {
		select {
		case <-p.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return p.err
}

// breakerPinger is a pinger behind a breaker, like a *store.Guard.
type breakerPinger struct {
	*countingPinger
	b *fakeBreaker
}

func (p breakerPinger) State() store.State { return p.b.State() }

// lockedBuffer is a log sink safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newHandler builds a Handler with a quiet logger and a fake clock, closed at
// cleanup.
func newHandler(t *testing.T, opts ...Option) (*Handler, *fakeClock, *lockedBuffer) {
	t.Helper()
	clock := newClock()
	logs := &lockedBuffer{}
	all := append([]Option{WithClock(clock.Now), WithLogger(slog.New(slog.NewTextHandler(logs, nil)))}, opts...)
	h, err := New(all...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, clock, logs
}

func get(t *testing.T, h http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	pass := func(context.Context) CheckResult { return CheckResult{Status: StatusPass} }
	tests := []struct {
		name string
		opts []Option
		want string
	}{
		{"nil option", []Option{nil}, "nil Option"},
		{"nil breaker", []Option{WithBreakerCheck(nil, false)}, "nil breaker"},
		{"nil pinger", []Option{WithPinger("p", nil, false)}, "nil pinger"},
		{"nil check function", []Option{WithCheck("c", false, nil)}, "nil function"},
		{"nil cache stats", []Option{WithCacheStats("cache", nil)}, "nil function"},
		{"empty name", []Option{WithCheck("", false, pass)}, "empty check name"},
		{"name with a space", []Option{WithCheck("a b", false, pass)}, "space"},
		{"name with a comma", []Option{WithCheck("a,b", false, pass)}, "comma"},
		{"name too long", []Option{WithCheck(strings.Repeat("a", 129), false, pass)}, "longer than"},
		{"duplicate name", []Option{WithCheck("redis", false, pass), WithBreakerCheck(newBreaker("redis", store.StateClosed), false)}, "registered twice"},
		{"zero timeout", []Option{WithTimeout(0)}, "WithTimeout"},
		{"negative ttl", []Option{WithTTL(-time.Second)}, "WithTTL"},
		{"nil clock", []Option{WithClock(nil)}, "WithClock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(tt.opts...)
			if err == nil {
				h.Close()
				t.Fatal("New succeeded")
			}
			if !strings.HasPrefix(err.Error(), "health: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want the health: prefix and %q", err, tt.want)
			}
		})
	}
}

func TestLivezNeverRunsChecks(t *testing.T) {
	p := &countingPinger{err: errors.New("connection refused")}
	h, _, _ := newHandler(t,
		WithBreakerCheck(newBreaker("redis", store.StateOpen), true),
		WithPinger("redis-ping", p, true),
		WithCheck("db", true, func(context.Context) CheckResult {
			t.Error("liveness ran a check")
			return CheckResult{Status: StatusFail}
		}),
	)
	tests := []struct {
		name     string
		method   string
		target   string
		wantCode int
		wantBody string
	}{
		{"plain", http.MethodGet, "/livez", http.StatusOK, "ok"},
		{"verbose", http.MethodGet, "/livez?verbose", http.StatusOK, "[+]ping ok\nlivez check passed\n"},
		{"head", http.MethodHead, "/livez", http.StatusOK, "ok"},
		{"post", http.MethodPost, "/livez", http.StatusMethodNotAllowed, "method not allowed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.Livez().ServeHTTP(rec, httptest.NewRequest(tt.method, tt.target, nil))
			if rec.Code != tt.wantCode || rec.Body.String() != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body, tt.wantCode, tt.wantBody)
			}
			if tt.wantCode == http.StatusOK {
				if ct := rec.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
					t.Errorf("Content-Type = %q", ct)
				}
				if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control = %q, want no-store", cc)
				}
			}
		})
	}
	if n := p.pings.Load(); n != 0 {
		t.Errorf("liveness sent %d pings, want 0", n)
	}
}

func TestReadyzBreakerStates(t *testing.T) {
	tests := []struct {
		name     string
		state    store.State
		critical bool
		wantCode int
		wantLine string
	}{
		{"closed", store.StateClosed, false, http.StatusOK, "[+]redis ok"},
		{"closed critical", store.StateClosed, true, http.StatusOK, "[+]redis ok"},
		{"half-open", store.StateHalfOpen, false, http.StatusOK, "[+]redis warn: circuit breaker half-open: probing the store"},
		{"half-open critical", store.StateHalfOpen, true, http.StatusOK, "[+]redis warn: circuit breaker half-open: probing the store"},
		{"open", store.StateOpen, false, http.StatusOK, "[+]redis warn: circuit breaker open, next probe in 4s"},
		{"open critical", store.StateOpen, true, http.StatusServiceUnavailable, "[-]redis failed: circuit breaker open, next probe in 4s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _, _ := newHandler(t, WithBreakerCheck(newBreaker("redis", tt.state), tt.critical))
			rec := get(t, h.Readyz(), "/readyz?verbose")
			if rec.Code != tt.wantCode {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantCode)
			}
			lines := strings.Split(rec.Body.String(), "\n")
			if lines[0] != tt.wantLine {
				t.Errorf("first line %q, want %q", lines[0], tt.wantLine)
			}
			wantLast := "readyz check passed"
			if tt.wantCode != http.StatusOK {
				wantLast = "readyz check failed"
			}
			if lines[1] != wantLast {
				t.Errorf("second line %q, want %q", lines[1], wantLast)
			}
			plain := get(t, h.Readyz(), "/readyz")
			if plain.Code != tt.wantCode {
				t.Errorf("non-verbose status = %d, want %d", plain.Code, tt.wantCode)
			}
			if tt.wantCode == http.StatusOK && plain.Body.String() != "ok" {
				t.Errorf("non-verbose body %q, want ok", plain.Body)
			}
			if tt.wantCode != http.StatusOK && !strings.Contains(plain.Body.String(), tt.wantLine) {
				t.Errorf("failure body %q does not list the failing check", plain.Body)
			}
		})
	}
}

func TestReadyzVerboseAndExclude(t *testing.T) {
	db := &countingPinger{err: errors.New("down")}
	fixture := func(t *testing.T) *Handler {
		h, _, _ := newHandler(t,
			WithBreakerCheck(newBreaker("redis", store.StateClosed), true),
			WithPinger("db", db, true),
			WithCheck("queue", false, func(context.Context) CheckResult {
				return CheckResult{Status: StatusFail, Output: "queue\nlagging"}
			}),
			WithCacheStats("cache", func() middleware.Stats { return middleware.Stats{} }),
		)
		return h
	}
	tests := []struct {
		name      string
		target    string
		wantCode  int
		wantBody  string
		wantPings int64
	}{
		{
			name:      "verbose lists every readiness check in order",
			target:    "/readyz?verbose",
			wantCode:  http.StatusServiceUnavailable,
			wantBody:  "[+]redis ok\n[-]db failed: ping failed: connection\n[+]queue warn: queue lagging\nreadyz check failed\n",
			wantPings: 1,
		},
		{
			name:      "failure lists without verbose",
			target:    "/readyz",
			wantCode:  http.StatusServiceUnavailable,
			wantBody:  "[+]redis ok\n[-]db failed: ping failed: connection\n[+]queue warn: queue lagging\nreadyz check failed\n",
			wantPings: 1,
		},
		{
			name:      "exclude the failing check",
			target:    "/readyz?exclude=db",
			wantCode:  http.StatusOK,
			wantBody:  "ok",
			wantPings: 0,
		},
		{
			name:      "exclude verbose",
			target:    "/readyz?verbose&exclude=db",
			wantCode:  http.StatusOK,
			wantBody:  "[+]redis ok\n[+]db excluded: ok\n[+]queue warn: queue lagging\nreadyz check passed\n",
			wantPings: 0,
		},
		{
			name:      "exclude repeated and comma-separated, unknown names reported",
			target:    "/readyz?verbose&exclude=db,queue&exclude=nope&exclude=cache",
			wantCode:  http.StatusOK,
			wantBody:  "[+]redis ok\n[+]db excluded: ok\n[+]queue excluded: ok\nwarn: some checks cannot be excluded: no matches for \"nope\",\"cache\"\nreadyz check passed\n",
			wantPings: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db.pings.Store(0)
			rec := get(t, fixture(t).Readyz(), tt.target)
			if rec.Code != tt.wantCode || rec.Body.String() != tt.wantBody {
				t.Errorf("got %d\n%s\nwant %d\n%s", rec.Code, rec.Body, tt.wantCode, tt.wantBody)
			}
			if n := db.pings.Load(); n != tt.wantPings {
				t.Errorf("%d pings, want %d", n, tt.wantPings)
			}
		})
	}
}

func TestHealthzReport(t *testing.T) {
	tests := []struct {
		name       string
		state      store.State
		critical   bool
		wantCode   int
		wantStatus string
	}{
		{"pass", store.StateClosed, true, http.StatusOK, "pass"},
		{"warn", store.StateOpen, false, http.StatusOK, "warn"},
		{"fail", store.StateOpen, true, http.StatusServiceUnavailable, "fail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, clock, _ := newHandler(t,
				WithServiceInfo(ServiceInfo{ServiceID: "api-1", Version: "1", ReleaseID: "1.2.3", Description: "data API"}),
				WithBreakerCheck(newBreaker("redis", tt.state), tt.critical),
				WithPinger("redis-ping", &countingPinger{}, false),
				WithCacheStats("cache", func() middleware.Stats {
					return middleware.Stats{Hits: 10, Misses: 2, StaleServed: 3, Bypasses: 4, StoreErrors: 5}
				}),
			)
			rec := get(t, h.Healthz(), "/healthz")
			if rec.Code != tt.wantCode {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantCode)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/health+json" {
				t.Errorf("Content-Type = %q, want application/health+json", ct)
			}
			var doc struct {
				Status      string                      `json:"status"`
				Version     string                      `json:"version"`
				ReleaseID   string                      `json:"releaseId"`
				ServiceID   string                      `json:"serviceId"`
				Description string                      `json:"description"`
				Output      string                      `json:"output"`
				Checks      map[string][]map[string]any `json:"checks"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				t.Fatalf("body is not JSON: %v\n%s", err, rec.Body)
			}
			if doc.Status != tt.wantStatus {
				t.Errorf("status %q, want %q", doc.Status, tt.wantStatus)
			}
			if doc.ServiceID != "api-1" || doc.Version != "1" || doc.ReleaseID != "1.2.3" || doc.Description != "data API" {
				t.Errorf("service info %+v", doc)
			}
			if (tt.wantStatus == "pass") != (doc.Output == "") {
				t.Errorf("output %q for status %s", doc.Output, doc.Status)
			}
			want := map[string]any{
				"redis:breaker":             tt.state.String(),
				"redis:lastStateChange":     "2025-03-01T11:59:00Z",
				"redis:consecutiveFailures": 2.0,
				"redis:calls":               100.0,
				"redis:failures":            7.0,
				"redis:timeouts":            3.0,
				"redis:rejected":            11.0,
				"redis:trips":               1.0,
				"cache:hits":                10.0,
				"cache:misses":              2.0,
				"cache:staleServed":         3.0,
				"cache:bypasses":            4.0,
				"cache:storeErrors":         5.0,
			}
			if tt.state == store.StateOpen {
				want["redis:retryAfter"] = 4.0
			}
			for key, wantValue := range want {
				entries := doc.Checks[key]
				if len(entries) != 1 {
					t.Errorf("checks[%q] has %d entries, want 1", key, len(entries))
					continue
				}
				if got := entries[0]["observedValue"]; got != wantValue {
					t.Errorf("checks[%q].observedValue = %v, want %v", key, got, wantValue)
				}
			}
			for key, entries := range doc.Checks {
				for _, e := range entries {
					for _, member := range []string{"componentType", "status", "time"} {
						if _, ok := e[member]; !ok {
							t.Errorf("checks[%q] lacks %s: %v", key, member, e)
						}
					}
					if ts, _ := e["time"].(string); ts != clock.Now().Format(time.RFC3339) {
						t.Errorf("checks[%q].time = %q, want %s", key, ts, clock.Now().Format(time.RFC3339))
					}
				}
			}
			rt := doc.Checks["redis-ping:responseTime"]
			if len(rt) != 1 || rt[0]["observedUnit"] != "ms" || rt[0]["status"] != "pass" {
				t.Errorf("redis-ping:responseTime = %v", rt)
			}
			if got := doc.Checks["redis:breaker"][0]["status"]; got != tt.wantStatus {
				t.Errorf("redis:breaker status %v, want %s", got, tt.wantStatus)
			}
			if _, ok := doc.Checks["redis:retryAfter"]; ok != (tt.state == store.StateOpen) {
				t.Errorf("redis:retryAfter present = %v in state %v", ok, tt.state)
			}
		})
	}
}

func TestHealthzExclude(t *testing.T) {
	h, _, _ := newHandler(t, WithBreakerCheck(newBreaker("redis", store.StateOpen), true))
	if rec := get(t, h.Healthz(), "/healthz"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", rec.Code)
	}
	rec := get(t, h.Healthz(), "/healthz?exclude=redis")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"status":"pass"`) || strings.Contains(rec.Body.String(), "redis:") {
		t.Errorf("got %d %s", rec.Code, rec.Body)
	}
}

func TestCustomCheckResults(t *testing.T) {
	tests := []struct {
		name       string
		critical   bool
		result     CheckResult
		wantCode   int
		wantLine   string
		wantStatus Status
	}{
		{"pass", true, CheckResult{Status: StatusPass}, http.StatusOK, "[+]db ok", StatusPass},
		{"warn", true, CheckResult{Status: StatusWarn, Output: "slow"}, http.StatusOK, "[+]db warn: slow", StatusWarn},
		{"fail critical", true, CheckResult{Status: StatusFail, Output: "down"}, http.StatusServiceUnavailable, "[-]db failed: down", StatusFail},
		{"fail not critical warns", false, CheckResult{Status: StatusFail, Output: "down"}, http.StatusOK, "[+]db warn: down", StatusWarn},
		{"zero status fails", true, CheckResult{}, http.StatusServiceUnavailable, `[-]db failed: check returned status ""`, StatusFail},
		{"unknown status fails", true, CheckResult{Status: "ok"}, http.StatusServiceUnavailable, `[-]db failed: check returned status "ok"`, StatusFail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.result.ComponentType, tt.result.ObservedValue, tt.result.ObservedUnit = "datastore", 12.5, "ms"
			h, _, _ := newHandler(t, WithCheck("db", tt.critical, func(context.Context) CheckResult { return tt.result }))
			rec := get(t, h.Readyz(), "/readyz?verbose")
			if rec.Code != tt.wantCode || !strings.HasPrefix(rec.Body.String(), tt.wantLine+"\n") {
				t.Errorf("got %d %q, want %d and %q", rec.Code, rec.Body, tt.wantCode, tt.wantLine)
			}
			rep := h.Report(context.Background())
			m := rep.Checks["db"]
			if len(m) != 1 || m[0].Status != tt.wantStatus || m[0].ObservedValue != 12.5 || m[0].ObservedUnit != "ms" || m[0].ComponentType != "datastore" {
				t.Errorf("report entry %+v", m)
			}
		})
	}
}

func TestCheckPanicIsAFailure(t *testing.T) {
	h, _, logs := newHandler(t, WithCheck("db", true, func(context.Context) CheckResult { panic("boom") }))
	rec := get(t, h.Readyz(), "/readyz")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "[-]db failed: check panicked") {
		t.Errorf("got %d %q", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Errorf("panic not logged:\n%s", logs)
	}
}

func TestPingErrorDetails(t *testing.T) {
	const addr = "10.1.2.3:6379"
	tests := []struct {
		name     string
		details  bool
		want     string
		wantLeak bool
	}{
		{"hidden by default", false, "ping failed: connection", false},
		{"shown on request", true, "ping failed: dial tcp " + addr + ": connection refused", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &countingPinger{err: errors.New("dial tcp " + addr + ": connection refused")}
			h, _, _ := newHandler(t, WithPinger("redis-ping", p, true), WithErrorDetails(tt.details))
			rec := get(t, h.Readyz(), "/readyz?verbose")
			if !strings.Contains(rec.Body.String(), "[-]redis-ping failed: "+tt.want+"\n") {
				t.Errorf("body %q lacks %q", rec.Body, tt.want)
			}
			hz := get(t, h.Healthz(), "/healthz")
			if leaked := strings.Contains(rec.Body.String()+hz.Body.String(), addr); leaked != tt.wantLeak {
				t.Errorf("address in output = %v, want %v", leaked, tt.wantLeak)
			}
		})
	}
}

func TestServeHTTPRoutes(t *testing.T) {
	h, _, _ := newHandler(t, WithBreakerCheck(newBreaker("redis", store.StateOpen), true))
	tests := []struct {
		target   string
		wantCode int
		wantType string
	}{
		{"/livez", http.StatusOK, "text/plain; charset=utf-8"},
		{"/readyz", http.StatusServiceUnavailable, "text/plain; charset=utf-8"},
		{"/healthz", http.StatusServiceUnavailable, "application/health+json"},
		{"/health/livez", http.StatusOK, "text/plain; charset=utf-8"},
		{"/health/readyz?verbose", http.StatusServiceUnavailable, "text/plain; charset=utf-8"},
		{"/", http.StatusNotFound, "text/plain; charset=utf-8"},
		{"/statusz", http.StatusNotFound, "text/plain; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			rec := get(t, h, tt.target)
			if rec.Code != tt.wantCode || rec.Header().Get("Content-Type") != tt.wantType {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Header().Get("Content-Type"), tt.wantCode, tt.wantType)
			}
		})
	}
}

func TestStatusChangesLoggedOnce(t *testing.T) {
	b := newBreaker("redis", store.StateClosed)
	h, _, logs := newHandler(t, WithBreakerCheck(b, false))
	probe := func(n int) {
		for range n {
			get(t, h.Readyz(), "/readyz")
		}
	}
	probe(5)
	if s := logs.String(); s != "" {
		t.Errorf("logged while passing:\n%s", s)
	}
	b.set(store.StateOpen)
	probe(5)
	b.set(store.StateClosed)
	probe(5)
	s := logs.String()
	if n := strings.Count(s, "check status changed"); n != 2 {
		t.Errorf("%d change logs, want 2 (to warn, back to pass):\n%s", n, s)
	}
	if !strings.Contains(s, "level=WARN") || !strings.Contains(s, "level=INFO") {
		t.Errorf("want one WARN and one INFO:\n%s", s)
	}
}
