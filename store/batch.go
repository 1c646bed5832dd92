package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxBatch bounds the reads one pipeline of a [getBatcher] carries; the
// calls queued past it go in the next one.
const maxBatch = 64

// getBatcher sends the reads of a [Redis] store that callers make while
// its connections ("lanes") are busy together, as one pipeline (see
// [WithBatchedGets]). There is no goroutine of its own: a call that finds a
// lane free sends its GET at once, as an unbatched store would; the others
// queue, and each call that ends its round trip hands its lane to the
// waiting call with the latest deadline, which sends its own read and the
// oldest queued ones in one pipeline. Every call ends by its own context's
// deadline: a waiting call leaves the queue when its context is done, and
// a leader sends the pipeline under its own deadline, the latest, so that
// no call fails by another's; the leader's cancellation does not end the
// others' reads (the leader then returns when the pipeline does, by its
// deadline).
type getBatcher struct {
	client redis.UniversalClient
	lanes  int

	mu     sync.Mutex
	active int          // lanes in use
	queue  []*batchCall // waiting calls, oldest first; a call leaves it when its context ends

	batched atomic.Uint64 // calls sent in a pipeline with others, for tests
}

// A batchCall is one queued read: GET, and PTTL for GetTTL.
type batchCall struct {
	ctx  context.Context
	key  string // with the store's prefix
	ttl  bool
	get  *redis.StringCmd
	pttl *redis.DurationCmd
	err  error // errBatchAborted: the pipeline's sender panicked

	state atomic.Int32  // callWaiting, then one of the others
	done  chan struct{} // capacity 1: the result, or the lane (callLeading)
}

// The states of a queued [batchCall]: the first of the leader, the call
// itself and a lane's hand-off to change it wins.
const (
	callWaiting   int32 = iota
	callTaken           // in a leader's pipeline: its result comes on done
	callLeading         // handed a lane: it must send a pipeline, or pass the lane on
	callAbandoned       // its context ended first: nobody sends it
)

// errBatchAborted is the result of a call whose leader panicked before the
// pipeline came back.
var errBatchAborted = errors.New("store: redis: batched read abandoned: its pipeline's sender panicked")

// get sends a GET of key (and a PTTL, with ttl) under ctx: at once on a
// free lane, else in a pipeline with the reads queued with it. It returns
// ctx's error when ctx ended before the result came.
func (b *getBatcher) get(ctx context.Context, key string, ttl bool) (*redis.StringCmd, *redis.DurationCmd, error) {
	b.mu.Lock()
	if b.active < b.lanes {
		b.active++
		b.mu.Unlock()
		defer b.handOff()
		if !ttl {
			return b.client.Get(ctx, key), nil, nil
		}
		c := batchCall{key: key, ttl: true}
		b.send(ctx, []*batchCall{&c})
		return c.get, c.pttl, nil
	}
	c := &batchCall{ctx: ctx, key: key, ttl: ttl, done: make(chan struct{}, 1)}
	b.queue = append(b.queue, c)
	b.mu.Unlock()

	select {
	case <-c.done:
	case <-ctx.Done():
		if c.state.CompareAndSwap(callWaiting, callAbandoned) {
			b.mu.Lock()
			if i := slices.Index(b.queue, c); i >= 0 {
				b.queue = slices.Delete(b.queue, i, i+1)
			}
			b.mu.Unlock()
			return nil, nil, ctx.Err()
		}
		if c.state.Load() == callTaken {
			return nil, nil, ctx.Err() // a result that comes goes nowhere
		}
		<-c.done // a lane, on its way: pass it on
	}
	if c.state.Load() == callLeading {
		b.lead(c)
	}
	switch {
	case c.err != nil:
		return nil, nil, c.err
	case c.get == nil: // a leader whose context ended: nothing was sent
		return nil, nil, ctx.Err()
	}
	return c.get, c.pttl, nil
}

// lead sends c, which a lane was handed to, with the oldest calls queued
// (at most maxBatch in all) in one pipeline under c's context, and then
// hands the lane on. A c whose context has ended sends nothing.
func (b *getBatcher) lead(c *batchCall) {
	defer b.handOff()
	if c.ctx.Err() != nil {
		return
	}
	batch := []*batchCall{c}
	b.mu.Lock()
	n := 0
	for _, q := range b.queue {
		if len(batch) == maxBatch {
			break
		}
		n++
		if q.state.CompareAndSwap(callWaiting, callTaken) {
			batch = append(batch, q)
		}
	}
	b.dequeue(n)
	b.mu.Unlock()
	b.send(c.ctx, batch)
}

// send sends the reads of batch in one pipeline under ctx (for more than
// one, under its deadline and values but not its cancellation), a GET (and
// a PTTL) each, and then tells every call but the first, which is the
// sender's own, that its result is there; when the send panics, the
// result of every call is errBatchAborted.
func (b *getBatcher) send(ctx context.Context, batch []*batchCall) {
	sent := false
	defer func() {
		for i, m := range batch {
			if !sent {
				m.get, m.pttl, m.err = nil, nil, errBatchAborted
			}
			if i > 0 {
				m.done <- struct{}{}
			}
		}
	}()
	if len(batch) > 1 {
		b.batched.Add(uint64(len(batch)))
		// The others' reads must not end because the sender's caller
		// gave up: the pipeline keeps its sender's values and deadline,
		// not its cancellation.
		d, hasDeadline := ctx.Deadline()
		ctx = context.WithoutCancel(ctx)
		if hasDeadline {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, d)
			defer cancel()
		}
	}
	// The pipeline's own error is the first failed command's; each call
	// reads its commands' errors instead, so that a miss is told from a
	// failure.
	_, _ = b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range batch {
			m.get = p.Get(ctx, m.key)
			if m.ttl {
				m.pttl = p.PTTL(ctx, m.key)
			}
		}
		return nil
	})
	sent = true
}

// handOff gives the lane its caller holds to the waiting call with the
// latest deadline (none is latest; the oldest among equals), or frees it.
// That call sends the pipeline under its deadline, and takes the oldest
// calls with it: no call in it fails by another's earlier deadline (one
// whose own deadline passes first leaves at that deadline), and none waits
// behind newer ones for long.
func (b *getBatcher) handOff() {
	b.mu.Lock()
	for len(b.queue) > 0 {
		i := latestDeadline(b.queue)
		q := b.queue[i]
		b.queue = slices.Delete(b.queue, i, i+1)
		if q.state.CompareAndSwap(callWaiting, callLeading) {
			b.mu.Unlock()
			q.done <- struct{}{}
			return
		}
		// It gave up meanwhile and is on its way out of the queue.
	}
	b.active--
	b.mu.Unlock()
}

// latestDeadline returns the index in calls, which is not empty, of the
// call whose context's deadline is the latest: the first without one, else
// the first with the latest.
func latestDeadline(calls []*batchCall) int {
	best := 0
	var bestAt time.Time
	for i, q := range calls {
		at, ok := q.ctx.Deadline()
		if !ok {
			return i
		}
		if i == 0 || at.After(bestAt) {
			best, bestAt = i, at
		}
	}
	return best
}

// dequeue drops the n oldest calls from the queue, keeping its array.
// b.mu is held.
func (b *getBatcher) dequeue(n int) {
	if n == 0 {
		return
	}
	rest := copy(b.queue, b.queue[n:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
}
