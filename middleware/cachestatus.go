// The Cache-Status response field (RFC 9211) that tells a client how the
// cache answered.

package middleware

import (
	"strconv"
	"time"
)

// cacheStatus builds the Cache-Status values of one cache name (see
// [WithName]); the values of bypasses are built once, in advance.
type cacheStatus struct {
	name         string
	method       string // another method than GET or HEAD
	noStore      string // the request said no-store
	noKey        string // no key, or one too long
	body         string // a GET or HEAD with a body
	override     string // a GET or HEAD that overrides its method
	onlyIfCached string // only-if-cached without a usable entry: 504
}

func newCacheStatus(name string) cacheStatus {
	return cacheStatus{
		name:         name,
		method:       name + "; fwd=method",
		noStore:      name + "; fwd=bypass; detail=no-store",
		noKey:        name + "; fwd=bypass; detail=no-key",
		body:         name + "; fwd=bypass; detail=request-body",
		override:     name + "; fwd=bypass; detail=method-override",
		onlyIfCached: name + "; fwd=miss; detail=only-if-cached",
	}
}

// hit is the Cache-Status of an answer from the store without a call
// to the handler: "hit", the remaining freshness (negative when stale) and
// a detail for a stale one.
func (s *cacheStatus) hit(e *entry, now time.Time, detail string) string {
	b := make([]byte, 0, 80)
	b = append(b, s.name...)
	b = append(b, "; hit; ttl="...)
	b = strconv.AppendInt(b, ttlSeconds(e, now), 10)
	if detail != "" {
		b = append(b, "; detail="...)
		b = append(b, detail...)
	}
	return string(b)
}

// fwd is the Cache-Status of an answer that went to the handler (or
// waited for another request's call: collapsed).
func (s *cacheStatus) fwd(lk *lookup, status int, stored, collapsed bool, detail string) string {
	b := make([]byte, 0, 96)
	b = append(b, s.name...)
	b = append(b, "; fwd="...)
	if lk.fwd == "" {
		b = append(b, "miss"...)
	} else {
		b = append(b, lk.fwd...)
	}
	if status > 0 {
		b = append(b, "; fwd-status="...)
		b = strconv.AppendInt(b, int64(status), 10)
	}
	if stored {
		b = append(b, "; stored"...)
	}
	if collapsed {
		b = append(b, "; collapsed"...)
	}
	if detail == "" {
		detail = lk.detail
	}
	if detail != "" {
		b = append(b, "; detail="...)
		b = append(b, detail...)
	}
	return string(b)
}

// stale is the Cache-Status of a stale copy that answers for a failed
// handler: the forward, its status (0 when it had none: panic, timeout),
// the entry's ttl (negative) and why.
func (s *cacheStatus) stale(lk *lookup, status int, e *entry, now time.Time, detail string, collapsed bool) string {
	b := make([]byte, 0, 96)
	b = append(b, s.name...)
	b = append(b, "; fwd="...)
	b = append(b, lk.fwd...)
	if status > 0 {
		b = append(b, "; fwd-status="...)
		b = strconv.AppendInt(b, int64(status), 10)
	}
	b = append(b, "; ttl="...)
	b = strconv.AppendInt(b, ttlSeconds(e, now), 10)
	if collapsed {
		b = append(b, "; collapsed"...)
	}
	b = append(b, "; detail="...)
	b = append(b, detail...)
	return string(b)
}

// ttlSeconds is an entry's remaining freshness in seconds, rounded to the
// nearest (negative when stale).
func ttlSeconds(e *entry, now time.Time) int64 {
	return int64(e.FreshUntil.Sub(now).Round(time.Second) / time.Second)
}
