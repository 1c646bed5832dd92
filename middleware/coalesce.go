package middleware

import (
	"context"
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
	done    chan struct{} // closed by finish; res is set before
	res     *outcome
	waiting int // followers currently waiting (guarded by coalescer.mu)
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
}

// join returns key's flight, and leader=true when the caller starts it and
// must call done.
func (c *coalescer) join(key string) (f *flight, leader bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.flights[key]; ok {
		f.waiting++
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
	defer func() {
		c.mu.Lock()
		f.waiting--
		c.mu.Unlock()
	}()
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

// leave ends a follower's wait on f without waiting, as wait does at its
// end.
func (c *coalescer) leave(f *flight) {
	c.mu.Lock()
	f.waiting--
	c.mu.Unlock()
}

// waiters returns how many followers wait on key's flight now; tests use it
// to wait for a condition instead of sleeping.
func (c *coalescer) waiters(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.flights[key]; ok {
		return f.waiting
	}
	return 0
}
