package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsoft/failsoft/internal/decoded"
)

// Tiered is a [Store] that keeps an in-process copy ([Memory]) of the
// entries of a shared remote store (usually a [Guard] around [Redis]), reads
// the copy first, and keeps answering from it while the remote is
// unavailable.
//
// Get. A local copy that was written or confirmed against the remote less
// than the coherence window ago ([WithCoherence], default 2 s) is returned
// without asking the remote, so a purge or update made elsewhere is seen
// within that window. Otherwise the remote is asked:
//   - a hit refreshes the local copy and is returned. When the remote
//     implements [TTLGetter], the copy takes the remote entry's remaining
//     ttl, so it never outlives it; otherwise a refreshed copy keeps its
//     ttl, and a new one is kept for the coherence window only (with a
//     coherence of 0, not at all);
//   - a miss usually means the entry was purged or has expired elsewhere:
//     the local copy is dropped and [ErrNotFound] returned. But if the
//     remote has been seen unavailable and then available again since the
//     copy was last written or confirmed, and it came back without its data
//     (see the epoch marker below), the copy is returned and written back to
//     the remote in the background with its remaining ttl: a backfill. At
//     most [WithMaxBackfills] (default 16) run at once; others are dropped,
//     logged at debug level, and tried again on a later Get. (A copy of a
//     remote entry that had no expiry is not written back: the miss wins.)
//   - an outage ([IsUnavailable]) or any other error returns the local copy
//     if there is one (a copy answers for its whole ttl while the remote is
//     down), and the error, wrapped, if there is none.
//
// Set writes the local copy, then the remote, and returns the remote's
// error; the local copy stays, so a value written during an outage is
// backfilled if the remote comes back without its data. A value heavier
// than the in-process budget goes to the remote only. Delete removes both
// copies and returns the remote's error.
//
// Epoch marker. Whether the remote kept its data across an outage is told
// by a marker entry that Tiered keeps in the remote, under the key
// "\x00failsoft-tiered-epoch" (under the Redis store's prefix): a random
// token with a 30-day ttl, rewritten every 7 days while the remote is
// reached. The first call that reaches the remote reads the marker, writes
// one if there is none, and remembers the token; it is read back 5 s later,
// as a token written by two replicas at once is proven only by finding it
// again. When the remote answers after having been seen unavailable, the
// call that sees it reads the marker once, bounded by that call's context:
//   - the remembered token: the remote kept its data. A miss is a purge, and
//     the miss wins, even right after a brief outage;
//   - no marker, or another token than a proven remembered one (a replica
//     that saw the restart first wrote it): the remote lost its data. The
//     copies last written or confirmed before the outage are backfilled, and
//     the new token is written, or adopted;
//   - a failed read: nothing is backfilled, and the read is tried again 5 s
//     later, at the earliest.
//
// Calls that see the recovery while the read runs, or an outage that
// follows the previous check within 5 s, do not wait for it: their misses
// are purges, and a flapping remote (a cluster with a dead shard) costs at
// most one marker read per 5 s. Recoveries are detected only through calls
// that reach the remote (Get past the coherence window, Set, Delete, Ping);
// a remote that restarts empty while no call reaches it looks like a purge,
// and so does, with a cluster, a shard other than the marker's that
// restarts empty.
//
// Broadcast. With [WithBroadcast], an invalidation announced by any
// replica's [Redis] store drops the local copy at once, and while the
// subscription is confirmed a copy may answer for a longer window than the
// coherence window (see [WithBroadcast] for when). A remote read that an
// announcement of its key overtook is returned but not kept.
//
// The remote's state changes are logged ([WithLogger]) when they happen, at
// most once per 5 s for each direction; a line counts the transitions it
// stands for, and a state left unlogged by the limit is logged by the next
// call after it.
//
// Tiered is safe for concurrent use. The zero value is not usable: build one
// with [NewTiered]. It does not own its tiers: Close waits for backfills but
// closes neither the local nor the remote store, which the caller closes
// after Close. After Close, methods return [ErrClosed].
type Tiered struct {
	local     *Memory
	remote    Store
	remoteTTL TTLGetter // remote as a TTLGetter, nil if it is not one
	coherence int64     // nanoseconds
	now       func() time.Time
	sysClock  bool // now is time.Now: a caller's reading may stand in for it
	log       *slog.Logger

	// gen counts the remote's recoveries: it is incremented when the remote
	// answers after having been seen down; local copies are stamped with it
	// when written or confirmed. lost is the generation of the latest
	// recovery found (by the epoch marker) to have lost the remote's data:
	// a local copy whose generation is older may be missing from the
	// remote, and is backfilled on a miss.
	gen       atomic.Uint64
	lost      atomic.Uint64
	down      atomic.Bool
	recovered atomic.Bool // a recovery's epoch check has not run yet

	// The epoch marker; epochMu is held by the one running check.
	epochMu     sync.Mutex
	epoch       string       // the remembered token, "" before the first check
	epochSure   atomic.Bool  // a check found epoch after the one that wrote or adopted it
	writtenAt   atomic.Int64 // t.now of the last marker write, or noTime
	throttledAt atomic.Int64 // t.now of the last recovery or failed check, or noTime

	// State change logs; logMu is held by the one logging.
	logMu      sync.Mutex
	loggedDown atomic.Bool  // the state last logged
	flips      atomic.Int64 // transitions since the last line
	loggedAt   [2]int64     // t.now of the last up, down line, or noTime; under logMu

	bc tierBroadcast // WithBroadcast (tiered_broadcast.go)

	slots  chan struct{} // one token per running backfill
	mu     sync.Mutex    // orders wg.Add against Close
	closed atomic.Bool
	wg     sync.WaitGroup
}

var (
	_ Store          = (*Tiered)(nil)
	_ TTLGetter      = (*Tiered)(nil)
	_ Pinger         = (*Tiered)(nil)
	_ decoded.Getter = (*Tiered)(nil)
)

// NewTiered returns a Store that reads local first and fills it from remote,
// as described on [Tiered]. Neither may be nil, and they must differ.
//
// Its options are [WithCoherence] (default 2 s; 0 asks the remote on every
// Get), [WithBroadcast] (default none), [WithMaxBackfills] (default 16),
// [WithLogger] (default
// slog.Default()) and [WithClock] (default time.Now; it times the coherence
// window, while expiry follows local's own clock); a nil option or a bad
// value is an error. Keys and values are checked against local's limits
// ([WithMaxKeyBytes], [WithMaxValueBytes] given to [NewMemory]) before
// either tier is used.
func NewTiered(local *Memory, remote Store, opts ...TieredOption) (*Tiered, error) {
	if local == nil || local.cache == nil {
		return nil, errors.New("store: NewTiered: nil local store (build it with NewMemory)")
	}
	if isNil(remote) {
		return nil, errors.New("store: NewTiered: nil remote store")
	}
	if m, ok := remote.(*Memory); ok && m == local {
		return nil, errors.New("store: NewTiered: local and remote are the same store")
	}
	o, err := newTieredConfig(opts)
	if err != nil {
		return nil, err
	}
	t := &Tiered{
		local:     local,
		remote:    remote,
		coherence: int64(o.coherence),
		now:       o.now,
		sysClock:  !o.clockSet,
		log:       o.logger,
		slots:     make(chan struct{}, o.maxBackfills),
		loggedAt:  [2]int64{noTime, noTime},
	}
	t.remoteTTL, _ = remote.(TTLGetter)
	t.writtenAt.Store(noTime)
	t.throttledAt.Store(noTime)
	t.initBroadcast(o)
	return t, nil
}

// usable returns ErrClosed for a closed Tiered or one not built by NewTiered.
func (t *Tiered) usable() error {
	if t == nil || t.local == nil {
		return fmt.Errorf("%w: Tiered store not built by NewTiered", ErrClosed)
	}
	if t.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Get returns a copy of the value under key (the caller owns it), from the
// local copy or the remote, as described on [Tiered].
func (t *Tiered) Get(ctx context.Context, key string) ([]byte, error) {
	r, err := t.get(ctx, key, false, time.Time{})
	return r.owned(), err
}

// GetTTL is Get that also returns the remaining ttl of the copy returned: the
// remote's when it came from a remote that is a [TTLGetter], the local
// copy's otherwise; 0 means no expiry. A value from a remote that is not a
// TTLGetter, with a coherence of 0, has no known ttl: it is reported as 1ns.
func (t *Tiered) GetTTL(ctx context.Context, key string) ([]byte, time.Duration, error) {
	r, err := t.get(ctx, key, true, time.Time{})
	return r.owned(), r.ttl, err
}

// GetDecoded is Get followed by d.Decode of the value, as described on
// [decoded.Getter]: the local copy's bytes are lent to d, not copied, and
// what d decodes is kept with the local copy, so that later calls answered
// by that copy skip both the copy and the decoding. A value that did not
// come from (or go into) the local tier is decoded every time. now is the
// caller's reading of time.Now, taken just before, or the zero Time; a
// Tiered built without [WithClock] uses it for its coherence window
// instead of reading the clock again. It panics if d is nil or not
// comparable.
func (t *Tiered) GetDecoded(ctx context.Context, key string, d decoded.Decoder, now time.Time) (any, error) {
	checkDecoder(d)
	r, err := t.get(ctx, key, false, now)
	if err != nil {
		return nil, err
	}
	if r.local {
		return t.local.decode(key, r.it, d)
	}
	v, _, err := d.Decode(r.it.value)
	return v, err
}

// read is what Tiered.get found.
type read struct {
	it    item          // it.value is the value read
	local bool          // it is (a version of) the local copy stored under the key: it.value is shared
	fresh bool          // it.value came from the remote and is not stored locally: the caller owns it
	ttl   time.Duration // when asked for
}

// owned returns the value read as the caller's own: a copy of a shared one.
func (r read) owned() []byte {
	switch {
	case r.fresh:
		return r.it.value
	case r.local:
		return clone(r.it.value)
	}
	return nil
}

// get reads key: the local copy while it is coherent, else the remote's
// value. now is the caller's reading of time.Now or the zero Time (see
// [decoded.Getter]).
func (t *Tiered) get(ctx context.Context, key string, wantTTL bool, now time.Time) (read, error) {
	if err := t.usable(); err != nil {
		return read{}, err
	}
	if err := checkKey(key, t.local.maxKeyBytes); err != nil {
		return read{}, err
	}
	checkNow := t.nowFrom(now).UnixNano()
	local, haveLocal := t.local.getItem(key)
	if haveLocal && t.coherent(local, checkNow) {
		var ttl time.Duration
		if wantTTL {
			ttl = local.ttl(t.local.nowNano())
		}
		return read{it: local, local: true, ttl: ttl}, nil
	}

	evictions := t.evictions(key)
	value, ttl, err := t.remoteGet(ctx, key)
	memNow := t.local.nowNano()
	if haveLocal && !local.live(memNow) {
		haveLocal = false
	}
	switch {
	case err == nil:
		t.markUp(ctx)
		it := item{value: value, checkedAt: checkNow, gen: t.gen.Load()}
		switch {
		case t.remoteTTL != nil && ttl == 0:
			it.expiresAt = noExpiry
		case t.remoteTTL != nil:
			it.expiresAt = deadline(memNow, ttl)
		case haveLocal:
			it.expiresAt = local.expiresAt
		case t.coherence > 0:
			it.expiresAt = deadline(memNow, time.Duration(t.coherence))
		default:
			// No ttl to give a new copy: serve the remote's value only, and
			// claim no lifetime for it.
			return read{it: it, fresh: true, ttl: time.Nanosecond}, nil
		}
		if t.evictions(key) != evictions {
			// An invalidation of key was announced while the value was on
			// its way: it may be older than the delete. Serve it, keep it not.
			return read{it: it, fresh: true, ttl: it.ttl(memNow)}, nil
		}
		if t.local.setItem(key, it) != nil {
			// Too heavy for the in-process budget: drop an older copy too.
			t.local.deleteItem(key)
			return read{it: it, fresh: true, ttl: it.ttl(memNow)}, nil
		}
		return read{it: it, local: true, ttl: it.ttl(memNow)}, nil

	case errors.Is(err, ErrNotFound):
		t.markUp(ctx)
		// A copy without expiry came from a remote entry without one, which
		// Set cannot write back: the miss wins.
		if haveLocal && local.gen < t.lost.Load() && local.expiresAt != noExpiry {
			t.backfill(ctx, key, local, checkNow, memNow)
			return read{it: local, local: true, ttl: local.ttl(memNow)}, nil
		}
		if haveLocal {
			t.local.deleteItem(key)
		}
		return read{}, err

	case IsUnavailable(err):
		t.markDown(ctx, err)
	}
	if haveLocal {
		return read{it: local, local: true, ttl: local.ttl(memNow)}, nil
	}
	return read{}, fmt.Errorf("store: tiered get: %w", err)
}

// nowFrom returns the caller's reading of time.Now when t's clock is the
// system clock and the caller gave one, else t's clock.
func (t *Tiered) nowFrom(callers time.Time) time.Time {
	if callers.IsZero() || !t.sysClock {
		return t.now()
	}
	return callers
}

// coherent reports whether the local copy it may answer, at checkNow (t.now
// in Unix nanoseconds), without asking the remote: within the coherence
// window since it was last checked, or the broadcast's longer one. A clock
// stepped back makes the age negative: ask the remote then.
func (t *Tiered) coherent(it item, checkNow int64) bool {
	age := checkNow - it.checkedAt
	return age >= 0 && (age < t.coherence || t.longWindow(it.checkedAt, age))
}

// PeekDecoded returns what GetDecoded would return when it would answer
// from the local copy without asking the remote, and false when it would
// not (no copy, a copy past the coherence window, a decoding error); now
// is as for GetDecoded. It never waits and never asks the remote. It
// panics if d is nil or not comparable.
func (t *Tiered) PeekDecoded(key string, d decoded.Decoder, now time.Time) (any, bool) {
	checkDecoder(d)
	if t.usable() != nil || checkKey(key, t.local.maxKeyBytes) != nil {
		return nil, false
	}
	local, ok := t.local.getItem(key)
	if !ok || !t.coherent(local, t.nowFrom(now).UnixNano()) {
		return nil, false
	}
	v, err := t.local.decode(key, local, d)
	return v, err == nil
}

// remoteGet asks the remote, for the ttl too when it can tell it.
func (t *Tiered) remoteGet(ctx context.Context, key string) ([]byte, time.Duration, error) {
	if t.remoteTTL != nil {
		return t.remoteTTL.GetTTL(ctx, key)
	}
	v, err := t.remote.Get(ctx, key)
	return v, 0, err
}

// backfill writes the local copy it of key back to the remote in a goroutine
// owned by t, unless maxBackfills are already running or t is closing. It
// first marks the copy confirmed at the current generation, so that reads
// within the coherence window do not ask again; should the write fail with an
// outage, and the remote come back without its data, the copy is older than
// that recovery and is backfilled again.
func (t *Tiered) backfill(ctx context.Context, key string, it item, checkNow, memNow int64) {
	select {
	case t.slots <- struct{}{}:
	default:
		t.log.LogAttrs(ctx, slog.LevelDebug, "store: tiered: backfill dropped: too many running",
			slog.Int("max_backfills", cap(t.slots)))
		return
	}
	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		<-t.slots
		return
	}
	t.wg.Add(1)
	t.mu.Unlock()

	it.checkedAt, it.gen = checkNow, t.gen.Load()
	_ = t.local.setItem(key, it) // it fitted before
	ttl := it.ttl(memNow)
	// The write outlives the request: it keeps the request's values (trace
	// ids, the failure tracker) but not its cancellation. Its duration is
	// bounded by the remote (a Guard's op timeout); Close waits for it.
	bctx := context.WithoutCancel(ctx)
	go func() {
		defer t.wg.Done()
		defer func() { <-t.slots }()
		err := t.remote.Set(bctx, key, it.value, ttl)
		t.observe(bctx, err)
		if err != nil {
			t.log.LogAttrs(bctx, slog.LevelDebug, "store: tiered: backfill failed",
				slog.String("error", err.Error()))
		}
	}()
}

// Set stores value under key for ttl in the local tier and then in the
// remote, and returns the remote's error, wrapped. Bad input is refused
// before either is written.
func (t *Tiered) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := t.usable(); err != nil {
		return err
	}
	if err := checkSet(key, value, ttl, t.local.maxKeyBytes, t.local.maxValueBytes); err != nil {
		return err
	}
	gen := t.gen.Load()
	it := item{
		value:     clone(value),
		expiresAt: deadline(t.local.nowNano(), ttl),
		checkedAt: t.now().UnixNano(),
		gen:       gen,
	}
	stored := t.local.setItem(key, it) == nil
	if !stored {
		t.local.deleteItem(key) // too heavy: an older copy must not linger
	}
	err := t.remote.Set(ctx, key, value, ttl)
	t.observe(ctx, err)
	if err != nil {
		return fmt.Errorf("store: tiered set: %w", err)
	}
	if now := t.gen.Load(); stored && now != gen {
		// This write is what showed the remote back: the copy is in the
		// remote, so it must not look older than the recovery.
		it.gen = now
		_ = t.local.setItem(key, it)
	}
	return nil
}

// Delete removes key from the local tier and then from the remote, and
// returns the remote's error, wrapped. Deleting a missing key is not an
// error.
func (t *Tiered) Delete(ctx context.Context, key string) error {
	if err := t.usable(); err != nil {
		return err
	}
	if err := checkKey(key, t.local.maxKeyBytes); err != nil {
		return err
	}
	t.evict(key) // and a remote read on its way is not kept
	err := t.remote.Delete(ctx, key)
	t.observe(ctx, err)
	if err != nil {
		return fmt.Errorf("store: tiered delete: %w", err)
	}
	return nil
}

// Ping pings the remote when it is a [Pinger] and returns its error; it
// returns nil for a remote that is not.
func (t *Tiered) Ping(ctx context.Context) error {
	if err := t.usable(); err != nil {
		return err
	}
	p, ok := t.remote.(Pinger)
	if !ok {
		return nil
	}
	err := p.Ping(ctx)
	t.observe(ctx, err)
	return err
}

// Close stops new backfills and waits for the running ones. It closes
// neither tier. It is safe to call more than once; it always returns nil.
func (t *Tiered) Close() error {
	if t == nil || t.local == nil {
		return nil
	}
	t.mu.Lock()
	closing := !t.closed.Swap(true)
	t.mu.Unlock()
	if closing && t.bc.b != nil {
		t.bc.b.unlisten(t)
	}
	t.wg.Wait()
	return nil
}

// observe records what a remote call's result says about the remote's
// availability.
func (t *Tiered) observe(ctx context.Context, err error) {
	switch {
	case err == nil, errors.Is(err, ErrNotFound):
		t.markUp(ctx)
	case IsUnavailable(err):
		t.markDown(ctx, err)
	}
}

// markDown records that the remote is unavailable.
func (t *Tiered) markDown(ctx context.Context, err error) {
	if !t.down.Load() && t.down.CompareAndSwap(false, true) {
		t.flips.Add(1)
	}
	t.logState(ctx, err)
}

// markUp records that the remote answered. After an outage it starts a new
// generation and checks the epoch marker to learn whether the remote kept
// its data; a pending check, the first one and the periodic one also run
// here.
func (t *Tiered) markUp(ctx context.Context) {
	if t.down.Load() && t.down.CompareAndSwap(true, false) {
		t.gen.Add(1)
		t.recovered.Store(true)
		t.flips.Add(1)
	}
	t.logState(ctx, nil)
	now := t.now().UnixNano()
	if !since(now, t.throttledAt.Load(), flapInterval) {
		return
	}
	if t.epochDue(now) {
		t.checkEpoch(ctx, now)
	}
}

// epochDue reports whether the epoch marker is to be checked: after a
// recovery; flapInterval after it was written or adopted, until a check
// finds it again; and every epochRefresh, to rewrite it.
func (t *Tiered) epochDue(now int64) bool {
	if t.recovered.Load() {
		return true
	}
	d := epochRefresh
	if !t.epochSure.Load() {
		d = flapInterval
	}
	return since(now, t.writtenAt.Load(), d)
}

const (
	// epochKey is the remote key of the epoch marker.
	epochKey = "\x00failsoft-tiered-epoch"
	// epochTTL is the marker's ttl; epochRefresh is how often it is read and
	// rewritten, well within it.
	epochTTL     = 30 * 24 * time.Hour
	epochRefresh = 7 * 24 * time.Hour
	// flapInterval bounds how often the marker is checked after a recovery
	// or a failed check, and how often each state change is logged.
	flapInterval = 5 * time.Second
	// noTime is a time in t.now nanoseconds that never was.
	noTime = math.MinInt64
)

// since reports whether at least d has passed from at to now: true when at
// is noTime, and when the clock was stepped back before at.
func since(now, at int64, d time.Duration) bool {
	return at == noTime || now < at || now-at >= int64(d)
}

// checkEpoch reads the epoch marker, as described on [Tiered]; when a
// recovery is pending and the marker shows that the remote lost its data,
// it makes the copies older than that recovery backfill candidates. It
// writes the marker when there is none, when it adopts another store's
// token, and every epochRefresh. One check runs at a time; a call that
// finds one running goes on without it.
func (t *Tiered) checkEpoch(ctx context.Context, now int64) {
	if !t.epochMu.TryLock() {
		return
	}
	defer t.epochMu.Unlock()
	// Read the flags again under the lock: another check may just have run.
	if !since(now, t.throttledAt.Load(), flapInterval) {
		return
	}
	if !t.epochDue(now) {
		return
	}
	recovery := t.recovered.Swap(false)
	gen := t.gen.Load() // the recovery being checked, or a later one
	if recovery {
		t.throttledAt.Store(now)
	}
	v, err := t.remote.Get(ctx, epochKey)
	if err != nil && !errors.Is(err, ErrNotFound) {
		if recovery {
			t.recovered.Store(true)
		}
		t.throttledAt.Store(now)
		t.log.LogAttrs(ctx, slog.LevelDebug, "store: tiered: epoch marker read failed: no backfill",
			slog.String("error", err.Error()))
		return
	}
	token := string(v)
	var lost, write bool
	switch {
	case err != nil || token == "":
		// No marker: a new remote, or one that lost its data.
		token, lost, write = rand.Text(), true, true
	case token == t.epoch:
		// The remote kept its data.
		t.epochSure.Store(true)
		write = since(now, t.writtenAt.Load(), epochRefresh)
	default:
		// Another store's token: written after a restart by a replica that
		// saw it first. Unless this store's own token was never found here
		// since it wrote or adopted it: others may have written theirs at
		// the same time.
		lost, write = t.epochSure.Load(), true
		t.epoch = token
		t.epochSure.Store(false)
	}
	if recovery && lost {
		t.lost.Store(gen)
		t.log.LogAttrs(ctx, slog.LevelInfo, "store: tiered: remote store came back without its data, backfilling in-process copies",
			slog.Uint64("generation", gen))
	}
	if !write {
		return
	}
	if err := t.remote.Set(ctx, epochKey, []byte(token), epochTTL); err != nil {
		t.throttledAt.Store(now) // written by the next check
		t.log.LogAttrs(ctx, slog.LevelDebug, "store: tiered: epoch marker write failed",
			slog.String("error", err.Error()))
		return
	}
	t.writtenAt.Store(now)
	if token != t.epoch {
		t.epoch = token
		t.epochSure.Store(false)
	}
}

// logState logs the remote's state if it is not the one last logged, unless
// that state was logged less than flapInterval ago; err is the outage just
// seen, nil from a success.
func (t *Tiered) logState(ctx context.Context, err error) {
	if t.down.Load() == t.loggedDown.Load() || !t.logMu.TryLock() {
		return
	}
	defer t.logMu.Unlock()
	down := t.down.Load()
	if down == t.loggedDown.Load() {
		return
	}
	dir := 0
	if down {
		dir = 1
	}
	now := t.now().UnixNano()
	if !since(now, t.loggedAt[dir], flapInterval) {
		return
	}
	t.loggedAt[dir] = now
	t.loggedDown.Store(down)
	attrs := []slog.Attr{slog.Int64("transitions", t.flips.Swap(0))}
	if !down {
		t.log.LogAttrs(ctx, slog.LevelInfo, "store: tiered: remote store available again",
			append(attrs, slog.Uint64("generation", t.gen.Load()))...)
		return
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	t.log.LogAttrs(ctx, slog.LevelWarn, "store: tiered: remote store unavailable, serving in-process copies", attrs...)
}
