package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// PendingDeletes is a [Store] that does not lose a Delete to an outage. It
// passes every call to the remote store it wraps (usually a [Guard] around
// [Redis]); a Delete that fails with an outage ([IsUnavailable]: an open
// breaker, a timeout, a refused connection) is kept in a queue and applied
// as soon as the remote answers again:
//
//   - before anything is read: a Get or GetTTL of a key whose delete is
//     pending sends the delete first, and reads only if it succeeds; if it
//     fails, the read fails with its error (an outage), so that no tier
//     refills the key from the remote's old copy;
//   - in the background: one goroutine, owned by the store, retries the
//     queue (oldest first) with a jittered backoff from 50 ms to 1 s, and at
//     once whenever a call to the remote succeeds. Close stops it after one
//     last try of the queue;
//   - by a successful Set of the key, which replaces the old copy.
//
// The queue holds each key once (a second failed Delete of a queued key
// adds nothing) and at most [WithMaxPending] keys (default 10,000,
// [DefaultMaxPending]). A failed Delete past the bound is not queued: it is
// counted in [PendingStats].Dropped and logged (at Warn, once until the
// queue empties again), and the remote's copy of that key lives until its
// ttl, as a copy whose delete was lost did before this type existed. Such a
// Delete returns an error wrapping [ErrDeleteDropped]; a queued one returns
// an error wrapping [ErrDeletePending]; both wrap the outage too.
//
// The queue lives in this process only: a process that stops (Close tries
// the queue once more, bounded by the remote's op timeout) or crashes with
// deletes pending loses them, and other replicas may serve the remote's old
// copy until its ttl. [Tiered] bounds what this replica's in-process tier
// adds to that (see [WithBroadcast]).
//
// A PendingDeletes is safe for concurrent use. The zero value is not
// usable: build one with [NewPendingDeletes]. It does not own the remote
// store. After Close, its methods return [ErrClosed].
type PendingDeletes struct {
	remote    Store
	remoteTTL TTLGetter
	max       int
	log       *slog.Logger

	mu   sync.Mutex
	keys map[string]uint64 // key -> sequence number of its latest failed Delete
	// inflight holds, for a pending key, the flusher's delete or a Set
	// running now (closed when it ends), so that the two never cross: a
	// Set of a pending key waits for the flusher's delete of it, and the
	// flusher skips a key a Set is writing (the Set settles it).
	inflight  map[string]chan struct{}
	seq       uint64
	overflown bool // a drop was logged since the queue was last empty
	n         atomic.Int64

	queued, late, dropped atomic.Uint64

	kick   chan struct{} // wakes the flusher; capacity 1
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	closed atomic.Bool
	once   sync.Once
}

var (
	_ Store     = (*PendingDeletes)(nil)
	_ TTLGetter = (*PendingDeletes)(nil)
	_ Pinger    = (*PendingDeletes)(nil)
)

var (
	// ErrDeletePending is wrapped by the error of a Delete that failed with
	// an outage and was queued, to be applied when the remote answers.
	ErrDeletePending = errors.New("store: delete pending, applied when the store is back")
	// ErrDeleteDropped is wrapped by the error of a Delete that failed with
	// an outage while the queue of pending deletes was full: it is lost.
	ErrDeleteDropped = errors.New("store: delete dropped, too many pending")
)

// DefaultMaxPending is the default bound on the keys whose delete is
// pending in a [PendingDeletes].
const DefaultMaxPending = 10_000

// Backoff of the background retries of pending deletes.
const (
	pendingMinBackoff = 50 * time.Millisecond
	pendingMaxBackoff = time.Second
)

// PendingStats is a snapshot of a [PendingDeletes]' counters.
type PendingStats struct {
	Pending     int    // keys whose delete is pending now
	Queued      uint64 // deletes queued since the start (a key queued twice counts once)
	AppliedLate uint64 // pending deletes applied since (or overtaken by a Set)
	Dropped     uint64 // failed deletes not queued because the queue was full
}

// NewPendingDeletes wraps remote, which must not be nil, and starts its
// background flusher (see [PendingDeletes]). Its options are
// [WithMaxPending] (default 10,000) and [WithLogger] (default
// slog.Default()); a nil option or a bad value is an error.
func NewPendingDeletes(remote Store, opts ...PendingOption) (*PendingDeletes, error) {
	if isNil(remote) {
		return nil, errors.New("store: NewPendingDeletes: nil remote store")
	}
	c := pendingConfig{max: DefaultMaxPending}
	for _, opt := range opts {
		if opt == nil {
			return nil, errNilOption("NewPendingDeletes")
		}
		opt.applyPending(&c)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if c.max <= 0 {
		return nil, errInvalid("max pending %d is not positive", c.max)
	}
	p := &PendingDeletes{
		remote:   remote,
		max:      c.max,
		log:      c.logger,
		keys:     make(map[string]uint64),
		inflight: make(map[string]chan struct{}),
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	p.remoteTTL, _ = remote.(TTLGetter)
	// The flusher is not on a request path: it has a context of its own,
	// cancelled by Close; each call is bounded by the remote (a Guard's op
	// timeout).
	p.ctx, p.cancel = context.WithCancel(context.Background())
	go p.run()
	return p, nil
}

func (p *PendingDeletes) usable() error {
	if p == nil || p.keys == nil {
		return fmt.Errorf("%w: PendingDeletes not built by NewPendingDeletes", ErrClosed)
	}
	if p.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Get returns the remote's value under key, after applying a pending
// delete of key (see [PendingDeletes]).
func (p *PendingDeletes) Get(ctx context.Context, key string) ([]byte, error) {
	if err := p.settle(ctx, key); err != nil {
		return nil, err
	}
	v, err := p.remote.Get(ctx, key)
	p.observe(err)
	return v, err
}

// GetTTL is Get that also returns the remaining ttl, from the remote's
// GetTTL; for a remote that is not a [TTLGetter] it calls Get and reports
// a ttl of 0, as [Guard.GetTTL] does.
func (p *PendingDeletes) GetTTL(ctx context.Context, key string) ([]byte, time.Duration, error) {
	if p.remoteTTL == nil {
		v, err := p.Get(ctx, key)
		return v, 0, err
	}
	if err := p.settle(ctx, key); err != nil {
		return nil, 0, err
	}
	v, ttl, err := p.remoteTTL.GetTTL(ctx, key)
	p.observe(err)
	return v, ttl, err
}

// Set stores value in the remote; when it succeeds, a pending delete of key
// queued before it is done: the old copy was replaced.
func (p *PendingDeletes) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := p.usable(); err != nil {
		return err
	}
	seq := p.pendingSeq(key)
	if seq == 0 {
		err := p.remote.Set(ctx, key, value, ttl)
		p.observe(err)
		return err
	}
	// The key is pending: apply its delete first, so that it is announced
	// (a replica may have read the old copy back since), and so that it
	// never lands after this write.
	mine, err := p.claim(ctx, key)
	if err != nil {
		return err
	}
	if err = p.remote.Delete(ctx, key); err == nil {
		p.applied(key, seq)
		err = p.remote.Set(ctx, key, value, ttl)
	}
	p.release(key, mine)
	p.observe(err)
	return err
}

// claim registers the caller's write of key, after waiting for the
// flusher's delete of it to end, if one is running.
func (p *PendingDeletes) claim(ctx context.Context, key string) (chan struct{}, error) {
	for {
		p.mu.Lock()
		other, busy := p.inflight[key]
		if !busy {
			mine := make(chan struct{})
			p.inflight[key] = mine
			p.mu.Unlock()
			return mine, nil
		}
		p.mu.Unlock()
		select {
		case <-other:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// release ends the write or delete of key registered as mine.
func (p *PendingDeletes) release(key string, mine chan struct{}) {
	p.mu.Lock()
	if p.inflight[key] == mine {
		delete(p.inflight, key)
	}
	p.mu.Unlock()
	close(mine)
}

// Delete deletes key in the remote. When that fails with an outage, the
// delete is queued (see [PendingDeletes]) and the error returned wraps
// [ErrDeletePending], or [ErrDeleteDropped] past the bound.
func (p *PendingDeletes) Delete(ctx context.Context, key string) error {
	if err := p.usable(); err != nil {
		return err
	}
	seq := p.pendingSeq(key)
	err := p.remote.Delete(ctx, key)
	p.observe(err)
	switch {
	case err == nil:
		if seq != 0 {
			p.applied(key, seq)
		}
		return nil
	case !IsUnavailable(err):
		return err
	}
	if !p.enqueue(ctx, key) {
		return fmt.Errorf("%w: %w", ErrDeleteDropped, err)
	}
	return fmt.Errorf("%w: %w", ErrDeletePending, err)
}

// Ping pings the remote when it is a [Pinger]; it returns nil otherwise.
func (p *PendingDeletes) Ping(ctx context.Context) error {
	if err := p.usable(); err != nil {
		return err
	}
	pg, ok := p.remote.(Pinger)
	if !ok {
		return nil
	}
	err := pg.Ping(ctx)
	p.observe(err)
	return err
}

// Pending returns the number of keys whose delete is pending. It takes no
// lock.
func (p *PendingDeletes) Pending() int {
	if p == nil {
		return 0
	}
	return int(p.n.Load())
}

// Stats returns a snapshot of the counters.
func (p *PendingDeletes) Stats() PendingStats {
	if p == nil {
		return PendingStats{}
	}
	return PendingStats{
		Pending:     p.Pending(),
		Queued:      p.queued.Load(),
		AppliedLate: p.late.Load(),
		Dropped:     p.dropped.Load(),
	}
}

// Close tries the pending deletes once more, stops the background flusher
// and waits for it. It does not close the remote store. What is still
// pending then is lost. It is safe to call more than once; it returns nil.
func (p *PendingDeletes) Close() error {
	if p == nil || p.keys == nil {
		return nil
	}
	p.once.Do(func() {
		p.closed.Store(true)
		p.cancel()
		<-p.done
	})
	return nil
}

// settle applies a pending delete of key before a read.
func (p *PendingDeletes) settle(ctx context.Context, key string) error {
	if err := p.usable(); err != nil {
		return err
	}
	seq := p.pendingSeq(key)
	if seq == 0 {
		return nil
	}
	err := p.remote.Delete(ctx, key)
	p.observe(err)
	if err != nil {
		return fmt.Errorf("store: pending delete: %w", err)
	}
	p.applied(key, seq)
	return nil
}

// pendingSeq returns the sequence number of key's pending delete, 0 if
// there is none. Without pending deletes (the common case) it takes no lock.
func (p *PendingDeletes) pendingSeq(key string) uint64 {
	if p.n.Load() == 0 {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[key]
}

// applied removes key's pending delete if it is still the one numbered seq:
// a delete that failed again meanwhile stays queued.
func (p *PendingDeletes) applied(key string, seq uint64) {
	if p.remove(key, seq) {
		p.late.Add(1)
	}
}

// remove drops key's pending delete if it is still the one numbered seq,
// and reports whether it did; an emptied queue may warn of a full one
// again.
func (p *PendingDeletes) remove(key string, seq uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.keys[key] != seq {
		return false
	}
	delete(p.keys, key)
	p.n.Store(int64(len(p.keys)))
	if len(p.keys) == 0 {
		p.overflown = false
	}
	return true
}

// enqueue queues key's delete; it reports false when the queue is full.
func (p *PendingDeletes) enqueue(ctx context.Context, key string) bool {
	p.mu.Lock()
	p.seq++
	if _, ok := p.keys[key]; !ok {
		if len(p.keys) >= p.max {
			logIt := !p.overflown
			p.overflown = true
			p.mu.Unlock()
			p.dropped.Add(1)
			if logIt {
				p.log.LogAttrs(ctx, slog.LevelWarn, "store: pending deletes: queue full, dropping deletes until it empties",
					slog.Int("max_pending", p.max))
			}
			return false
		}
		p.queued.Add(1)
	}
	p.keys[key] = p.seq
	p.n.Store(int64(len(p.keys)))
	p.mu.Unlock()
	p.wake()
	return true
}

// observe wakes the flusher when a remote call succeeded while deletes are
// pending: the remote is back.
func (p *PendingDeletes) observe(err error) {
	if p.n.Load() > 0 && (err == nil || errors.Is(err, ErrNotFound)) {
		p.wake()
	}
}

func (p *PendingDeletes) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// run is the background flusher.
func (p *PendingDeletes) run() {
	defer close(p.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	backoff := pendingMinBackoff
	for {
		select {
		case <-p.ctx.Done():
			// One last try, bounded whatever the remote is.
			ctx, cancel := context.WithTimeout(context.Background(), DefaultOpTimeout)
			p.flush(ctx)
			cancel()
			return
		case <-p.kick:
		case <-timer.C:
		}
		if p.flush(p.ctx) {
			backoff = pendingMinBackoff
			continue
		}
		timer.Stop()
		// Full jitter: replicas coming back together do not retry in step.
		timer.Reset(backoff/2 + rand.N(backoff/2+1))
		backoff = min(2*backoff, pendingMaxBackoff)
	}
}

// flush tries the pending deletes, oldest first, and reports whether none
// is left; it stops at the first outage. A delete that fails otherwise (a
// command error) is dropped, counted and logged.
func (p *PendingDeletes) flush(ctx context.Context) bool {
	type pending struct {
		key string
		seq uint64
	}
	p.mu.Lock()
	batch := make([]pending, 0, len(p.keys))
	for k, s := range p.keys {
		batch = append(batch, pending{k, s})
	}
	p.mu.Unlock()
	if len(batch) == 0 {
		return true
	}
	slices.SortFunc(batch, func(a, b pending) int { return cmp.Compare(a.seq, b.seq) })
	for _, d := range batch {
		// Skip a key that is no longer pending, or that a Set is writing
		// now (it settles the key); otherwise hold it while deleting.
		p.mu.Lock()
		_, busy := p.inflight[d.key]
		if busy || p.keys[d.key] != d.seq {
			p.mu.Unlock()
			continue
		}
		mine := make(chan struct{})
		p.inflight[d.key] = mine
		p.mu.Unlock()
		err := p.remote.Delete(ctx, d.key)
		p.release(d.key, mine)
		switch {
		case err == nil:
			p.applied(d.key, d.seq)
		case IsUnavailable(err) || ctx.Err() != nil:
			return false
		default:
			p.remove(d.key, d.seq)
			p.dropped.Add(1)
			p.log.LogAttrs(ctx, slog.LevelWarn, "store: pending deletes: delete failed, dropped",
				slog.String("error", err.Error()))
		}
	}
	return p.Pending() == 0
}
