package middleware

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseAge(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name           string
		lines          []string
		age            time.Duration
		present, valid bool
	}{
		{"absent", nil, 0, false, false},
		{"zero", []string{"0"}, 0, true, true},
		{"seconds", []string{"100"}, 100 * s, true, true},
		{"leading zeros", []string{"007"}, 7 * s, true, true},
		{"whitespace", []string{" 100\t"}, 100 * s, true, true},
		{"capped at 2^31", []string{"99999999999999999999999"}, maxDelta, true, true},
		{"2^31 exactly", []string{"2147483648"}, maxDelta, true, true},
		{"list: first member", []string{"7200, 0"}, 7200 * s, true, true},
		{"list: first member zero", []string{"0, 7200"}, 0, true, true},
		{"two lines: first", []string{"7200", "0"}, 7200 * s, true, true},
		{"empty members skipped", []string{", ,5, 6"}, 5 * s, true, true},
		{"first member invalid", []string{"old, 0"}, 0, true, false},
		{"negative", []string{"-7200"}, 0, true, false},
		{"float", []string{"7200.0"}, 0, true, false},
		{"garbage", []string{"abc"}, 0, true, false},
		{"plus sign", []string{"+5"}, 0, true, false},
		{"empty", []string{""}, 0, true, false},
		{"quoted", []string{`"5"`}, 0, true, false},
		{"inner space", []string{"1 0"}, 0, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			age, present, valid := parseAge(tt.lines)
			if age != tt.age || present != tt.present || valid != tt.valid {
				t.Errorf("parseAge(%q) = %v, %v, %v; want %v, %v, %v", tt.lines, age, present, valid, tt.age, tt.present, tt.valid)
			}
		})
	}
}

// TestCacheAge checks the Age a stored response is served with: its
// corrected initial age (RFC 9111 §4.2.3: the larger of the apparent age
// from Date and the Age received plus the response delay) plus the time
// it has been stored, and that an Age that is not a non-negative integer
// makes the response stale on arrival.
func TestCacheAge(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name    string
		hdr     []string      // response fields besides Cache-Control
		cc      string        // response Cache-Control; "" is max-age=600
		dated   time.Duration // the response's Date, from when the handler starts
		delay   time.Duration // how long the handler takes
		later   time.Duration // when the second request comes
		reqHdr  []string      // of the second request
		wantAge string        // "" when the second request is not a hit
	}{
		{name: "Age received counts", hdr: []string{"Age", "100"}, later: 10 * s, wantAge: "110"},
		{name: "no Age", later: 10 * s, wantAge: "10"},
		{name: "response delay counts", delay: 5 * s, later: 10 * s, wantAge: "15"},
		{name: "Age plus response delay", hdr: []string{"Age", "100"}, delay: 5 * s, later: 10 * s, wantAge: "115"},
		{name: "old Date is the apparent age", dated: -50 * s, later: 10 * s, wantAge: "60"},
		{name: "apparent age beats a smaller Age", hdr: []string{"Age", "20"}, dated: -50 * s, later: 10 * s, wantAge: "60"},
		{name: "Age beats a smaller apparent age", hdr: []string{"Age", "80"}, dated: -50 * s, later: 10 * s, wantAge: "90"},
		{name: "Age beyond max-age: stale", hdr: []string{"Age", "700"}, later: s},
		{name: "Age near max-age: stale later", hdr: []string{"Age", "595"}, later: 10 * s},
		{name: "list: first member old", hdr: []string{"Age", "7200, 0"}, later: s},
		{name: "list: first member zero", hdr: []string{"Age", "0, 7200"}, later: s, wantAge: "1"},
		{name: "two lines: first old", hdr: []string{"Age", "7200", "Age", "0"}, later: s},
		{name: "two lines: first zero", hdr: []string{"Age", "0", "Age", "7200"}, later: s, wantAge: "1"},
		{name: "negative Age: stale", hdr: []string{"Age", "-7200"}, later: s},
		{name: "float Age: stale", hdr: []string{"Age", "7200.0"}, later: s},
		{name: "garbage Age: stale", hdr: []string{"Age", "abc"}, later: s},
		{name: "huge Age: stale", hdr: []string{"Age", "99999999999999999999"}, later: s},
		{name: "huge Age with huge max-age capped", hdr: []string{"Age", "99999999999999999999"}, cc: "max-age=99999999999999999999", later: s},
		{name: "request max-age counts the Age received", hdr: []string{"Age", "100"}, later: s,
			reqHdr: []string{"Cache-Control", "max-age=50"}},
		{name: "request max-age within the age", hdr: []string{"Age", "100"}, later: s,
			reqHdr: []string{"Cache-Control", "max-age=200"}, wantAge: "101"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newTestClock()
			cc := tt.cc
			if cc == "" {
				cc = "max-age=600"
			}
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Date", clk.Now().Add(tt.dated).UTC().Format(http.TimeFormat))
				w.Header().Set("Cache-Control", cc)
				for i := 0; i+1 < len(tt.hdr); i += 2 {
					w.Header().Add(tt.hdr[i], tt.hdr[i+1])
				}
				clk.Add(tt.delay)
				w.Write([]byte("body"))
			})
			c := newTestCache(t, newMapStore(), WithClock(clk.Now))
			ch := c.Handler(h)
			do(c, ch, "GET", "http://example.com/a")
			clk.Add(tt.later)
			w := do(c, ch, "GET", "http://example.com/a", tt.reqHdr...)
			hit := strings.HasPrefix(w.Header().Get("Cache-Status"), "failsoft; hit")
			if hit != (tt.wantAge != "") {
				t.Fatalf("Cache-Status %q, want a hit: %v", w.Header().Get("Cache-Status"), tt.wantAge != "")
			}
			if hit && w.Header().Get("Age") != tt.wantAge {
				t.Errorf("Age %q, want %q", w.Header().Get("Age"), tt.wantAge)
			}
			if ages := w.Header().Values("Age"); hit && len(ages) != 1 {
				t.Errorf("Age lines %q, want one", ages)
			}
		})
	}
}

// TestCacheAgeAfterRevalidation checks that a 304 without Age starts the
// revalidated entry's age again, rather than reapplying the Age the
// response first arrived with.
func TestCacheAgeAfterRevalidation(t *testing.T) {
	clk := newTestClock()
	var calls int
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Etag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Age", "100")
		w.Write([]byte("body"))
	})
	c := newTestCache(t, newMapStore(), WithClock(clk.Now))
	ch := c.Handler(h)
	do(c, ch, "GET", "http://example.com/a")
	clk.Add(600 * time.Second) // stale: 100 + 600 > 600
	w := do(c, ch, "GET", "http://example.com/a")
	if cs := w.Header().Get("Cache-Status"); !strings.Contains(cs, "fwd=stale; fwd-status=304; stored") {
		t.Fatalf("Cache-Status %q, want a revalidation", cs)
	}
	clk.Add(550 * time.Second)
	w = do(c, ch, "GET", "http://example.com/a")
	if cs := w.Header().Get("Cache-Status"); !strings.HasPrefix(cs, "failsoft; hit") || w.Header().Get("Age") != "550" {
		t.Errorf("Cache-Status %q, Age %q; want a hit aged 550", cs, w.Header().Get("Age"))
	}
	if calls != 2 {
		t.Errorf("handler called %d times, want 2", calls)
	}
}
