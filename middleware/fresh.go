// The fresh in-process hit that Chain answers before Recover's per-request
// set-up.

package middleware

import (
	"net/http"
	"time"
)

// serveFresh answers r as [Cache.serve] would answer it, when that answer
// is a fresh hit on an entry the in-process tier holds and can vouch for
// alone (decoded.Getter's PeekDecoded): a GET or HEAD without
// Cache-Control, a body or a method override, keyed within the limits,
// whose primary key holds a fresh response (not a Vary marker) with a
// status below 500 and no store write pending. It reports whether it
// answered; when it did not, it has written and counted nothing, and the
// request goes on through the chain, which looks it up again.
//
// Such an answer calls neither Redis nor the handler, so Recover has
// nothing to track for it and no 5xx to turn into a 503 (status 500 and up
// is left to the chain for that reason). A panic while finding the entry
// falls back to the chain, where Recover handles it; a panic while writing
// it (from the ResponseWriter, since the entry is read-only and checked) is
// logged as Recover logs panics and aborts the response, as Recover does
// once a response has started.
func (c *Cache) serveFresh(w http.ResponseWriter, r *http.Request, rc *recoverConfig) bool {
	e, now := c.freshLocal(r)
	if e == nil {
		return false
	}
	defer func() {
		if p := recover(); p != nil {
			if isAbort(p) {
				panic(p)
			}
			rc.logPanic(r, p)
			panic(http.ErrAbortHandler)
		}
	}()
	c.st.hits.Add(1)
	age, cs := c.cs.hitFields(e, now)
	c.writeEntry(w, r, e, age, cs)
	if c.log.debugOn(r.Context()) {
		c.log.DebugContext(r.Context(), "failsoft: cache hit", "path", r.URL.Path)
	}
	return true
}

// freshLocal returns the entry serveFresh may answer r with, and the time
// it is fresh at; nil when there is none (or finding it panicked).
func (c *Cache) freshLocal(r *http.Request) (e *entry, now time.Time) {
	if c.decoded == nil || c.closed.Load() || r.Method != http.MethodGet && r.Method != http.MethodHead {
		return nil, now
	}
	if _, ok := r.Header["Cache-Control"]; ok || c.unkeyable(r) != "" {
		return nil, now
	}
	defer func() {
		if recover() != nil {
			e = nil // the chain runs the same code under Recover
		}
	}()
	var kbuf [256]byte
	material, ok := c.appendKeyMaterial(kbuf[:0], r)
	if !ok {
		return nil, now
	}
	key := c.primaries.key(material)
	if c.w.pendingEntry(key) != nil {
		return nil, now
	}
	now = c.now()
	v, ok := c.decoded.PeekDecoded(key, c.decoder, c.storeNow(now))
	if e, _ = v.(*entry); !ok || e == nil || e.Kind != kindResponse || e.Status >= 500 ||
		!now.Before(e.FreshUntil) {
		return nil, now
	}
	return e, now
}
