package middleware

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Issue 10 item 11: targeted cache control (RFC 9213) with the default
// fields, Failsoft-Cache-Control then CDN-Cache-Control.
func TestCacheTargetedCacheControl(t *testing.T) {
	clock := newTestClock()
	date := rfc1123(clock.Now())
	in := func(d time.Duration) string { return rfc1123(clock.Now().Add(d)) }
	tests := []struct {
		name   string
		hdr    []string      // response header name, value pairs
		after  time.Duration // between the two requests
		cached bool          // the second request is answered from the cache
	}{
		{name: "CDN max-age alone", hdr: []string{"CDN-Cache-Control", "max-age=3600"}, cached: true},
		// Nothing private is shared: Cache-Control's no-store and private
		// still bind (a deliberate departure from RFC 9213 §2.1).
		{name: "Cache-Control no-store binds beside CDN max-age", hdr: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=3600"}},
		{name: "Cache-Control private binds beside CDN max-age", hdr: []string{"Cache-Control", "private", "CDN-Cache-Control", "max-age=3600"}},
		{name: "CDN max-age beats Cache-Control no-cache", hdr: []string{"Cache-Control", "no-cache", "CDN-Cache-Control", "max-age=3600"}, cached: true},
		{name: "CDN no-store beats Cache-Control max-age", hdr: []string{"Cache-Control", "max-age=3600", "CDN-Cache-Control", "no-store", "Expires", in(time.Hour), "Date", date}},
		{name: "CDN private beats Cache-Control max-age", hdr: []string{"Cache-Control", "max-age=3600", "CDN-Cache-Control", "private", "Expires", in(time.Hour), "Date", date}},
		{name: "CDN no-cache beats Cache-Control max-age", hdr: []string{"Cache-Control", "max-age=3600", "CDN-Cache-Control", "no-cache", "Expires", in(time.Hour), "Date", date}},
		{name: "CDN long max-age beats short Cache-Control", hdr: []string{"Cache-Control", "max-age=1", "CDN-Cache-Control", "max-age=3600"}, after: 10 * time.Second, cached: true},
		{name: "CDN short max-age beats long Cache-Control", hdr: []string{"Cache-Control", "max-age=3600", "CDN-Cache-Control", "max-age=1"}, after: 10 * time.Second},
		{name: "CDN max-age=0 beats future Expires", hdr: []string{"CDN-Cache-Control", "max-age=0", "Expires", in(time.Hour), "Date", date}},
		{name: "CDN max-age beats past Expires", hdr: []string{"CDN-Cache-Control", "max-age=3600", "Expires", in(-time.Hour), "Date", date}, cached: true},
		{name: "CDN max-age beats invalid Expires", hdr: []string{"CDN-Cache-Control", "max-age=3600", "Expires", "0", "Date", date}, cached: true},
		{name: "CDN max-age 2^31", hdr: []string{"CDN-Cache-Control", "max-age=2147483648"}, cached: true},
		{name: "CDN max-age beyond 2^31", hdr: []string{"CDN-Cache-Control", "max-age=99999999999"}, cached: true},
		{name: "CDN extension directive", hdr: []string{"CDN-Cache-Control", "foobar, max-age=3600"}, cached: true},
		{name: "CDN parameters ignored", hdr: []string{"CDN-Cache-Control", "max-age=3600;foo=bar"}, cached: true},
		{name: "CDN Age beyond max-age", hdr: []string{"CDN-Cache-Control", "max-age=3600", "Age", "7200", "Date", date}},
		{name: "CDN invalid: unknown type, Cache-Control applies", hdr: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=10000, &&&&&"}},
		{name: "CDN invalid: wrong type, Cache-Control applies", hdr: []string{"Cache-Control", "no-store", "CDN-Cache-Control", `max-age="10000"`}},
		{name: "CDN invalid: space before =", hdr: []string{"Cache-Control", "max-age=1", "CDN-Cache-Control", "max-age =100"}, after: 10 * time.Second},
		{name: "CDN invalid: space after =", hdr: []string{"Cache-Control", "max-age=1", "CDN-Cache-Control", "max-age= 100"}, after: 10 * time.Second},
		{name: "CDN invalid: negative max-age", hdr: []string{"Cache-Control", "max-age=1", "CDN-Cache-Control", "max-age=-1"}, after: 10 * time.Second},
		{name: "CDN invalid: Cache-Control max-age applies", hdr: []string{"Cache-Control", "max-age=3600", "CDN-Cache-Control", "max-age=1.5"}, after: 10 * time.Second, cached: true},
		{name: "CDN empty is ignored", hdr: []string{"Cache-Control", "no-store", "CDN-Cache-Control", ""}},
		{name: "Failsoft beats CDN: shorter", hdr: []string{"Failsoft-Cache-Control", "max-age=1", "CDN-Cache-Control", "max-age=3600"}, after: 10 * time.Second},
		{name: "Failsoft beats CDN: no-store", hdr: []string{"Failsoft-Cache-Control", "no-store", "CDN-Cache-Control", "max-age=3600"}},
		{name: "Failsoft beats CDN: longer", hdr: []string{"Failsoft-Cache-Control", "max-age=3600", "CDN-Cache-Control", "no-store"}, cached: true},
		{name: "invalid Failsoft falls to CDN", hdr: []string{"Failsoft-Cache-Control", "max-age=x", "CDN-Cache-Control", "max-age=3600"}, cached: true},
		{name: "invalid Failsoft naming no-store still applies", hdr: []string{"Failsoft-Cache-Control", "No-Store", "CDN-Cache-Control", "max-age=3600"}},
		{name: "Set-Cookie still never stored", hdr: []string{"CDN-Cache-Control", "max-age=3600, public", "Set-Cookie", "a=b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newTestClock()
			var n atomic.Int64
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for i := 0; i+1 < len(tt.hdr); i += 2 {
					w.Header().Add(tt.hdr[i], tt.hdr[i+1])
				}
				fmt.Fprintf(w, "answer %d", n.Add(1))
			})
			c := newTestCache(t, newMapStore(), WithClock(clock.Now))
			ch := c.Handler(h)
			first := do(c, ch, "GET", "http://example.com/x")
			clock.Add(tt.after)
			second := do(c, ch, "GET", "http://example.com/x")
			if cached := second.Body.String() == "answer 1"; cached != tt.cached {
				t.Errorf("second answer %q (Cache-Status %q): cached = %v, want %v",
					second.Body.String(), second.Header().Get("Cache-Status"), cached, tt.cached)
			}
			// The origin's fields reach the client unchanged.
			for i := 0; i+1 < len(tt.hdr); i += 2 {
				for _, w := range []http.Header{first.Header(), second.Header()} {
					if got := w.Get(tt.hdr[i]); got != tt.hdr[i+1] && tt.hdr[i] != "Age" {
						t.Errorf("%s = %q, want %q", tt.hdr[i], got, tt.hdr[i+1])
					}
				}
			}
		})
	}
}

func TestCacheWithTargetedFields(t *testing.T) {
	tests := []struct {
		name   string
		fields []string
		hdr    []string
		cached bool
	}{
		{name: "own field", fields: []string{"x-my-cache-control"}, hdr: []string{"X-My-Cache-Control", "max-age=60"}, cached: true},
		{name: "own field beats CDN", fields: []string{"X-My-Cache-Control", "CDN-Cache-Control"},
			hdr: []string{"X-My-Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60"}},
		{name: "CDN not listed is ignored", fields: []string{"X-My-Cache-Control"}, hdr: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60"}},
		{name: "none: Cache-Control alone", fields: []string{}, hdr: []string{"Cache-Control", "max-age=60", "Failsoft-Cache-Control", "no-store"}, cached: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCache(t, newMapStore(), WithTargetedFields(tt.fields...))
			ch := c.Handler(newOrigin(200, "x", tt.hdr...))
			do(c, ch, "GET", "http://example.com/x")
			w := do(c, ch, "GET", "http://example.com/x")
			if cached := strings.Contains(w.Header().Get("Cache-Status"), "hit"); cached != tt.cached {
				t.Errorf("Cache-Status %q, want cached = %v", w.Header().Get("Cache-Status"), tt.cached)
			}
		})
	}
	for _, bad := range [][]string{{"Cache-Control"}, {"cache-control"}, {"a b"}, {""}, {"X-A", "x-a"}} {
		if _, err := New(newMapStore(), WithTargetedFields(bad...)); err == nil {
			t.Errorf("WithTargetedFields(%q): no error", bad)
		}
	}
	if d := DefaultTargetedFields(); !reflect.DeepEqual(d, []string{"Failsoft-Cache-Control", "CDN-Cache-Control"}) {
		t.Errorf("DefaultTargetedFields() = %q", d)
	}
}

func TestTargetedDirectives(t *testing.T) {
	const s = time.Second
	tests := []struct {
		field string
		want  cacheControl
		ok    bool
	}{
		{"max-age=60, s-maxage=30, stale-while-revalidate=5, stale-if-error=99", cacheControl{MaxAge: 60 * s, HasMaxAge: true,
			SMaxAge: 30 * s, HasSMaxAge: true, StaleWhileRevalidate: 5 * s, HasStaleWhileRevalidate: true, StaleIfError: 99 * s, HasStaleIfError: true}, true},
		{"no-store, must-revalidate, proxy-revalidate, public, immutable, no-transform", cacheControl{NoStore: true, MustRevalidate: true,
			ProxyRevalidate: true, Public: true, Immutable: true, NoTransform: true}, true},
		{"no-store=?0, public=?0", cacheControl{}, true},
		{`no-cache="set-cookie, X-A", private="X-B"`, cacheControl{NoCacheFields: []string{"Set-Cookie", "X-A"}, PrivateFields: []string{"X-B"}}, true},
		{`no-cache="", private="bad name"`, cacheControl{NoCache: true, Private: true}, true},
		{"max-age=1, max-age=60", cacheControl{MaxAge: 60 * s, HasMaxAge: true}, true},
		{"max-age=999999999999999", cacheControl{MaxAge: maxDelta, HasMaxAge: true}, true},
		{"max-age=0", cacheControl{HasMaxAge: true}, true},
		{"no_store, foo=(1 2), bar=:AAA=:", cacheControl{NoStore: true}, true},
		{"max-stale=5, min-fresh=5, only-if-cached", cacheControl{}, true},
		{"max-age=-1", cacheControl{}, false},
		{"max-age=1.0", cacheControl{}, false},
		{"max-age=?1", cacheControl{}, false},
		{"max-age=(60)", cacheControl{}, false},
		{"no-store=1", cacheControl{}, false},
		{"private=x-a", cacheControl{}, false},
		{"no-cache=(a b)", cacheControl{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			d, err := parseSFDict([]string{tt.field})
			if err != nil {
				t.Fatalf("parseSFDict: %v", err)
			}
			got, ok := targetedDirectives(d)
			if ok != tt.ok || ok && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("targetedDirectives = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestResponseCacheControl(t *testing.T) {
	targeted := []string{"Failsoft-Cache-Control", "CDN-Cache-Control"}
	tests := []struct {
		name     string
		h        http.Header
		want     cacheControl
		targeted bool
	}{
		{"none", http.Header{}, cacheControl{}, false},
		{"Cache-Control", http.Header{"Cache-Control": {"max-age=5"}}, cacheControl{MaxAge: 5 * time.Second, HasMaxAge: true}, false},
		{"lone Pragma", http.Header{"Pragma": {"no-cache"}}, cacheControl{NoCache: true}, false},
		{"Pragma extension", http.Header{"Pragma": {"x-foo"}}, cacheControl{}, false},
		{"Pragma ignored beside Cache-Control", http.Header{"Pragma": {"no-cache"}, "Cache-Control": {"max-age=5"}}, cacheControl{MaxAge: 5 * time.Second, HasMaxAge: true}, false},
		{"Pragma ignored beside a targeted field", http.Header{"Pragma": {"no-cache"}, "Cdn-Cache-Control": {"max-age=5"}}, cacheControl{MaxAge: 5 * time.Second, HasMaxAge: true}, true},
		{"lower-case targeted key", http.Header{"cdn-cache-control": {"max-age=5"}}, cacheControl{MaxAge: 5 * time.Second, HasMaxAge: true}, true},
		{"targeted lines combine", http.Header{"Cdn-Cache-Control": {"max-age=5", "public"}}, cacheControl{MaxAge: 5 * time.Second, HasMaxAge: true, Public: true}, true},
		{"invalid targeted adds its restriction", http.Header{"Cdn-Cache-Control": {"Private"}, "Cache-Control": {"max-age=5"}},
			cacheControl{MaxAge: 5 * time.Second, HasMaxAge: true, Private: true}, false},
		{"invalid higher targeted restricts the lower", http.Header{"Failsoft-Cache-Control": {"no-store;"}, "Cdn-Cache-Control": {"max-age=5"}},
			cacheControl{MaxAge: 5 * time.Second, HasMaxAge: true, NoStore: true}, true},
		{"invalid lower targeted is ignored", http.Header{"Failsoft-Cache-Control": {"max-age=5"}, "Cdn-Cache-Control": {"Private"}},
			cacheControl{MaxAge: 5 * time.Second, HasMaxAge: true}, true},
		{"sloppy Cache-Control private binds under a targeted field", http.Header{"Cdn-Cache-Control": {"max-age=5"}, "Cache-Control": {"private max-age=5"}},
			cacheControl{MaxAge: 5 * time.Second, HasMaxAge: true, Private: true}, true},
		{"Cache-Control no-cache gives way to a targeted field", http.Header{"Cdn-Cache-Control": {"max-age=5"}, "Cache-Control": {"no-cache"}},
			cacheControl{MaxAge: 5 * time.Second, HasMaxAge: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, used := responseCacheControl(tt.h, targeted)
			if used != tt.targeted || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("responseCacheControl = %+v, %v; want %+v, %v", got, used, tt.want, tt.targeted)
			}
		})
	}
}
