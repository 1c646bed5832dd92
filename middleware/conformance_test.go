package middleware

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// The conformance table: the behaviour of the cache, as a shared cache in
// front of one origin, in the situations of the public HTTP cache test
// suite (github.com/http-tests/cache-tests), grouped by the suite's areas
// and named by its test ids. Each case is a sequence of requests to one URL;
// the handler plays the origin and answers each with the status and header
// fields of its step. A step's want says how the cache must answer it:
//
//   - wantCached: from the cache; the handler is not called;
//   - wantForwarded: the handler is called;
//   - wantETagValidated, wantLMValidated: the handler is called with
//     If-None-Match (If-Modified-Since) holding the previous step's ETag
//     (Last-Modified), and answers 304.
//
// The suite's "pause" between steps is 3 s of the test clock. Cases whose
// expectation differs from the suite's (a suite "check" or "optimal" test
// failsoft answers otherwise, or a documented departure) say so in note.

// freshHdr and staleHdr are the suite's templates of a fresh and of a stale
// response, sent at T0.
var (
	freshHdr = []string{"Expires", at(100000), "Cache-Control", "max-age=100000", "Last-Modified", at(0), "Date", at(0)}
	staleHdr = []string{"Expires", at(-5000), "Last-Modified", at(-100000), "Date", at(0)}
)

func TestConformanceFreshness(t *testing.T) {
	runConformance(t, []confCase{
		// cc-freshness
		twoStep("freshness-none", nil, true, wantForwarded),
		twoStep("freshness-max-age", []string{"Cache-Control", "max-age=3600"}, true, wantCached),
		twoStep("freshness-max-age-stale", []string{"Cache-Control", "max-age=2"}, true, wantForwarded),
		twoStep("freshness-max-age-0", []string{"Cache-Control", "max-age=0"}, true, wantForwarded),
		twoStep("freshness-max-age-max-minus-1", []string{"Cache-Control", "max-age=2147483647"}, true, wantCached),
		twoStep("freshness-max-age-max", []string{"Cache-Control", "max-age=2147483648"}, true, wantCached),
		twoStep("freshness-max-age-max-plus-1", []string{"Cache-Control", "max-age=2147483649"}, true, wantCached),
		twoStep("freshness-max-age-max-plus", []string{"Cache-Control", "max-age=99999999999"}, true, wantCached),
		twoStep("freshness-max-age-age", []string{"Date", at(0), "Cache-Control", "max-age=3600", "Age", "7200"}, true, wantForwarded),
		twoStep("freshness-max-age-date", []string{"Date", at(-7200), "Cache-Control", "max-age=3600"}, true, wantForwarded),
		twoStep("freshness-max-age-expires", []string{"Cache-Control", "max-age=3600", "Expires", at(-7200), "Date", at(0)}, true, wantCached),
		twoStep("freshness-max-age-expires-invalid", []string{"Cache-Control", "max-age=3600", "Expires", "0", "Date", at(0)}, true, wantCached),
		twoStep("freshness-max-age-0-expires", []string{"Expires", at(3600), "Cache-Control", "max-age=0", "Date", at(0)}, true, wantForwarded),
		twoStep("freshness-max-age-extension", []string{"Cache-Control", "foobar, max-age=3600"}, true, wantCached),
		twoStep("freshness-max-age-case-insenstive", []string{"Cache-Control", "MaX-aGe=3600"}, true, wantCached),
		twoStep("freshness-max-age-negative", []string{"Cache-Control", "max-age=-3600"}, true, wantForwarded),
		twoStep("freshness-s-maxage-shared", []string{"Cache-Control", "s-maxage=3600"}, true, wantCached),
		twoStep("freshness-max-age-s-maxage-shared-longer", []string{"Cache-Control", "max-age=3600, s-maxage=1"}, true, wantForwarded),
		twoStep("freshness-max-age-s-maxage-shared-longer-reversed", []string{"Cache-Control", "s-maxage=1, max-age=3600"}, true, wantForwarded),
		twoStep("freshness-max-age-s-maxage-shared-longer-multiple", []string{"Cache-Control", "max-age=3600", "Cache-Control", "s-maxage=1"}, true, wantForwarded),
		twoStep("freshness-max-age-s-maxage-shared-shorter", []string{"Cache-Control", "max-age=1, s-maxage=3600"}, true, wantCached),
		twoStep("freshness-max-age-s-maxage-shared-shorter-expires", []string{"Expires", at(-10), "Cache-Control", "max-age=0, s-maxage=3600"}, true, wantCached),
		// The default TTL (failsoft.WithDefaultTTL) is a configured
		// heuristic: with it, a response without freshness is reused,
		// which RFC 9111 §4.2.2 allows and the suite's "check" notes.
		{id: "freshness-none (WithDefaultTTL)", opts: []Option{WithDefaultTTL(time.Minute)},
			steps: []confStep{{after: pause}, {want: wantCached}}},
	})
}

func TestConformanceCacheControlParsing(t *testing.T) {
	smallest := "the suite's check expects the first of duplicate max-age values; failsoft takes the smallest " +
		"(RFC 9111 §4.2.1 allows the first or stale; the smallest is between the two)"
	invalid := "the suite's check expects a lenient reading; failsoft reads an invalid max-age as 0 " +
		"(RFC 9111 §4.2.1: caches are encouraged to consider invalid freshness information stale)"
	noted := func(c confCase, note string) confCase { c.note = note; return c }
	runConformance(t, []confCase{
		noted(twoStep("freshness-max-age-two-fresh-stale-sameline", []string{"Cache-Control", "max-age=1800, max-age=1"}, true, wantForwarded), smallest),
		noted(twoStep("freshness-max-age-two-fresh-stale-sepline", []string{"Cache-Control", "max-age=1800", "Cache-Control", "max-age=1"}, true, wantForwarded), smallest),
		noted(twoStep("freshness-max-age-two-stale-fresh-sameline", []string{"Cache-Control", "max-age=1, max-age=1800"}, true, wantForwarded), smallest),
		noted(twoStep("freshness-max-age-two-stale-fresh-sepline", []string{"Cache-Control", "max-age=1", "Cache-Control", "max-age=1800"}, true, wantForwarded), smallest),
		twoStep("freshness-max-age-ignore-quoted", []string{"Cache-Control", `extension="max-age=3600", max-age=1`}, true, wantForwarded),
		twoStep("freshness-max-age-ignore-quoted-rev", []string{"Cache-Control", `max-age=1, extension="max-age=3600"`}, true, wantForwarded),
		twoStep("freshness-max-age-ignore-quoted-all", []string{"Cache-Control", `extension="max-age=100", max-age="1"`}, true, wantForwarded),
		twoStep("freshness-max-age-ignore-quoted-all-rev", []string{"Cache-Control", `max-age="1", extension="max-age=100"`}, true, wantForwarded),
		twoStep("freshness-max-age-quoted", []string{"Cache-Control", `max-age="3600"`}, true, wantCached),
		twoStep("freshness-max-age-space-before-equals", []string{"Cache-Control", "max-age =3600"}, true, wantForwarded),
		twoStep("freshness-max-age-space-after-equals", []string{"Cache-Control", "max-age= 3600"}, true, wantForwarded),
		twoStep("freshness-max-age-leading-zero", []string{"Cache-Control", "max-age=003600"}, true, wantCached),
		twoStep("freshness-max-age-single-quoted", []string{"Cache-Control", "max-age='3600'"}, true, wantForwarded),
		noted(twoStep("freshness-max-age-decimal-zero", []string{"Cache-Control", "max-age=3600.0"}, true, wantForwarded), invalid),
		noted(twoStep("freshness-max-age-decimal-five", []string{"Cache-Control", "max-age=3600.5"}, true, wantForwarded), invalid),
		noted(twoStep("freshness-max-age-a100", []string{"Cache-Control", "max-age=a3600"}, true, wantForwarded), invalid),
		noted(twoStep("freshness-max-age-100a", []string{"Cache-Control", "max-age=3600a"}, true, wantForwarded), invalid),
	})
}

func TestConformanceAge(t *testing.T) {
	invalid := "deliberate (README): an Age that is not delta-seconds makes the response stale; the suite's check expects it ignored"
	first := "RFC 9111 §5.1: the first member of a list-based Age is used; the suite's check expects the response reused"
	hdr := func(age ...string) []string {
		h := []string{"Date", at(0), "Cache-Control", "max-age=3600"}
		for _, a := range age {
			h = append(h, "Age", a)
		}
		return h
	}
	noted := func(c confCase, note string) confCase { c.note = note; return c }
	runConformance(t, []confCase{
		noted(twoStep("age-parse-nonnumeric", hdr("abc"), true, wantForwarded), invalid),
		noted(twoStep("age-parse-negative", hdr("-7200"), true, wantForwarded), invalid),
		noted(twoStep("age-parse-float", hdr("7200.0"), true, wantForwarded), invalid),
		noted(twoStep("age-parse-suffix", hdr("7200,0"), true, wantForwarded), first),
		noted(twoStep("age-parse-suffix-twoline", hdr("7200", "0"), true, wantForwarded), first),
		twoStep("age-parse-prefix", hdr("0,7200"), true, wantCached),
		twoStep("age-parse-prefix-twoline", hdr("0", "7200"), true, wantCached),
		twoStep("age-parse-dup-0", hdr("0, 0"), true, wantCached),
		twoStep("age-parse-dup-0-twoline", hdr("0", "0"), true, wantCached),
		twoStep("age-parse-dup-old", hdr("7200, 7200"), true, wantForwarded),
		twoStep("age-parse-dup-old-twoline", hdr("7200", "7200"), true, wantForwarded),
		// other: Age is generated and counts the time stored.
		{id: "other-age-gen", steps: []confStep{{resHdr: freshHdr, after: pause}, {want: wantCached, wantAgeMin: 3}}},
		{id: "other-age-update-expires", steps: []confStep{
			{resHdr: []string{"Expires", at(30 * 24 * 3600), "Date", at(0), "Age", "30"}, after: pause},
			{want: wantCached, wantAgeMin: 33}}},
		{id: "other-age-update-max-age", steps: []confStep{
			{resHdr: append([]string{"Age", "30"}, freshHdr...), after: pause},
			{want: wantCached, wantAgeMin: 33}}},
		{id: "other-date-update", steps: []confStep{{resHdr: freshHdr, after: pause}, {want: wantCached, wantHdr: []string{"Date", at(0)}}}},
		{id: "other-date-update-expires-update", steps: []confStep{
			{resHdr: []string{"Expires", at(30 * 24 * 3600), "Date", at(0)}, after: pause},
			{want: wantCached, wantHdr: []string{"Date", at(0), "Expires", at(30 * 24 * 3600)}}}},
	})
}

func TestConformanceExpires(t *testing.T) {
	strict := "RFC 9111 §5.3: an Expires that is not an HTTP-date means already expired; the suite's check expects a lenient reading"
	noted := func(c confCase, note string) confCase { c.note = note; return c }
	runConformance(t, []confCase{
		twoStep("freshness-expires-future", []string{"Expires", at(30 * 24 * 3600), "Date", at(0)}, true, wantCached),
		twoStep("freshness-expires-past", []string{"Expires", at(-30 * 24 * 3600), "Date", at(0)}, true, wantForwarded),
		twoStep("freshness-expires-present", []string{"Expires", at(0), "Date", at(0)}, false, wantForwarded),
		twoStep("freshness-expires-old-date", []string{"Expires", at(300), "Date", at(400)}, true, wantForwarded),
		twoStep("freshness-expires-invalid", []string{"Expires", "0", "Date", at(0)}, true, wantForwarded),
		twoStep("freshness-expires-invalid-date", []string{"Date", "foo", "Expires", at(10)}, false, wantCached),
		twoStep("freshness-expires-age-slow-date", []string{"Date", at(-10), "Expires", at(10), "Age", "25"}, false, wantForwarded),
		twoStep("freshness-expires-age-fast-date", []string{"Date", at(10), "Expires", at(20), "Age", "15"}, false, wantForwarded),
		// expires-parse (checks). Case is read leniently on purpose (README).
		twoStep("freshness-expires-wrong-case-weekday", []string{"Expires", "THU, 18 Aug 2050 02:01:18 GMT", "Date", at(0)}, true, wantCached),
		twoStep("freshness-expires-wrong-case-month", []string{"Expires", "Thu, 18 AUG 2050 02:01:18 GMT", "Date", at(0)}, true, wantCached),
		twoStep("freshness-expires-wrong-case-tz", []string{"Expires", "Thu, 18 Aug 2050 02:01:18 gMT", "Date", at(0)}, true, wantCached),
		noted(twoStep("freshness-expires-invalid-utc", []string{"Expires", "Thu, 18 Aug 2050 02:01:18 UTC", "Date", at(0)}, true, wantForwarded), strict),
		noted(twoStep("freshness-expires-invalid-2-digit-year", []string{"Expires", "Thu, 18 Aug 50 02:01:18 GMT", "Date", at(0)}, true, wantForwarded), strict),
		noted(twoStep("freshness-expires-invalid-no-comma", []string{"Expires", "Thu 18 Aug 2050 02:01:18 GMT", "Date", at(0)}, true, wantForwarded), strict),
		noted(twoStep("freshness-expires-invalid-multiple-spaces", []string{"Expires", "Thu, 18  Aug  2050 02:01:18 GMT", "Date", at(0)}, false, wantForwarded), strict),
		noted(twoStep("freshness-expires-invalid-date-dashes", []string{"Expires", "Thu, 18-Aug-2050 02:01:18 GMT", "Date", at(0)}, false, wantForwarded), strict),
		noted(twoStep("freshness-expires-invalid-time-periods", []string{"Expires", "Thu, 18 Aug 2050 02.01.18 GMT", "Date", at(0)}, false, wantForwarded), strict),
		noted(twoStep("freshness-expires-invalid-1-digit-hour", []string{"Expires", "Thu, 18 Aug 2050 2:01:18 GMT", "Date", at(0)}, false, wantForwarded), strict),
	})
}

func TestConformanceResponseDirectives(t *testing.T) {
	runConformance(t, []confCase{
		twoStep("cc-resp-private-shared", []string{"Cache-Control", "private, max-age=3600"}, false, wantForwarded),
		twoStep("cc-resp-no-store", []string{"Cache-Control", "no-store"}, false, wantForwarded),
		twoStep("cc-resp-no-store-case-insensitive", []string{"Cache-Control", "No-StOrE"}, false, wantForwarded),
		twoStep("cc-resp-no-store-fresh", []string{"Cache-Control", "max-age=10000, no-store", "Expires", at(10000), "Date", at(0)}, false, wantForwarded),
		{id: "cc-resp-no-store-old-new", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=10000", "Expires", at(10000), "Date", at(0), "A", "1"}, after: pause},
			{resHdr: []string{"Cache-Control", "no-store", "Date", at(3), "A", "2"}, after: pause},
			{want: wantCached, wantHdr: []string{"A", "1"}}}},
		{id: "cc-resp-no-store-old-max-age", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=10000", "Expires", at(10000), "Date", at(0), "A", "1"}, after: pause},
			{resHdr: []string{"Cache-Control", "no-store, max-age=0", "Date", at(3), "A", "2"}, after: pause},
			{want: wantCached, wantHdr: []string{"A", "1"}}}},
		twoStep("cc-resp-no-cache", []string{"Cache-Control", "max-age=10000, no-cache", "Expires", at(10000), "Date", at(0)}, false, wantForwarded),
		twoStep("cc-resp-no-cache-case-insensitive", []string{"Cache-Control", "max-age=10000, No-CaChE", "Expires", at(10000), "Date", at(0)}, false, wantForwarded),
		twoStep("cc-resp-no-cache-revalidate", []string{"Cache-Control", "no-cache", "ETag", `"abcd"`}, false, wantETagValidated),
		twoStep("cc-resp-no-cache-revalidate-fresh", []string{"Cache-Control", "max-age=10000, no-cache", "Expires", at(10000), "Date", at(0), "ETag", `"abcd"`}, false, wantETagValidated),
		{id: "headers-omit-headers-listed-in-Cache-Control-no-cache-single", steps: []confStep{
			{resHdr: []string{"Cache-Control", `no-cache="a"`, "a", "1", "b", "2", "Cache-Control", "max-age=3600", "Date", at(0)}, after: pause},
			{want: wantCached, wantHdr: []string{"b", "2"}, wantNoHdr: []string{"a"}}}},
		{id: "headers-omit-headers-listed-in-Cache-Control-no-cache", steps: []confStep{
			{resHdr: []string{"Cache-Control", `no-cache="a, b"`, "a", "1", "b", "2", "c", "3", "Cache-Control", "max-age=3600", "Date", at(0)}, after: pause},
			{want: wantCached, wantHdr: []string{"c", "3"}, wantNoHdr: []string{"a", "b"}}}},
		twoStep("cc-resp-must-revalidate-fresh", []string{"Cache-Control", "max-age=10000, must-revalidate", "ETag", `"abcd"`}, false, wantCached),
		{id: "cc-resp-must-revalidate-stale", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=2, must-revalidate", "ETag", `"abcd"`}},
			{want: wantCached, after: pause},
			{resHdr: []string{"Cache-Control", "max-age=2, must-revalidate", "ETag", `"abcd"`}, want: wantETagValidated}}},
	})
}

func TestConformanceHeuristic(t *testing.T) {
	heuristic := []Option{WithHeuristicFreshness(0.1, 24*time.Hour)}
	lm := []string{"Last-Modified", at(-24 * 3600), "Date", at(0)}
	var cases []confCase
	for _, tc := range []struct {
		status int
		reused bool
		extra  []string
		note   string
	}{
		{status: 200, reused: true}, {status: 201}, {status: 202}, {status: 203, reused: true},
		{status: 204, reused: true}, {status: 403}, {status: 404, reused: true}, {status: 405, reused: true},
		{status: 410, reused: true}, {status: 414, reused: true}, {status: 501, reused: true},
		{status: 502}, {status: 503}, {status: 504}, {status: 599},
		{status: 599, extra: []string{"Cache-Control", "public"},
			note: "the suite's optimal test reuses it; failsoft never stores a status it does not understand (README)"},
	} {
		want, kind := wantForwarded, "not_cached"
		if tc.reused {
			want, kind = wantCached, "cached"
		}
		id := fmt.Sprintf("heuristic-%d-%s", tc.status, kind)
		if tc.extra != nil {
			id = fmt.Sprintf("heuristic-%d-cached (public)", tc.status)
		}
		body := "x"
		if tc.status == 204 {
			body = ""
		}
		cases = append(cases, confCase{id: id, note: tc.note, opts: heuristic, steps: []confStep{
			{status: tc.status, resHdr: append(append([]string(nil), lm...), tc.extra...), body: body},
			{status: tc.status, body: body, want: want, wantStatus: tc.status}}})
	}
	cases = append(cases,
		confCase{id: "other-heuristic-content-disposition-attachment", opts: heuristic, steps: []confStep{
			{resHdr: []string{"Last-Modified", at(-100000), "Date", at(0), "Content-Disposition", "attachment; filename=example.txt"}},
			{want: wantCached}}},
		confCase{id: "heuristic-200-cached (off by default)", steps: []confStep{{resHdr: lm}, {want: wantForwarded}}},
		// pragma-response-no-cache-heuristic: a response Pragma: no-cache
		// without Cache-Control counts as no-cache (README), so the
		// suite's check, which expects reuse, is answered otherwise.
		confCase{id: "pragma-response-no-cache-heuristic", opts: heuristic,
			note:  "deliberate (README): a response Pragma: no-cache without Cache-Control counts as no-cache",
			steps: []confStep{{resHdr: []string{"Last-Modified", at(-10000), "Pragma", "no-cache"}}, {want: wantForwarded}}},
	)
	runConformance(t, cases)
}

func TestConformanceStatus(t *testing.T) {
	var cases []confCase
	for _, tc := range []struct {
		status int
		stored bool
		opts   []Option
		note   string
	}{
		{status: 200, stored: true}, {status: 203, stored: true}, {status: 204, stored: true},
		{status: 299, note: "failsoft never stores a status it does not understand (README); the suite's optimal test reuses it"},
		{status: 301, stored: true}, {status: 302, stored: true}, {status: 303, stored: true},
		{status: 307, stored: true}, {status: 308, stored: true}, {status: 400, stored: true},
		{status: 404, stored: true}, {status: 410, stored: true},
		{status: 499, note: "failsoft never stores a status it does not understand (README); the suite's optimal test reuses it"},
		{status: 500, note: "deliberate (README): 5xx stored only with WithServerErrors"},
		{status: 500, stored: true, opts: []Option{WithServerErrors(true)}},
		{status: 502, stored: true, opts: []Option{WithServerErrors(true)}},
		{status: 503, stored: true, opts: []Option{WithServerErrors(true)}},
		{status: 504, stored: true, opts: []Option{WithServerErrors(true)}},
		{status: 599, note: "failsoft never stores a status it does not understand (README)"},
	} {
		body := fmt.Sprintf("status %d", tc.status)
		if tc.status == 204 {
			body = ""
		}
		want := wantForwarded
		if tc.stored {
			want = wantCached
		}
		suffix := ""
		if tc.opts != nil {
			suffix = " (WithServerErrors)"
		}
		cases = append(cases,
			confCase{id: fmt.Sprintf("status-%d-fresh%s", tc.status, suffix), note: tc.note, opts: tc.opts, steps: []confStep{
				{status: tc.status, resHdr: freshHdr, body: body},
				{status: tc.status, body: body, want: want, wantStatus: tc.status}}},
			confCase{id: fmt.Sprintf("status-%d-stale%s", tc.status, suffix), opts: tc.opts, steps: []confStep{
				{status: tc.status, resHdr: staleHdr, body: body},
				{body: body, want: wantForwarded}}})
	}
	runConformance(t, cases)
}

func TestConformanceStale(t *testing.T) {
	becomeStale := confStep{resHdr: []string{"Cache-Control", "max-age=2", "Template-A", "1"}, after: pause}
	// The suite's "disconnect" is an origin that cannot answer; here the
	// handler's 503 stands for it.
	closeWith := func(cc string) confCase {
		return confCase{id: "stale-close-" + cc, steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=2, " + cc}, after: pause},
			{status: 503, want: wantForwarded}}}
	}
	runConformance(t, []confCase{
		{id: "stale-close", steps: []confStep{becomeStale, {status: 503, want: wantForwarded, wantStatus: 200, wantHdr: []string{"Template-A", "1"}}},
			note: "the handler is called and fails; the stale copy answers within the default stale-if-error window"},
		{id: "stale-503", steps: []confStep{becomeStale, {status: 503, want: wantForwarded, wantStatus: 200}}},
		{id: "stale-sie-503", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=2, stale-if-error=60"}, after: pause},
			{status: 503, want: wantForwarded, wantStatus: 200}}},
		closeWith("must-revalidate"),
		closeWith("proxy-revalidate"),
		closeWith("no-cache"),
		closeWith("s-maxage=2"),
		{id: "stale-if-error-cc-response", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=0, stale-if-error=3600"}},
			{status: 500, want: wantForwarded, wantStatus: 200}}},
		{id: "stale-if-error-cc-response-expired", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=0, stale-if-error=1"}, after: pause},
			{status: 500, want: wantForwarded}}},
		{id: "stale-if-error-cc-request-expired", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=0"}, after: pause},
			{reqHdr: []string{"Cache-Control", "stale-if-error=1"}, status: 500, want: wantForwarded}}},
		// RFC 5861 §3: served stale at once, refreshed in the background.
		{id: "stale-while-revalidate", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=0, stale-while-revalidate=3600", "ETag", `"abc"`}},
			{resHdr: []string{"Cache-Control", "max-age=3600", "ETag", `"def"`}, after: pause,
				wantHdr: []string{"Cache-Control", "max-age=0, stale-while-revalidate=3600", "ETag", `"abc"`}},
			{want: wantCached, body: "body 2", wantHdr: []string{"Cache-Control", "max-age=3600", "ETag", `"def"`}}}},
	})
}

func TestConformanceVary(t *testing.T) {
	vary := func(names string) []string {
		return []string{"Expires", at(5000), "Last-Modified", at(-3000), "Date", at(0), "Vary", names}
	}
	pair := func(id string, setupReq []string, names string, req []string, want int) confCase {
		return confCase{id: id, steps: []confStep{{reqHdr: setupReq, resHdr: vary(names)}, {reqHdr: req, want: want}}}
	}
	star := func(id string, lines ...string) confCase {
		h := []string{"Expires", at(5000), "Last-Modified", at(-3000), "Date", at(0)}
		for _, l := range lines {
			h = append(h, "Vary", l)
		}
		return confCase{id: id, steps: []confStep{
			{reqHdr: []string{"Foo", "1", "Baz", "789"}, resHdr: h},
			{reqHdr: []string{"Foo", "1", "Baz", "789"}, want: wantForwarded}}}
	}
	langOrder := pair("vary-normalise-lang-order", []string{"Accept-Language", "en, de"}, "Accept-Language", []string{"Accept-Language", "de, en"}, wantForwarded)
	langOrder.note = "the suite's optimal test reuses it; failsoft keys list members in the order sent"
	runConformance(t, []confCase{
		pair("vary-match", []string{"Foo", "1"}, "Foo", []string{"Foo", "1"}, wantCached),
		pair("vary-no-match", []string{"Foo", "1"}, "Foo", []string{"Foo", "2"}, wantForwarded),
		pair("vary-omit", []string{"Foo", "1"}, "Foo", nil, wantForwarded),
		{id: "vary-invalidate", steps: []confStep{
			{reqHdr: []string{"Foo", "1"}, resHdr: vary("Foo"), body: "foo_1"},
			{reqHdr: []string{"Foo", "2"}, resHdr: vary("Foo"), body: "foo_2", want: wantForwarded},
			{reqHdr: []string{"Foo", "1"}, want: wantCached, body: "foo_1"}}},
		pair("vary-cache-key", []string{"Foo", "1", "Other", "2"}, "Foo", []string{"Foo", "1", "Other", "3"}, wantCached),
		pair("vary-2-match", []string{"Foo", "1", "Bar", "abc"}, "Foo, Bar", []string{"Foo", "1", "Bar", "abc"}, wantCached),
		pair("vary-2-no-match", []string{"Foo", "1", "Bar", "abc"}, "Foo, Bar", []string{"Foo", "2", "Bar", "abc"}, wantForwarded),
		pair("vary-2-match-omit", []string{"Foo", "1"}, "Foo, Bar", nil, wantForwarded),
		pair("vary-3-match", []string{"Foo", "1", "Bar", "abc", "Baz", "789"}, "Foo, Bar, Baz", []string{"Foo", "1", "Bar", "abc", "Baz", "789"}, wantCached),
		pair("vary-3-no-match", []string{"Foo", "1", "Bar", "abc", "Baz", "789"}, "Foo, Bar, Baz", []string{"Foo", "2", "Bar", "abc", "Baz", "789"}, wantForwarded),
		pair("vary-3-order", []string{"Foo", "1", "Bar", "abc4", "Baz", "789"}, "Foo, Bar, Baz", []string{"Foo", "1", "Bar", "abc", "Baz", "789"}, wantForwarded),
		pair("vary-3-omit", []string{"Foo", "1", "Baz", "789"}, "Foo, Bar, Baz", []string{"Foo", "1", "Baz", "789"}, wantCached),
		pair("vary-star", []string{"Foo", "1", "Baz", "789"}, "*", []string{"Foo", "1", "Baz", "789"}, wantForwarded),
		pair("vary-normalise-space", []string{"Foo", "1,2"}, "Foo", []string{"Foo", " 1, 2 "}, wantCached),
		pair("vary-normalise-combine", []string{"Foo", "1, 2"}, "Foo", []string{"Foo", "1", "Foo", "2"}, wantCached),
		langOrder,
		// vary-parse
		star("vary-syntax-star", "*"),
		star("vary-syntax-star-star", "*, *"),
		star("vary-syntax-star-star-lines", "*", "*"),
		star("vary-syntax-empty-star", ", *"),
		star("vary-syntax-empty-star-lines", "", "*"),
		star("vary-syntax-star-foo", "*, Foo"),
		star("vary-syntax-foo-star", "Foo, *"),
	})
}

func TestConformanceInvalidation(t *testing.T) {
	var cases []confCase
	for _, m := range []string{"POST", "PUT", "DELETE", "M-SEARCH"} {
		cases = append(cases,
			confCase{id: "invalidate-" + m, steps: []confStep{{resHdr: freshHdr}, {method: m}, {want: wantForwarded}}},
			confCase{id: "invalidate-" + m + "-failed", steps: []confStep{{resHdr: freshHdr}, {method: m, status: 500}, {want: wantCached}}})
	}
	runConformance(t, cases)
	// invalidate-*-location and -cl: the unsafe request's response names
	// another URL of the same host, whose entry goes too.
	for _, m := range []string{"POST", "PUT", "DELETE", "M-SEARCH"} {
		for _, field := range []string{"Location", "Content-Location"} {
			t.Run(fmt.Sprintf("invalidate-%s-%s", m, map[string]string{"Location": "location", "Content-Location": "cl"}[field]), func(t *testing.T) {
				clk := newTestClock()
				c := newTestCache(t, newMapStore(), WithClock(clk.Now))
				target := newOrigin(200, "target", freshHdr...)
				unsafe := newOrigin(200, "", field, "/location_target")
				mux := http.NewServeMux()
				mux.Handle("/location_target", target)
				mux.Handle("/test", unsafe)
				h := c.Handler(mux)
				do(c, h, "GET", "http://example.com/location_target")
				do(c, h, m, "http://example.com/test")
				do(c, h, "GET", "http://example.com/location_target")
				if n := target.calls.Load(); n != 2 {
					t.Errorf("the %s target's handler ran %d times, want 2 (invalidated)", field, n)
				}
			})
		}
	}
}

func TestConformanceConditional(t *testing.T) {
	fresh := func(etag string) []string {
		return []string{"Expires", at(100000), "Cache-Control", "max-age=100000", "Last-Modified", at(0), "Date", at(0), "ETag", etag}
	}
	inm := func(id, stored, sent string, want304 bool, note string) confCase {
		st := confStep{reqHdr: []string{"If-None-Match", sent}, want: wantCached, wantStatus: http.StatusNotModified}
		if !want304 {
			st.wantStatus = http.StatusOK
		}
		return confCase{id: id, note: note, steps: []confStep{{resHdr: fresh(stored)}, st}}
	}
	unquoted := "RFC 9110 §8.8.3: an entity-tag is quoted; the suite's check matches unquoted tags too"
	runConformance(t, []confCase{
		inm("conditional-etag-strong-respond", `"abcdef"`, `"abcdef"`, true, ""),
		{id: "conditional-304-etag", steps: []confStep{{resHdr: fresh(`"abcdef"`)},
			{reqHdr: []string{"If-None-Match", `"abcdef"`}, want: wantCached, wantStatus: 304, wantHdr: []string{"ETag", `"abcdef"`}}}},
		{id: "conditional-etag-precedence", steps: []confStep{
			{resHdr: []string{"Expires", at(100000), "Cache-Control", "max-age=100000", "Date", at(0), "Last-Modified", at(-5000), "ETag", `"abcdef"`}},
			{reqHdr: []string{"If-None-Match", `"abcdef"`, "If-Modified-Since", at(-1)}, want: wantCached, wantStatus: 304}}},
		inm("conditional-etag-strong-respond-obs-text", `"abcdefü"`, `"abcdefü"`, true, ""),
		inm("conditional-etag-quoted-respond-unquoted", `"abcdef"`, `abcdef`, false, unquoted),
		inm("conditional-etag-unquoted-respond-unquoted", `abcdef`, `abcdef`, false, unquoted),
		inm("conditional-etag-unquoted-respond-quoted", `abcdef`, `"abcdef"`, false, unquoted),
		inm("conditional-etag-weak-respond", `W/"abcdef"`, `W/"abcdef"`, true, ""),
		inm("conditional-etag-weak-respond-lowercase", `w/"abcdef"`, `w/"abcdef"`, false, "RFC 9110 §8.8.3: the weakness flag is W/, case-sensitive"),
		inm("conditional-etag-weak-respond-backslash", `W\"abcdef"`, `W\"abcdef"`, false, unquoted),
		inm("conditional-etag-weak-respond-omit-slash", `W"abcdef"`, `W"abcdef"`, false, unquoted),
		inm("conditional-etag-strong-respond-multiple-first", `"abcdef"`, `"abcdef", "1234", "5678"`, true, ""),
		inm("conditional-etag-strong-respond-multiple-second", `"abcdef"`, `"1234", "abcdef", "5678"`, true, ""),
		inm("conditional-etag-strong-respond-multiple-last", `"abcdef"`, `"1234", "5678", "abcdef"`, true, ""),
		{id: "conditional-etag-vary-headers", steps: []confStep{
			{reqHdr: []string{"Abc", "123"}, resHdr: []string{"Expires", at(1), "ETag", `"abcdef"`, "Date", at(0), "Vary", "Abc"}, after: pause},
			{reqHdr: []string{"Abc", "123"}, want: wantETagValidated, wantReq: []string{"Abc", "123"}}}},
		{id: "conditional-etag-vary-headers-mismatch", steps: []confStep{
			{reqHdr: []string{"Abc", "123"}, resHdr: []string{"Expires", at(10000), "ETag", `"abcdef"`, "Date", at(0), "Vary", "Abc"}, after: pause},
			{reqHdr: []string{"Abc", "456"}, want: wantForwarded, wantNoReq: []string{"If-None-Match"}}}},
		{id: "conditional-etag-strong-generate", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=2", "ETag", `"abcdef"`}, after: pause},
			{want: wantETagValidated, wantReq: []string{"If-None-Match", `"abcdef"`}}}},
		{id: "conditional-etag-weak-generate-weak", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=2", "ETag", `W/"abcdef"`}, after: pause},
			{want: wantETagValidated, wantReq: []string{"If-None-Match", `W/"abcdef"`}}}},
		{id: "conditional-etag-forward", steps: []confStep{
			{reqHdr: []string{"If-None-Match", `"abcdef"`}, want: wantForwarded, wantReq: []string{"If-None-Match", `"abcdef"`}}}},
		// conditional-lm
		{id: "conditional-lm-fresh", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=100000", "Last-Modified", at(-3000), "Date", at(0)}, after: pause},
			{reqHdr: []string{"If-Modified-Since", at(-3000)}, want: wantCached, wantStatus: 304}}},
		{id: "conditional-lm-fresh-earlier", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=100000", "Last-Modified", at(-3000), "Date", at(0)}, after: pause},
			{reqHdr: []string{"If-Modified-Since", at(-2000)}, want: wantCached, wantStatus: 304}}},
		{id: "conditional-lm-stale", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=2", "Last-Modified", at(-3000), "Date", at(0)}, after: pause},
			{reqHdr: []string{"If-Modified-Since", at(-3000)}, want: wantLMValidated, wantStatus: 304}}},
		// RFC 9111 §4.3.2: without Last-Modified, If-Modified-Since is
		// evaluated against the stored Date.
		{id: "conditional-lm-fresh-no-lm", note: "the suite's optimal test sends a date 3000 s before the stored Date and wants " +
			"a 304; by RFC 9110 §13.1.3 that response was modified since, so failsoft answers 200 (second case)",
			steps: []confStep{
				{resHdr: []string{"Cache-Control", "max-age=10000", "Date", at(0)}, after: pause},
				{reqHdr: []string{"If-Modified-Since", at(1)}, want: wantCached, wantStatus: 304}}},
		{id: "conditional-lm-fresh-no-lm (modified since)", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=10000", "Date", at(0)}, after: pause},
			{reqHdr: []string{"If-Modified-Since", at(-3000)}, want: wantCached, wantStatus: 200}}},
		{id: "conditional-lm-fresh-rfc850", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=10000", "Last-Modified", at(-3000), "Date", at(0)}, after: pause},
			{reqHdr: []string{"If-Modified-Since", newTestClock().Now().Add(-3000 * time.Second).Format(time.RFC850)}, want: wantCached, wantStatus: 304}}},
	})
}

// headerList is the suite's list of fields to store and update, with the
// two values it uses.
var headerList = []struct {
	name       string
	a, b       string
	noStore    bool // must not be stored (RFC 9111 §3.1)
	noUpdate   bool // must not be updated by a 304 (RFC 9111 §3.2)
	mustUpdate bool // the suite requires the update; for the others it is a check
}{
	{name: "Test-Header", mustUpdate: true},
	{name: "X-Test-Header", mustUpdate: true},
	{name: "Content-Foo", mustUpdate: true},
	{name: "X-Content-Foo", mustUpdate: true},
	{name: "Cache-Control", a: "max-age=1", b: "max-age=3600", mustUpdate: true},
	{name: "Connection", noStore: true},
	{name: "Content-Encoding"},
	{name: "Content-Location", a: "/foo", b: "/bar"},
	{name: "Content-MD5", a: "rL0Y20zC+Fzt72VPzMSk2A==", b: "N7UdGUp1E+RbVvZSTy1R8g=="},
	{name: "Content-Range"},
	{name: "Content-Security-Policy", a: "default-src 'self'", b: "default-src 'self' cdn.example.com"},
	{name: "Content-Type", a: "text/plain", b: "text/plain;charset=utf-8"},
	{name: "Clear-Site-Data", a: "cache", b: "cookies"},
	{name: "ETag", a: `"abcdef"`, b: `"ghijkl"`},
	{name: "Expires", a: "Fri, 01 Jan 2038 01:01:01 GMT", b: "Mon, 11 Jan 2038 11:11:11 GMT"},
	{name: "Keep-Alive", noStore: true},
	{name: "Proxy-Authenticate", noStore: true},
	{name: "Proxy-Authentication-Info", noStore: true},
	{name: "Proxy-Authorization", noStore: true},
	{name: "Proxy-Connection", noStore: true},
	{name: "Public-Key-Pins"},
	{name: "Set-Cookie2", a: "a=b", b: "a=c"},
	{name: "TE", noStore: true},
	{name: "Transfer-Encoding", noStore: true},
	{name: "Upgrade", noStore: true},
	{name: "X-Frame-Options", a: "deny", b: "sameorigin"},
	{name: "X-XSS-Protection", a: "1", b: "1; mode=block"},
}

func TestConformanceStoredHeaders(t *testing.T) {
	cases := []confCase{
		{id: "headers-omit-headers-listed-in-Connection", steps: []confStep{
			{resHdr: append([]string{"Connection", "a, b", "a", "1", "b", "2", "c", "3"}, freshHdr...)},
			{want: wantCached, wantHdr: []string{"c", "3"}, wantNoHdr: []string{"Connection", "a", "b"}}}},
		// headers-store-Set-Cookie: deliberate (README), never stored.
		{id: "headers-store-Set-Cookie", note: "deliberate (README): a response with Set-Cookie is never stored",
			steps: []confStep{{resHdr: []string{"Date", at(0), "Set-Cookie", "a=b", "Cache-Control", "max-age=3600"}, after: pause}, {want: wantForwarded}}},
	}
	for _, f := range headerList {
		value := f.b
		if value == "" {
			value = f.name + "-store-value"
		}
		hdr := []string{"Date", at(0), f.name, value}
		if f.name != "Cache-Control" {
			hdr = append(hdr, "Cache-Control", "max-age=3600")
		}
		last := confStep{want: wantCached}
		if f.noStore {
			last.wantNoHdr = []string{f.name}
		} else if f.name != "Cache-Control" {
			last.wantHdr = []string{f.name, value}
		}
		id := "headers-store-" + f.name
		if f.name == "Cache-Control" {
			// The suite's value is not a lifetime: stored only with one.
			hdr = []string{"Date", at(0), f.name, value + ", max-age=3600"}
			last.wantHdr = []string{f.name, value + ", max-age=3600"}
		}
		cases = append(cases, confCase{id: id, steps: []confStep{{resHdr: hdr, after: pause}, last}})
	}
	runConformance(t, cases)
}

func TestConformanceUpdate304(t *testing.T) {
	lm := "Wed, 01 Jan 2020 00:00:00 GMT"
	cases := []confCase{
		{id: "304-lm-use-stored-Test-Header", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=2", "Last-Modified", lm, "Date", at(0), "Test-Header", "A"}, after: pause},
			{resHdr: []string{"Last-Modified", lm, "Date", at(3)}, want: wantLMValidated, wantHdr: []string{"Test-Header", "A"}}}},
		// Content-Length is never taken from a 304 (RFC 9111 §3.2).
		{id: "304-etag-update-response-Content-Length", steps: []confStep{
			{resHdr: []string{"Date", at(0), "Cache-Control", "max-age=2", "ETag", `"cl"`}, body: "12345", after: pause},
			{resHdr: []string{"Date", at(3), "Content-Length", "10", "Cache-Control", "max-age=2", "ETag", `"cl"`}, want: wantETagValidated,
				wantHdr: []string{"Content-Length", "5"}},
			{want: wantCached, wantHdr: []string{"Content-Length", "5"}}}},
		// Fields a 304's Connection names are not stored (RFC 9111 §3.2,
		// §3.1).
		{id: "304-update-omits-Connection-listed", steps: []confStep{
			{resHdr: []string{"Date", at(0), "Cache-Control", "max-age=2", "ETag", `"c"`}, after: pause},
			{resHdr: []string{"Date", at(3), "Connection", "X-A", "X-A", "1", "X-B", "2", "Cache-Control", "max-age=2", "ETag", `"c"`}, want: wantETagValidated},
			{want: wantCached, wantHdr: []string{"X-B", "2"}, wantNoHdr: []string{"X-A", "Connection"}}}},
	}
	for _, f := range headerList {
		if f.noStore {
			continue
		}
		a, b := f.a, f.b
		if a == "" {
			a, b = f.name+"-value-A", f.name+"-value-B"
		}
		resp := func(value string, date int) []string {
			h := []string{"Date", at(date), f.name, value}
			if f.name != "Cache-Control" {
				h = append(h, "Cache-Control", "max-age=2")
			}
			if f.name != "ETag" {
				h = append(h, "ETag", `"`+f.name+`-etag-1"`)
			}
			return h
		}
		note := ""
		if f.name == "ETag" {
			// A suite check. The 304 names "ghijkl", not the stored
			// "abcdef": it identifies no stored response and MUST NOT
			// update one (RFC 9111 §4.3.4). failsoft asks the handler again
			// without validators and stores that answer, which carries the
			// new ETag; TestCacheRevalidationOtherRepresentation pins it.
			note = "the 304 is not used (RFC 9111 §4.3.4); the handler's unconditional answer is stored"
		}
		cases = append(cases, confCase{id: "304-etag-update-response-" + f.name, note: note, steps: []confStep{
			{resHdr: resp(a, 0), after: pause},
			{resHdr: resp(b, 3), want: wantETagValidated, wantHdr: []string{f.name, b}},
			{want: wantCached, wantHdr: []string{f.name, b}}}})
	}
	runConformance(t, cases)
}

func TestConformanceRequestDirectives(t *testing.T) {
	runConformance(t, []confCase{
		{id: "ccreq-ma0", steps: []confStep{{resHdr: freshHdr, after: pause}, {reqHdr: []string{"Cache-Control", "max-age=0"}, want: wantForwarded}}},
		{id: "ccreq-ma1", steps: []confStep{{resHdr: freshHdr, after: pause}, {reqHdr: []string{"Cache-Control", "max-age=1"}, want: wantForwarded}}},
		{id: "ccreq-magreaterage", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=3600", "Age", "1800"}},
			{reqHdr: []string{"Cache-Control", "max-age=600"}, want: wantForwarded}}},
		{id: "ccreq-max-stale", note: "max-stale is not honoured (doc.go): a shared cache does not serve stale on a client's say-so",
			steps: []confStep{{resHdr: []string{"Cache-Control", "max-age=1"}, after: pause},
				{reqHdr: []string{"Cache-Control", "max-stale=1000"}, want: wantForwarded}}},
		{id: "ccreq-min-fresh", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=1500"}},
			{reqHdr: []string{"Cache-Control", "min-fresh=2000"}, want: wantForwarded}}},
		{id: "ccreq-min-fresh-age", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=1500", "Age", "1000"}},
			{reqHdr: []string{"Cache-Control", "min-fresh=1000"}, want: wantForwarded}}},
		{id: "ccreq-no-cache", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=3600"}},
			{reqHdr: []string{"Cache-Control", "no-cache"}, want: wantForwarded}}},
		{id: "ccreq-no-cache-lm", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=3600", "Last-Modified", at(-10000), "Date", at(0)}},
			{reqHdr: []string{"Cache-Control", "no-cache"}, want: wantLMValidated}}},
		{id: "ccreq-no-cache-etag", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=3600", "ETag", `"abc"`}},
			{reqHdr: []string{"Cache-Control", "no-cache"}, want: wantETagValidated}}},
		{id: "ccreq-no-store", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=3600"}},
			{reqHdr: []string{"Cache-Control", "no-store"}, want: wantForwarded}}},
		{id: "ccreq-oic", steps: []confStep{{reqHdr: []string{"Cache-Control", "only-if-cached"}, wantStatus: http.StatusGatewayTimeout}}},
		// pragma (checks): request Pragma is ignored (README).
		{id: "pragma-request-no-cache", steps: []confStep{{resHdr: []string{"Cache-Control", "max-age=3600"}}, {reqHdr: []string{"Pragma", "no-cache"}, want: wantCached}}},
		{id: "pragma-request-extension", steps: []confStep{{resHdr: []string{"Cache-Control", "max-age=3600"}}, {reqHdr: []string{"Pragma", "unrecognised-extension"}, want: wantCached}}},
		twoStep("pragma-response-no-cache", []string{"Cache-Control", "max-age=3600", "Pragma", "no-cache"}, false, wantCached),
		twoStep("pragma-response-extension", []string{"Cache-Control", "max-age=3600", "Pragma", "unrecognised-extension"}, false, wantCached),
	})
}

func TestConformanceAuthorization(t *testing.T) {
	auth := func(id string, hdr []string, want int) confCase {
		return confCase{id: id, steps: []confStep{
			{reqHdr: []string{"Authorization", "FOO"}, resHdr: hdr, wantReq: []string{"Authorization", "FOO"}, after: pause},
			{want: want}}}
	}
	runConformance(t, []confCase{
		auth("other-authorization", []string{"Expires", at(30 * 24 * 3600), "Date", at(0)}, wantForwarded),
		auth("other-authorization-public", []string{"Cache-Control", "max-age=3600, public", "Date", at(0)}, wantCached),
		auth("other-authorization-must-revalidate", []string{"Cache-Control", "max-age=3600, must-revalidate", "Date", at(0)}, wantCached),
		auth("other-authorization-smaxage", []string{"Cache-Control", "s-maxage=3600", "Date", at(0)}, wantCached),
		// other
		{id: "query-args-different", steps: []confStep{
			{query: "?test=1", resHdr: freshHdr}, {query: "?test=2", want: wantForwarded}}},
		{id: "query-args-same", steps: []confStep{
			{query: "?test=1", resHdr: freshHdr}, {query: "?test=1", want: wantCached}}},
		{id: "other-fresh-content-disposition-attachment", steps: []confStep{
			{resHdr: append([]string{"Content-Disposition", "attachment; filename=example.txt"}, freshHdr...)}, {want: wantCached}}},
		{id: "other-cookie", steps: []confStep{{resHdr: freshHdr}, {reqHdr: []string{"Cookie", "a=b"}, want: wantCached}}},
		{id: "other-set-cookie", note: "deliberate (README): a response with Set-Cookie is never stored",
			steps: []confStep{{resHdr: append([]string{"Set-Cookie", "a=b"}, freshHdr...)}, {want: wantForwarded}}},
		{id: "method-POST", note: "the suite's optimal test reuses a POST response for a GET; failsoft stores GET responses only",
			steps: []confStep{{method: "POST", resHdr: []string{"Expires", at(30 * 24 * 3600), "Content-Location", "/test", "Date", at(0)}, after: pause},
				{want: wantForwarded}}},
		{id: "partial-store-complete-reuse-partial",
			note: "the suite's optimal test wants a 206 from the stored 200; failsoft answers the whole 200, which RFC 9110 §14.2 allows",
			steps: []confStep{{resHdr: []string{"Cache-Control", "max-age=3600"}, body: "01234567890"},
				{reqHdr: []string{"Range", "bytes=0-1"}, want: wantCached}}},
		{id: "partial-store-partial-reuse-partial", note: "206 is never stored (README)",
			steps: []confStep{
				{reqHdr: []string{"Range", "bytes=-5"}, status: 206, resHdr: []string{"Cache-Control", "max-age=3600", "Content-Range", "bytes 4-9/10"}, body: "01234"},
				{reqHdr: []string{"Range", "bytes=-5"}, status: 206, body: "01234", want: wantForwarded}}},
		{id: "head-writethrough", steps: []confStep{
			{resHdr: []string{"Cache-Control", "max-age=2", "Template-A", "1"}, after: pause},
			{method: "HEAD", want: wantForwarded}}},
	})
}

func TestConformanceTargeted(t *testing.T) {
	cdn := func(id string, hdr []string, paused bool, want int) confCase { return twoStep(id, hdr, paused, want) }
	nostore := cdn("cdn-fresh-cc-nostore", []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=10000"}, true, wantForwarded)
	nostore.note = "deliberate (README): Cache-Control no-store and private still bind beside a targeted field"
	caseIns := cdn("cdn-max-age-case-insensitive", []string{"CDN-Cache-Control", "MaX-aGe=3600"}, true, wantForwarded)
	caseIns.note = "RFC 9213 §2.2: a Structured Fields key is lower case, so the field is invalid and ignored"
	runConformance(t, []confCase{
		cdn("cdn-max-age", []string{"CDN-Cache-Control", "max-age=3600"}, true, wantCached),
		cdn("cdn-max-age-max", []string{"CDN-Cache-Control", "max-age=2147483648"}, true, wantCached),
		cdn("cdn-max-age-max-plus", []string{"CDN-Cache-Control", "max-age=99999999999"}, true, wantCached),
		cdn("cdn-max-age-age", []string{"Date", at(0), "CDN-Cache-Control", "max-age=3600", "Age", "7200"}, true, wantForwarded),
		cdn("cdn-max-age-space-before-equals", []string{"Cache-Control", "max-age=1", "CDN-Cache-Control", "max-age =100"}, true, wantForwarded),
		cdn("cdn-max-age-space-after-equals", []string{"Cache-Control", "max-age=1", "CDN-Cache-Control", "max-age= 100"}, true, wantForwarded),
		cdn("cdn-max-age-0", []string{"CDN-Cache-Control", "max-age=0"}, true, wantForwarded),
		cdn("cdn-max-age-extension", []string{"CDN-Cache-Control", "foobar, max-age=3600"}, true, wantCached),
		caseIns,
		cdn("cdn-max-age-expires", []string{"CDN-Cache-Control", "max-age=3600", "Expires", at(-10000), "Date", at(0)}, true, wantCached),
		cdn("cdn-max-age-cc-max-age-invalid-expires", []string{"CDN-Cache-Control", "max-age=3600", "Expires", "0", "Date", at(0)}, true, wantCached),
		cdn("cdn-max-age-0-expires", []string{"CDN-Cache-Control", "max-age=0", "Expires", at(10000), "Date", at(0)}, true, wantForwarded),
		cdn("cdn-max-age-short-cc-max-age", []string{"Cache-Control", "max-age=1", "CDN-Cache-Control", "max-age=3600"}, true, wantCached),
		cdn("cdn-max-age-long-cc-max-age", []string{"Cache-Control", "max-age=3600", "CDN-Cache-Control", "max-age=1"}, true, wantForwarded),
		cdn("cdn-private", []string{"CDN-Cache-Control", "private", "Cache-Control", "max-age=10000", "Expires", at(10000), "Date", at(0)}, false, wantForwarded),
		cdn("cdn-no-cache", []string{"CDN-Cache-Control", "no-cache", "Cache-Control", "max-age=10000", "Expires", at(10000), "Date", at(0)}, false, wantForwarded),
		cdn("cdn-no-store-cc-fresh", []string{"Cache-Control", "max-age=10000", "CDN-Cache-Control", "no-store", "Expires", at(10000), "Date", at(0)}, true, wantForwarded),
		nostore,
		cdn("cdn-cc-invalid-sh-type-unknown", []string{"CDN-Cache-Control", "max-age=10000, &&&&&", "Cache-Control", "no-store"}, true, wantForwarded),
		cdn("cdn-cc-invalid-sh-type-wrong", []string{"CDN-Cache-Control", `max-age="10000"`, "Cache-Control", "no-store"}, true, wantForwarded),
		{id: "cdn-remove-header", steps: []confStep{{
			resHdr:  []string{"Cache-Control", "max-age=10000", "CDN-Cache-Control", "foo", "Expires", at(10000), "Date", at(0)},
			wantHdr: []string{"CDN-Cache-Control", "foo"}}}},
	})
}
