package middleware

import (
	"context"
	"hash/maphash"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsoft/failsoft/store"
)

// tasks tracks a Cache's background goroutines so that Close can wait for
// them. Unlike a sync.WaitGroup, start may race with close: after close it
// refuses new tasks.
type tasks struct {
	mu     sync.Mutex
	cond   sync.Cond
	n      int
	closed bool
}

// start registers a task; it returns false once close was called.
func (t *tasks) start() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.n++
	return true
}

// done ends a task that start registered.
func (t *tasks) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 && t.cond.L != nil {
		t.cond.Broadcast()
	}
}

// wait blocks until no task runs.
func (t *tasks) wait() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cond.L == nil {
		t.cond.L = &t.mu
	}
	for t.n > 0 {
		t.cond.Wait()
	}
}

// close refuses new tasks and waits for the running ones.
func (t *tasks) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.wait()
}

// startRefresh starts one background refresh of lk's entry
// (stale-while-revalidate), unless one already runs for the key, every
// refresh slot is busy, or the cache is closing.
func (c *Cache) startRefresh(r *http.Request, next http.Handler, lkp *lookup) {
	if c.refreshSem == nil {
		return
	}
	c.refreshMu.Lock()
	if c.stopping {
		c.refreshMu.Unlock()
		return
	}
	if _, busy := c.refreshing[lkp.key]; busy {
		c.refreshMu.Unlock()
		return
	}
	select {
	case c.refreshSem <- struct{}{}:
	default:
		c.refreshMu.Unlock()
		return
	}
	if !c.bg.start() {
		<-c.refreshSem
		c.refreshMu.Unlock()
		return
	}
	lk := new(lookup) // the refresh's own copy
	*lk = *lkp
	lk.epoch = c.epoch(lk.primary)
	c.refreshing[lk.key] = struct{}{}
	// The refresh outlives the request: keep its values, not its
	// cancellation, and bound it by its own timeout and by Close.
	ctx, cancel := context.WithTimeout(store.TrackFailures(context.WithoutCancel(r.Context())), c.o.refreshTimeout)
	id := c.nextID
	c.nextID++
	c.cancels[id] = cancel
	c.refreshMu.Unlock()
	c.st.refreshes.Add(1)

	req := r.Clone(ctx)
	req.Method = http.MethodGet // a HEAD's refresh fetches the GET it is answered from
	req.Body = http.NoBody
	for _, k := range conditionalHeaders {
		delete(req.Header, k)
	}
	delete(req.Header, "Cache-Control")
	delete(req.Header, "Pragma")
	revalidate := addValidators(req.Header, lk.e)
	go c.refresh(req, next, lk, id, revalidate)
}

// refresh runs the handler for req into a recorder and stores what it
// answered; a failure (5xx, panic, streamed answer) keeps the stale entry.
func (c *Cache) refresh(req *http.Request, next http.Handler, lk *lookup, id uint64, revalidate bool) {
	defer func() {
		c.refreshMu.Lock()
		if cancel, ok := c.cancels[id]; ok {
			cancel()
			delete(c.cancels, id)
		}
		delete(c.refreshing, lk.key)
		<-c.refreshSem
		c.refreshMu.Unlock()
		c.bg.done()
	}()
	cw := newCapture(&discard{}, c.o.maxBody)
	if pv, panicked := runRecovered(cw, req, next); panicked {
		if pv != http.ErrAbortHandler {
			c.warn(warnPanic, "failsoft: handler panicked in a background refresh; the stale entry stays",
				"path", req.URL.Path, "panic", pv)
		}
		return
	}
	res := cw.finish(false)
	now := c.now()
	ctx := context.WithoutCancel(req.Context())
	switch {
	case res.streamed || isError(res.status):
		if c.debugOn(req.Context()) {
			c.log.DebugContext(req.Context(), "failsoft: background refresh failed; the stale entry stays",
				"path", req.URL.Path, "status", res.status)
		}
		return
	case revalidate && res.status == http.StatusNotModified:
		e, names, ok := c.revalidated(req, lk.e, res.header, now)
		c.st.revalidated.Add(1)
		if ok {
			key, marker, _ := c.keys(req, lk, e, names)
			c.save(ctx, key, e, lk.primary, marker, lk.epoch)
		}
		return
	}
	c.complete(res.header, req, res, now)
	if e, names, _ := c.newEntry(req, res.status, res.header, res.body, now); e != nil {
		key, marker, _ := c.keys(req, lk, e, names)
		c.save(ctx, key, e, lk.primary, marker, lk.epoch)
	}
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

// writeAsync stores e under key (and marker under primary) in the
// background, bounded by WithMaxPendingWrites; a write beyond the bound is
// dropped and counted. epoch is primary's invalidation epoch before the
// handler ran: when it moved since, e is neither stored nor read back.
func (c *Cache) writeAsync(ctx context.Context, key string, e *entry, primary string, marker *entry, epoch uint64) {
	select {
	case c.writes <- struct{}{}:
	default:
		c.st.dropped.Add(1)
		return
	}
	if !c.bg.start() {
		<-c.writes
		c.st.dropped.Add(1)
		return
	}
	ctx = context.WithoutCancel(ctx)
	c.pendMu.Lock()
	// Checked under pendMu, which forget takes after the epoch moves: an
	// invalidation either sees e pending and drops it, or is seen here.
	if c.epoch(primary) != epoch {
		c.pendMu.Unlock()
		<-c.writes
		c.bg.done()
		return
	}
	c.pending[key] = e
	if marker != nil {
		c.pending[primary] = marker
	}
	c.npending.Store(int64(len(c.pending)))
	c.pendMu.Unlock()
	go func() {
		defer func() {
			c.pendMu.Lock()
			if c.pending[key] == e {
				delete(c.pending, key)
			}
			if marker != nil && c.pending[primary] == marker {
				delete(c.pending, primary)
			}
			c.npending.Store(int64(len(c.pending)))
			c.pendMu.Unlock()
			<-c.writes
			c.bg.done()
		}()
		c.save(ctx, key, e, primary, marker, epoch)
	}()
}

// forget drops a pending write's entry from the read-your-writes view.
// Invalidations call it after bumpEpoch; it always takes pendMu (no fast
// path on npending), so that a writeAsync that checked the old epoch has
// published its entry, which is then dropped here.
func (c *Cache) forget(key string) {
	c.pendMu.Lock()
	delete(c.pending, key)
	c.npending.Store(int64(len(c.pending)))
	c.pendMu.Unlock()
}

// save writes e (and its Vary marker, if any) with a TTL that ends with the
// entry's stale-if-error window, unless primary was invalidated since epoch
// was read. An invalidation that lands while the write is on its way (its
// Delete may run before the Set) is seen after the Set, which is then
// undone: the epoch moves before the invalidation's Delete, so a check
// after the Set that still sees the old epoch comes before that Delete.
func (c *Cache) save(ctx context.Context, key string, e *entry, primary string, marker *entry, epoch uint64) {
	ttl := c.ttl(e, c.now())
	if ttl <= 0 || c.epoch(primary) != epoch {
		return
	}
	if !c.set(ctx, key, e, ttl) {
		return
	}
	markerSet := marker != nil && c.set(ctx, primary, marker, ttl)
	if c.epoch(primary) != epoch {
		c.undo(ctx, key)
		if markerSet {
			c.undo(ctx, primary)
		}
		return
	}
	c.st.stored.Add(1)
}

// undo deletes what save stored after an invalidation moved the key's
// epoch.
func (c *Cache) undo(ctx context.Context, key string) {
	if err := c.store.Delete(ctx, key); err != nil {
		c.st.storeErrors.Add(1)
		c.warn(warnWrite, "failsoft: undoing a cache write that an invalidation overtook failed", "err", err)
	}
}

// epochSlot is the invalidation epoch slot of a primary key.
func (c *Cache) epochSlot(primary string) *atomic.Uint64 {
	return &c.epochs[maphash.String(c.epochSeed, primary)%epochSlots]
}

// epoch reads primary's invalidation epoch.
func (c *Cache) epoch(primary string) uint64 { return c.epochSlot(primary).Load() }

// bumpEpoch records an invalidation of primary; it runs before the
// invalidation's forget and Delete.
func (c *Cache) bumpEpoch(primary string) { c.epochSlot(primary).Add(1) }

// ttl is how long the store keeps e: to the end of its stale-if-error
// window, and, for an entry with a validator, at least the default
// stale-if-error window, so that a no-cache or must-revalidate response can
// be revalidated instead of fetched again.
func (c *Cache) ttl(e *entry, now time.Time) time.Duration {
	ttl := e.StaleUntil.Sub(now)
	if hasValidator(e) {
		ttl = max(ttl, e.StoredAt.Add(c.o.staleIfError).Sub(now))
	}
	return ttl
}

// set encodes and stores one entry, counting a failure.
func (c *Cache) set(ctx context.Context, key string, e *entry, ttl time.Duration) bool {
	// A fresh buffer each time: a Guard whose op timeout expired returns
	// while its abandoned call may still read the value.
	err := c.store.Set(ctx, key, encodeEntry(nil, e), ttl)
	if err == nil {
		return true
	}
	c.st.storeErrors.Add(1)
	if store.IsUnavailable(err) {
		c.st.dropped.Add(1)
	}
	c.warn(warnWrite, "failsoft: storing a cache entry failed", "err", err)
	return false
}
