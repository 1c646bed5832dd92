package middleware

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestStorableStatuses(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	p := policy{DefaultTTL: time.Minute, StaleIfError: 24 * time.Hour, Shared: true, Now: func() time.Time { return now }}
	errorsOn := p
	errorsOn.ServerErrors = true
	listed := p
	listed.Statuses = map[int]bool{200: true, 302: true, 308: true, 500: true}
	listedErrorsOn := listed
	listedErrorsOn.ServerErrors = true
	maxAge := http.Header{"Cache-Control": {"max-age=60"}}
	expires := http.Header{"Expires": {rfc1123(now.Add(time.Hour))}}
	public := http.Header{"Cache-Control": {"public"}}
	none := http.Header{}
	tests := []struct {
		name   string
		status int
		h      http.Header
		p      policy
		reason string // "" means storable
	}{
		{"302 with max-age", 302, maxAge, p, ""},
		{"303 with max-age", 303, maxAge, p, ""},
		{"307 with Expires", 307, expires, p, ""},
		{"308 with max-age", 308, maxAge, p, ""},
		{"302 public under the default TTL", 302, public, p, ""},
		{"302 without a lifetime", 302, none, p, "status"},
		{"400 with max-age", 400, maxAge, p, ""},
		{"401 with max-age", 401, maxAge, p, ""},
		{"403 with max-age", 403, maxAge, p, ""},
		{"429 with max-age", 429, maxAge, p, ""},
		{"451 with s-maxage", 451, http.Header{"Cache-Control": {"s-maxage=60"}}, p, ""},
		{"403 without a lifetime", 403, none, p, "status"},
		{"404 without a lifetime", 404, none, p, ""},
		{"501 without a lifetime", 501, none, p, ""},
		{"500 with max-age", 500, maxAge, p, "status"},
		{"503 with Expires", 503, expires, p, "status"},
		{"500 public", 500, public, errorsOn, "status"},
		{"500 with max-age, server errors on", 500, maxAge, errorsOn, ""},
		{"503 with Expires, server errors on", 503, expires, errorsOn, ""},
		{"511 with max-age, server errors on", 511, maxAge, errorsOn, ""},
		{"500 without a lifetime, server errors on", 500, none, errorsOn, "status"},
		{"unknown 299", 299, maxAge, p, "status"},
		{"unknown 207", 207, maxAge, p, "status"},
		{"unknown 599, server errors on", 599, maxAge, errorsOn, "status"},
		{"unused 306", 306, maxAge, p, "status"},
		{"unused 418", 418, maxAge, p, "status"},
		{"deprecated 305", 305, maxAge, p, "status"},
		{"listed 302 with max-age", 302, maxAge, listed, ""},
		{"listed 308 heuristic", 308, none, listed, ""},
		{"unlisted 404", 404, maxAge, listed, "status"},
		{"listed 500, server errors off", 500, maxAge, listed, "status"},
		{"listed 500, server errors on", 500, maxAge, listedErrorsOn, ""},
		{"must-understand ignores no-store", 200, http.Header{"Cache-Control": {"max-age=60, no-store, must-understand"}}, p, ""},
		{"must-understand with 302", 302, http.Header{"Cache-Control": {"no-store, must-understand, max-age=60"}}, p, ""},
		{"must-understand odd case", 200, http.Header{"Cache-Control": {"max-age=60, NO-STORE, Must-Understand"}}, p, ""},
		{"must-understand on another line", 200, http.Header{"Cache-Control": {"max-age=60, no-store", "must-understand"}}, p, ""},
		{"must-understand unknown status", 299, http.Header{"Cache-Control": {"max-age=60, no-store, must-understand"}}, p, "status"},
		{"must-understand 500", 500, http.Header{"Cache-Control": {"max-age=60, no-store, must-understand"}}, p, "status"},
		{"must-understand with an argument", 200, http.Header{"Cache-Control": {"max-age=60, no-store, must-understand=1"}}, p, "no-store"},
		{"must-understand keeps private", 200, http.Header{"Cache-Control": {"max-age=60, private, must-understand"}}, p, "private"},
		{"must-understand keeps Set-Cookie", 200, http.Header{"Cache-Control": {"max-age=60, no-store, must-understand"}, "Set-Cookie": {"a=b"}}, p, "set-cookie"},
		{"must-understand without a lifetime", 200, http.Header{"Cache-Control": {"no-store, must-understand"}}, p, ""},
		{"must-understand 206", 206, http.Header{"Cache-Control": {"max-age=60, no-store, must-understand"}}, p, "status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "http://example.com/x", nil)
			ok, reason := storable(req, tt.status, tt.h, parseCacheControl(tt.h), tt.p)
			if ok != (tt.reason == "") || reason != tt.reason {
				t.Errorf("storable = %v, %q; want reason %q", ok, reason, tt.reason)
			}
		})
	}
}

func TestCacheStatuses(t *testing.T) {
	tests := []struct {
		name   string
		opts   []Option
		status int
		hdr    []string
		stored bool
	}{
		{name: "302 with max-age", status: 302, hdr: []string{"Cache-Control", "max-age=60", "Location", "/b"}, stored: true},
		{name: "303 with max-age", status: 303, hdr: []string{"Cache-Control", "max-age=60", "Location", "/b"}, stored: true},
		{name: "307 with max-age", status: 307, hdr: []string{"Cache-Control", "max-age=60", "Location", "/b"}, stored: true},
		{name: "308 with max-age", status: 308, hdr: []string{"Cache-Control", "max-age=60", "Location", "/b"}, stored: true},
		{name: "403 with max-age", status: 403, hdr: []string{"Cache-Control", "max-age=60"}, stored: true},
		{name: "302 public under the default TTL", opts: []Option{WithDefaultTTL(time.Minute)}, status: 302, hdr: []string{"Cache-Control", "public"}, stored: true},
		{name: "302 under the default TTL alone", opts: []Option{WithDefaultTTL(time.Minute)}, status: 302, stored: false},
		{name: "308 under the default TTL alone", opts: []Option{WithDefaultTTL(time.Minute)}, status: 308, stored: false},
		{name: "299 with max-age", status: 299, hdr: []string{"Cache-Control", "max-age=60"}, stored: false},
		{name: "500 with max-age", status: 500, hdr: []string{"Cache-Control", "max-age=60"}, stored: false},
		{name: "500 with max-age, server errors on", opts: []Option{WithServerErrors(true)}, status: 500, hdr: []string{"Cache-Control", "max-age=60"}, stored: true},
		{name: "503 without a lifetime, server errors on", opts: []Option{WithServerErrors(true), WithDefaultTTL(time.Minute)}, status: 503, stored: false},
		{name: "must-understand and no-store", status: 200, hdr: []string{"Cache-Control", "max-age=60, no-store, must-understand"}, stored: true},
		{name: "no-store alone", status: 200, hdr: []string{"Cache-Control", "max-age=60, no-store"}, stored: false},
		{name: "302 outside WithStatuses", opts: []Option{WithStatuses(200)}, status: 302, hdr: []string{"Cache-Control", "max-age=60"}, stored: false},
		{name: "308 in WithStatuses under the default TTL", opts: []Option{WithStatuses(308), WithDefaultTTL(time.Minute)}, status: 308, stored: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newTestClock()
			o := newOrigin(tt.status, "body", tt.hdr...)
			c := newTestCache(t, newMapStore(), append([]Option{WithClock(clk.Now)}, tt.opts...)...)
			h := c.Handler(o)
			first := do(c, h, "GET", "http://example.com/a")
			if got := strings.Contains(first.Header().Get("Cache-Status"), "; stored"); got != tt.stored {
				t.Errorf("Cache-Status %q: stored=%v, want %v", first.Header().Get("Cache-Status"), got, tt.stored)
			}
			second := do(c, h, "GET", "http://example.com/a")
			hit := strings.HasPrefix(second.Header().Get("Cache-Status"), "failsoft; hit")
			if hit != tt.stored || second.Code != tt.status {
				t.Errorf("second: %d %q, want status %d, hit %v", second.Code, second.Header().Get("Cache-Status"), tt.status, tt.stored)
			}
		})
	}
}

// TestCacheServerErrorNeverReplaces checks that under WithServerErrors a
// 5xx is stored only where no stored response that is not a 5xx exists:
// it never replaces one, even one past its stale-if-error window that is
// kept for revalidation.
func TestCacheServerErrorNeverReplaces(t *testing.T) {
	clk := newTestClock()
	var status atomic.Int64
	status.Store(200)
	var calls atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		s := int(status.Load())
		if s == 200 {
			w.Header().Set("Cache-Control", "max-age=10, stale-if-error=0")
			w.Header().Set("Etag", `"v1"`)
		} else {
			w.Header().Set("Cache-Control", "max-age=60")
		}
		w.WriteHeader(s)
		fmt.Fprint(w, s)
	})
	c := newTestCache(t, newMapStore(), WithClock(clk.Now), WithServerErrors(true))
	ch := c.Handler(h)
	do(c, ch, "GET", "http://example.com/a")
	clk.Add(time.Minute) // past freshness and stale-if-error, kept for its ETag
	status.Store(500)
	w := do(c, ch, "GET", "http://example.com/a")
	if w.Code != 500 || strings.Contains(w.Header().Get("Cache-Status"), "stored") {
		t.Fatalf("%d %q, want the 500 passed on, not stored", w.Code, w.Header().Get("Cache-Status"))
	}
	status.Store(200)
	w = do(c, ch, "GET", "http://example.com/a")
	if w.Code != 200 || w.Body.String() != "200" {
		t.Errorf("%d %q after the 500, want the handler's 200", w.Code, w.Body.String())
	}
	if calls.Load() != 3 {
		t.Errorf("handler called %d times, want 3", calls.Load())
	}

	// Without a stored copy the 500 is stored and answers the next request.
	status.Store(500)
	w = do(c, ch, "GET", "http://example.com/b")
	w2 := do(c, ch, "GET", "http://example.com/b")
	if !strings.Contains(w.Header().Get("Cache-Status"), "stored") || w2.Code != 500 ||
		!strings.HasPrefix(w2.Header().Get("Cache-Status"), "failsoft; hit") {
		t.Errorf("first %q, second %d %q; want the 500 stored and served", w.Header().Get("Cache-Status"), w2.Code, w2.Header().Get("Cache-Status"))
	}
}

// TestCacheServerErrorKeepsVariants: a 5xx without Vary, answered for a
// variant the cache does not hold, must not replace the Vary marker, which
// would orphan every stored variant of the URL.
func TestCacheServerErrorKeepsVariants(t *testing.T) {
	var status atomic.Int64
	status.Store(200)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := int(status.Load())
		w.Header().Set("Cache-Control", "max-age=60")
		if s == 200 {
			w.Header().Set("Vary", "Accept-Language")
		}
		w.WriteHeader(s)
		fmt.Fprint(w, s, r.Header.Get("Accept-Language"))
	})
	c := newTestCache(t, newMapStore(), WithServerErrors(true))
	ch := c.Handler(h)
	do(c, ch, "GET", "http://example.com/v", "Accept-Language", "en")
	status.Store(500)
	if w := do(c, ch, "GET", "http://example.com/v", "Accept-Language", "fr"); w.Code != 500 || strings.Contains(w.Header().Get("Cache-Status"), "stored") {
		t.Fatalf("fr: %d %q, want the 500 passed on, not stored", w.Code, w.Header().Get("Cache-Status"))
	}
	w := do(c, ch, "GET", "http://example.com/v", "Accept-Language", "en")
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Cache-Status"), "failsoft; hit") {
		t.Fatalf("en after the 500: %d %q, want the stored variant", w.Code, w.Header().Get("Cache-Status"))
	}
}

func TestWithStatusesRejectsNeverStored(t *testing.T) {
	for _, status := range []int{103, 206, 304, 207, 299, 306, 418, 599, 600} {
		if _, err := New(newMapStore(), WithStatuses(200, status)); err == nil {
			t.Errorf("WithStatuses(200, %d): no error", status)
		}
	}
	if _, err := New(newMapStore(), WithStatuses(200, 302, 404, 500, 511)); err != nil {
		t.Errorf("WithStatuses of stored statuses: %v", err)
	}
}
