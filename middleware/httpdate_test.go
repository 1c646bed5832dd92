package middleware

import (
	"net/http"
	"testing"
	"time"
)

func TestParseHTTPDate(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	want := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want time.Time // zero: not an HTTP-date
	}{
		{"IMF-fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", want},
		{"RFC 850", "Sunday, 06-Nov-94 08:49:37 GMT", want},
		{"asctime", "Sun Nov  6 08:49:37 1994", want},
		{"asctime two-digit day", "Sun Nov 06 08:49:37 1994", want},
		{"day name upper case", "SUN, 06 Nov 1994 08:49:37 GMT", want},
		{"month upper case", "Sun, 06 NOV 1994 08:49:37 GMT", want},
		{"GMT odd case", "Sun, 06 Nov 1994 08:49:37 gMT", want},
		{"RFC 850 lower case", "sunday, 06-nov-94 08:49:37 gmt", want},
		{"asctime upper case", "SUN NOV  6 08:49:37 1994", want},
		{"leap second", "Sat, 31 Dec 2016 23:59:60 GMT", time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"RFC 850 year within 50 years ahead", "Thursday, 18-Aug-50 02:01:18 GMT", time.Date(2050, 8, 18, 2, 1, 18, 0, time.UTC)},
		{"RFC 850 year more than 50 years ahead is the past", "Monday, 18-Aug-80 02:01:18 GMT", time.Date(1980, 8, 18, 2, 1, 18, 0, time.UTC)},
		{"one-digit hour", "Sun, 06 Nov 1994 8:49:37 GMT", time.Time{}},
		{"double spaces", "Sun, 06  Nov  1994 08:49:37 GMT", time.Time{}},
		{"missing comma", "Sun 06 Nov 1994 08:49:37 GMT", time.Time{}},
		{"date dashes", "Sun, 06-Nov-1994 08:49:37 GMT", time.Time{}},
		{"time periods", "Sun, 06 Nov 1994 08.49.37 GMT", time.Time{}},
		{"two-digit year", "Sun, 06 Nov 94 08:49:37 GMT", time.Time{}},
		{"UTC", "Sun, 06 Nov 1994 08:49:37 UTC", time.Time{}},
		{"numeric zone", "Sun, 06 Nov 1994 08:49:37 +0000", time.Time{}},
		{"one-digit day", "Sun, 6 Nov 1994 08:49:37 GMT", time.Time{}},
		{"wrong weekday", "Mon, 06 Nov 1994 08:49:37 GMT", time.Time{}},
		{"no such date", "Thu, 31 Apr 2025 08:49:37 GMT", time.Time{}},
		{"hour 24", "Sun, 06 Nov 1994 24:00:00 GMT", time.Time{}},
		{"minute 60", "Sun, 06 Nov 1994 08:60:00 GMT", time.Time{}},
		{"trailing text", "Sun, 06 Nov 1994 08:49:37 GMT+1", time.Time{}},
		{"zero", "0", time.Time{}},
		{"empty", "", time.Time{}},
		{"asctime two spaces and two digits", "Sun Nov  06 08:49:37 1994", time.Time{}},
		{"RFC 850 four-digit year", "Sunday, 06-Nov-1994 08:49:37 GMT", time.Time{}},
		{"RFC 850 short day name", "Sun, 06-Nov-94 08:49:37 GMT", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseHTTPDate(tt.in, now)
			if ok != !tt.want.IsZero() || ok && !got.Equal(tt.want) {
				t.Errorf("parseHTTPDate(%q) = %v, %v; want %v", tt.in, got, ok, tt.want)
			}
		})
	}
}

// TestExpiresLifetime checks that an Expires that is not an HTTP-date
// means already expired (RFC 9111 §5.3), and that the obsolete formats and
// odd case are read.
func TestExpiresLifetime(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	date := rfc1123(now)
	p := policy{StaleIfError: 24 * time.Hour, Shared: true}
	until := time.Date(2050, 8, 18, 2, 1, 18, 0, time.UTC).Sub(now)
	tests := []struct {
		name    string
		expires string
		fresh   time.Duration
	}{
		{"IMF-fixdate", "Thu, 18 Aug 2050 02:01:18 GMT", until},
		{"RFC 850", "Thursday, 18-Aug-50 02:01:18 GMT", until},
		{"asctime", "Thu Aug 18 02:01:18 2050", until},
		{"upper-case weekday", "THU, 18 Aug 2050 02:01:18 GMT", until},
		{"upper-case month", "Thu, 18 AUG 2050 02:01:18 GMT", until},
		{"odd-case GMT", "Thu, 18 Aug 2050 02:01:18 gMT", until},
		{"surrounding whitespace", " Thu, 18 Aug 2050 02:01:18 GMT\t", until},
		{"one-digit hour", "Thu, 18 Aug 2050 2:01:18 GMT", 0},
		{"multiple spaces", "Thu, 18  Aug  2050 02:01:18 GMT", 0},
		{"date dashes", "Thu, 18-Aug-2050 02:01:18 GMT", 0},
		{"time periods", "Thu, 18 Aug 2050 02.01.18 GMT", 0},
		{"two-digit year", "Thu, 18 Aug 50 02:01:18 GMT", 0},
		{"missing comma", "Thu 18 Aug 2050 02:01:18 GMT", 0},
		{"UTC", "Thu, 18 Aug 2050 02:01:18 UTC", 0},
		{"wrong weekday", "Fri, 18 Aug 2050 02:01:18 GMT", 0},
		{"zero", "0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Expires": {tt.expires}, "Date": {date}}
			fresh, _, _, _ := lifetimes(h, parseCacheControl(h), now, now, p)
			if fresh != tt.fresh {
				t.Errorf("fresh %v, want %v", fresh, tt.fresh)
			}
		})
	}
}
