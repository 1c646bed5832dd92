// Conditional requests: validators, 304 answers from stored entries, and
// revalidation of stale entries with the handler.

package middleware

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// conditionalHeaders are the request fields that make a request
// conditional.
var conditionalHeaders = [...]string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range"}

func hasConditional(h http.Header) bool {
	for _, k := range conditionalHeaders {
		if _, ok := h[k]; ok {
			return true
		}
	}
	return false
}

// hasValidator reports whether e has an ETag or a Last-Modified.
func hasValidator(e *entry) bool {
	_, etag := e.Header["Etag"]
	_, lm := e.Header["Last-Modified"]
	return etag || lm
}

// addValidators makes h a conditional request for e: If-None-Match with its
// ETag, else If-Modified-Since with its Last-Modified. It reports whether e
// had a validator.
func addValidators(h http.Header, e *entry) bool {
	if e == nil {
		return false
	}
	if v := e.Header.Get("Etag"); v != "" {
		h["If-None-Match"] = []string{v}
		return true
	}
	if v := e.Header.Get("Last-Modified"); v != "" {
		h["If-Modified-Since"] = []string{v}
		return true
	}
	return false
}

// confirms reports whether a 304 with the fields h304, answering a request
// the cache made conditional on the stored response with the fields stored,
// identifies that response for update (RFC 9111 §4.3.4). A strong
// entity-tag in the 304 must be the stored response's, strong too (strong
// comparison: a different one names another representation, and the 304
// then MUST NOT update anything); a weak one must match it by weak
// comparison. Without an entity-tag, the 304's Last-Modified, when it has
// one, must be the stored one. A 304 with neither names no representation:
// it confirms the one stored response the request was made conditional on
// (the RFC asks that response to lack a validator too; see README).
func confirms(stored, h304 http.Header) bool {
	if tag := first(h304["Etag"]); tag != "" {
		have := first(stored["Etag"])
		if weak(tag) || weak(have) {
			return weak(tag) && have != "" && strings.TrimPrefix(have, "W/") == strings.TrimPrefix(tag, "W/")
		}
		return have == tag
	}
	if lm := first(h304["Last-Modified"]); lm != "" {
		return sameInstant(first(stored["Last-Modified"]), lm)
	}
	return true
}

// weak reports whether an entity-tag is weak ("W/" prefix, RFC 9110 §8.8.3).
func weak(tag string) bool { return strings.HasPrefix(tag, "W/") }

// sameInstant reports whether two HTTP-dates name the same second; either
// unreadable counts as different, unless the two are the same bytes.
func sameInstant(a, b string) bool {
	if a == b {
		return a != ""
	}
	ta, err := http.ParseTime(a)
	if err != nil {
		return false
	}
	tb, err := http.ParseTime(b)
	return err == nil && ta.Equal(tb)
}

// headUpdate applies a 200 answering a HEAD to the stored GET response the
// HEAD was looked up with (RFC 9111 §4.3.5). When each validator the HEAD
// response carries (ETag, Last-Modified; it may carry none) is the stored
// response's, and its Content-Length, if it has one, is the stored body's
// length, the stored response's fields and lifetimes are updated from it
// as from a 304; otherwise a fresh stored response becomes stale (its stale
// windows stay: it may still answer stale-if-error).
func (c *Cache) headUpdate(r *http.Request, lk *lookup, h http.Header, sent, now time.Time) {
	old := lk.e
	tag, lm := first(h["Etag"]), first(h["Last-Modified"])
	match := (tag == "" || tag == first(old.Header["Etag"])) &&
		(lm == "" || sameInstant(first(old.Header["Last-Modified"]), lm))
	if cl := first(h["Content-Length"]); cl != "" && cl != strconv.Itoa(len(old.Body)) {
		match = false
	}
	var e *entry
	var names []string
	if match {
		var ok bool
		if e, names, ok = c.revalidated(getView(r), old, h, sent, now); !ok {
			return
		}
	} else {
		if !now.Before(old.FreshUntil) {
			return // stale already
		}
		e = &entry{Kind: kindResponse, Status: old.Status, Header: old.Header, Body: old.Body,
			StoredAt: old.StoredAt, FreshUntil: now, SWRUntil: old.SWRUntil, StaleUntil: old.StaleUntil}
		if lk.marker != nil {
			names = lk.marker.VaryHeaders
		}
	}
	key, marker, _ := c.keys(r, lk, e, names)
	c.w.writeAsync(r.Context(), key, e, lk.primary, marker, lk.epoch)
}

// getView returns r as the GET whose stored response it is answered from:
// r itself, or for a HEAD a copy with the method GET, so that what a HEAD
// learns updates that response.
func getView(r *http.Request) *http.Request {
	if r.Method != http.MethodHead {
		return r
	}
	g := r.WithContext(r.Context())
	g.Method = http.MethodGet
	return g
}

// revalidated merges a 304's header fields into old (RFC 9111 §3.2,
// §4.3.4), but for Content-Length and the fields a cache does not store
// ([unstoredFields], and those the 304's Connection lists), and recomputes
// its lifetimes, for a conditional request sent at sent and answered at
// now. The stored Age is dropped unless the 304 has one: the
// handler has just validated the response, so its age starts again. ok is
// false when the merged response may no longer be stored; e then still
// holds it, to answer this request alone.
func (c *Cache) revalidated(r *http.Request, old *entry, h304 http.Header, sent, now time.Time) (e *entry, names []string, ok bool) {
	h := old.Header.Clone()
	listed := connectionListed(h304)
	for k, v := range h304 {
		if k == "Content-Length" || unstored(k) || slices.Contains(listed, k) {
			continue
		}
		h[k] = v
	}
	if _, ok := h304["Date"]; !ok {
		h["Date"] = []string{now.UTC().Format(http.TimeFormat)}
	}
	if _, ok := h304["Age"]; !ok {
		delete(h, "Age")
	}
	e, names, _ = c.newEntry(r, old.Status, h, old.Body, sent, now)
	if e == nil {
		return &entry{Kind: kindResponse, Status: old.Status, Header: h, Body: old.Body,
			StoredAt: now, FreshUntil: now, SWRUntil: now, StaleUntil: now}, nil, false
	}
	return e, names, true
}

// notModifiedHeaders are the stored fields a 304 repeats (RFC 9110
// §15.4.5).
var notModifiedHeaders = [...]string{"Cache-Control", "Content-Location", "Date", "Etag", "Expires", "Last-Modified", "Vary"}

// notModified evaluates the request's If-None-Match (weak comparison), or
// without it If-Modified-Since, against a stored response (RFC 9110 §13.2.2).
// If-Modified-Since is compared with the stored Last-Modified or, without
// one, the stored Date (RFC 9111 §4.3.2; every stored entry has a Date,
// see [Cache.complete]).
func notModified(req, stored http.Header) bool {
	// The names are canonical: indexing is Get without canonicalising.
	if inm, ok := req["If-None-Match"]; ok {
		etag := first(stored["Etag"])
		return etag != "" && etagMatchWeak(inm, etag)
	}
	ims := first(req["If-Modified-Since"])
	if ims == "" {
		return false
	}
	lm := first(stored["Last-Modified"])
	if lm == "" {
		lm = first(stored["Date"])
	}
	if lm == "" {
		return false
	}
	since, err := http.ParseTime(ims)
	if err != nil {
		return false
	}
	modified, err := http.ParseTime(lm)
	if err != nil {
		return false
	}
	return !modified.After(since)
}

// first returns a field's first value, as [http.Header.Get] does; "" when
// there is none.
func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// etagMatchWeak reports whether any entity-tag in the If-None-Match field
// values list matches etag by weak comparison, or the list is "*".
func etagMatchWeak(list []string, etag string) bool {
	want := strings.TrimPrefix(etag, "W/")
	for _, v := range list {
		for {
			v = strings.TrimLeft(v, " \t,")
			if v == "" {
				break
			}
			if v[0] == '*' {
				return true
			}
			tag, rest, ok := scanETag(v)
			if !ok {
				break
			}
			if strings.TrimPrefix(tag, "W/") == want {
				return true
			}
			v = rest
		}
	}
	return false
}

// scanETag reads one entity-tag (RFC 9110 §8.8.3) at the start of s.
func scanETag(s string) (tag, rest string, ok bool) {
	start := 0
	if strings.HasPrefix(s, "W/") {
		start = 2
	}
	if len(s)-start < 2 || s[start] != '"' {
		return "", "", false
	}
	for i := start + 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return s[:i+1], s[i+1:], true
		case c == 0x21 || c >= 0x23 && c != 0x7f:
		default:
			return "", "", false
		}
	}
	return "", "", false
}
