package middleware

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"testing"
	"time"
)

// FuzzParseCacheControl parses arbitrary Cache-Control lines (and computes
// lifetimes and storability with arbitrary Expires, Date and Age): no
// panic, no negative or uncapped duration, canonical field lists, a result
// that does not depend on the order of the lines, lines that only add
// restrictions, sloppy restrictive directives that count, and a targeted
// field (the second line as CDN-Cache-Control) used exactly when valid.
func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{
		"public, max-age=60, s-maxage=30, stale-while-revalidate=10, stale-if-error=86400",
		`no-cache="Set-Cookie, X-A", private="x", max-stale, min-fresh=5`,
		`max-age="60", must-revalidate, max-age=99999999999999999999`,
		`private="a, no-store`,
	} {
		f.Add(s, "no-store", "Sun, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:00 GMT", "30")
	}
	f.Add("", "", "0", "", "")
	f.Fuzz(func(t *testing.T, line1, line2, expires, date, age string) {
		h := http.Header{"Cache-Control": {line1, line2}}
		cc := parseCacheControl(h)
		for name, d := range map[string]time.Duration{
			"max-age": cc.MaxAge, "s-maxage": cc.SMaxAge, "stale-while-revalidate": cc.StaleWhileRevalidate,
			"stale-if-error": cc.StaleIfError, "min-fresh": cc.MinFresh,
		} {
			if d < 0 || d > maxDelta {
				t.Fatalf("%s = %v", name, d)
			}
		}
		if cc.MaxStale < 0 || cc.MaxStale > maxDelta && cc.MaxStale != anyStale {
			t.Fatalf("max-stale = %v", cc.MaxStale)
		}
		for _, fields := range [][]string{cc.NoCacheFields, cc.PrivateFields} {
			if !slices.IsSorted(fields) || len(slices.Compact(slices.Clone(fields))) != len(fields) {
				t.Fatalf("fields not sorted and unique: %q", fields)
			}
			for _, n := range fields {
				if !isToken(n) || http.CanonicalHeaderKey(n) != n {
					t.Fatalf("field %q not canonical", n)
				}
			}
		}
		if rev := parseCacheControl(http.Header{"Cache-Control": {line2, line1}}); !reflect.DeepEqual(rev, cc) {
			t.Fatalf("line order matters:\n%+v\n%+v", cc, rev)
		}
		// A line only adds restrictions.
		if one := parseCacheControl(http.Header{"Cache-Control": {line1}}); one.NoStore && !cc.NoStore ||
			one.Private && !cc.Private || one.NoCache && !cc.NoCache {
			t.Fatalf("a second line lifted a restriction:\n%+v\n%+v", one, cc)
		}
		// Sloppy forms (issue 10 item 4): a restrictive directive followed by
		// a byte that cannot continue a directive name counts, whatever
		// follows.
		for _, k := range []string{"private", "No-Store", "NO-CACHE"} {
			for _, b := range []string{";", ":", "/", "(", "@", "\\", "\x00", "\xff"} {
				got := parseCacheControl(http.Header{"Cache-Control": {k + b + line1}})
				if on := map[string]bool{"private": got.Private, "No-Store": got.NoStore, "NO-CACHE": got.NoCache}[k]; !on {
					t.Fatalf("%q does not count as %s: %+v", k+b+line1, k, got)
				}
			}
		}
		// A targeted field (line2 as CDN-Cache-Control) is used exactly when
		// it is a valid, non-empty dictionary with well-typed directives, and
		// otherwise only adds restrictions to Cache-Control's.
		th := http.Header{"Cache-Control": {line1}, "Cdn-Cache-Control": {line2}}
		tcc, used := responseCacheControl(th, []string{"Cdn-Cache-Control"})
		d, err := parseSFDict([]string{line2})
		want, valid := targetedDirectives(d)
		// Cache-Control's private and no-store bind under a targeted field
		// too (nothing private is shared).
		base := parseCacheControl(th)
		want.Private = want.Private || base.Private
		want.NoStore = want.NoStore || base.NoStore
		switch {
		case used != (err == nil && len(d) > 0 && valid):
			t.Fatalf("targeted %q used = %v", line2, used)
		case used && !reflect.DeepEqual(tcc, want):
			t.Fatalf("targeted %q: %+v, want %+v", line2, tcc, want)
		case !used:
			if base.NoStore && !tcc.NoStore || base.Private && !tcc.Private || base.NoCache && !tcc.NoCache {
				t.Fatalf("an invalid targeted field %q lifted a restriction", line2)
			}
		}

		h.Set("Expires", expires)
		h.Set("Date", date)
		h.Set("Age", age)
		now := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		p := policy{DefaultTTL: time.Hour, StaleIfError: 24 * time.Hour, Shared: true, Now: func() time.Time { return now }}
		fresh, swr, sie, initial := lifetimes(h, cc, now, now, p)
		for _, d := range []time.Duration{fresh, swr, sie, initial} {
			if d < 0 || d > maxDelta {
				t.Fatalf("lifetimes = %v, %v, %v, age %v", fresh, swr, sie, initial)
			}
		}
		if (cc.NoCache || cc.MustRevalidate || cc.ProxyRevalidate) && (swr != 0 || sie != 0) {
			t.Fatalf("stale windows %v, %v despite %+v", swr, sie, cc)
		}
		ok, reason := storable(httptest.NewRequest(http.MethodGet, "/", nil), http.StatusOK, h, cc, p)
		if ok == (reason != "") {
			t.Fatalf("storable = %v, %q", ok, reason)
		}
		if ok && (cc.NoStore || cc.Private) {
			t.Fatalf("stored despite %+v", cc)
		}
	})
}
