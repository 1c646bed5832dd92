package middleware

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// coalescer lets concurrent misses of one key call the handler once.
//
// The first request of a key becomes the leader and calls the handler on its
// own goroutine, writing to its own ResponseWriter; the others (followers)
// wait, each bounded by the coalescing wait and by its own context, for the
// leader's outcome. It is in-process, so it keeps working while Redis is
// down.
//
// golang.org/x/sync/singleflight does not fit: Do cannot bound a follower's
// wait (a follower blocks for as long as the leader's handler runs), and
// DoChan runs the function on a goroutine of its own, where a handler panic
// would kill the process instead of reaching the recovery middleware, and
// the handler would write to its ResponseWriter from a goroutine that is
// not the request's.
//
// The zero value is ready to use; it is safe for concurrent use.
type coalescer struct {
	mu      sync.Mutex
	flights map[string]*flight
}

// flight is one leader's handler call that followers wait for.
type flight struct {
	done chan struct{} // closed by done; res is set before
	res  *outcome
}

// outcome is what a leader hands its followers.
type outcome struct {
	// e is the shareable (storable) response, or nil when the response was
	// not shareable: it then went to the leader's client alone.
	e *entry
	// vary, when e varies, selects the followers it may answer: only those
	// whose variant key equals it.
	varyKey string
	nonce   uint64
	names   []string
	// failed says the handler failed (5xx, panic, timeout): a follower
	// with a stale copy answers with it rather than call the handler again,
	// the others join the key's next flight.
	failed bool
	// own, when e is nil and the call did not fail, is why the answer was
	// not shareable when the reason lies in the leader's request alone
	// ("method": a HEAD; "authorization"; "cookie"): a follower whose
	// request lacks it joins the key's next flight, as its own answer may
	// be shareable.
	own string
	// shed says the leader got no slot of the miss budget: a follower
	// is answered with its stale copy or 503 at once (see [Cache.admit]).
	shed bool
}

// join returns key's flight, and leader=true when the caller starts it and
// must call done.
func (c *coalescer) join(key string) (f *flight, leader bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.flights[key]; ok {
		return f, false
	}
	if c.flights == nil {
		c.flights = make(map[string]*flight)
	}
	f = &flight{done: make(chan struct{})}
	c.flights[key] = f
	return f, true
}

// done ends the leader's flight with res (nil: nothing to share) and wakes
// its followers. Later requests of key start a new flight.
func (c *coalescer) done(key string, f *flight, res *outcome) {
	c.mu.Lock()
	if c.flights[key] == f {
		delete(c.flights, key)
	}
	c.mu.Unlock()
	f.res = res
	close(f.done)
}

// wait waits for f's outcome, at most d and no longer than ctx lives. It
// returns ok=false when the wait ended first; res is nil when the leader had
// nothing to share.
func (c *coalescer) wait(ctx context.Context, f *flight, d time.Duration) (res *outcome, ok bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-f.done:
		return f.res, true
	case <-ctx.Done():
		return nil, false
	case <-t.C:
		return nil, false
	}
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
			c.serveEntry(w, r, res.e, now, c.cs.fwd(lk, res.e.Status, false, true, ""))
			if c.log.debugOn(r.Context()) {
				c.log.DebugContext(r.Context(), "failsoft: coalesced", "path", r.URL.Path)
			}
			return
		}
		if res.shed {
			c.st.coalesced.Add(1)
			c.overBudget(w, r, lk, true)
			return
		}
		if res.failed && lk.e != nil && now.Before(lk.e.StaleUntil) {
			c.st.coalesced.Add(1)
			c.st.staleServed.Add(1)
			c.serveEntry(w, r, lk.e, now, c.cs.stale(lk, 0, lk.e, now, "stale-if-error", true))
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
