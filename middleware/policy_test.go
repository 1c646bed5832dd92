package middleware

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// rfc1123 formats t as an HTTP-date.
func rfc1123(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

func TestStorable(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	p := policy{DefaultTTL: time.Minute, StaleIfError: 24 * time.Hour, Shared: true, Now: func() time.Time { return now }}
	noDefault := p
	noDefault.DefaultTTL = 0
	withStatuses := p
	withStatuses.Statuses = map[int]bool{200: true, 302: true, 206: true, 304: true, 500: true}
	notShared := p
	notShared.Shared = false

	get := func(hdr ...string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "http://example.com/x", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Add(hdr[i], hdr[i+1])
		}
		return r
	}
	tests := []struct {
		name   string
		req    *http.Request
		status int
		h      http.Header
		p      policy
		reason string // "" means storable
	}{
		{"plain 200 with default TTL", get(), 200, http.Header{}, p, ""},
		{"plain 200 without default TTL", get(), 200, http.Header{}, noDefault, "no-lifetime"},
		{"max-age without default TTL", get(), 200, http.Header{"Cache-Control": {"max-age=60"}}, noDefault, ""},
		{"Expires in the future", get(), 200, http.Header{"Expires": {rfc1123(now.Add(time.Hour))}}, noDefault, ""},
		{"Expires in the past", get(), 200, http.Header{"Expires": {rfc1123(now.Add(-time.Hour))}}, p, "no-lifetime"},
		{"Expires 0", get(), 200, http.Header{"Expires": {"0"}}, p, "no-lifetime"},
		{"Expires 0 with validator", get(), 200, http.Header{"Expires": {"0"}, "Etag": {`"v"`}}, p, ""},
		{"HEAD not stored", httptest.NewRequest(http.MethodHead, "/", nil), 200, http.Header{}, p, "method"},
		{"POST not stored", httptest.NewRequest(http.MethodPost, "/", nil), 200, http.Header{"Cache-Control": {"max-age=60"}}, p, "method"},
		{"request no-store", get("Cache-Control", "no-store"), 200, http.Header{}, p, "request-no-store"},
		{"request no-cache is fine", get("Cache-Control", "no-cache"), 200, http.Header{}, p, ""},
		{"response no-store", get(), 200, http.Header{"Cache-Control": {"no-store, max-age=60"}}, p, "no-store"},
		{"response no-store lower-case key", get(), 200, http.Header{"cache-control": {"no-store"}}, p, "no-store"},
		{"private", get(), 200, http.Header{"Cache-Control": {"private, max-age=60"}}, p, "private"},
		{"private in a private cache", get(), 200, http.Header{"Cache-Control": {"private, max-age=60"}}, notShared, ""},
		{"qualified private stores the rest", get(), 200, http.Header{"Cache-Control": {`private="X-User", max-age=60`}}, p, ""},
		{"Set-Cookie", get(), 200, http.Header{"Set-Cookie": {"a=b"}}, p, "set-cookie"},
		{"Set-Cookie even with public", get(), 200, http.Header{"Set-Cookie": {"a=b"}, "Cache-Control": {"public, max-age=60"}}, p, "set-cookie"},
		{"Set-Cookie even when no-cache names it", get(), 200,
			http.Header{"Set-Cookie": {"a=b"}, "Cache-Control": {`no-cache="Set-Cookie", max-age=60`}}, p, "set-cookie"},
		{"Set-Cookie lower-case key", get(), 200, http.Header{"set-cookie": {"a=b"}}, p, "set-cookie"},
		{"Vary star", get(), 200, http.Header{"Vary": {"Accept, *"}}, p, "vary-star"},
		{"Vary invalid", get(), 200, http.Header{"Vary": {"Accept Encoding"}}, p, "vary-star"},
		{"Vary names", get(), 200, http.Header{"Vary": {"Accept-Encoding"}}, p, ""},
		{"Authorization", get("Authorization", "Bearer x"), 200, http.Header{"Cache-Control": {"max-age=60"}}, p, "authorization"},
		{"Authorization with default TTL", get("Authorization", "Bearer x"), 200, http.Header{}, p, "authorization"},
		{"Authorization and public", get("Authorization", "Bearer x"), 200, http.Header{"Cache-Control": {"public, max-age=60"}}, p, ""},
		{"Authorization and s-maxage", get("Authorization", "Bearer x"), 200, http.Header{"Cache-Control": {"s-maxage=60"}}, p, ""},
		{"Authorization and s-maxage=0", get("Authorization", "Bearer x"), 200, http.Header{"Cache-Control": {"s-maxage=0, stale-if-error=60"}}, p, ""},
		{"Authorization and an unreadable s-maxage", get("Authorization", "Bearer x"), 200, http.Header{"Cache-Control": {"s-maxage=abc, stale-if-error=60"}}, p, "authorization"},
		{"Authorization and a spaced s-maxage", get("Authorization", "Bearer x"), 200, http.Header{"Cache-Control": {"s-maxage =60, stale-if-error=60"}}, p, "authorization"},
		{"Authorization and s-maxage without a value", get("Authorization", "Bearer x"), 200, http.Header{"Cache-Control": {"s-maxage, stale-if-error=60"}}, p, "authorization"},
		{"Authorization and a quoted s-maxage", get("Authorization", "Bearer x"), 200, http.Header{"Cache-Control": {`s-maxage="60"`}}, p, ""},
		// Issue 10 item 5: RFC 9111 §3.5 accepts must-revalidate.
		{"Authorization and must-revalidate", get("Authorization", "Bearer x"), 200, http.Header{"Cache-Control": {"must-revalidate, max-age=60"}}, p, ""},
		{"Authorization and must-revalidate with Expires", get("Authorization", "Bearer x"), 200,
			http.Header{"Cache-Control": {"must-revalidate"}, "Expires": {rfc1123(now.Add(time.Hour))}}, p, ""},
		{"Authorization and must-revalidate, no-cache, ETag", get("Authorization", "Bearer x"), 200,
			http.Header{"Cache-Control": {"must-revalidate, no-cache"}, "Etag": {`"v"`}}, p, ""},
		{"Authorization and must-revalidate on the default TTL only", get("Authorization", "Bearer x"), 200, http.Header{"Cache-Control": {"must-revalidate"}}, p, "authorization"},
		{"Authorization and private, must-revalidate", get("Authorization", "Bearer x"), 200, http.Header{"Cache-Control": {"private, must-revalidate, max-age=60"}}, p, "private"},
		{"Authorization and proxy-revalidate is not enough", get("Authorization", "Bearer x"), 200, http.Header{"Cache-Control": {"proxy-revalidate, max-age=60"}}, p, "authorization"},
		{"Cookie with default TTL only", get("Cookie", "session=alice"), 200, http.Header{}, p, "cookie"},
		{"Cookie and max-age", get("Cookie", "session=alice"), 200, http.Header{"Cache-Control": {"max-age=60"}}, p, ""},
		{"Cookie and public", get("Cookie", "session=alice"), 200, http.Header{"Cache-Control": {"public"}}, p, ""},
		// Forwarding headers are in the key (TestForwardingHeadersAreKeyed)
		// and method overrides bypass the cache (TestRequestWithBodyBypasses):
		// neither is a storage rule any more.
		{"X-Forwarded-Host not varied", get("X-Forwarded-Host", "evil.example"), 200, http.Header{"Cache-Control": {"max-age=60"}}, p, ""},
		{"X-Forwarded-Host varied", get("X-Forwarded-Host", "evil.example"), 200, http.Header{"Cache-Control": {"max-age=60"}, "Vary": {"X-Forwarded-Host"}}, p, ""},
		{"X-Forwarded-For", get("X-Forwarded-For", "10.0.0.1"), 200, http.Header{"Cache-Control": {"max-age=60"}}, p, ""},
		{"Authorization in a private cache", get("Authorization", "Bearer x"), 200, http.Header{"Cache-Control": {"max-age=60"}}, notShared, ""},
		{"status 404 default", get(), 404, http.Header{}, p, ""},
		{"status 308 default heuristic", get(), 308, http.Header{}, p, "status"},
		{"status 308 with max-age", get(), 308, http.Header{"Cache-Control": {"max-age=60"}}, p, ""},
		{"status 302 with max-age", get(), 302, http.Header{"Cache-Control": {"max-age=60"}}, p, ""},
		{"status 500 default", get(), 500, http.Header{"Cache-Control": {"max-age=60"}}, p, "status"},
		{"status 201 default", get(), 201, http.Header{}, p, "status"},
		{"status 200 not configured", get(), 404, http.Header{}, withStatuses, "status"},
		{"status 302 configured with max-age", get(), 302, http.Header{"Cache-Control": {"max-age=60"}}, withStatuses, ""},
		{"status 302 configured with Expires", get(), 302, http.Header{"Expires": {rfc1123(now.Add(time.Hour))}}, withStatuses, ""},
		{"status 302 configured public", get(), 302, http.Header{"Cache-Control": {"public"}}, withStatuses, ""},
		{"status 302 configured heuristic only", get(), 302, http.Header{}, withStatuses, "status"},
		{"status 500 configured heuristic only", get(), 500, http.Header{}, withStatuses, "status"},
		{"status 206 never", get(), 206, http.Header{"Cache-Control": {"max-age=60"}}, withStatuses, "status"},
		{"status 304 never", get(), 304, http.Header{"Cache-Control": {"max-age=60"}}, withStatuses, "status"},
		{"status 1xx never", get(), 103, http.Header{"Cache-Control": {"max-age=60"}}, p, "status"},
		{"no-cache with ETag", get(), 200, http.Header{"Cache-Control": {"no-cache"}, "Etag": {`"v1"`}}, p, ""},
		{"no-cache with Last-Modified", get(), 200, http.Header{"Cache-Control": {"no-cache"}, "Last-Modified": {rfc1123(now)}}, p, ""},
		{"no-cache without validator", get(), 200, http.Header{"Cache-Control": {"no-cache"}}, p, "no-lifetime"},
		{"no-cache with stale-if-error", get(), 200, http.Header{"Cache-Control": {"no-cache, stale-if-error=60"}}, p, "no-lifetime"},
		{"max-age=0 with validator", get(), 200, http.Header{"Cache-Control": {"max-age=0"}, "Etag": {`"v1"`}}, p, ""},
		{"max-age=0 alone", get(), 200, http.Header{"Cache-Control": {"max-age=0"}}, p, "no-lifetime"},
		{"max-age=0 with stale-if-error", get(), 200, http.Header{"Cache-Control": {"max-age=0, stale-if-error=600"}}, p, ""},
		{"max-age=0 with stale-while-revalidate", get(), 200, http.Header{"Cache-Control": {"max-age=0, stale-while-revalidate=60"}}, p, ""},
		{"max-age=0 must-revalidate stale-if-error", get(), 200, http.Header{"Cache-Control": {"max-age=0, must-revalidate, stale-if-error=600"}}, p, "no-lifetime"},
		{"validator without stated lifetime and no default", get(), 200, http.Header{"Etag": {`"v1"`}}, noDefault, "no-lifetime"},
		{"Age beyond max-age", get(), 200, http.Header{"Cache-Control": {"max-age=60"}, "Age": {"120"}}, p, "no-lifetime"},
		{"Age within max-age", get(), 200, http.Header{"Cache-Control": {"max-age=60"}, "Age": {"30"}}, p, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, reason := storable(tt.req, tt.status, tt.h, parseCacheControl(tt.h), tt.p)
			if ok != (tt.reason == "") || reason != tt.reason {
				t.Errorf("storable = %v, %q; want reason %q", ok, reason, tt.reason)
			}
		})
	}
}

// TestStorableNilStatuses checks the statuses stored under a heuristic
// lifetime when no list is set: the defaults, each heuristically cacheable.
func TestStorableNilStatuses(t *testing.T) {
	p := policy{DefaultTTL: time.Minute, Shared: true}
	for status := 100; status < 600; status++ {
		ok, _ := storable(httptest.NewRequest(http.MethodGet, "/", nil), status, http.Header{}, cacheControl{}, p)
		if want := slices.Contains(defaultStatuses[:], status); ok != want {
			t.Errorf("status %d: storable = %v, want %v", status, ok, want)
		}
		if ok && !heuristicallyCacheable(status) {
			t.Errorf("status %d is stored under a heuristic lifetime", status)
		}
	}
}

func TestLifetimes(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	p := policy{DefaultTTL: 5 * time.Minute, StaleIfError: 24 * time.Hour, Shared: true}
	noDefault := policy{StaleIfError: 24 * time.Hour, Shared: true}
	notShared := p
	notShared.Shared = false
	const s, day = time.Second, 24 * time.Hour
	tests := []struct {
		name            string
		h               http.Header
		p               policy
		fresh, swr, sie time.Duration
	}{
		{"default TTL", http.Header{}, p, 5 * time.Minute, 0, day},
		{"no default TTL", http.Header{}, noDefault, 0, 0, day},
		{"max-age beats default", http.Header{"Cache-Control": {"max-age=60"}}, p, 60 * s, 0, day},
		{"max-age=0 beats default", http.Header{"Cache-Control": {"max-age=0"}}, p, 0, 0, day},
		{"s-maxage beats max-age", http.Header{"Cache-Control": {"max-age=60, s-maxage=10"}}, p, 10 * s, 0, 0},
		{"s-maxage ignored when not shared", http.Header{"Cache-Control": {"max-age=60, s-maxage=10"}}, notShared, 60 * s, 0, day},
		{"s-maxage with explicit stale windows", http.Header{"Cache-Control": {"s-maxage=10, stale-while-revalidate=5, stale-if-error=99"}}, p, 10 * s, 5 * s, 99 * s},
		{"max-age beats Expires", http.Header{"Cache-Control": {"max-age=60"}, "Expires": {rfc1123(now.Add(time.Hour))}}, p, 60 * s, 0, day},
		{"Expires beats default", http.Header{"Expires": {rfc1123(now.Add(time.Hour))}}, p, time.Hour, 0, day},
		{"Expires minus Date", http.Header{"Expires": {rfc1123(now.Add(time.Hour))}, "Date": {rfc1123(now.Add(-time.Minute))}}, p, time.Hour, 0, day},
		{"Expires past", http.Header{"Expires": {rfc1123(now.Add(-time.Hour))}}, p, 0, 0, day},
		{"Expires invalid is expired", http.Header{"Expires": {"0"}}, p, 0, 0, day},
		{"Expires twice is expired", http.Header{"Expires": {rfc1123(now.Add(time.Hour)), rfc1123(now.Add(time.Hour))}}, p, 0, 0, day},
		{"Expires lower-case key", http.Header{"expires": {rfc1123(now.Add(time.Hour))}}, p, time.Hour, 0, day},
		{"Expires with invalid Date uses now", http.Header{"Expires": {rfc1123(now.Add(time.Hour))}, "Date": {"yesterday"}}, p, time.Hour, 0, day},
		{"Expires far future capped", http.Header{"Expires": {"Fri, 31 Dec 9999 23:59:59 GMT"}}, p, maxDelta, 0, day},
		{"no-cache", http.Header{"Cache-Control": {"no-cache, max-age=60, stale-while-revalidate=60, stale-if-error=60"}}, p, 0, 0, 0},
		{"qualified no-cache keeps freshness", http.Header{"Cache-Control": {`no-cache="X-A", max-age=60`}}, p, 60 * s, 0, day},
		{"stale-while-revalidate", http.Header{"Cache-Control": {"max-age=60, stale-while-revalidate=30"}}, p, 60 * s, 30 * s, day},
		{"stale-if-error explicit", http.Header{"Cache-Control": {"max-age=60, stale-if-error=300"}}, p, 60 * s, 0, 300 * s},
		{"stale-if-error explicit zero", http.Header{"Cache-Control": {"max-age=60, stale-if-error=0"}}, p, 60 * s, 0, 0},
		{"stale-if-error invalid is zero", http.Header{"Cache-Control": {"max-age=60, stale-if-error=soon"}}, p, 60 * s, 0, 0},
		{"must-revalidate kills stale windows", http.Header{"Cache-Control": {"max-age=60, must-revalidate, stale-while-revalidate=30, stale-if-error=300"}}, p, 60 * s, 0, 0},
		{"proxy-revalidate kills stale windows", http.Header{"Cache-Control": {"max-age=60, proxy-revalidate, stale-if-error=300"}}, p, 60 * s, 0, 0},
		{"proxy-revalidate ignored when not shared", http.Header{"Cache-Control": {"max-age=60, proxy-revalidate"}}, notShared, 60 * s, 0, day},
		{"Age shortens freshness", http.Header{"Cache-Control": {"max-age=60, stale-while-revalidate=30"}, "Age": {"20"}}, p, 40 * s, 30 * s, day},
		{"Age beyond freshness shortens stale windows", http.Header{"Cache-Control": {"max-age=60, stale-while-revalidate=30, stale-if-error=100"}, "Age": {"80"}}, p, 0, 10 * s, 80 * s},
		{"Age beyond everything", http.Header{"Cache-Control": {"max-age=60, stale-while-revalidate=30, stale-if-error=100"}, "Age": {"1000"}}, p, 0, 0, 0},
		{"invalid Age makes it stale", http.Header{"Cache-Control": {"max-age=60"}, "Age": {"-5"}}, p, 0, 0, day},
		{"Age list: first member", http.Header{"Cache-Control": {"max-age=60"}, "Age": {"20, 0"}}, p, 40 * s, 0, day},
		{"old Date is age", http.Header{"Cache-Control": {"max-age=60"}, "Date": {rfc1123(now.Add(-50 * s))}}, p, 10 * s, 0, day},
		{"future Date is no age", http.Header{"Cache-Control": {"max-age=60"}, "Date": {rfc1123(now.Add(50 * s))}}, p, 60 * s, 0, day},
		{"Date ages the default TTL too", http.Header{"Date": {rfc1123(now.Add(-time.Minute))}}, p, 4 * time.Minute, 0, day},
		{"negative policy values", http.Header{}, policy{DefaultTTL: -1, StaleIfError: -1, Shared: true}, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fresh, swr, sie, _ := lifetimes(tt.h, parseCacheControl(tt.h), now, now, tt.p)
			if fresh != tt.fresh || swr != tt.swr || sie != tt.sie {
				t.Errorf("lifetimes = %v, %v, %v; want %v, %v, %v", fresh, swr, sie, tt.fresh, tt.swr, tt.sie)
			}
		})
	}
}
