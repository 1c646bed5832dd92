package middleware

import (
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseCacheControl(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name  string
		lines []string
		want  cacheControl
	}{
		{"absent", nil, cacheControl{}},
		{"empty", []string{""}, cacheControl{}},
		{"only commas and spaces", []string{" , ,\t,"}, cacheControl{}},
		{"max-age", []string{"max-age=60"}, cacheControl{MaxAge: 60 * s, HasMaxAge: true}},
		{"max-age zero", []string{"max-age=0"}, cacheControl{HasMaxAge: true}},
		{"case-insensitive name", []string{"Max-Age=60, NO-STORE"}, cacheControl{MaxAge: 60 * s, HasMaxAge: true, NoStore: true}},
		{"whitespace around elements", []string{"  public ,\tmax-age=60 ,s-maxage=30\t  "},
			cacheControl{Public: true, MaxAge: 60 * s, HasMaxAge: true, SMaxAge: 30 * s, HasSMaxAge: true}},
		// RFC 9111 §5.2 has no whitespace around "=": the argument is
		// invalid, and an invalid delta-seconds reads as 0.
		{"whitespace around = invalidates the argument", []string{"public, max-age = 60, s-maxage=\t30, stale-if-error =5"},
			cacheControl{Public: true, HasMaxAge: true, HasSMaxAge: true, BadSMaxAge: true, HasStaleIfError: true}},
		{"whitespace around = in no-cache and private: unqualified", []string{`no-cache = "a", private= "b"`},
			cacheControl{NoCache: true, Private: true}},
		{"whitespace around = in public: not public", []string{"public =1"}, cacheControl{}},
		{"quoted delta", []string{`max-age="60"`}, cacheControl{MaxAge: 60 * s, HasMaxAge: true}},
		{"every boolean", []string{"no-store, no-cache, private, public, must-revalidate, proxy-revalidate, only-if-cached, immutable, no-transform"},
			cacheControl{NoStore: true, NoCache: true, Private: true, Public: true, MustRevalidate: true, ProxyRevalidate: true,
				OnlyIfCached: true, Immutable: true, NoTransform: true}},
		{"every delta", []string{"max-age=1, s-maxage=2, stale-while-revalidate=3, stale-if-error=4, max-stale=5, min-fresh=6"},
			cacheControl{MaxAge: 1 * s, HasMaxAge: true, SMaxAge: 2 * s, HasSMaxAge: true,
				StaleWhileRevalidate: 3 * s, HasStaleWhileRevalidate: true, StaleIfError: 4 * s, HasStaleIfError: true,
				MaxStale: 5 * s, HasMaxStale: true, MinFresh: 6 * s, HasMinFresh: true}},
		{"lines combine", []string{"public", "max-age=60", "no-transform"},
			cacheControl{Public: true, MaxAge: 60 * s, HasMaxAge: true, NoTransform: true}},
		{"unknown directives ignored", []string{`foo, bar=baz, qux="a, b", max-age=5`}, cacheControl{MaxAge: 5 * s, HasMaxAge: true}},
		{"invalid delta is zero", []string{"max-age=abc"}, cacheControl{HasMaxAge: true}},
		{"negative delta is zero", []string{"max-age=-1"}, cacheControl{HasMaxAge: true}},
		{"signed delta is zero", []string{"max-age=+5"}, cacheControl{HasMaxAge: true}},
		{"fractional delta is zero", []string{"s-maxage=1.5"}, cacheControl{HasSMaxAge: true, BadSMaxAge: true}},
		{"missing s-maxage delta is bad", []string{"s-maxage"}, cacheControl{HasSMaxAge: true, BadSMaxAge: true}},
		{"quoted s-maxage is good", []string{`s-maxage="30"`}, cacheControl{HasSMaxAge: true, SMaxAge: 30 * time.Second}},
		{"missing delta is zero", []string{"max-age"}, cacheControl{HasMaxAge: true}},
		{"empty delta is zero", []string{"max-age="}, cacheControl{HasMaxAge: true}},
		{"delta with inner space is zero", []string{"max-age=6 0"}, cacheControl{HasMaxAge: true}},
		{"unterminated quoted delta is zero", []string{`max-age="60`}, cacheControl{HasMaxAge: true}},
		{"huge delta capped", []string{"max-age=99999999999999999999999"}, cacheControl{MaxAge: maxDelta, HasMaxAge: true}},
		{"delta just over cap", []string{"max-age=2147483649"}, cacheControl{MaxAge: maxDelta, HasMaxAge: true}},
		{"delta at cap", []string{"max-age=2147483648"}, cacheControl{MaxAge: maxDelta, HasMaxAge: true}},
		{"leading zeros", []string{"max-age=0007"}, cacheControl{MaxAge: 7 * s, HasMaxAge: true}},
		{"duplicate max-age takes smallest", []string{"max-age=60, max-age=10", "max-age=30"}, cacheControl{MaxAge: 10 * s, HasMaxAge: true}},
		{"duplicate with invalid takes zero", []string{"max-age=60, max-age=x"}, cacheControl{HasMaxAge: true}},
		{"duplicate s-maxage", []string{"s-maxage=5, s-maxage=50"}, cacheControl{SMaxAge: 5 * s, HasSMaxAge: true}},
		{"duplicate stale windows", []string{"stale-if-error=10, stale-while-revalidate=9, stale-if-error=3, stale-while-revalidate=90"},
			cacheControl{StaleIfError: 3 * s, HasStaleIfError: true, StaleWhileRevalidate: 9 * s, HasStaleWhileRevalidate: true}},
		{"duplicate min-fresh takes largest", []string{"min-fresh=5, min-fresh=50"}, cacheControl{MinFresh: 50 * s, HasMinFresh: true}},
		{"max-stale without value", []string{"max-stale"}, cacheControl{MaxStale: anyStale, HasMaxStale: true}},
		{"max-stale with value", []string{"max-stale=30"}, cacheControl{MaxStale: 30 * s, HasMaxStale: true}},
		{"max-stale both takes smallest", []string{"max-stale, max-stale=30"}, cacheControl{MaxStale: 30 * s, HasMaxStale: true}},
		{"max-stale invalid is zero", []string{"max-stale=x"}, cacheControl{HasMaxStale: true}},
		{"qualified no-cache", []string{`no-cache="Set-Cookie"`}, cacheControl{NoCacheFields: []string{"Set-Cookie"}}},
		{"qualified no-cache list", []string{`no-cache="set-cookie, X-Foo ,x-foo"`}, cacheControl{NoCacheFields: []string{"Set-Cookie", "X-Foo"}}},
		{"qualified no-cache token form", []string{"no-cache=set-cookie"}, cacheControl{NoCacheFields: []string{"Set-Cookie"}}},
		{"qualified and unqualified no-cache", []string{`no-cache, no-cache="X-A"`}, cacheControl{NoCache: true, NoCacheFields: []string{"X-A"}}},
		{"qualified no-cache empty is unqualified", []string{`no-cache=""`}, cacheControl{NoCache: true}},
		{"qualified no-cache invalid name is unqualified", []string{`no-cache="X-A, bad name"`}, cacheControl{NoCache: true}},
		{"qualified no-cache bad quoting is unqualified", []string{`no-cache="X-A`}, cacheControl{NoCache: true}},
		{"qualified private", []string{`private="Authorization-Info, X-User"`}, cacheControl{PrivateFields: []string{"Authorization-Info", "X-User"}}},
		{"qualified private escaped", []string{`private="X-\User"`}, cacheControl{PrivateFields: []string{"X-User"}}},
		{"private fields across lines", []string{`private="X-B"`, `private="X-A"`}, cacheControl{PrivateFields: []string{"X-A", "X-B"}}},
		{"unqualified private", []string{"private"}, cacheControl{Private: true}},
		{"qualified private empty is unqualified", []string{`private=""`}, cacheControl{Private: true}},
		{"quoted comma does not split", []string{`private="X-A, X-B", max-age=5`},
			cacheControl{PrivateFields: []string{"X-A", "X-B"}, MaxAge: 5 * s, HasMaxAge: true}},
		{"unterminated quote does not swallow no-store", []string{`private="X-A, no-store`}, cacheControl{Private: true, NoStore: true}},
		{"stray quote does not swallow no-store", []string{`ext"x, no-store, max-age=5`}, cacheControl{NoStore: true, MaxAge: 5 * s, HasMaxAge: true}},
		{"restrictive directive with argument counts", []string{"no-store=1, must-revalidate=yes"}, cacheControl{NoStore: true, MustRevalidate: true}},
		{"permissive directive with argument ignored", []string{"public=1, immutable=yes"}, cacheControl{}},
		{"invalid name ignored", []string{"max age=5, =5, m@x-age=5"}, cacheControl{}},
		{"long unknown name ignored", []string{"a-very-long-directive-name-that-nobody-knows=1"}, cacheControl{}},
		// Issue 10 item 4: text the parser cannot read that names private,
		// no-store or no-cache counts as that directive.
		{"sloppy: private without comma", []string{"private max-age=60"}, cacheControl{Private: true}},
		{"sloppy: private after max-age without comma", []string{"max-age=60 private"}, cacheControl{Private: true, HasMaxAge: true}},
		{"sloppy: no-store with semicolon", []string{"no-store; max-age=60"}, cacheControl{NoStore: true}},
		{"sloppy: no-cache without comma", []string{"no-cache max-age=60"}, cacheControl{NoCache: true}},
		{"sloppy: quoted private", []string{`"private", max-age=60`}, cacheControl{Private: true, MaxAge: 60 * s, HasMaxAge: true}},
		{"sloppy: private with colon", []string{"Private: true"}, cacheControl{Private: true}},
		{"sloppy: no_store", []string{"no_store, max-age=60"}, cacheControl{NoStore: true, MaxAge: 60 * s, HasMaxAge: true}},
		{"sloppy: NOCACHE", []string{"NOCACHE"}, cacheControl{NoCache: true}},
		{"sloppy: space inside no-store", []string{"no- store"}, cacheControl{NoStore: true}},
		{"sloppy: unknown name mentions private", []string{"x-private-data=1, max-age=5"}, cacheControl{Private: true, MaxAge: 5 * s, HasMaxAge: true}},
		{"sloppy: long name mentions no-store", []string{"this-is-a-very-long-no-store-directive-name"}, cacheControl{NoStore: true}},
		{"sloppy: bad argument mentions no-store", []string{"ext=a no-store"}, cacheControl{NoStore: true}},
		{"clean quoted argument is not read", []string{`ext="private, no-store, no-cache", max-age=5`}, cacheControl{MaxAge: 5 * s, HasMaxAge: true}},
		{"clean token argument is not read", []string{"ext=private, max-age=5"}, cacheControl{MaxAge: 5 * s, HasMaxAge: true}},
		{"valid qualified private naming a private field", []string{`private="X-Private-No-Store"`}, cacheControl{PrivateFields: []string{"X-Private-No-Store"}}},
		{"words split by a comma are two elements", []string{"no, store, pri, vate"}, cacheControl{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.lines != nil {
				h["Cache-Control"] = tt.lines
			}
			if got := parseCacheControl(h); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseCacheControl(%q)\n got %+v\nwant %+v", tt.lines, got, tt.want)
			}
		})
	}
}

func TestParseCacheControlNonCanonicalKey(t *testing.T) {
	h := http.Header{"cache-control": {"no-store"}, "Cache-Control": {"max-age=60"}}
	got := parseCacheControl(h)
	if !got.NoStore || got.MaxAge != time.Minute {
		t.Fatalf("a directly set lower-case key must count: %+v", got)
	}
	if len(h["Cache-Control"]) != 1 {
		t.Fatal("parseCacheControl changed h")
	}
}

func TestListElements(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"a", []string{"a"}},
		{" a , b ,,\tc\t", []string{"a", "b", "c"}},
		{`a="x, y", b`, []string{`a="x, y"`, "b"}},
		{`a="x\", y", b`, []string{`a="x\", y"`, "b"}},
		{`a = "x, y"`, []string{`a = "x, y"`}},
		{`a"x, y"`, []string{`a"x`, `y"`}},
		{`a="x, y`, []string{`a="x`, "y"}},
		{`a="x",b="y,z"`, []string{`a="x"`, `b="y,z"`}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := slices.Collect(listElements(tt.in))
			if !slices.Equal(got, tt.want) {
				t.Errorf("listElements(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCacheControlParseAllocs(t *testing.T) {
	h := http.Header{"Cache-Control": {"public, max-age=60, s-maxage=30, stale-while-revalidate=10, stale-if-error=86400"}}
	allocs := testing.AllocsPerRun(100, func() { _ = parseCacheControl(h) })
	if allocs != 0 {
		t.Errorf("parseCacheControl: %v allocations, want 0", allocs)
	}
}

func TestIsTchar(t *testing.T) {
	const tchars = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	for c := range 256 {
		if want := strings.IndexByte(tchars, byte(c)) >= 0; isTchar(byte(c)) != want {
			t.Errorf("isTchar(%q) = %v, want %v", rune(c), !want, want)
		}
	}
}

// BenchmarkListElementsQuotes parses a list whose one element is many
// spaces then many quotes: the work must grow linearly with its length
// (it once grew with spaces × quotes: a 160 KB request header cost 6 s).
func BenchmarkListElementsQuotes(b *testing.B) {
	for _, n := range []int{10_000, 40_000} {
		s := "," + strings.Repeat(" ", n) + strings.Repeat(`"`, n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				for range listElements(s) {
				}
			}
		})
	}
}
