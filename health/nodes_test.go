package health

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/failsoft/failsoft/store"
)

func TestWithBreakerChecks(t *testing.T) {
	a := newBreaker("redis@127.0.0.1:7000", store.StateClosed)
	b := newBreaker("redis@127.0.0.1:7001", store.StateClosed)
	c := newBreaker("redis@127.0.0.1:7002", store.StateClosed)
	tests := []struct {
		name       string
		states     [3]store.State
		critical   bool
		wantStatus Status
		wantReady  int
		wantOutput []string // substrings of the report's output
		notOutput  []string
	}{
		{"all closed", [3]store.State{}, false, StatusPass, http.StatusOK, nil, nil},
		{"one open", [3]store.State{store.StateClosed, store.StateOpen, store.StateClosed}, false, StatusWarn, http.StatusOK,
			[]string{"1 of 3 breakers not closed", "redis@127.0.0.1:7001: circuit breaker open, next probe in 4s"},
			[]string{"7000", "7002"}},
		{"one open, critical", [3]store.State{store.StateClosed, store.StateOpen, store.StateClosed}, true, StatusFail, http.StatusServiceUnavailable,
			[]string{"redis@127.0.0.1:7001"}, []string{"7000", "7002"}},
		{"one half-open, critical", [3]store.State{store.StateHalfOpen, store.StateClosed, store.StateClosed}, true, StatusWarn, http.StatusOK,
			[]string{"redis@127.0.0.1:7000: circuit breaker half-open"}, []string{"7001", "7002"}},
		{"two down", [3]store.State{store.StateOpen, store.StateHalfOpen, store.StateClosed}, false, StatusWarn, http.StatusOK,
			[]string{"2 of 3 breakers not closed", "7000", "7001"}, []string{"7002"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, br := range []*fakeBreaker{a, b, c} {
				br.set(tt.states[i])
			}
			h, err := New(WithBreakerChecks("redis-cluster", func() []*fakeBreaker { return []*fakeBreaker{a, b, c} }, tt.critical))
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			rep := h.Report(t.Context())
			if rep.Status != tt.wantStatus {
				t.Errorf("status %q, want %q (output %q)", rep.Status, tt.wantStatus, rep.Output)
			}
			for _, s := range tt.wantOutput {
				if !strings.Contains(rep.Output, s) {
					t.Errorf("output %q lacks %q", rep.Output, s)
				}
			}
			for _, s := range tt.notOutput {
				if strings.Contains(rep.Output, s) {
					t.Errorf("output %q names %q", rep.Output, s)
				}
			}
			for _, br := range []*fakeBreaker{a, b, c} {
				if m := rep.Checks[br.name+":breaker"]; len(m) != 1 || m[0].ObservedValue != br.Stats().State.String() {
					t.Errorf("report entry %s:breaker = %+v", br.name, m)
				}
			}
			rec := httptest.NewRecorder()
			h.Readyz().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz?verbose", nil))
			if rec.Code != tt.wantReady {
				t.Errorf("/readyz %d, want %d: %s", rec.Code, tt.wantReady, rec.Body)
			}
		})
	}
}

// TestWithBreakerChecksDynamic: the list is read on every run, so breakers that
// appear after New (cluster nodes discovered later) are reported.
func TestWithBreakerChecksDynamic(t *testing.T) {
	var mu sync.Mutex
	var list []Breaker
	h, err := New(WithBreakerChecks("nodes", func() []Breaker {
		mu.Lock()
		defer mu.Unlock()
		return list
	}, false))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if rep := h.Report(t.Context()); rep.Status != StatusPass || len(rep.Checks) != 0 {
		t.Errorf("empty list: %+v", rep)
	}
	mu.Lock()
	list = append(list, newBreaker("late", store.StateOpen))
	mu.Unlock()
	if rep := h.Report(t.Context()); rep.Status != StatusWarn || !strings.Contains(rep.Output, "late: circuit breaker open") {
		t.Errorf("after a breaker appeared: %+v", rep)
	}
}

func TestWithBreakerChecksErrors(t *testing.T) {
	if _, err := New(WithBreakerChecks[Breaker]("x", nil, false)); err == nil {
		t.Error("nil list accepted")
	}
	list := func() []Breaker { return nil }
	if _, err := New(WithBreakerChecks("bad name", list, false)); err == nil {
		t.Error("name with a space accepted")
	}
	if _, err := New(WithBreakerChecks("dup", list, false), WithBreakerChecks("dup", list, false)); err == nil {
		t.Error("duplicate name accepted")
	}
	// A NodeGuards' Guards method fits as it is.
	ng, err := store.NewNodeGuards()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(WithBreakerChecks("redis-cluster", ng.Guards, true)); err != nil {
		t.Errorf("WithBreakerChecks(ng.Guards): %v", err)
	}
}
