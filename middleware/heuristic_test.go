package middleware

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

func TestHeuristicLifetime(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	on := heuristic{Fraction: 0.1, Max: 24 * time.Hour}
	ago := func(d time.Duration) string { return rfc1123(now.Add(-d)) }
	tests := []struct {
		name   string
		hf     heuristic
		status int
		h      http.Header
		want   time.Duration
		ok     bool
	}{
		{"off", heuristic{}, 200, http.Header{"Last-Modified": {ago(10 * time.Hour)}}, 0, false},
		{"10% of 10 h", on, 200, http.Header{"Last-Modified": {ago(10 * time.Hour)}}, time.Hour, true},
		{"counts to Date", on, 200, http.Header{"Last-Modified": {ago(10 * time.Hour)}, "Date": {ago(5 * time.Hour)}}, 30 * time.Minute, true},
		{"capped", on, 200, http.Header{"Last-Modified": {ago(1000 * 24 * time.Hour)}}, 24 * time.Hour, true},
		{"404", on, 404, http.Header{"Last-Modified": {ago(10 * time.Hour)}}, time.Hour, true},
		{"201 not heuristically cacheable", on, 201, http.Header{"Last-Modified": {ago(10 * time.Hour)}}, 0, false},
		{"302 not heuristically cacheable", on, 302, http.Header{"Last-Modified": {ago(10 * time.Hour)}}, 0, false},
		{"no Last-Modified", on, 200, http.Header{}, 0, false},
		{"invalid Last-Modified", on, 200, http.Header{"Last-Modified": {"yesterday"}}, 0, false},
		{"two Last-Modified", on, 200, http.Header{"Last-Modified": {ago(time.Hour), ago(time.Hour)}}, 0, false},
		{"Last-Modified in the future", on, 200, http.Header{"Last-Modified": {ago(-time.Hour)}}, 0, false},
		{"Last-Modified equals Date", on, 200, http.Header{"Last-Modified": {ago(0)}}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.hf.lifetime(tt.status, tt.h, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("lifetime = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// Issue 10 item 12: heuristic freshness as an option, off by default.
func TestCacheHeuristicFreshness(t *testing.T) {
	heuristic10 := WithHeuristicFreshness(0.1, 24*time.Hour)
	tests := []struct {
		name   string
		opts   []Option
		lm     time.Duration // Last-Modified this long before the response
		hdr    []string      // more response fields
		req    []string      // request fields
		after  time.Duration
		cached bool
	}{
		{name: "off by default", lm: 10 * time.Hour},
		{name: "fresh within 10%", opts: []Option{heuristic10}, lm: 10 * time.Hour, after: 59 * time.Minute, cached: true},
		{name: "stale after 10%", opts: []Option{heuristic10}, lm: 10 * time.Hour, after: 61 * time.Minute},
		{name: "capped", opts: []Option{WithHeuristicFreshness(0.1, time.Minute)}, lm: 10 * time.Hour, after: 2 * time.Minute},
		{name: "not over explicit max-age", opts: []Option{heuristic10}, lm: 10 * time.Hour, hdr: []string{"Cache-Control", "max-age=10"}, after: 20 * time.Second},
		{name: "not over Expires", opts: []Option{heuristic10}, lm: 10 * time.Hour, hdr: []string{"Expires", "0"}, after: time.Second},
		{name: "not over targeted max-age", opts: []Option{heuristic10}, lm: 10 * time.Hour, hdr: []string{"CDN-Cache-Control", "max-age=10"}, after: 20 * time.Second},
		{name: "with public", opts: []Option{heuristic10}, lm: 10 * time.Hour, hdr: []string{"Cache-Control", "public"}, after: 59 * time.Minute, cached: true},
		{name: "over the default TTL", opts: []Option{heuristic10, WithDefaultTTL(10 * time.Hour)}, lm: 10 * time.Hour, after: 2 * time.Hour},
		{name: "default TTL without Last-Modified", opts: []Option{heuristic10, WithDefaultTTL(10 * time.Hour)}, after: 2 * time.Hour, cached: true},
		{name: "not with Cookie", opts: []Option{heuristic10}, lm: 10 * time.Hour, req: []string{"Cookie", "s=1"}, after: time.Minute},
		{name: "not with Authorization and must-revalidate", opts: []Option{heuristic10}, lm: 10 * time.Hour,
			hdr: []string{"Cache-Control", "must-revalidate"}, req: []string{"Authorization", "Bearer a"}, after: time.Minute},
		{name: "no-cache wins", opts: []Option{heuristic10}, lm: 10 * time.Hour, hdr: []string{"Cache-Control", "no-cache"}, after: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newTestClock()
			var n atomic.Int64
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.lm > 0 {
					w.Header().Set("Last-Modified", rfc1123(clock.Now().Add(-tt.lm)))
				}
				for i := 0; i+1 < len(tt.hdr); i += 2 {
					w.Header().Add(tt.hdr[i], tt.hdr[i+1])
				}
				fmt.Fprintf(w, "answer %d", n.Add(1))
			})
			c := newTestCache(t, newMapStore(), append([]Option{WithClock(clock.Now)}, tt.opts...)...)
			ch := c.Handler(h)
			do(c, ch, "GET", "http://example.com/x", tt.req...)
			clock.Add(tt.after)
			w := do(c, ch, "GET", "http://example.com/x", tt.req...)
			if cached := w.Body.String() == "answer 1"; cached != tt.cached {
				t.Errorf("second answer %q (Cache-Status %q): cached = %v, want %v",
					w.Body.String(), w.Header().Get("Cache-Status"), cached, tt.cached)
			}
		})
	}
	for _, bad := range []Option{WithHeuristicFreshness(-0.1, time.Hour), WithHeuristicFreshness(1.5, time.Hour),
		WithHeuristicFreshness(0.1, 0)} {
		if _, err := New(newMapStore(), bad); err == nil {
			t.Error("invalid heuristic freshness accepted")
		}
	}
	if _, err := New(newMapStore(), WithHeuristicFreshness(0, 0)); err != nil {
		t.Errorf("fraction 0 (off): %v", err)
	}
}
