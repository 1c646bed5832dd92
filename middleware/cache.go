package middleware

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsoft/failsoft/store"
)

// Cache is HTTP response cache middleware over a [store.Store], normally a
// [store.Tiered] over a [store.Guard] over Redis. It stores what the
// handler answers by the rules of RFC 9111 and RFC 5861, answers from the
// store while entries are fresh, and keeps answering with stale entries when
// the handler fails (5xx, panic, timeout) or while Redis is unavailable.
// See the package documentation for the rules.
//
// A Cache is safe for concurrent use and is meant to be shared: pass
// c.Handler to alice (alice.New(c.Handler)) or wrap a handler with it.
// It owns background goroutines (store writes, refreshes); Close waits for
// them. The zero value is not usable: build one with [New].
//
// Over a store that keeps decoded values in process ([store.DecodedGetter]:
// [store.Tiered], [store.Memory]), a hit answered by the in-process tier
// neither copies nor decodes the stored entry: every such hit shares one
// read-only decoded entry, and the response writer gets copies of its
// header values and the stored body bytes (which [io.Writer]'s contract
// forbids Write to modify).
type Cache struct {
	store store.Store
	// decoded is store as a store.DecodedGetter (an in-process tier that
	// keeps decoded entries), nil when it is not one; decoder is what it
	// decodes with.
	decoded store.DecodedGetter
	decoder store.Decoder
	o       options
	pol     policy
	log     *slog.Logger

	flights coalescer
	bg      tasks
	writes  chan struct{} // semaphore of background writes

	refreshMu  sync.Mutex
	refreshSem chan struct{} // nil when refreshes are off
	refreshing map[string]struct{}
	cancels    map[uint64]context.CancelFunc
	nextID     uint64
	stopping   bool

	// pending holds the entries of background writes not yet done, so that
	// this process reads its own writes at once: the next request after a
	// miss is a hit, not a second handler call, even while the write to
	// Redis is on its way. It is bounded by WithMaxPendingWrites.
	pendMu   sync.Mutex
	pending  map[string]*entry
	npending atomic.Int64

	// epochs count the invalidations (unsafe methods, Purge) of primary
	// keys, in a fixed number of slots that keys share by hash, so that
	// memory does not grow with the keys. A response records its key's
	// epoch before the handler runs; its store write is skipped, or undone,
	// when the epoch moved in between: a write in flight never brings back
	// what an invalidation deleted. Keys that share a slot only cost each
	// other a skipped write.
	epochSeed maphash.Seed
	epochs    [epochSlots]atomic.Uint64

	closed atomic.Bool
	st     counters
	warned [numWarn]atomic.Int64 // unix nanos of the last log of each kind

	// Precomputed Cache-Status values.
	csMethod, csNoStore, csNoKey string
}

// counters are the atomic form of [Stats].
type counters struct {
	hits, misses, staleServed, revalidated, bypasses, stored, storeErrors,
	dropped, coalesced, refreshes, invalidated atomic.Uint64
}

// epochSlots is the number of invalidation epochs (see Cache.epochs).
const epochSlots = 1024

// warnKind names a rate-limited warning.
type warnKind int

const (
	warnDecode warnKind = iota
	warnWrite
	warnPanic
	numWarn
)

// warnEvery is the least time between two warnings of one kind.
const warnEvery = time.Minute

// New returns a Cache that stores responses in s. It returns an error when s
// is nil or an option is nil or invalid. The caller keeps ownership of s: Close
// does not close it.
func New(s store.Store, opts ...Option) (*Cache, error) {
	if s == nil {
		return nil, errors.New("middleware: New: nil store")
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	c := &Cache{
		store: s,
		o:     o,
		pol: policy{
			DefaultTTL:   o.defaultTTL,
			StaleIfError: o.staleIfError,
			Statuses:     o.statuses,
			Shared:       true,
			Now:          o.now,
		},
		log:        o.logger,
		writes:     make(chan struct{}, o.maxPendingWrites),
		refreshing: make(map[string]struct{}),
		pending:    make(map[string]*entry),
		cancels:    make(map[uint64]context.CancelFunc),
		epochSeed:  maphash.MakeSeed(),
		csMethod:   o.name + "; fwd=method",
		csNoStore:  o.name + "; fwd=bypass; detail=no-store",
		csNoKey:    o.name + "; fwd=bypass; detail=no-key",
	}
	if o.maxRefreshes > 0 {
		c.refreshSem = make(chan struct{}, o.maxRefreshes)
	}
	if dg, ok := s.(store.DecodedGetter); ok {
		c.decoded, c.decoder = dg, entryDecoder{maxBody: o.maxBody}
	}
	return c, nil
}

// Handler returns next wrapped by the cache; it has alice's constructor
// shape. It panics if next is nil.
func (c *Cache) Handler(next http.Handler) http.Handler {
	if next == nil {
		panic("middleware: Cache.Handler: nil handler")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.serve(w, r, next)
	})
}

// Stats returns a snapshot of the cache's counters.
func (c *Cache) Stats() Stats {
	return Stats{
		Hits:        c.st.hits.Load(),
		Misses:      c.st.misses.Load(),
		StaleServed: c.st.staleServed.Load(),
		Revalidated: c.st.revalidated.Load(),
		Bypasses:    c.st.bypasses.Load(),
		Stored:      c.st.stored.Load(),
		StoreErrors: c.st.storeErrors.Load(),
		Dropped:     c.st.dropped.Load(),
		Coalesced:   c.st.coalesced.Load(),
		Refreshes:   c.st.refreshes.Load(),
		Invalidated: c.st.invalidated.Load(),
	}
}

// Close stops the cache: later requests pass straight through to the
// handler, running background refreshes are cancelled, and Close waits for
// them and for pending store writes. It does not close the store. Close is
// idempotent and always returns nil.
func (c *Cache) Close() error {
	if !c.closed.Swap(true) {
		c.refreshMu.Lock()
		c.stopping = true
		for _, cancel := range c.cancels {
			cancel()
		}
		c.refreshMu.Unlock()
	}
	c.bg.close()
	return nil
}

// Purge removes the entry of one URL, and with it every variant of the URL,
// from every tier of the store: it deletes the entry (or the Vary marker,
// whose nonce every variant key contains) under the key that a GET of
// rawURL has. rawURL must be absolute ("https://example.com/a?b=1"); the
// https scheme purges what requests that came over TLS stored. A key
// function that reads request headers sees none. A purge reaches other
// replicas' in-process tiers when their coherence window ends.
func (c *Cache) Purge(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("middleware: purge %q: not an absolute http(s) URL", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return fmt.Errorf("middleware: purge %q: %w", rawURL, err)
	}
	if u.Scheme == "https" {
		req.TLS = &tls.ConnectionState{}
	}
	material := c.o.key(req)
	if material == "" || len(material) > c.o.maxKey {
		return fmt.Errorf("middleware: purge %q: the key function gives no key", rawURL)
	}
	key := hashKey(material)
	c.bumpEpoch(key)
	c.forget(key)
	if err := c.store.Delete(ctx, key); err != nil {
		c.st.storeErrors.Add(1)
		return fmt.Errorf("middleware: purge %q: %w", rawURL, err)
	}
	c.st.invalidated.Add(1)
	return nil
}

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
		c.bypass(w, r, next, c.csNoStore)
		return
	}
	if !c.o.customKey && defaultKeyOver(r, c.o.maxKey) {
		c.bypass(w, r, next, c.csNoKey)
		return
	}
	material := c.o.key(r)
	if material == "" || len(material) > c.o.maxKey {
		c.bypass(w, r, next, c.csNoKey)
		return
	}
	lk := c.lookup(r, material)
	now := c.now()
	if e := lk.e; e != nil {
		strict := reqCC.NoCache || reqCC.HasMaxAge || reqCC.HasMinFresh
		switch {
		case !now.Before(e.StaleUntil):
			// Past every window: no answer, at most a validator to
			// revalidate with.
			if hasValidator(e) {
				lk.fwd = "stale"
			} else {
				lk.e, lk.fwd = nil, "miss"
			}
		case now.Before(e.FreshUntil) && acceptable(reqCC, e, now):
			c.st.hits.Add(1)
			c.serveEntry(w, r, e, now, c.hitStatus(e, now, ""))
			if c.debugOn(r.Context()) {
				c.log.DebugContext(r.Context(), "failsoft: cache hit", "path", r.URL.Path)
			}
			return
		case now.Before(e.SWRUntil) && !strict:
			c.st.staleServed.Add(1)
			c.serveEntry(w, r, e, now, c.hitStatus(e, now, "stale-while-revalidate"))
			if c.debugOn(r.Context()) {
				c.log.DebugContext(r.Context(), "failsoft: stale served, refreshing", "path", r.URL.Path)
			}
			c.startRefresh(r, next, &lk)
			return
		case now.Before(e.FreshUntil):
			lk.fwd = "request"
		default:
			lk.fwd = "stale"
		}
	}
	if reqCC.OnlyIfCached {
		c.st.misses.Add(1)
		w.Header()["Cache-Status"] = []string{c.o.name + "; fwd=miss; detail=only-if-cached"}
		w.WriteHeader(http.StatusGatewayTimeout)
		return
	}
	c.miss(w, r, next, &lk)
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
	if c.debugOn(r.Context()) {
		c.log.DebugContext(r.Context(), "failsoft: cache bypassed", "path", r.URL.Path, "cache-status", cs)
	}
	next.ServeHTTP(w, r)
}

// serveOther passes a request of another method through; a successful
// unsafe one invalidates what is stored for its URL and for its Location
// and Content-Location on the same host (RFC 9111 §4.4).
func (c *Cache) serveOther(w http.ResponseWriter, r *http.Request, next http.Handler) {
	c.st.bypasses.Add(1)
	w.Header()["Cache-Status"] = []string{c.csMethod}
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default: // OPTIONS, TRACE, CONNECT and unknown safe methods
		next.ServeHTTP(w, r)
		return
	}
	cw := newPassthrough(w)
	next.ServeHTTP(cw, r)
	status := cw.finish(false).status
	if status == 0 {
		status = http.StatusOK
	}
	if status < 200 || status >= 400 {
		return
	}
	c.invalidate(r, w.Header())
}

// invalidate deletes the entries of r's URL and of the same-host URLs that
// the response's Location and Content-Location name. The deletes run before
// the response completes, so that the client's next read sees them.
func (c *Cache) invalidate(r *http.Request, h http.Header) {
	ctx := context.WithoutCancel(r.Context())
	targets := []*url.URL{r.URL}
	for _, name := range [...]string{"Location", "Content-Location"} {
		v := h.Get(name)
		if v == "" {
			continue
		}
		u, err := r.URL.Parse(v)
		if err != nil || (u.Host != "" && !strings.EqualFold(u.Host, r.Host)) {
			continue
		}
		targets = append(targets, &url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery})
	}
	done := make(map[string]bool, len(targets))
	for _, u := range targets {
		req := r.WithContext(ctx)
		req.Method, req.URL = http.MethodGet, u
		material := c.o.key(req)
		if material == "" || len(material) > c.o.maxKey {
			continue
		}
		key := hashKey(material)
		if done[key] {
			continue
		}
		done[key] = true
		c.bumpEpoch(key)
		c.forget(key)
		if err := c.store.Delete(ctx, key); err != nil {
			c.st.storeErrors.Add(1)
			if c.debugOn(r.Context()) {
				c.log.DebugContext(r.Context(), "failsoft: invalidation failed", "path", u.Path, "err", err)
			}
			continue
		}
		c.st.invalidated.Add(1)
	}
}

// lookup reads the entry for material, following a Vary marker.
func (c *Cache) lookup(r *http.Request, material string) lookup {
	lk := lookup{material: material, primary: hashKey(material)}
	lk.key = lk.primary
	lk.e, lk.fwd, lk.detail = c.get(r.Context(), lk.primary)
	if lk.e != nil && lk.e.Kind == kindVary {
		lk.marker = lk.e
		lk.key = variantKey(material, lk.marker.Nonce, lk.marker.VaryHeaders, r)
		lk.e, lk.fwd, lk.detail = c.get(r.Context(), lk.key)
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
func (c *Cache) get(ctx context.Context, key string) (e *entry, fwd, detail string) {
	if c.npending.Load() > 0 {
		c.pendMu.Lock()
		e = c.pending[key]
		c.pendMu.Unlock()
		if e != nil {
			return e, "", ""
		}
	}
	e, err := c.read(ctx, key)
	if errors.Is(err, errBadEntry) {
		c.warn(warnDecode, "failsoft: a stored cache entry does not decode; treated as a miss and overwritten",
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
		if c.debugOn(ctx) {
			c.log.DebugContext(ctx, "failsoft: cache lookup failed", "err", err)
		}
		return nil, "miss", "store-error"
	}
	return e, "", ""
}

// read reads the entry under key from the store and decodes it: an error
// wrapping errBadEntry when it does not decode. A store that keeps decoded
// entries ([store.DecodedGetter]) hands out a shared one, decoded once.
func (c *Cache) read(ctx context.Context, key string) (*entry, error) {
	if c.decoded == nil {
		b, err := c.store.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		return decodeEntry(b, c.o.maxBody)
	}
	v, err := c.decoded.GetDecoded(ctx, key, c.decoder)
	if err != nil {
		return nil, err
	}
	e, ok := v.(*entry)
	if !ok {
		return nil, fmt.Errorf("%w: decoded as %T", errBadEntry, v)
	}
	return e, nil
}

// miss answers a request without a usable fresh entry: one request per key
// calls the handler at a time, the others wait for it (bounded) and share
// its answer when that is storable.
//
// A follower that the leader's answer does not serve, although its own
// call might give a shareable one (the handler failed; the leader was a
// HEAD, or sent credentials or cookies that kept its answer private),
// joins the key's flight again: one such follower leads the next call and
// the others wait for it, instead of all calling the handler at once. All
// its waits together stay within the coalescing wait (and its context).
func (c *Cache) miss(w http.ResponseWriter, r *http.Request, next http.Handler, lk *lookup) {
	if c.o.coalesceWait <= 0 {
		c.forward(w, r, next, lk)
		return
	}
	var deadline time.Time // of the follower's waits, set at its first
	for {
		f, leader := c.flights.join(lk.key)
		if leader {
			c.lead(w, r, next, lk, f)
			return
		}
		d := c.o.coalesceWait
		if deadline.IsZero() {
			deadline = time.Now().Add(d)
		} else {
			d = time.Until(deadline)
		}
		var res *outcome
		ok := false
		if d > 0 {
			res, ok = c.flights.wait(r.Context(), f, d)
		} else {
			c.flights.leave(f)
		}
		if r.Context().Err() != nil {
			return // the client is gone
		}
		if !ok || res == nil {
			break
		}
		now := c.now()
		if res.e != nil && (res.varyKey == "" || variantKey(lk.material, res.nonce, res.names, r) == res.varyKey) {
			c.st.coalesced.Add(1)
			c.serveEntry(w, r, res.e, now, c.fwdStatus(lk, res.e.Status, false, true, ""))
			if c.debugOn(r.Context()) {
				c.log.DebugContext(r.Context(), "failsoft: coalesced", "path", r.URL.Path)
			}
			return
		}
		if res.failed && lk.e != nil && now.Before(lk.e.StaleUntil) {
			c.st.coalesced.Add(1)
			c.st.staleServed.Add(1)
			c.serveEntry(w, r, lk.e, now, c.staleStatus(lk, 0, lk.e, now, "stale-if-error", true))
			return
		}
		if !res.failed && !differsIn(r, res.own) {
			break // this request's answer would not be shareable either
		}
		if !time.Now().Before(deadline) {
			break
		}
	}
	c.forward(w, r, next, lk)
}

// lead calls the handler as the leader of flight f and hands its outcome to
// the followers; a panic hands them outcomeFailed.
func (c *Cache) lead(w http.ResponseWriter, r *http.Request, next http.Handler, lk *lookup, f *flight) {
	out := outcomeFailed
	defer func() { c.flights.done(lk.key, f, out) }()
	out = c.forward(w, r, next, lk)
}

// outcomeFailed is the outcome of a failed handler call (shared, read-only).
var outcomeFailed = &outcome{failed: true}

// ownReason returns the reason a response was not storable when the reason
// lies in the request alone (its method, credentials, cookies), so that
// another request of the key may get a storable answer; "" otherwise.
func ownReason(reason string) string {
	switch reason {
	case "method", "authorization", "cookie":
		return reason
	}
	return ""
}

// differsIn reports whether r lacks what kept a leader's answer from being
// shared (see ownReason): r's own answer may then be storable.
func differsIn(r *http.Request, own string) bool {
	switch own {
	case "method":
		return r.Method == http.MethodGet
	case "authorization":
		return !hasField(r.Header, "Authorization")
	case "cookie":
		return !hasField(r.Header, "Cookie")
	}
	return false
}

// forward calls the handler through a capture and answers with its
// response, a stale copy when it failed, or the refreshed entry when it
// confirmed one with 304. It returns what coalesced followers may share.
func (c *Cache) forward(w http.ResponseWriter, r *http.Request, next http.Handler, lkp *lookup) *outcome {
	lk := new(lookup) // a copy, so that the caller's stays on its stack
	*lk = *lkp
	lk.epoch = c.epoch(lk.primary)
	c.st.misses.Add(1)
	if c.debugOn(r.Context()) {
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
	cw := newCapture(w, c.o.maxBody)
	cw.onCommit = func(h http.Header) {
		h["Cache-Status"] = []string{c.fwdStatus(lk, cw.status, false, false, "streamed")}
	}
	res, pv, panicked, timedOut := c.run(cw, req, next, staleOK)
	now := c.now()
	failed := panicked || timedOut || (!res.streamed && isError(res.status))
	if failed && staleOK && !res.streamed {
		detail := "stale-if-error"
		switch {
		case panicked:
			detail = "stale-if-panic"
		case timedOut:
			detail = "stale-if-timeout"
		}
		if _, seen := store.FailureSeen(req.Context()); seen {
			detail += "-redis"
		}
		status := res.status
		if panicked || timedOut {
			status = 0
		}
		c.st.staleServed.Add(1)
		c.serveEntry(w, r, lk.e, now, c.staleStatus(lk, status, lk.e, now, detail, false))
		if c.debugOn(r.Context()) {
			c.log.DebugContext(r.Context(), "failsoft: stale served for a failed handler", "path", r.URL.Path, "detail", detail)
		}
		return outcomeFailed
	}
	if panicked {
		panic(pv) // no stale copy: the recovery middleware above answers
	}
	if res.streamed {
		return nil
	}
	if revalidate && res.status == http.StatusNotModified {
		e, names, ok := c.revalidated(req, lk.e, res.header, now)
		c.st.revalidated.Add(1)
		if !ok {
			c.serveEntry(w, r, e, now, c.fwdStatus(lk, http.StatusNotModified, false, false, ""))
			return nil
		}
		key, marker, out := c.keys(r, lk, e, names)
		c.serveEntry(w, r, e, now, c.fwdStatus(lk, http.StatusNotModified, true, false, ""))
		c.writeAsync(r.Context(), key, e, lk.primary, marker, lk.epoch)
		return out
	}
	c.complete(res.header, r, res, now)
	var e *entry
	var names []string
	var reason string
	if !failed {
		e, names, reason = c.newEntry(r, res.status, res.header, res.body, now)
	}
	dst := w.Header()
	for k, v := range res.header {
		dst[k] = v
	}
	dst["Cache-Status"] = []string{c.fwdStatus(lk, res.status, e != nil, false, "")}
	w.WriteHeader(res.status)
	if len(res.body) > 0 {
		_, _ = w.Write(res.body)
	}
	if failed {
		return outcomeFailed
	}
	if e == nil {
		if own := ownReason(reason); own != "" {
			return &outcome{own: own}
		}
		return nil
	}
	key, marker, out := c.keys(r, lk, e, names)
	c.writeAsync(r.Context(), key, e, lk.primary, marker, lk.epoch)
	return out
}

// run calls the handler, on this goroutine, or on its own one under a
// deadline when WithHandlerTimeout is set and a stale copy could answer.
// A panic is recovered only when a stale copy could answer
// (http.ErrAbortHandler is always re-panicked).
func (c *Cache) run(cw *capture, req *http.Request, next http.Handler, staleOK bool) (res captured, pv any, panicked, timedOut bool) {
	if c.o.handlerTimeout > 0 && staleOK && c.bg.start() {
		return c.runTimed(cw, req, next)
	}
	if staleOK {
		pv, panicked = runRecovered(cw, req, next)
		if panicked && pv == http.ErrAbortHandler {
			panic(pv)
		}
	} else {
		next.ServeHTTP(cw, req)
	}
	return cw.finish(false), pv, panicked, false
}

// runTimed runs the handler on a goroutine of its own (registered with c.bg
// by the caller), as http.TimeoutHandler does: when the deadline passes
// first and nothing was sent yet, the capture is abandoned (the handler's
// later writes go nowhere) and its context cancelled.
func (c *Cache) runTimed(cw *capture, req *http.Request, next http.Handler) (res captured, pv any, panicked, timedOut bool) {
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	req = req.WithContext(ctx)
	type result struct {
		pv       any
		panicked bool
	}
	ch := make(chan result, 1)
	go func() {
		defer c.bg.done()
		pv, panicked := runRecovered(cw, req, next)
		ch <- result{pv, panicked}
	}()
	t := time.NewTimer(c.o.handlerTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.panicked && r.pv == http.ErrAbortHandler {
			panic(r.pv)
		}
		return cw.finish(false), r.pv, r.panicked, false
	case <-t.C:
	}
	res = cw.finish(true)
	if !res.streamed {
		return res, nil, false, true
	}
	// The response already streams: it cannot be replaced; wait for it.
	r := <-ch
	if r.panicked {
		panic(r.pv)
	}
	return res, nil, false, false
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

// newEntry builds the entry to store for a response, or returns nil and the
// reason it may not be stored.
func (c *Cache) newEntry(r *http.Request, status int, h http.Header, body []byte, now time.Time) (e *entry, names []string, reason string) {
	cc := parseCacheControl(h)
	ok, reason := storable(r, status, h, cc, c.pol)
	if !ok {
		return nil, nil, reason
	}
	if !lengthMatches(status, h, body) {
		return nil, nil, "content-length"
	}
	names, star := parseVary(h)
	if star {
		return nil, nil, "vary-star"
	}
	fresh, swr, sie := lifetimes(h, cc, now, c.pol)
	e = &entry{Kind: kindResponse, Status: status, Header: storedHeader(h, cc), Body: body}
	e.setLifetimes(now, fresh, swr, sie)
	if c.ttl(e, now) <= 0 {
		return nil, nil, "lifetime"
	}
	return e, names, ""
}

// revalidated merges a 304's header fields into old (RFC 9111 §3.2, §4.3.4)
// and recomputes its lifetimes. ok is false when the merged response may no
// longer be stored; e then still holds it, to answer this request alone.
func (c *Cache) revalidated(r *http.Request, old *entry, h304 http.Header, now time.Time) (e *entry, names []string, ok bool) {
	h := old.Header.Clone()
	for k, v := range h304 {
		if k == "Content-Length" || hopByHop(k) {
			continue
		}
		h[k] = v
	}
	if _, ok := h304["Date"]; !ok {
		h["Date"] = []string{now.UTC().Format(http.TimeFormat)}
	}
	e, names, _ = c.newEntry(r, old.Status, h, old.Body, now)
	if e == nil {
		return &entry{Kind: kindResponse, Status: old.Status, Header: h, Body: old.Body,
			StoredAt: now, FreshUntil: now, SWRUntil: now, StaleUntil: now}, nil, false
	}
	return e, names, true
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
	until := e.StoredAt.Add(c.ttl(e, e.StoredAt)) // the marker lives as long as the entry
	marker = &entry{Kind: kindVary, VaryHeaders: names, Nonce: nonce,
		StoredAt: e.StoredAt, FreshUntil: until, SWRUntil: until, StaleUntil: until}
	key = variantKey(lk.material, nonce, names, r)
	out.varyKey, out.nonce, out.names = key, nonce, names
	return key, marker, out
}

// storedHeader returns h without the fields a cache must not store: the
// fields named by a qualified private or no-cache, and hop-by-hop fields.
// It returns h itself when there is nothing to remove.
func storedHeader(h http.Header, cc cacheControl) http.Header {
	drop := len(cc.PrivateFields) > 0 || len(cc.NoCacheFields) > 0
	for _, k := range hopByHopFields {
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
	for _, v := range h["Connection"] {
		for _, k := range strings.Split(v, ",") {
			delete(out, http.CanonicalHeaderKey(strings.TrimSpace(k)))
		}
	}
	for _, k := range hopByHopFields {
		delete(out, k)
	}
	return out
}

// hopByHopFields are the connection-specific fields (RFC 9110 §7.6.1) that
// a cache does not store.
var hopByHopFields = [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Transfer-Encoding", "Upgrade"}

func hopByHop(k string) bool { return slices.Contains(hopByHopFields[:], k) }

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

// notModifiedHeaders are the stored fields a 304 repeats (RFC 9110
// §15.4.5).
var notModifiedHeaders = [...]string{"Cache-Control", "Content-Location", "Date", "Etag", "Expires", "Last-Modified", "Vary"}

// serveEntry answers from a stored entry: its status, header fields and
// body as the handler wrote them, plus Age and Cache-Status; a 304 when the
// request's validators match; no body for HEAD.
//
// e is read-only and may be shared (see [Cache.get]), so the writer's
// header gets copies of its value slices, with Age and Cache-Status in one
// allocation (for one value per field): code after the cache may change
// them in place. The body
// goes to w.Write as it is stored, under io.Writer's contract that Write
// does not modify (or retain) it.
func (c *Cache) serveEntry(w http.ResponseWriter, r *http.Request, e *entry, now time.Time, cs string) {
	dst := w.Header()
	age := strconv.FormatInt(int64(max(now.Sub(e.StoredAt)/time.Second, 0)), 10)
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
	// Room for one value per field: appendField grows vals for more.
	vals := make([]string, 0, len(e.Header)+2)
	for k, v := range e.Header {
		vals = appendField(dst, k, vals, v...)
	}
	vals = appendField(dst, "Age", vals, age)
	appendField(dst, "Cache-Status", vals, cs)
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead && len(e.Body) > 0 && bodyAllowed(e.Status) {
		_, _ = w.Write(e.Body)
	}
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

// notModified evaluates the request's If-None-Match (weak comparison), or
// without it If-Modified-Since, against a stored response (RFC 9110 §13.2.2).
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

// hitStatus is the Cache-Status of an answer from the store without a call
// to the handler: "hit", the remaining freshness (negative when stale) and
// a detail for a stale one.
func (c *Cache) hitStatus(e *entry, now time.Time, detail string) string {
	b := make([]byte, 0, 80)
	b = append(b, c.o.name...)
	b = append(b, "; hit; ttl="...)
	b = strconv.AppendInt(b, ttlSeconds(e, now), 10)
	if detail != "" {
		b = append(b, "; detail="...)
		b = append(b, detail...)
	}
	return string(b)
}

// fwdStatus is the Cache-Status of an answer that went to the handler (or
// waited for another request's call: collapsed).
func (c *Cache) fwdStatus(lk *lookup, status int, stored, collapsed bool, detail string) string {
	b := make([]byte, 0, 96)
	b = append(b, c.o.name...)
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

// staleStatus is the Cache-Status of a stale copy that answers for a failed
// handler: the forward, its status (0 when it had none: panic, timeout),
// the entry's ttl (negative) and why.
func (c *Cache) staleStatus(lk *lookup, status int, e *entry, now time.Time, detail string, collapsed bool) string {
	b := make([]byte, 0, 96)
	b = append(b, c.o.name...)
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

// now returns the cache's clock.
func (c *Cache) now() time.Time { return c.o.now() }

// debugOn reports whether per-request events are logged; callers check it
// before building log arguments, so that a quiet logger costs nothing.
func (c *Cache) debugOn(ctx context.Context) bool {
	return c.log.Enabled(ctx, slog.LevelDebug)
}

// isError reports whether a handler's status is a failure that a stale copy
// may answer for: a 5xx other than 501 (Not Implemented is an answer, and
// a heuristically cacheable one; RFC 5861 names 500, 502, 503 and 504).
func isError(status int) bool {
	return status >= 500 && status <= 599 && status != http.StatusNotImplemented
}

// warn logs at Warn level at most once per warnEvery for each kind, so
// trouble that repeats on every request is logged once, not per request.
func (c *Cache) warn(kind warnKind, msg string, args ...any) {
	now := c.now().UnixNano()
	last := c.warned[kind].Load()
	if last != 0 && now-last < int64(warnEvery) && now >= last {
		return
	}
	if !c.warned[kind].CompareAndSwap(last, now) {
		return
	}
	c.log.Warn(msg, args...)
}
