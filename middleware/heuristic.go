// Heuristic freshness (RFC 9111 §4.2.2) from Last-Modified.

package middleware

import (
	"net/http"
	"time"
)

// heuristic is the setting of [WithHeuristicFreshness]: a response's
// heuristic freshness lifetime is Fraction of the time from its
// Last-Modified to its Date, at most Max. The zero value is off.
type heuristic struct {
	Fraction float64
	Max      time.Duration
}

// lifetime returns the heuristic freshness lifetime of a response with
// status and header h received at now. ok is false when no heuristic
// applies: it is off, status is not heuristically cacheable (RFC 9110
// §15.1), or h has no single valid Last-Modified strictly before its Date
// (now when Date is missing or invalid).
//
// The caller uses it only where the response states no freshness of its
// own: it stands in for the default TTL, which [lifetimes] uses only
// without s-maxage, max-age and Expires (RFC 9111 §4.2.2: a cache MUST NOT
// use a heuristic when an explicit expiration time is present).
func (hf heuristic) lifetime(status int, h http.Header, now time.Time) (d time.Duration, ok bool) {
	if hf.Fraction <= 0 || !heuristicallyCacheable(status) {
		return 0, false
	}
	lm, ok := headerTime(h, "Last-Modified")
	if !ok {
		return 0, false
	}
	base := now
	if date, ok := headerTime(h, "Date"); ok {
		base = date
	}
	since := clampDuration(base.Sub(lm))
	if since <= 0 {
		return 0, false
	}
	return min(time.Duration(float64(since)*hf.Fraction), hf.Max, maxDelta), true
}
