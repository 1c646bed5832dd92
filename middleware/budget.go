// The miss budget: a bound on the handler calls for misses that run at
// once while the store is unavailable, so that the primary source behind
// the handler is not the next victim of a Redis outage.

package middleware

import (
	"container/list"
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsoft/failsoft/store"
)

// MissBudgetMode says when the budget of [WithMissBudget] applies.
type MissBudgetMode int

const (
	// MissBudgetWhileUnavailable applies the budget to a miss only while
	// the store is unavailable: the request's own lookup failed with an
	// outage, or its context carries an outage mark
	// ([store.FailureSeen], set by the [store.Guard] or [store.Hook] below a
	// [Recover]), or an earlier request saw one and no lookup has found
	// the store answering since (a lookup that the store answers with a
	// miss ends the outage for the budget). While Redis is up, misses run
	// unbounded, as they do without a budget. It is the default mode.
	MissBudgetWhileUnavailable MissBudgetMode = iota
	// MissBudgetAlways applies the budget to every miss, whatever the
	// store's state: a bound on the misses that the cache lets through to
	// the primary at any time. Background refreshes of stale entries
	// (stale-while-revalidate) do not take a slot: they are one per key at
	// a time, and a request never waits for them.
	MissBudgetAlways
)

// MissBudgetStats is the state of a cache's miss budget ([WithMissBudget]),
// read with Cache.Stats. Size, InUse and Waiting are gauges; the other
// counters only grow.
type MissBudgetStats struct {
	Size     int       // handler calls for misses allowed at once; 0 when the budget is off
	InUse    int       // handler calls for misses running under the budget now
	Waiting  int       // requests queued for a slot now
	Waited   uint64    // requests that queued and then got a slot
	Shed     uint64    // requests answered 503 for want of a slot
	Stale    uint64    // requests answered with a stale copy for want of a slot
	LastShed time.Time // when a request was last shed or answered stale for want of a slot; zero if never
}

// missBudget bounds the handler calls for misses that run at once. A
// request takes a slot if one is free and nobody queues before it;
// otherwise it queues, first come first served, until a slot is handed to
// it, its wait ends or its client leaves. A released slot goes to the head
// of the queue directly, so a request arriving later never overtakes one
// that waits. It is safe for concurrent use.
type missBudget struct {
	size   int
	wait   time.Duration
	always bool

	mu    sync.Mutex
	inUse int        // slots taken; under mu
	queue *list.List // of *budgetWaiter, oldest first; under mu

	// down is the store's state as the budget last learnt it (see
	// MissBudgetWhileUnavailable).
	down                 atomic.Bool
	waited, shed, staled atomic.Uint64
	lastShed             atomic.Int64 // unix nanoseconds, 0 if never
}

// budgetWaiter is one queued request.
type budgetWaiter struct {
	ready   chan struct{} // closed when granted
	granted bool          // a slot was handed to it; under mu
}

// admission is how a request's attempt to take a slot ended.
type admission int

const (
	admitted   admission = iota // it holds a slot: call the handler, then release
	overBudget                  // no slot (at once, or within the wait)
	clientGone                  // the request's context ended while it waited
)

func newMissBudget(size int, wait time.Duration, mode MissBudgetMode) *missBudget {
	if size <= 0 {
		return nil
	}
	return &missBudget{size: size, wait: wait, always: mode == MissBudgetAlways, queue: list.New()}
}

// acquire takes a slot, waiting for one (at most b.wait, and no longer than
// ctx lives) when mayWait is set.
func (b *missBudget) acquire(ctx context.Context, mayWait bool) admission {
	b.mu.Lock()
	if b.inUse < b.size && b.queue.Len() == 0 {
		b.inUse++
		b.mu.Unlock()
		return admitted
	}
	if !mayWait || b.wait <= 0 {
		b.mu.Unlock()
		return overBudget
	}
	w := &budgetWaiter{ready: make(chan struct{})}
	el := b.queue.PushBack(w)
	b.mu.Unlock()

	t := time.NewTimer(b.wait)
	defer t.Stop()
	res := overBudget
	select {
	case <-w.ready:
		b.waited.Add(1)
		return admitted
	case <-ctx.Done():
		res = clientGone
	case <-t.C:
	}
	b.mu.Lock()
	if !w.granted {
		b.queue.Remove(el)
		b.mu.Unlock()
		return res
	}
	b.mu.Unlock()
	// The slot came with the end of the wait.
	if res == clientGone {
		b.release()
		return clientGone
	}
	b.waited.Add(1)
	return admitted
}

// release gives a slot back: to the oldest waiter, if any.
func (b *missBudget) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if front := b.queue.Front(); front != nil {
		w := b.queue.Remove(front).(*budgetWaiter)
		w.granted = true
		close(w.ready)
		return
	}
	b.inUse--
}

// stats reads the budget's state; the zero value for a nil budget.
func (b *missBudget) stats() MissBudgetStats {
	if b == nil {
		return MissBudgetStats{}
	}
	b.mu.Lock()
	s := MissBudgetStats{Size: b.size, InUse: b.inUse, Waiting: b.queue.Len()}
	b.mu.Unlock()
	s.Waited, s.Shed, s.Stale = b.waited.Load(), b.shed.Load(), b.staled.Load()
	if n := b.lastShed.Load(); n != 0 {
		s.LastShed = time.Unix(0, n)
	}
	return s
}

// applies reports whether the budget bounds the miss of r, whose lookup is
// lk, and updates what the budget knows of the store's state.
func (b *missBudget) applies(r *http.Request, lk *lookup) bool {
	_, seen := store.FailureSeen(r.Context())
	switch {
	case lk.detail == "store-error" || seen:
		b.down.Store(true)
	case lk.fwd == "uri-miss" && b.down.Load():
		b.down.Store(false) // the store answered: it is back
	}
	return b.always || b.down.Load()
}

// budgetedHandler calls next and then gives the budget slot back, also
// when next panics, and also when the handler outlives the request's
// answer ([WithHandlerTimeout]): the slot stands for the handler's work on
// the primary, not for the request.
type budgetedHandler struct {
	next    http.Handler
	release func()
}

func (h budgetedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer h.release()
	h.next.ServeHTTP(w, r)
}

// outcomeShed is the outcome of a leader that got no slot (shared,
// read-only): its followers get a stale copy or 503 at once, without
// queueing again.
var outcomeShed = &outcome{failed: true, shed: true}

// admit applies the miss budget to a request about to call the handler for
// lk. With ok=true the request may call handler (next wrapped to give its
// slot back, when it took one). With ok=false it was answered (a stale
// copy, or 503) or its client left; out is what coalesced followers share.
// A request with a stale copy within its stale-if-error window never waits:
// when no slot is free it is answered with the copy at once.
func (c *Cache) admit(w http.ResponseWriter, r *http.Request, next http.Handler, lk *lookup) (handler http.Handler, out *outcome, ok bool) {
	b := c.budget
	if b == nil || !b.applies(r, lk) {
		return next, nil, true
	}
	staleOK := lk.e != nil && c.now().Before(lk.e.StaleUntil)
	switch b.acquire(r.Context(), !staleOK) {
	case admitted:
		return budgetedHandler{next: next, release: b.release}, nil, true
	case clientGone:
		return nil, outcomeShed, false
	}
	c.overBudget(w, r, lk, false)
	return nil, outcomeShed, false
}

// overBudget answers a request that got no slot of the miss budget (or
// whose coalescing leader got none): with its stale copy if one is within
// its stale-if-error window, else with 503, Retry-After
// ([DefaultRetryAfter]), Cache-Control: no-store and the JSON body of
// [Recover], written by Recover's own writer. Headers set before the cache
// are kept.
func (c *Cache) overBudget(w http.ResponseWriter, r *http.Request, lk *lookup, collapsed bool) {
	b := c.budget
	now := c.now()
	b.lastShed.Store(now.UnixNano())
	if lk.e != nil && now.Before(lk.e.StaleUntil) {
		b.staled.Add(1)
		c.st.staleServed.Add(1)
		c.serveEntry(w, r, lk.e, now, c.cs.stale(lk, 0, lk.e, now, "miss-budget", collapsed))
		return
	}
	b.shed.Add(1)
	w.Header()["Cache-Status"] = []string{c.cs.fwd(lk, 0, false, collapsed, "miss-budget")}
	writeUnavailable(w, unavailableDetails, DefaultRetryAfter)
	if c.log.debugOn(r.Context()) {
		c.log.DebugContext(r.Context(), "failsoft: miss budget exhausted; answered 503", "path", r.URL.Path)
	}
}
