// The Cache-Status response field (RFC 9211) that tells a client how the
// cache answered.

package middleware

import (
	"strconv"
	"sync/atomic"
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
	// hits remembers the values of fresh hits without a detail, in a slot
	// per ttl modulo hitStatuses (the last ttl seen in a slot wins), so
	// that hits on entries no store keeps decoded (no hitMemo) format
	// nothing either while their ttl stays the same.
	hits *[hitStatuses]atomic.Pointer[ttlStatus]
}

// hitStatuses is how many slots cacheStatus.hits has: 2 KiB of pointers
// per cache, and the values of the ttls last seen.
const hitStatuses = 256

// ttlStatus is the Cache-Status of a fresh hit with ttl seconds left.
type ttlStatus struct {
	ttl    int64
	status string
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
		hits:         new([hitStatuses]atomic.Pointer[ttlStatus]),
	}
}

// hit is the Cache-Status of an answer from the store without a call
// to the handler: "hit", the remaining freshness (negative when stale) and
// a detail for a stale one.
func (s *cacheStatus) hit(e *entry, now time.Time, detail string) string {
	return s.hitTTL(ttlSeconds(e, now), detail)
}

// hitMemo is the Age and hit Cache-Status values of an entry for one pair
// of whole seconds (age, ttl) and one cache name. The values change at most
// twice a second, so the requests in between reuse them: strings are
// immutable, so sharing them between responses is safe.
type hitMemo struct {
	by       *cacheStatus
	age, ttl int64
	ageValue string
	status   string
}

// hitFields returns the Age value and the Cache-Status of a fresh hit
// (hit without a detail) on e at now. For an entry that a store keeps
// decoded ([entry.kept]) it remembers them in the entry, so that the hits
// within the same second of age and of ttl format nothing.
func (s *cacheStatus) hitFields(e *entry, now time.Time) (age, status string) {
	a, ttl := entryAge(e, now), ttlSeconds(e, now)
	if m := e.hit.Load(); m != nil && m.by == s && m.age == a && m.ttl == ttl {
		return m.ageValue, m.status
	}
	age, status = strconv.FormatInt(a, 10), s.freshHit(ttl)
	if e.kept {
		e.hit.Store(&hitMemo{by: s, age: a, ttl: ttl, ageValue: age, status: status})
	}
	return age, status
}

// freshHit is hitTTL(ttl, ""), remembered (see cacheStatus.hits).
func (s *cacheStatus) freshHit(ttl int64) string {
	if ttl < 0 || s.hits == nil {
		return s.hitTTL(ttl, "")
	}
	p := &s.hits[ttl%hitStatuses]
	if v := p.Load(); v != nil && v.ttl == ttl {
		return v.status
	}
	v := &ttlStatus{ttl: ttl, status: s.hitTTL(ttl, "")}
	p.Store(v)
	return v.status
}

// hitTTL is [cacheStatus.hit] for ttl seconds of freshness.
func (s *cacheStatus) hitTTL(ttl int64, detail string) string {
	b := make([]byte, 0, 80)
	b = append(b, s.name...)
	b = append(b, "; hit; ttl="...)
	b = strconv.AppendInt(b, ttl, 10)
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

// entryAge is the Age of e at now in whole seconds: the time since
// e.StoredAt, at least 0 and at most 2^31 (see [Cache.serveEntry]).
func entryAge(e *entry, now time.Time) int64 {
	return int64(min(max(now.Sub(e.StoredAt), 0), maxDelta) / time.Second)
}

// ttlSeconds is an entry's remaining freshness in seconds, rounded to the
// nearest (negative when stale).
func ttlSeconds(e *entry, now time.Time) int64 {
	return int64(e.FreshUntil.Sub(now).Round(time.Second) / time.Second)
}
