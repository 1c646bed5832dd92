// The lookup and serve path: a GET or HEAD finds its entry (following a
// Vary marker) and is answered from it while it is fresh.

package middleware

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/failsoft/failsoft/store"
)

// lookup is what the store holds for a request.
type lookup struct {
	material string // key material
	primary  string // hashed primary key
	key      string // the key the response lives under: primary, or the variant key
	marker   *entry // the Vary marker under primary, if any
	epoch    uint64 // primary's invalidation epoch before the handler ran
	e        *entry // the stored response, if any
	fwd      string // Cache-Status fwd reason if the request goes forward
	detail   string // Cache-Status detail of a failed lookup
}

// setMaterial sets the lookup's key material as a string, once.
func (lk *lookup) setMaterial(material []byte) {
	if lk.material == "" {
		lk.material = string(material)
	}
}

// serve is the cache's ServeHTTP.
func (c *Cache) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if c.closed.Load() {
		next.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		c.serveOther(w, r, next)
		return
	}
	var reqCC cacheControl
	if _, ok := r.Header["Cache-Control"]; ok {
		reqCC = parseCacheControl(r.Header)
	}
	if reqCC.NoStore {
		c.bypass(w, r, next, c.cs.noStore)
		return
	}
	if cs := c.unkeyable(r); cs != "" {
		c.bypass(w, r, next, cs)
		return
	}
	var kbuf [256]byte // the key material of most requests, built without allocating
	material, ok := c.appendKeyMaterial(kbuf[:0], r)
	if !ok {
		c.bypass(w, r, next, c.cs.noKey)
		return
	}
	now := c.now() // the request's time, read once: a store on the same clock takes it too
	lk := c.lookup(r, material, now)
	if e := lk.e; e != nil {
		strict := reqCC.NoCache || reqCC.HasMaxAge || reqCC.HasMinFresh
		fresh := now.Before(e.FreshUntil) && acceptable(reqCC, e, now)
		if !fresh {
			// Every path but a fresh hit reads the stored fields by name.
			e.fillHeader()
		}
		switch {
		case fresh:
			c.st.hits.Add(1)
			age, cs := c.cs.hitFields(e, now)
			if e.spare != nil {
				c.writeOwned(w, r, e, age, cs)
			} else {
				c.writeEntry(w, r, e, age, cs)
			}
			if c.log.debugOn(r.Context()) {
				c.log.DebugContext(r.Context(), "failsoft: cache hit", "path", r.URL.Path)
			}
			return
		case !now.Before(e.StaleUntil):
			// Past every window: no answer, at most a validator to
			// revalidate with.
			if hasValidator(e) {
				lk.fwd = "stale"
			} else {
				lk.e, lk.fwd = nil, "miss"
			}
		case now.Before(e.SWRUntil) && !strict:
			c.st.staleServed.Add(1)
			c.serveEntry(w, r, e, now, c.cs.hit(e, now, "stale-while-revalidate"))
			if c.log.debugOn(r.Context()) {
				c.log.DebugContext(r.Context(), "failsoft: stale served, refreshing", "path", r.URL.Path)
			}
			lk.setMaterial(material)
			c.startRefresh(r, next, &lk)
			return
		case now.Before(e.FreshUntil):
			lk.fwd = "request"
		default:
			lk.fwd = "stale"
		}
	}
	lk.setMaterial(material)
	if reqCC.OnlyIfCached {
		c.st.misses.Add(1)
		w.Header()["Cache-Status"] = []string{c.cs.onlyIfCached}
		w.WriteHeader(http.StatusGatewayTimeout)
		return
	}
	c.miss(w, r, next, &lk)
}

// unkeyable returns the Cache-Status of the bypass for a GET or HEAD the
// cache does not look up: one with a body, a method override, or a URL
// over the key limit; "" for one it does.
func (c *Cache) unkeyable(r *http.Request) string {
	switch {
	case hasRequestBody(r):
		return c.cs.body
	case overridesMethod(r):
		return c.cs.override
	case !c.o.customKey && defaultKeyOver(r, c.o.maxKey):
		return c.cs.noKey
	}
	return ""
}

// acceptable reports whether a fresh entry satisfies the request's own
// max-age and min-fresh. max-age=0 always asks for the handler, as clients
// mean it ("reload").
func acceptable(cc cacheControl, e *entry, now time.Time) bool {
	if cc.HasMaxAge && (cc.MaxAge == 0 || now.Sub(e.StoredAt) > cc.MaxAge) {
		return false
	}
	if cc.HasMinFresh && e.FreshUntil.Sub(now) < cc.MinFresh {
		return false
	}
	return !cc.NoCache
}

// bypass hands a request the cache does not handle straight to next.
func (c *Cache) bypass(w http.ResponseWriter, r *http.Request, next http.Handler, cs string) {
	c.st.bypasses.Add(1)
	w.Header()["Cache-Status"] = []string{cs}
	if c.log.debugOn(r.Context()) {
		c.log.DebugContext(r.Context(), "failsoft: cache bypassed", "path", r.URL.Path, "cache-status", cs)
	}
	next.ServeHTTP(w, r)
}

// lookup reads the entry for material, following a Vary marker. The
// lookup's material is set only when a Vary marker needed it: the caller
// sets it ([lookup.setMaterial]) where the request goes on past a hit.
func (c *Cache) lookup(r *http.Request, material []byte, now time.Time) lookup {
	lk := lookup{primary: c.primaries.key(material)}
	lk.key = lk.primary
	lk.e, lk.fwd, lk.detail = c.get(r.Context(), lk.primary, now)
	if lk.e != nil && lk.e.Kind == kindVary {
		lk.marker = lk.e
		lk.setMaterial(material)
		lk.key = variantKey(lk.material, lk.marker.Nonce, lk.marker.VaryHeaders, r)
		lk.e, lk.fwd, lk.detail = c.get(r.Context(), lk.key, now)
		if lk.fwd == "uri-miss" {
			lk.fwd = "vary-miss"
		}
		if lk.e != nil && lk.e.Kind != kindResponse {
			lk.e, lk.fwd = nil, "vary-miss"
		}
	}
	return lk
}

// get reads and decodes one entry. A miss, a failure and an entry that does
// not decode are all nil; the fwd and detail say which. The entry may be
// shared with other requests (pending writes, a store that keeps decoded
// entries): it is read-only.
//
// now is the cache's clock read just before, which a store reading the
// same clock may use instead of reading it again (see [Cache.read]).
func (c *Cache) get(ctx context.Context, key string, now time.Time) (e *entry, fwd, detail string) {
	if e = c.w.pendingEntry(key); e != nil {
		return e, "", ""
	}
	e, err := c.read(ctx, key, now)
	if errors.Is(err, errBadEntry) {
		c.log.warn(warnDecode, "failsoft: a stored cache entry does not decode; treated as a miss and overwritten",
			"err", err)
		return nil, "miss", "bad-entry"
	}
	if err != nil {
		switch store.Classify(err) {
		case store.ClassMiss:
			return nil, "uri-miss", ""
		case store.ClassCanceled:
			return nil, "miss", ""
		}
		c.st.storeErrors.Add(1)
		if c.log.debugOn(ctx) {
			c.log.DebugContext(ctx, "failsoft: cache lookup failed", "err", err)
		}
		return nil, "miss", "store-error"
	}
	return e, "", ""
}

// read reads the entry under key from the store and decodes it: an error
// wrapping errBadEntry when it does not decode. A store that keeps decoded
// entries ([decoded.Getter]) hands out a shared one, decoded once; it is
// given now, the cache's clock, when that is the system clock.
func (c *Cache) read(ctx context.Context, key string, now time.Time) (*entry, error) {
	if c.decoded == nil {
		b, err := c.store.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		return decodeOwned(b, c.o.maxBody)
	}
	v, err := c.decoded.GetDecoded(ctx, key, c.decoder, c.storeNow(now))
	if err != nil {
		return nil, err
	}
	e, ok := v.(*entry)
	if !ok {
		return nil, fmt.Errorf("%w: decoded as %T", errBadEntry, v)
	}
	return e, nil
}

// storeNow is now as the cache hands it to a [decoded.Getter]: the zero
// Time when the cache's clock is not the system clock (WithClock), so that
// the store reads its own.
func (c *Cache) storeNow(now time.Time) time.Time {
	if c.o.clockSet {
		return time.Time{}
	}
	return now
}

// serveEntry answers from a stored entry: its status, header fields and
// body as the handler wrote them, plus Cache-Status and Age (replacing the
// handler's: the time since e.StoredAt, which is the corrected initial age
// of RFC 9111 §4.2.3 plus the time stored, in seconds, at most 2^31); a 304 when the
// request's validators match; no body for HEAD.
//
// e is read-only and may be shared (see [Cache.get]), so the writer's
// header gets copies of its value slices, with Age and Cache-Status in one
// allocation (for one value per field): code after the cache may change
// them in place. The body
// goes to w.Write as it is stored, under io.Writer's contract that Write
// does not modify (or retain) it.
//
// Why copies: the values are the shared entry's, and an assigned slice of
// full capacity (len == cap) is safe against append (which copies) but not
// against a write by index (h[k][0] = v) in a writer wrapped around the
// cache, which would change the entry for every later request. One
// allocation per hit keeps the entry out of reach; the Age and
// Cache-Status strings themselves are shared (strings are immutable).
func (c *Cache) serveEntry(w http.ResponseWriter, r *http.Request, e *entry, now time.Time, cs string) {
	c.writeEntry(w, r, e, strconv.FormatInt(entryAge(e, now), 10), cs)
}

// writeEntry is [Cache.serveEntry] with the Age value given.
func (c *Cache) writeEntry(w http.ResponseWriter, r *http.Request, e *entry, age, cs string) {
	dst := w.Header()
	if e.Status == http.StatusOK && notModified(r.Header, e.Header) {
		vals := make([]string, 0, 2+len(notModifiedHeaders))
		for _, k := range notModifiedHeaders {
			if v, ok := e.Header[k]; ok {
				vals = appendField(dst, k, vals, v...)
			}
		}
		vals = appendField(dst, "Age", vals, age)
		appendField(dst, "Cache-Status", vals, cs)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if e.runs != nil {
		writeKept(dst, e, age, cs)
		writeStatusBody(w, r, e)
		return
	}
	// Room for one value per field: appendField grows vals for more.
	vals := make([]string, 0, len(e.Header)+2)
	for k, v := range e.Header {
		vals = appendField(dst, k, vals, v...)
	}
	vals = appendField(dst, "Age", vals, age)
	appendField(dst, "Cache-Status", vals, cs)
	writeStatusBody(w, r, e)
}

// writeKept sets the header fields of an entry decoded to be kept
// (entry.runs is set), with Age and Cache-Status, in dst: the values
// copied into one slice in one piece, the fields set from the entry's runs
// without walking its map.
func writeKept(dst http.Header, e *entry, age, cs string) {
	n := len(e.flat)
	vals := make([]string, n+2)
	copy(vals, e.flat)
	setRuns(dst, e.runs, vals)
	vals[n], vals[n+1] = age, cs
	dst["Age"] = vals[n : n+1 : n+1]
	dst["Cache-Status"] = vals[n+1 : n+2 : n+2]
}

// setRuns sets in dst each field of runs to its values in vals (laid out
// as an entry's flat), capacity clipped so that an append to one field
// copies instead of writing into the next.
func setRuns(dst http.Header, runs []headerRun, vals []string) {
	start := 0
	for _, f := range runs {
		dst[f.name] = vals[start:f.end:f.end]
		start = f.end
	}
}

// writeStatusBody sends e's status and, unless the request or the status
// rules it out, its body.
func writeStatusBody(w http.ResponseWriter, r *http.Request, e *entry) {
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead && len(e.Body) > 0 && bodyAllowed(e.Status) {
		_, _ = w.Write(e.Body)
	}
}

// writeOwned is writeEntry for a fresh hit on an entry decoded for this
// request alone (entry.spare is set; see [Cache.read]), which nothing uses
// after it is served: its value slices go to the writer as they are, from
// its runs (its Header is built only for a conditional request), and Age
// and Cache-Status take its spare slots, so that nothing is copied.
func (c *Cache) writeOwned(w http.ResponseWriter, r *http.Request, e *entry, age, cs string) {
	if e.Status == http.StatusOK && hasConditional(r.Header) {
		e.fillHeader()
		if notModified(r.Header, e.Header) {
			c.writeEntry(w, r, e, age, cs)
			return
		}
	}
	dst := w.Header()
	setRuns(dst, e.runs, e.flat)
	e.spare[0], e.spare[1] = age, cs
	dst["Age"] = e.spare[0:1:1]
	dst["Cache-Status"] = e.spare[1:2:2]
	writeStatusBody(w, r, e)
}

// appendField appends values to vals and sets them as h[k], capacity
// clipped so that an append to h[k] never writes into vals. It returns the
// extended vals.
func appendField(h http.Header, k string, vals []string, values ...string) []string {
	i := len(vals)
	vals = append(vals, values...)
	h[k] = vals[i:len(vals):len(vals)]
	return vals
}
