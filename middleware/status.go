// Which response statuses the cache stores (RFC 9111 §3, RFC 9110 §15),
// and the must-understand directive (RFC 9111 §5.2.2.3) that depends on
// them.

package middleware

import (
	"net/http"
	"strings"
)

// understoodStatus reports whether the cache knows status well enough to
// store a response with it: the final statuses RFC 9110 §15 defines, less
// 305 (deprecated) and the unused 306 and 418, plus 428, 429, 431 and 511
// (RFC 6585) and 451 (RFC 7725). A response with any other status (299,
// 207, 599, ...) is never stored, whatever it says; 206 and 304 are
// understood but never stored either (see [storable]).
func understoodStatus(status int) bool {
	switch {
	case 200 <= status && status <= 206, 300 <= status && status <= 304, status == 307, status == 308,
		400 <= status && status <= 417, 500 <= status && status <= 505:
		return true
	}
	switch status {
	case 421, 422, 426, 428, 429, 431, 451, 511:
		return true
	}
	return false
}

// neverStored reports whether a response with status is never stored,
// whatever the response and the options say: not final (1xx), 206 (this
// cache does not combine partial content), 304 (it updates a stored
// response, RFC 9111 §4.3.4), or not understood.
func neverStored(status int) bool {
	return status < 200 || status == http.StatusPartialContent || status == http.StatusNotModified ||
		!understoodStatus(status)
}

// heuristicStatus reports whether a response with status may be stored
// without an explicit lifetime (max-age, s-maxage, Expires) nor public,
// under a heuristic one such as p.DefaultTTL: one of p.Statuses that RFC
// 9110 §15.1 calls heuristically cacheable, or, when p.Statuses is nil,
// one of [defaultStatuses].
func heuristicStatus(status int, p policy) bool {
	if p.Statuses != nil {
		return p.Statuses[status] && heuristicallyCacheable(status)
	}
	for _, s := range defaultStatuses {
		if s == status {
			return true
		}
	}
	return false
}

// mustUnderstand reports whether the response's Cache-Control has the
// must-understand directive (RFC 9111 §5.2.2.3), without an argument
// (with one it grants nothing, as public does not). The cache implements
// it: a response with it is stored only when its status is understood
// (which this cache requires of every response), and then its no-store is
// ignored.
func mustUnderstand(h http.Header) bool {
	for _, line := range fieldLines(h, "Cache-Control") {
		for elem := range listElements(line) {
			if strings.EqualFold(elem, "must-understand") {
				return true
			}
		}
	}
	return false
}
