package health

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsoft/failsoft/store"
)

// TestBurstCausesOnePing fires 1,000 concurrent /readyz probes while the
// first ping is still in flight: exactly one ping is sent, and every probe
// gets its result.
func TestBurstCausesOnePing(t *testing.T) {
	const probes = 1000
	p := &countingPinger{release: make(chan struct{})}
	h, clock, _ := newHandler(t, WithPinger("redis-ping", p, true), WithTimeout(time.Minute))
	var entered atomic.Int64
	ready := h.Readyz()
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if entered.Add(1) == probes {
			close(p.release) // every probe is in; let the one ping answer
		}
		ready.ServeHTTP(w, r)
	})
	codes := make([]int, probes)
	var wg sync.WaitGroup
	for i := range probes {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			counted.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			codes[i] = rec.Code
		})
	}
	wg.Wait()
	if n := p.pings.Load(); n != 1 {
		t.Fatalf("%d concurrent probes sent %d pings, want 1", probes, n)
	}
	for i, c := range codes {
		if c != http.StatusOK {
			t.Fatalf("probe %d got %d, want 200", i, c)
		}
	}

	// Within the TTL the result is reused; after it, one more ping.
	p.release = nil
	clock.Advance(DefaultTTL - time.Millisecond)
	get(t, ready, "/readyz")
	if n := p.pings.Load(); n != 1 {
		t.Errorf("%d pings within the TTL, want 1", n)
	}
	clock.Advance(time.Millisecond)
	for range 10 {
		get(t, ready, "/readyz")
	}
	if n := p.pings.Load(); n != 2 {
		t.Errorf("%d pings after the TTL, want 2", n)
	}
}

func TestTTLOption(t *testing.T) {
	p := &countingPinger{}
	h, clock, _ := newHandler(t, WithPinger("redis-ping", p, true), WithTTL(10*time.Second))
	get(t, h.Readyz(), "/readyz")
	clock.Advance(9 * time.Second)
	get(t, h.Readyz(), "/readyz")
	if n := p.pings.Load(); n != 1 {
		t.Errorf("%d pings within a 10 s TTL, want 1", n)
	}
	clock.Advance(time.Second)
	get(t, h.Readyz(), "/readyz")
	if n := p.pings.Load(); n != 2 {
		t.Errorf("%d pings after a 10 s TTL, want 2", n)
	}
}

func TestNoPingWhileBreakerOpen(t *testing.T) {
	tests := []struct {
		name     string
		state    store.State
		critical bool
		wantCode int
		wantLine string
		wantPing int64
	}{
		{"open", store.StateOpen, false, http.StatusOK, "[+]redis-ping warn: not pinged: circuit breaker open", 0},
		{"open critical", store.StateOpen, true, http.StatusServiceUnavailable, "[-]redis-ping failed: not pinged: circuit breaker open", 0},
		{"half-open pings", store.StateHalfOpen, true, http.StatusOK, "[+]redis-ping ok", 1},
		{"closed pings", store.StateClosed, true, http.StatusOK, "[+]redis-ping ok", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := breakerPinger{&countingPinger{}, newBreaker("redis", tt.state)}
			h, clock, _ := newHandler(t, WithPinger("redis-ping", p, tt.critical))
			for range 3 {
				rec := get(t, h.Readyz(), "/readyz?verbose")
				if rec.Code != tt.wantCode || !strings.HasPrefix(rec.Body.String(), tt.wantLine+"\n") {
					t.Fatalf("got %d %q, want %d %q", rec.Code, rec.Body, tt.wantCode, tt.wantLine)
				}
				clock.Advance(DefaultTTL)
			}
			if n := p.pings.Load(); n != tt.wantPing*3 {
				t.Errorf("%d pings over 3 TTLs, want %d", n, tt.wantPing*3)
			}
		})
	}
}

func TestCheckTimeout(t *testing.T) {
	tests := []struct {
		name string
		fn   func(ctx context.Context, release <-chan struct{}) CheckResult
	}{
		{
			name: "function honours its context",
			fn: func(ctx context.Context, _ <-chan struct{}) CheckResult {
				<-ctx.Done()
				return CheckResult{Status: StatusFail, Output: ctx.Err().Error()}
			},
		},
		{
			name: "function ignores its context",
			fn: func(_ context.Context, release <-chan struct{}) CheckResult {
				<-release
				return CheckResult{Status: StatusPass}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			var runs atomic.Int64
			h, clock, _ := newHandler(t, WithTimeout(20*time.Millisecond), WithCheck("slow", true, func(ctx context.Context) CheckResult {
				runs.Add(1)
				return tt.fn(ctx, release)
			}))
			start := time.Now()
			rec := get(t, h.Readyz(), "/readyz")
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("probe took %v with a 20 ms timeout", took)
			}
			if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "[-]slow failed: timed out after 20ms") {
				t.Errorf("got %d %q, want 503 and a timeout", rec.Code, rec.Body)
			}
			close(release)
			// Once the function has returned, the next run starts; wait for it
			// rather than sleep.
			deadline := time.Now().Add(5 * time.Second)
			for runs.Load() < 2 && time.Now().Before(deadline) {
				clock.Advance(DefaultTTL)
				get(t, h.Readyz(), "/readyz")
			}
			if runs.Load() < 2 {
				t.Errorf("the check never ran again after its first run returned")
			}
		})
	}
}

// TestHungCheckIsNotPiledUp shows that a function that outlives its timeout is
// not started again until it returns.
func TestHungCheckIsNotPiledUp(t *testing.T) {
	release := make(chan struct{})
	var runs atomic.Int64
	h, clock, _ := newHandler(t, WithTimeout(10*time.Millisecond), WithCheck("hung", false, func(context.Context) CheckResult {
		runs.Add(1)
		<-release
		return CheckResult{Status: StatusPass}
	}))
	first := get(t, h.Readyz(), "/readyz?verbose")
	if !strings.Contains(first.Body.String(), "[+]hung warn: timed out after 10ms") {
		t.Errorf("first probe: %q", first.Body)
	}
	for range 5 {
		clock.Advance(DefaultTTL)
		rec := get(t, h.Readyz(), "/readyz?verbose")
		if !strings.Contains(rec.Body.String(), "[+]hung warn: previous run still going after its timeout") {
			t.Errorf("probe while hung: %q", rec.Body)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("%d runs of a hung check, want 1", n)
	}
	close(release)
	h.Close() // waits for the hung run
	clock.Advance(DefaultTTL)
	rec := get(t, h.Readyz(), "/readyz?verbose")
	if !strings.Contains(rec.Body.String(), "[+]hung warn: health handler closed") {
		t.Errorf("probe after Close: %q", rec.Body)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("%d runs after Close, want 1", n)
	}
}

// TestCallerCancellationDoesNotEndTheSharedRun checks that a probe that gives
// up does not cancel the run other probes wait for.
func TestCallerCancellationDoesNotEndTheSharedRun(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	h, _, _ := newHandler(t, WithTimeout(time.Minute), WithCheck("db", true, func(ctx context.Context) CheckResult {
		close(started)
		select {
		case <-release:
			return CheckResult{Status: StatusPass}
		case <-ctx.Done():
			return CheckResult{Status: StatusFail, Output: "canceled"}
		}
	}))
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan *httptest.ResponseRecorder)
	go func() {
		rec := httptest.NewRecorder()
		h.Readyz().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil).WithContext(ctx))
		first <- rec
	}()
	<-started
	cancel()
	if rec := <-first; rec.Code != http.StatusServiceUnavailable {
		t.Errorf("cancelled probe got %d, want 503", rec.Code)
	}
	second := make(chan *httptest.ResponseRecorder)
	go func() { second <- get(t, h.Readyz(), "/readyz") }()
	close(release)
	if rec := <-second; rec.Code != http.StatusOK {
		t.Errorf("second probe got %d %q, want 200 from the shared run", rec.Code, rec.Body)
	}
}
