package middleware

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// The layouts of the three HTTP-date formats (RFC 9110 §5.6.7); asctime
// has two spellings of a one-digit day.
var httpDateLayouts = [...]string{
	http.TimeFormat,                  // IMF-fixdate
	"Monday, 02-Jan-06 15:04:05 GMT", // RFC 850
	"Mon Jan _2 15:04:05 2006",       // asctime, " 6"
	"Mon Jan 02 15:04:05 2006",       // asctime, "06"
}

// spellings returns every way of writing t as an HTTP-date, in canonical
// case, with a leap second (":60") for an instant that starts a minute.
func spellings(t time.Time) []string {
	var out []string
	for _, layout := range httpDateLayouts {
		out = append(out, t.Format(layout))
		if t.Second() == 0 {
			prev := t.Add(-time.Second)
			s := prev.Format(layout)
			clock := prev.Format("15:04:05")
			out = append(out, strings.Replace(s, clock, clock[:6]+"60", 1))
		}
	}
	return out
}

// FuzzParseHTTPDate checks parseHTTPDate against exact oracles:
//   - a string it accepts is, ignoring ASCII case, one of the spellings of
//     the instant it returns (so nothing outside the grammar is accepted,
//     and the instant is the one written), and that instant re-formatted as
//     an IMF-fixdate parses back to itself;
//   - every instant from year 0 to 9999, written as an IMF-fixdate or an
//     asctime date in any case, parses to itself, and as an RFC 850 date
//     parses to itself exactly when it lies in the two-digit year's window
//     (at most 50 years after now, less than 100 years before that).
func FuzzParseHTTPDate(f *testing.F) {
	for _, s := range []string{
		"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
		"Thu, 18 Aug 2050 2:01:18 GMT", "THU, 18 AUG 2050 02:01:18 gmt", "Sat, 31 Dec 2016 23:59:60 GMT",
		"0", "", "Thu, 18  Aug 2050 02:01:18 GMT", "Mon, 29 Feb 2100 00:00:00 GMT",
	} {
		f.Add(s, int64(784111777), uint64(0))
	}
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	minSec := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	maxSec := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	f.Fuzz(func(t *testing.T, s string, sec int64, caseMask uint64) {
		if got, ok := parseHTTPDate(s, now); ok {
			found := false
			for _, sp := range spellings(got) {
				found = found || equalFoldASCII(s, sp)
			}
			if !found {
				t.Fatalf("parseHTTPDate(%q) = %v: not a spelling of that instant", s, got)
			}
			back, ok := parseHTTPDate(got.Format(http.TimeFormat), now)
			if !ok || !back.Equal(got) {
				t.Fatalf("%q: IMF-fixdate %q parses to %v, %v", s, got.Format(http.TimeFormat), back, ok)
			}
		}

		// From an instant.
		if sec < minSec || sec > maxSec {
			sec = minSec + (sec%(maxSec-minSec+1)+(maxSec-minSec+1))%(maxSec-minSec+1)
		}
		at := time.Unix(sec, 0).UTC()
		hi := now.AddDate(50, 0, 0)
		inWindow := at.After(hi.AddDate(-100, 0, 0)) && !at.After(hi)
		for i, layout := range httpDateLayouts {
			in := flipCase(at.Format(layout), caseMask)
			got, ok := parseHTTPDate(in, now)
			want := i != 1 || inWindow // RFC 850: only the two-digit year's window
			if ok != want || ok && !got.Equal(at) {
				t.Fatalf("parseHTTPDate(%q) = %v, %v; want %v (%v)", in, got, ok, at, want)
			}
		}
	})
}

// flipCase changes the case of the letters of s whose bit in mask (cycled)
// is set.
func flipCase(s string, mask uint64) string {
	b := []byte(s)
	for i, c := range b {
		if mask>>(uint(i)%64)&1 == 0 {
			continue
		}
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}
