// Background refreshes (stale-while-revalidate, RFC 5861): a stale entry
// is served at once while the handler is called in the background to
// replace it.

package middleware

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/failsoft/failsoft/store"
)

// refresher bounds and tracks a Cache's background refreshes: at most one
// per key, at most WithMaxRefreshes at once, each bounded by
// WithRefreshTimeout and cancelled by stop. It is safe for concurrent use.
type refresher struct {
	timeout time.Duration

	mu       sync.Mutex
	sem      chan struct{} // nil when refreshes are off
	running  map[string]struct{}
	cancels  map[uint64]context.CancelFunc
	nextID   uint64
	stopping bool
}

// newRefresher returns a refresher of at most n refreshes at once (0:
// none), each bounded by timeout.
func newRefresher(n int, timeout time.Duration) refresher {
	var sem chan struct{}
	if n > 0 {
		sem = make(chan struct{}, n)
	}
	return refresher{
		timeout: timeout,
		sem:     sem,
		running: make(map[string]struct{}),
		cancels: make(map[uint64]context.CancelFunc),
	}
}

// begin reserves a refresh of key and registers it with bg. It returns
// ok=false, and reserves nothing, when one already runs for key, every slot
// is busy, or stop or bg's close was called. The refresh's context keeps
// parent's values, not its cancellation: it ends with the timeout or stop.
// A reserved refresh must call end with the returned id, then bg.done.
func (f *refresher) begin(key string, bg *tasks, parent context.Context) (ctx context.Context, id uint64, ok bool) {
	if f.sem == nil {
		return nil, 0, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopping {
		return nil, 0, false
	}
	if _, busy := f.running[key]; busy {
		return nil, 0, false
	}
	select {
	case f.sem <- struct{}{}:
	default:
		return nil, 0, false
	}
	if !bg.start() {
		<-f.sem
		return nil, 0, false
	}
	f.running[key] = struct{}{}
	ctx, cancel := context.WithTimeout(store.TrackFailures(context.WithoutCancel(parent)), f.timeout)
	id = f.nextID
	f.nextID++
	f.cancels[id] = cancel
	return ctx, id, true
}

// end releases the refresh of key that begin reserved as id.
func (f *refresher) end(id uint64, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cancel, ok := f.cancels[id]; ok {
		cancel()
		delete(f.cancels, id)
	}
	delete(f.running, key)
	<-f.sem
}

// stop cancels the running refreshes and refuses new ones.
func (f *refresher) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopping = true
	for _, cancel := range f.cancels {
		cancel()
	}
}

// startRefresh starts one background refresh of lk's entry
// (stale-while-revalidate), unless one already runs for the key, every
// refresh slot is busy, or the cache is closing.
func (c *Cache) startRefresh(r *http.Request, next http.Handler, lkp *lookup) {
	ctx, id, ok := c.refreshes.begin(lkp.key, &c.bg, r.Context())
	if !ok {
		return
	}
	lk := new(lookup) // the refresh's own copy
	*lk = *lkp
	lk.epoch = c.w.epoch(lk.primary)
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
		c.refreshes.end(id, lk.key)
		c.bg.done()
	}()
	// fetch calls the handler once; ok is false when it panicked.
	fetch := func() (res captured, sent time.Time, ok bool) {
		cw := newCapture(&discard{}, c.o.maxBody)
		sent = c.now()
		if pv, panicked := runRecovered(cw, req, next); panicked {
			if !isAbort(pv) {
				c.log.warn(warnPanic, "failsoft: handler panicked in a background refresh; the stale entry stays",
					"path", req.URL.Path, "panic", pv)
			}
			return captured{}, sent, false
		}
		return cw.finish(false), sent, true
	}
	res, sent, ok := fetch()
	if ok && revalidate && !res.streamed && res.status == http.StatusNotModified && !confirms(lk.e.Header, res.header) {
		// A 304 naming another representation may not update the entry
		// (RFC 9111 §4.3.4): fetch it again, unconditionally.
		req = req.Clone(req.Context()) // a new request: the handler may still hold the first
		delete(req.Header, "If-None-Match")
		delete(req.Header, "If-Modified-Since")
		revalidate = false
		res, sent, ok = fetch()
	}
	if !ok {
		return
	}
	now := c.now()
	ctx := context.WithoutCancel(req.Context())
	switch {
	case res.streamed || isError(res.status):
		if c.log.debugOn(req.Context()) {
			c.log.DebugContext(req.Context(), "failsoft: background refresh failed; the stale entry stays",
				"path", req.URL.Path, "status", res.status)
		}
		return
	case revalidate && res.status == http.StatusNotModified:
		e, names, ok := c.revalidated(req, lk.e, res.header, sent, now)
		c.st.revalidated.Add(1)
		if ok {
			key, marker, _ := c.keys(req, lk, e, names)
			c.w.save(ctx, key, e, lk.primary, marker, lk.epoch)
		}
		return
	}
	c.complete(res.header, req, res, now)
	if e, names, _ := c.newEntry(req, res.status, res.header, res.body, sent, now); e != nil {
		key, marker, _ := c.keys(req, lk, e, names)
		c.w.save(ctx, key, e, lk.primary, marker, lk.epoch)
	}
}
