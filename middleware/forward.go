// The forward path: a request without a usable fresh entry calls the
// handler through a capture, and its answer becomes the entry to store.

package middleware

import (
	"context"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/failsoft/failsoft/store"
)

// forward calls the handler through a capture and answers with its
// response, a stale copy when it failed, or the refreshed entry when it
// confirmed one with 304. It returns what coalesced followers may share.
func (c *Cache) forward(w http.ResponseWriter, r *http.Request, next http.Handler, lkp *lookup) *outcome {
	next, shed, ok := c.admit(w, r, next, lkp)
	if !ok {
		return shed
	}
	lk := new(lookup) // a copy, so that the caller's stays on its stack
	*lk = *lkp
	lk.epoch = c.w.epoch(lk.primary)
	c.st.misses.Add(1)
	if c.log.debugOn(r.Context()) {
		c.log.DebugContext(r.Context(), "failsoft: cache miss", "path", r.URL.Path, "fwd", lk.fwd)
	}
	req := r.WithContext(store.TrackFailures(r.Context()))
	revalidate := false
	if lk.e != nil && !hasConditional(r.Header) {
		req.Header = r.Header.Clone()
		revalidate = addValidators(req.Header, lk.e)
		if !revalidate {
			req.Header = r.Header
		}
	}
	start := c.now()
	staleOK := lk.e != nil && start.Before(lk.e.StaleUntil)
	call := func() handlerRun {
		cw := newCapture(w, c.o.maxBody)
		cw.onCommit = func(h http.Header) {
			h["Cache-Status"] = []string{c.cs.fwd(lk, cw.status, false, false, "streamed")}
		}
		return c.run(cw, req, next, staleOK)
	}
	hr := call()
	if revalidate && !hr.panicked && !hr.timedOut && !hr.res.streamed && hr.res.status == http.StatusNotModified &&
		!confirms(lk.e.Header, hr.res.header) {
		// The 304 names another representation than the one the cache
		// asked about: it may not update the stored entry (RFC 9111
		// §4.3.4), so ask again, unconditionally, as the client did.
		req = req.WithContext(req.Context()) // a new request: the handler may still hold the first
		req.Header, revalidate = r.Header, false
		start = c.now()
		hr = call()
	}
	res := hr.res
	now := c.now()
	failed := hr.panicked || hr.timedOut || (!res.streamed && isError(res.status))
	if failed && staleOK && !res.streamed {
		detail := "stale-if-error"
		switch {
		case hr.panicked:
			detail = "stale-if-panic"
		case hr.timedOut:
			detail = "stale-if-timeout"
		}
		if _, seen := store.FailureSeen(req.Context()); seen {
			detail += "-redis"
		}
		status := res.status
		if hr.panicked || hr.timedOut {
			status = 0
		}
		c.st.staleServed.Add(1)
		c.serveEntry(w, r, lk.e, now, c.cs.stale(lk, status, lk.e, now, detail, false))
		if c.log.debugOn(r.Context()) {
			c.log.DebugContext(r.Context(), "failsoft: stale served for a failed handler", "path", r.URL.Path, "detail", detail)
		}
		return outcomeFailed
	}
	if hr.panicked {
		panic(hr.pv) // no stale copy: the recovery middleware above answers
	}
	if res.streamed {
		return nil
	}
	if revalidate && res.status == http.StatusNotModified {
		e, names, ok := c.revalidated(getView(req), lk.e, res.header, start, now)
		c.st.revalidated.Add(1)
		if !ok {
			c.serveEntry(w, r, e, now, c.cs.fwd(lk, http.StatusNotModified, false, false, ""))
			return nil
		}
		key, marker, out := c.keys(r, lk, e, names)
		c.serveEntry(w, r, e, now, c.cs.fwd(lk, http.StatusNotModified, true, false, ""))
		c.w.writeAsync(r.Context(), key, e, lk.primary, marker, lk.epoch)
		return out
	}
	c.complete(res.header, r, res, now)
	var e *entry
	var names []string
	var reason string
	// A 5xx is stored only under WithServerErrors, and never in place of
	// a stored response that is not one: only over a clean miss of the URL
	// (not a failed lookup, which may hide a good copy, nor a Vary marker,
	// which a 5xx without Vary would overwrite, orphaning every variant) or
	// over a stored 5xx.
	errorStorable := c.pol.ServerErrors && !hr.panicked && !hr.timedOut && lk.marker == nil &&
		(lk.e == nil && lk.fwd == "uri-miss" || lk.e != nil && isError(lk.e.Status))
	if !failed || errorStorable {
		e, names, reason = c.newEntry(r, res.status, res.header, res.body, start, now)
	}
	dst := w.Header()
	for k, v := range res.header {
		dst[k] = v
	}
	dst["Cache-Status"] = []string{c.cs.fwd(lk, res.status, e != nil, false, "")}
	w.WriteHeader(res.status)
	if len(res.body) > 0 {
		_, _ = w.Write(res.body)
	}
	if failed && e == nil {
		return outcomeFailed
	}
	if e == nil && r.Method == http.MethodHead && res.status == http.StatusOK && lk.e != nil && lk.e.Kind == kindResponse {
		c.headUpdate(r, lk, res.header, start, now)
	}
	if e == nil {
		if own := ownReason(reason); own != "" {
			return &outcome{own: own}
		}
		return nil
	}
	key, marker, out := c.keys(r, lk, e, names)
	out.failed = failed // a stored 5xx answers followers, but is a failure
	c.w.writeAsync(r.Context(), key, e, lk.primary, marker, lk.epoch)
	return out
}

// handlerRun is how one handler call through a capture ended.
type handlerRun struct {
	res      captured // what the capture holds
	pv       any      // the panic value, when panicked
	panicked bool     // the handler panicked, and the panic was recovered
	timedOut bool     // WithHandlerTimeout passed first: the capture was abandoned
}

// run calls the handler, on this goroutine, or on its own one under a
// deadline when WithHandlerTimeout is set and a stale copy could answer.
// A panic is recovered only when a stale copy could answer
// (a value that is or wraps http.ErrAbortHandler is always re-panicked, see
// [isAbort]).
func (c *Cache) run(cw *capture, req *http.Request, next http.Handler, staleOK bool) handlerRun {
	if c.o.handlerTimeout > 0 && staleOK && c.bg.start() {
		return c.runTimed(cw, req, next)
	}
	var hr handlerRun
	if staleOK {
		hr.pv, hr.panicked = runRecovered(cw, req, next)
		if hr.panicked && isAbort(hr.pv) {
			panic(hr.pv)
		}
	} else {
		next.ServeHTTP(cw, req)
	}
	hr.res = cw.finish(false)
	return hr
}

// runTimed runs the handler on a goroutine of its own (registered with c.bg
// by the caller), as http.TimeoutHandler does: when the deadline passes
// first and nothing was sent yet, the capture is abandoned (the handler's
// later writes go nowhere) and its context cancelled.
func (c *Cache) runTimed(cw *capture, req *http.Request, next http.Handler) handlerRun {
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	req = req.WithContext(ctx)
	ch := make(chan handlerRun, 1)
	go func() {
		defer c.bg.done()
		var hr handlerRun
		hr.pv, hr.panicked = runRecovered(cw, req, next)
		ch <- hr
	}()
	t := time.NewTimer(c.o.handlerTimeout)
	defer t.Stop()
	select {
	case hr := <-ch:
		if hr.panicked && isAbort(hr.pv) {
			panic(hr.pv)
		}
		hr.res = cw.finish(false)
		return hr
	case <-t.C:
	}
	res := cw.finish(true)
	if !res.streamed {
		return handlerRun{res: res, timedOut: true}
	}
	// The response already streams: it cannot be replaced; wait for it.
	if hr := <-ch; hr.panicked {
		panic(hr.pv)
	}
	return handlerRun{res: res}
}

// runRecovered calls next, recovering a panic, which it returns.
func runRecovered(w http.ResponseWriter, r *http.Request, next http.Handler) (pv any, panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			pv, panicked = v, true
		}
	}()
	next.ServeHTTP(w, r)
	return nil, false
}

// complete adds to a buffered response the fields net/http would add when
// sending it, so that the stored copy says the same as the live one: Date
// and, for a GET, Content-Length and a sniffed Content-Type.
func (c *Cache) complete(h http.Header, r *http.Request, res captured, now time.Time) {
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{now.UTC().Format(http.TimeFormat)}
	}
	if r.Method != http.MethodGet || !bodyAllowed(res.status) {
		return
	}
	if _, ok := h["Transfer-Encoding"]; ok {
		return
	}
	if _, ok := h["Content-Length"]; !ok {
		h["Content-Length"] = []string{strconv.Itoa(len(res.body))}
	}
	if _, ok := h["Content-Type"]; !ok && len(res.body) > 0 {
		h["Content-Type"] = []string{http.DetectContentType(res.body)}
	}
}

// newEntry builds the entry to store for a response to a request sent to
// the handler at sent and answered at now, or returns nil and the reason it
// may not be stored.
func (c *Cache) newEntry(r *http.Request, status int, h http.Header, body []byte, sent, now time.Time) (e *entry, names []string, reason string) {
	cc, hp, pol := c.responsePolicy(status, h, now)
	ok, reason := storable(r, status, hp, cc, pol)
	if !ok {
		return nil, nil, reason
	}
	if !lengthMatches(status, h, body) {
		return nil, nil, "content-length"
	}
	names, _ = parseVary(h) // storable refused Vary: *
	fresh, swr, sie, age := lifetimes(hp, cc, sent, now, pol)
	e = &entry{Kind: kindResponse, Status: status, Header: storedHeader(h, cc), Body: body}
	e.setLifetimes(now, age, fresh, swr, sie)
	if c.w.ttl(e, now) <= 0 {
		return nil, nil, "lifetime"
	}
	return e, names, ""
}

// responsePolicy returns what the storage and freshness rules read for a
// response: its directives ([responseCacheControl]), the header they see
// (without Expires when a targeted field is used, RFC 9213 §2.1), and the
// cache's policy with the heuristic lifetime of [WithHeuristicFreshness], if
// one applies, as the default TTL.
func (c *Cache) responsePolicy(status int, h http.Header, now time.Time) (cc cacheControl, hp http.Header, pol policy) {
	cc, targeted := responseCacheControl(h, c.o.targeted)
	hp, pol = h, c.pol
	if targeted {
		hp = withoutField(h, "Expires")
	}
	if d, ok := c.o.heuristic.lifetime(status, hp, now); ok {
		pol.DefaultTTL = d
	}
	return cc, hp, pol
}

// keys returns the store key of e (the variant key when it varies), the Vary
// marker to write under the primary key, and what followers may share. A
// marker keeps its nonce while the response varies on the same headers.
func (c *Cache) keys(r *http.Request, lk *lookup, e *entry, names []string) (key string, marker *entry, out *outcome) {
	out = &outcome{e: e}
	if len(names) == 0 {
		return lk.primary, nil, out
	}
	var nonce uint64
	if lk.marker != nil && slices.Equal(lk.marker.VaryHeaders, names) {
		nonce = lk.marker.Nonce
	} else {
		nonce = rand.Uint64()
	}
	until := e.StoredAt.Add(c.w.ttl(e, e.StoredAt)) // the marker lives as long as the entry
	marker = &entry{Kind: kindVary, VaryHeaders: names, Nonce: nonce,
		StoredAt: e.StoredAt, FreshUntil: until, SWRUntil: until, StaleUntil: until}
	key = variantKey(lk.material, nonce, names, r)
	out.varyKey, out.nonce, out.names = key, nonce, names
	return key, marker, out
}

// storedHeader returns h without the fields a cache must not store (RFC
// 9111 §3.1): the fields named by a qualified private or no-cache, the
// connection-specific fields and those its Connection names, and the
// proxy-specific ones. It returns h itself when there is nothing to remove.
func storedHeader(h http.Header, cc cacheControl) http.Header {
	drop := len(cc.PrivateFields) > 0 || len(cc.NoCacheFields) > 0
	for _, k := range unstoredFields {
		if _, ok := h[k]; ok {
			drop = true
		}
	}
	if !drop {
		return h
	}
	out := h.Clone()
	for _, k := range cc.PrivateFields {
		delete(out, http.CanonicalHeaderKey(k))
	}
	for _, k := range cc.NoCacheFields {
		delete(out, http.CanonicalHeaderKey(k))
	}
	for _, k := range connectionListed(h) {
		delete(out, k)
	}
	for _, k := range unstoredFields {
		delete(out, k)
	}
	return out
}

// connectionListed returns the canonical names the Connection fields of h
// list (RFC 9110 §7.6.1).
func connectionListed(h http.Header) []string {
	var names []string
	for _, v := range h["Connection"] {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				names = append(names, http.CanonicalHeaderKey(k))
			}
		}
	}
	return names
}

// unstoredFields are the fields a cache never stores (RFC 9111 §3.1): the
// connection-specific ones (RFC 9110 §7.6.1), and those specific to the
// proxy a cache forwards through, Proxy-Authenticate,
// Proxy-Authentication-Info and Proxy-Authorization (a cache that does not
// key on the proxy's identity must not store them).
var unstoredFields = [...]string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Transfer-Encoding", "Upgrade",
	"Proxy-Authenticate", "Proxy-Authentication-Info", "Proxy-Authorization",
}

func unstored(k string) bool { return slices.Contains(unstoredFields[:], k) }

// isError reports whether a handler's status is a failure that a stale copy
// may answer for: a 5xx other than 501 (Not Implemented is an answer, and
// a heuristically cacheable one; RFC 5861 names 500, 502, 503 and 504).
func isError(status int) bool {
	return status >= 500 && status <= 599 && status != http.StatusNotImplemented
}
