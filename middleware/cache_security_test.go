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

// Contract 4 of the design: nothing private is shared.

func TestSecuritySetCookieNeverReplayed(t *testing.T) {
	tests := []struct {
		name string
		cc   string
	}{
		{name: "max-age", cc: "max-age=60"},
		{name: "public", cc: "public, max-age=60"},
		{name: "s-maxage", cc: "s-maxage=60"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int64
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				id := n.Add(1)
				w.Header().Set("Cache-Control", tt.cc)
				http.SetCookie(w, &http.Cookie{Name: "session", Value: fmt.Sprint("user-", id)})
				fmt.Fprintf(w, "hello user-%d", id)
			})
			c := newTestCache(t, newMapStore())
			ch := c.Handler(h)
			alice := do(c, ch, "GET", "http://example.com/me")
			bob := do(c, ch, "GET", "http://example.com/me")
			if strings.Contains(bob.Header().Get("Set-Cookie"), "user-1") || strings.Contains(bob.Body.String(), "user-1") {
				t.Errorf("alice's cookie or page was replayed to bob: %q %q", bob.Header().Get("Set-Cookie"), bob.Body.String())
			}
			if alice.Header().Get("Set-Cookie") == "" {
				t.Error("alice did not get her own cookie")
			}
		})
	}
}

func TestSecurityAuthorizationPrivateAnswer(t *testing.T) {
	tests := []struct {
		name string
		cc   string
	}{
		{name: "max-age only", cc: "max-age=60"},
		{name: "private", cc: "private, max-age=60"},
		{name: "no-store", cc: "no-store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", tt.cc)
				if auth := r.Header.Get("Authorization"); auth != "" {
					fmt.Fprintf(w, "secret for %s", auth)
					return
				}
				fmt.Fprint(w, "anonymous")
			})
			c := newTestCache(t, newMapStore())
			ch := c.Handler(h)
			do(c, ch, "GET", "http://example.com/account", "Authorization", "Bearer alice")
			anon := do(c, ch, "GET", "http://example.com/account")
			if anon.Body.String() != "anonymous" {
				t.Errorf("an anonymous client got %q", anon.Body.String())
			}
			other := do(c, ch, "GET", "http://example.com/account", "Authorization", "Bearer bob")
			if strings.Contains(other.Body.String(), "alice") {
				t.Errorf("bob got %q", other.Body.String())
			}
		})
	}
}

func TestSecurityHostsNeverShare(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "tenant %s", r.Host)
	})
	c := newTestCache(t, newMapStore())
	ch := c.Handler(h)
	for _, host := range []string{"a.example.com", "b.example.com", "a.example.com:8080"} {
		w := do(c, ch, "GET", "http://"+host+"/page")
		if w.Body.String() != "tenant "+host {
			t.Errorf("host %s got %q", host, w.Body.String())
		}
	}
	// The same host again is a hit with its own page.
	w := do(c, ch, "GET", "http://b.example.com/page")
	if w.Body.String() != "tenant b.example.com" || !strings.Contains(w.Header().Get("Cache-Status"), "hit") {
		t.Errorf("got %q %q", w.Body.String(), w.Header().Get("Cache-Status"))
	}
}

func TestSecurityUnkeyedHeaderCannotPoison(t *testing.T) {
	// A handler that (wrongly) reflects X-Forwarded-Host without naming it in
	// Vary: the first cached copy wins, and a later request with the header
	// cannot change what others get.
	reflecting := func(vary bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			if vary {
				w.Header().Set("Vary", "X-Forwarded-Host")
			}
			host := r.Header.Get("X-Forwarded-Host")
			if host == "" {
				host = r.Host
			}
			fmt.Fprintf(w, `<script src="//%s/app.js">`, host)
		})
	}
	t.Run("cached entry not changed by a key header", func(t *testing.T) {
		// X-Forwarded-Host is a key header: the attacker gets an answer
		// of his own, under his own key.
		c := newTestCache(t, newMapStore())
		ch := c.Handler(reflecting(false))
		do(c, ch, "GET", "http://example.com/")
		do(c, ch, "GET", "http://example.com/", "X-Forwarded-Host", "evil.example")
		victim := do(c, ch, "GET", "http://example.com/")
		if strings.Contains(victim.Body.String(), "evil") {
			t.Errorf("poisoned: %q", victim.Body.String())
		}
		if !strings.Contains(victim.Header().Get("Cache-Status"), "hit") {
			t.Errorf("victim Cache-Status %q, want a hit of the first entry", victim.Header().Get("Cache-Status"))
		}
	})
	t.Run("an attacker's miss with a key header is stored under his key only", func(t *testing.T) {
		c := newTestCache(t, newMapStore())
		ch := c.Handler(reflecting(false))
		attack := do(c, ch, "GET", "http://example.com/", "X-Forwarded-Host", "evil.example")
		if !strings.Contains(attack.Body.String(), "evil") {
			t.Fatalf("the handler did not reflect the header: %q", attack.Body.String())
		}
		for i := range 2 {
			victim := do(c, ch, "GET", "http://example.com/")
			if strings.Contains(victim.Body.String(), "evil") {
				t.Fatalf("victim request %d poisoned: %q (Cache-Status %q)", i, victim.Body.String(), victim.Header().Get("Cache-Status"))
			}
		}
	})
	t.Run("keyed by Vary: the attacker's variant stays his", func(t *testing.T) {
		c := newTestCache(t, newMapStore())
		ch := c.Handler(reflecting(true))
		do(c, ch, "GET", "http://example.com/", "X-Forwarded-Host", "evil.example")
		victim := do(c, ch, "GET", "http://example.com/")
		if strings.Contains(victim.Body.String(), "evil") {
			t.Errorf("poisoned: %q", victim.Body.String())
		}
	})
	t.Run("X-Forwarded-Host is part of the cache's key, not DefaultKey's", func(t *testing.T) {
		c := newTestCache(t, newMapStore())
		a := httptest.NewRequest("GET", "http://example.com/", nil)
		b := httptest.NewRequest("GET", "http://example.com/", nil)
		b.Header.Set("X-Forwarded-Host", "evil.example")
		if DefaultKey(a) != DefaultKey(b) {
			t.Error("DefaultKey depends on X-Forwarded-Host")
		}
		if c.keyMaterial(a) == c.keyMaterial(b) {
			t.Error("the cache's key does not depend on X-Forwarded-Host")
		}
		if c.keyMaterial(a) != DefaultKey(a) {
			t.Errorf("without key headers the material %q is not DefaultKey's %q", c.keyMaterial(a), DefaultKey(a))
		}
	})
}

func TestSecurityHeaderOutsideKeyCannotChangeCachedBody(t *testing.T) {
	// Request headers the key does not name never reach a cached answer.
	// (Forwarding headers such as X-Forwarded-Host and X-Original-URL are
	// key headers: TestForwardingHeadersAreKeyed.)
	var calls atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "lang=%s", r.Header.Get("Accept-Language"))
	})
	c := newTestCache(t, newMapStore())
	ch := c.Handler(h)
	first := do(c, ch, "GET", "http://example.com/x", "Accept-Language", "en")
	for _, hdr := range [][]string{
		{"Accept-Language", "de"},
		{"X-Forwarded-For", "203.0.113.9"},
		{"User-Agent", "evil"},
		{"Cookie", "a=b"},
	} {
		w := do(c, ch, "GET", "http://example.com/x", hdr...)
		if w.Body.String() != first.Body.String() {
			t.Errorf("%s changed the cached body to %q", hdr[0], w.Body.String())
		}
	}
	if calls.Load() != 1 {
		t.Errorf("handler called %d times, want 1", calls.Load())
	}
}

func TestSecurityKeysAreHashed(t *testing.T) {
	// A request cannot choose the store key: whatever its URL, the key is a
	// fixed-length hash.
	s := newMapStore()
	c := newTestCache(t, s)
	h := c.Handler(newOrigin(200, "x", "Cache-Control", "max-age=60"))
	do(c, h, "GET", "http://example.com/%0D%0ASET%20x%20y?a=%0d%0a")
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.m {
		if len(k) != len(hashKey("")) || strings.ContainsAny(k, " \r\n") {
			t.Errorf("store key %q is not a hash", k)
		}
	}
}

// Issue 10 item 4: a response that names private, no-store or no-cache in a
// form the parser cannot read cleanly is not shared.
func TestSecuritySloppyDirectivesNotShared(t *testing.T) {
	tests := []struct {
		name   string
		hdr    []string // response header name, value pairs
		shared bool     // the second client gets the first one's answer
	}{
		{name: "private without comma", hdr: []string{"Cache-Control", "private max-age=60"}},
		{name: "max-age then private without comma", hdr: []string{"Cache-Control", "max-age=60 private", "Etag", `"v"`}},
		{name: "no-store with semicolon", hdr: []string{"Cache-Control", "no-store; max-age=60"}},
		{name: "no-cache without comma", hdr: []string{"Cache-Control", "no-cache max-age=60"}},
		{name: "no-cache without comma, ETag", hdr: []string{"Cache-Control", "no-cache max-age=60", "Etag", `"v"`}},
		{name: "quoted private", hdr: []string{"Cache-Control", `"private", max-age=60`}},
		{name: "no_store", hdr: []string{"Cache-Control", "no_store, max-age=60"}},
		{name: "lone Pragma no-cache", hdr: []string{"Pragma", "no-cache"}},
		{name: "lone Pragma no-cache, ETag", hdr: []string{"Pragma", "no-cache", "Etag", `"v"`}},
		{name: "lone Pragma sloppy", hdr: []string{"Pragma", "No-Cache;"}},
		{name: "invalid CDN-Cache-Control naming private", hdr: []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", "private max-age=60"}},
		{name: "upper-case CDN-Cache-Control private", hdr: []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", "Private"}},
		// Still shared: clean input.
		{name: "Pragma beside Cache-Control", hdr: []string{"Cache-Control", "max-age=60", "Pragma", "no-cache"}, shared: true},
		{name: "clean extension", hdr: []string{"Cache-Control", `ext="no-store", max-age=60`}, shared: true},
		{name: "no directives", shared: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int64
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for i := 0; i+1 < len(tt.hdr); i += 2 {
					w.Header().Add(tt.hdr[i], tt.hdr[i+1])
				}
				fmt.Fprintf(w, "page of user-%d", n.Add(1))
			})
			c := newTestCache(t, newMapStore(), WithDefaultTTL(time.Minute))
			ch := c.Handler(h)
			do(c, ch, "GET", "http://example.com/me")
			bob := do(c, ch, "GET", "http://example.com/me")
			if shared := bob.Body.String() == "page of user-1"; shared != tt.shared {
				t.Errorf("bob got %q (Cache-Status %q), shared = %v, want %v",
					bob.Body.String(), bob.Header().Get("Cache-Status"), shared, tt.shared)
			}
		})
	}
}

// Issue 10 item 5: RFC 9111 §3.5 lets a shared cache reuse the answer to a
// request with Authorization when it has public, s-maxage or
// must-revalidate; failsoft asks must-revalidate for a lifetime of the
// response's own.
func TestSecurityAuthorizationShareable(t *testing.T) {
	tests := []struct {
		cc     string
		shared bool
	}{
		{cc: "max-age=60"},
		{cc: "public, max-age=60", shared: true},
		{cc: "s-maxage=60", shared: true},
		{cc: "must-revalidate, max-age=60", shared: true},
		{cc: "must-revalidate"},
		{cc: "private, must-revalidate, max-age=60"},
		{cc: "proxy-revalidate, max-age=60"},
	}
	for _, tt := range tests {
		t.Run(tt.cc, func(t *testing.T) {
			var n atomic.Int64
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", tt.cc)
				fmt.Fprintf(w, "answer %d", n.Add(1))
			})
			c := newTestCache(t, newMapStore(), WithDefaultTTL(time.Minute))
			ch := c.Handler(h)
			do(c, ch, "GET", "http://example.com/doc", "Authorization", "Bearer alice")
			other := do(c, ch, "GET", "http://example.com/doc", "Authorization", "Bearer bob")
			if shared := other.Body.String() == "answer 1"; shared != tt.shared {
				t.Errorf("bob got %q, shared = %v, want %v", other.Body.String(), shared, tt.shared)
			}
		})
	}
}
