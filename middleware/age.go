// The age of a response (RFC 9111 §4.2.3, §5.1): how long ago it was
// generated or validated by the handler, which the Age the cache serves
// tells the next cache.

package middleware

import (
	"net/http"
	"time"
)

// parseAge reads the Age field lines (RFC 9111 §5.1). They form one list,
// and although Age is a singleton field, the first member of that list
// (empty members skipped) is used and the others discarded, as §5.1 says.
// present is false without an Age line; valid is false when the first
// member is not delta-seconds (one or more ASCII digits: no sign, no
// fraction, no quotes), including when there is none. Larger values are
// capped at 2^31 seconds (RFC 9111 §1.2.2).
func parseAge(lines []string) (age time.Duration, present, valid bool) {
	if len(lines) == 0 {
		return 0, false, false
	}
	for _, line := range lines {
		for elem := range listElements(line) {
			age, valid = ageSeconds(elem)
			return age, true, valid
		}
	}
	return 0, true, false
}

// ageSeconds parses delta-seconds (1*DIGIT), capped at 2^31 seconds; ok is
// false for anything else.
func ageSeconds(s string) (d time.Duration, ok bool) {
	if s == "" {
		return 0, false
	}
	const limit = int64(maxDelta / time.Second)
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < limit {
			n = n*10 + int64(c-'0')
		}
	}
	return time.Duration(min(n, limit)) * time.Second, true
}

// initialAge is the corrected initial age (RFC 9111 §4.2.3) of a response
// to a request sent at sent and received at received, whose freshness
// lifetime is lifetime: the larger of its apparent age (received minus its
// Date, never negative) and its corrected Age (the Age received plus the
// response delay, received minus sent), capped at 2^31 seconds. The Age the
// cache serves is this plus the time the response has been stored.
//
// An Age field whose first member is not delta-seconds counts as an Age
// equal to lifetime: the response is stale on arrival, though its stale
// windows still apply. RFC 9111 §5.1 says a cache SHOULD ignore such a
// field; this cache reads it conservatively instead, because a sender that
// garbles Age may have held the response for any time, and ignoring the
// field would call an old response fresh.
func initialAge(h http.Header, sent, received time.Time, lifetime time.Duration) time.Duration {
	var apparent time.Duration
	if date, ok := headerTime(h, "Date"); ok {
		apparent = clampDuration(received.Sub(date))
	}
	ageValue, present, valid := parseAge(fieldLines(h, "Age"))
	if present && !valid {
		ageValue = lifetime
	}
	corrected := ageValue + clampDuration(received.Sub(sent))
	return min(max(apparent, corrected), maxDelta)
}
