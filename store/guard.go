package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// State is a breaker's state.
type State int

const (
	// StateClosed lets every call through.
	StateClosed State = iota
	// StateHalfOpen lets a limited number of probes through.
	StateHalfOpen
	// StateOpen refuses every call at once with ErrUnavailable.
	StateOpen
)

// String returns "closed", "half-open" or "open".
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateHalfOpen:
		return "half-open"
	case StateOpen:
		return "open"
	}
	return "unknown"
}

// BreakerStats is a snapshot of a guard's breaker and call counters, as
// returned by [Guard.Stats].
type BreakerStats struct {
	Name       string
	State      State
	Since      time.Time     // when State was entered (construction time at first), by the guard's clock
	RetryAfter time.Duration // see [Guard.RetryAfter]
	// Counts of the breaker's current window (cleared on each state
	// change), of the calls it was told about: while it is closed, calls
	// pass without asking it and it is told only of failures and of the
	// first success after them, which ends their run (see [Guard]).
	Requests             uint32
	ConsecutiveFailures  uint32
	ConsecutiveSuccesses uint32
	// Lifetime counters.
	Calls    uint64 // calls that reached the wrapped store
	Failures uint64 // outage errors
	Timeouts uint64 // calls cut off by the op timeout
	Rejected uint64 // calls refused without trying (open breaker, in-flight limit)
	Trips    uint64 // transitions to open
	// InFlight is how many calls are running in the wrapped store right now,
	// including calls whose callers stopped waiting at the op timeout.
	InFlight int
}

// Guard wraps a [Store] with a circuit breaker and an operation timeout, so
// that no call waits on the store longer than the op timeout and, while the
// breaker is open, no call waits at all.
//
// Unless the store ends its calls by their deadline by itself (see below),
// every call runs the wrapped store on its own goroutine with a context
// derived from the caller's plus the op timeout; the caller waits for the
// result or the deadline, whichever comes first, so the bound holds even
// when the store ignores its context (as go-redis does for socket reads by
// default). A call that outlives its op timeout is abandoned, not stopped: it
// keeps running until the backend answers or the client's own timeouts fire,
// and it keeps its in-flight slot until then ([WithMaxInFlight]).
//
// A store that ends every call by its context's deadline by itself needs no
// such goroutine: a [Redis] store over a *redis.Client built with
// ContextTimeoutEnabled and maintenance notifications off (not a Sentinel
// client, nor one with user callbacks; see [NewRedis] for the list). Its calls
// run on the caller's goroutine, with the caller's context values and a
// deadline that the calls starting within 1/32 of the op timeout of each
// other share (so a call may have up to that much less than the op timeout,
// never more), which saves a goroutine and a timer per call. The caller's
// cancellation is not passed on to such a call: it ends when Redis answers
// or at the deadline, and does not tear down a connection mid-reply (a
// caller whose own deadline comes before the op timeout's gets a context
// derived from its own instead, and one already gone gets no call). Such a
// client must have no hook that blocks past the context's deadline.
//
// The breaker counts only outages ([Class.Outage]) as failures: a miss, bad
// input and a command error are successes; a call whose caller's own context
// ended (cancelled, or its own deadline expired) counts as neither. The
// guard's own op timeout is a failure ([ClassTimeout]). While the breaker is
// open, calls fail at once with an error wrapping [ErrUnavailable].
//
// Errors: the wrapped store's errors are returned as they are (a miss stays
// [ErrNotFound]); a call cut off by the op timeout returns an error that
// wraps context.DeadlineExceeded ([ClassTimeout]) and reads "store: <name>:
// <op>: timed out after 100ms"; a call whose caller's context ended first
// returns that context's error, wrapped; refusals wrap [ErrUnavailable]
// (and gobreaker's ErrOpenState or ErrTooManyRequests) or, after Close,
// [ErrClosed]. A panic in the wrapped store is returned as an error (a
// failure), since no caller could recover it on the call's goroutine.
//
// Every outage a call sees, including an open-breaker refusal, is recorded
// in the caller's context with [RecordFailure].
//
// While the breaker is closed, calls pass without taking its lock (a closed
// breaker admits every call), and it is told only what it trips on: each
// failure, and the first success after failures. Calls through one guard
// do not serialize on the breaker while Redis is healthy.
//
// State changes are logged once each (Warn when the breaker opens, Info when
// it half-opens or closes) and passed to the [WithOnStateChange] callback, in
// order, on the goroutine of a call or method that caused or observed the
// change, never with a lock of the guard or the breaker held.
//
// A Guard is safe for concurrent use. The zero value is not usable: build
// one with [NewGuard]; a Guard not built by it refuses every call with an
// error wrapping [ErrClosed] and reports [StateOpen].
type Guard struct {
	inner Store
	opts  guardConfig
	cb    *gobreaker.TwoStepCircuitBreaker[struct{}]
	errs  [numOps]opErrors
	calls sync.Pool // of *call

	// inline: the wrapped store ends each call by its context's deadline
	// (see boundsCalls), so calls run on the caller's goroutine under a
	// deadline from window.
	inline bool
	window atomic.Pointer[deadlineWindow]

	closed  atomic.Bool
	closeMu sync.Mutex    // serialises Close
	idle    chan struct{} // signalled when inflight drops to 0 after Close

	// closedAt and unreset are the breaker's closed state as calls see it
	// without taking its lock (see allow): closedAt is the number of state
	// changes so far, shifted left by one, with the low bit set while the
	// breaker is closed; unreset counts the failures told to the breaker
	// since it was last told a success. Every call reads them; state
	// changes and failures write them.
	closedAt atomic.Uint64
	unreset  atomic.Int64

	// Every call writes inflight and nCalls: each has a cache line of its
	// own, so that calls on other CPUs do not stall on the fields they
	// only read, above.
	_        cacheLinePad
	inflight atomic.Int64
	_        cacheLinePad
	nCalls   atomic.Uint64
	_        cacheLinePad

	nFailures, nTimeouts, nRejected, nTrips atomic.Uint64
	lastClass                               atomic.Int32 // class of the last outage seen

	// State changes, queued by the breaker's callback (under its lock) and
	// delivered by deliver outside it.
	pending    atomic.Int32
	mu         sync.Mutex // guards queue and delivering
	queue      []transition
	delivering bool
	stamp      atomic.Pointer[stateStamp] // last delivered state and when it was entered
}

var (
	_ Store     = (*Guard)(nil)
	_ TTLGetter = (*Guard)(nil)
	_ Pinger    = (*Guard)(nil)
)

// transition is one breaker state change awaiting delivery.
type transition struct{ from, to State }

// stateStamp records a delivered state and when (by the guard's clock) it
// was entered.
type stateStamp struct {
	state State
	at    time.Time
}

// op identifies a guarded operation; it indexes Guard.errs and opNames.
type op uint8

const (
	opGet op = iota
	opGetTTL
	opSet
	opDelete
	opPing
	opHook // a command or pipeline through a Hook: messages name no op
	numOps
)

// opNames are the op names given to the observer and used in errors.
var opNames = [numOps]string{"get", "get", "set", "delete", "ping", ""}

// opErrors are an op's refusal and timeout errors, built once per guard so
// that the fast paths allocate nothing.
type opErrors struct {
	timeout, open, busy, full, closed, spent error
}

// guardError is an error with a fixed message wrapping one or more errors.
// It has no Timeout method: go-redis retries any error that has one (even
// when it returns false), and a refusal must not be retried.
type guardError struct {
	msg     string
	wrapped []error
}

func (e *guardError) Error() string   { return e.msg }
func (e *guardError) Unwrap() []error { return e.wrapped }

// guardTimeout is the error of a call cut off by the op timeout.
type guardTimeout struct{ guardError }

// Timeout reports true, as a net.Error timeout does.
func (e *guardTimeout) Timeout() bool { return true }

// Sentinels handed to the breaker's done callback: the guard classifies
// results itself.
var (
	errBreakerFailure  = errors.New("store: breaker failure")
	errBreakerExcluded = errors.New("store: breaker excluded")
)

// NewGuard wraps s with a circuit breaker and an operation timeout.
//
// Its options are [WithName] (default "redis"), [WithOpTimeout] (100 ms),
// [WithFailureThreshold] (5 consecutive outage errors trip it),
// [WithOpenPeriod] (5 s open), [WithHalfOpenRequests] (1),
// [WithMaxInFlight] (1024), [WithLogger] (slog.Default()), [WithClock]
// (time.Now; used for [Guard.RetryAfter] and [BreakerStats].Since — the
// breaker itself keeps real time), [WithOnStateChange] and [WithObserver]
// (none). It returns an error for a nil store, a nil option or a bad value.
// The guard does not own s: [Guard.Close] does not close it.
func NewGuard(s Store, opts ...GuardOption) (*Guard, error) {
	if s == nil {
		return nil, errors.New("store: NewGuard: nil Store")
	}
	c, err := newGuardConfig("NewGuard", opts)
	if err != nil {
		return nil, err
	}
	return newGuard(s, c), nil
}

// newGuard wraps s, which must not be nil, with the validated settings o.
func newGuard(s Store, o guardConfig) *Guard {
	g := &Guard{inner: s, opts: o, idle: make(chan struct{}, 1)}
	if b, ok := s.(callBounder); ok {
		g.inline = b.boundsCalls()
	}
	for i := range g.errs {
		g.errs[i] = g.buildErrors(opNames[i])
	}
	g.calls.New = func() any { return &call{done: make(chan *call, 1)} }
	g.stamp.Store(&stateStamp{state: StateClosed, at: o.now()})
	g.closedAt.Store(1) // no state change yet, closed
	threshold := o.failureThreshold
	g.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:          o.name,
		MaxRequests:   o.halfOpenRequests,
		Timeout:       o.openPeriod,
		ReadyToTrip:   func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= threshold },
		OnStateChange: g.onStateChange,
		IsSuccessful:  func(err error) bool { return err == nil },
		IsExcluded:    func(err error) bool { return err == errBreakerExcluded },
	})
	return g
}

func (g *Guard) buildErrors(op string) opErrors {
	prefix := "store: " + g.opts.name + ": "
	if op != "" {
		prefix += op + ": "
	}
	return opErrors{
		timeout: &guardTimeout{guardError{
			msg:     prefix + "timed out after " + g.opts.opTimeout.String(),
			wrapped: []error{context.DeadlineExceeded},
		}},
		open: &guardError{
			msg:     prefix + "unavailable: circuit breaker is open",
			wrapped: []error{ErrUnavailable, gobreaker.ErrOpenState},
		},
		busy: &guardError{
			msg:     prefix + "unavailable: circuit breaker is half-open and its probes are in flight",
			wrapped: []error{ErrUnavailable, gobreaker.ErrTooManyRequests},
		},
		full: &guardError{
			msg:     fmt.Sprintf("%sunavailable: %d calls in flight", prefix, g.opts.maxInFlight),
			wrapped: []error{ErrUnavailable},
		},
		closed: &guardError{
			msg:     prefix + "guard closed",
			wrapped: []error{ErrClosed},
		},
		spent: &guardError{
			msg:     prefix + "unavailable: this request already waited out the op timeout",
			wrapped: []error{ErrUnavailable},
		},
	}
}

// call carries one guarded operation to the goroutine that runs it and its
// result back. Calls are pooled: the caller returns one to the pool only
// after receiving it back, when the goroutine no longer touches it.
type call struct {
	op    op
	key   string
	value []byte
	ttl   time.Duration

	val  []byte
	rttl time.Duration
	err  error

	done chan *call // buffered: the goroutine never blocks on it
}

// Get returns the value stored under key, as the wrapped store's Get, within
// the op timeout. It returns an error wrapping [ErrNotFound] for a miss, one
// wrapping [ErrUnavailable] at once while the breaker is open or too many
// calls are in flight, one wrapping context.DeadlineExceeded (classified
// [ClassTimeout]) when the op timeout expires first, and [ErrClosed] after
// Close.
func (g *Guard) Get(ctx context.Context, key string) ([]byte, error) {
	c := g.do(ctx, opGet, key, nil, 0)
	return c.val, c.err
}

// GetTTL is Get that also returns the entry's remaining time to live, under
// the same rules. When the wrapped store is not a [TTLGetter], it calls Get
// and reports a ttl of 0.
func (g *Guard) GetTTL(ctx context.Context, key string) ([]byte, time.Duration, error) {
	c := g.do(ctx, opGetTTL, key, nil, 0)
	return c.val, c.rttl, c.err
}

// Set stores value under key for ttl through the wrapped store, under the
// same rules as Get. The wrapped store gets a copy of value, since a call
// cut off by the op timeout may still be writing it after Set returns and
// the caller owns value again from then on; a store whose calls run on the
// caller's goroutine (see [Guard]) gets value itself.
func (g *Guard) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if !g.usable() || !g.inline {
		value = bytes.Clone(value)
	}
	return g.do(ctx, opSet, key, value, ttl).err
}

// Delete removes key through the wrapped store, under the same rules as Get.
func (g *Guard) Delete(ctx context.Context, key string) error {
	return g.do(ctx, opDelete, key, nil, 0).err
}

// Ping checks the wrapped store. When it is a [Pinger], the ping goes
// through the breaker and the op timeout like any other call (and counts
// like one). When it is not, Ping has nothing to ask: it returns the
// breaker's verdict without counting a call — an error wrapping
// [ErrUnavailable] while the breaker is open, [ErrClosed] after Close, nil
// otherwise.
func (g *Guard) Ping(ctx context.Context) error {
	if !g.usable() {
		return errNotBuilt()
	}
	if _, ok := g.inner.(Pinger); ok {
		return g.do(ctx, opPing, "", nil, 0).err
	}
	if g.closed.Load() {
		return g.errs[opPing].closed
	}
	if g.State() == StateOpen {
		return g.errs[opPing].open
	}
	return nil
}

// result is what do returns: a copy of the call's results, so that the call
// itself can go back to the pool.
type result struct {
	val  []byte
	rttl time.Duration
	err  error
}

// usable reports whether g was built by NewGuard.
func (g *Guard) usable() bool { return g != nil && g.cb != nil }

// errNotBuilt is the error of a Guard not built by NewGuard.
func errNotBuilt() error { return fmt.Errorf("%w: Guard not built by NewGuard", ErrClosed) }

// do runs one guarded operation.
func (g *Guard) do(parent context.Context, o op, key string, value []byte, ttl time.Duration) result {
	if !g.usable() {
		return result{err: errNotBuilt()}
	}
	var start time.Time
	if g.opts.observer != nil {
		start = time.Now()
	}
	errs := &g.errs[o]
	if err := parent.Err(); err != nil {
		// The caller is gone already: nothing to ask the store, and nothing
		// to count for or against it (no call, no probe slot).
		if g.opts.observer != nil {
			g.opts.observer(g.opts.name, opNames[o], time.Since(start), ClassCanceled)
		}
		return result{err: fmt.Errorf("store: %s: %s: %w", g.opts.name, opNames[o], err)}
	}
	if budgetSpent(parent) {
		g.refused(parent, o, start, errs.spent)
		return result{err: errs.spent}
	}
	if err := g.acquire(errs); err != nil {
		g.refused(parent, o, start, err)
		return result{err: err}
	}
	t, err := g.allow(errs)
	if err != nil {
		g.release()
		g.refused(parent, o, start, err)
		return result{err: err}
	}
	g.nCalls.Add(1)

	var (
		ctx    context.Context
		cancel context.CancelFunc
		r      result
		cut    bool
	)
	if g.inline {
		ctx, cancel, r = g.runInline(parent, o, key, value, ttl)
	} else {
		ctx, cancel = context.WithTimeout(parent, g.opts.opTimeout)
		r, cut = g.runAside(ctx, o, key, value, ttl)
	}
	if cancel != nil {
		// After the result is classified by ctx; on the goroutine path it
		// also tells an abandoned call that nobody waits for it any more.
		defer cancel()
	}

	var class Class
	switch {
	case cut && parent.Err() != nil:
		// The caller's own context ended first: nothing to say about the store.
		class = ClassCanceled
		r.err = fmt.Errorf("store: %s: %s: %w", g.opts.name, opNames[o], parent.Err())
	case cut:
		class = ClassTimeout
		r.err = errs.timeout
	default:
		class = Classify(r.err)
		if !class.Outage() {
			break
		}
		// A socket timeout at a deadline can be seen a moment before the
		// context's timer marks it done: the clock decides.
		callerGone := parent.Err() != nil || expired(parent)
		switch {
		case g.inline && callerGone:
			// The store saw only the deadline: say why the caller's call ended.
			class = ClassCanceled
			err := parent.Err()
			if err == nil {
				err = context.DeadlineExceeded
			}
			r.err = fmt.Errorf("store: %s: %s: %w", g.opts.name, opNames[o], err)
		case callerGone:
			class = ClassCanceled // failed because the caller gave up
		case class == ClassTimeout && (ctx.Err() != nil || expired(ctx)) && (g.inline || errors.Is(r.err, context.DeadlineExceeded)):
			r.err = errs.timeout // the store gave up at our deadline: say so
		}
	}
	g.settle(parent, o, start, t, class, r.err)
	return r
}

// runAside runs one operation on a goroutine of its own and waits for its
// result or ctx's end, whichever comes first; cut reports that ctx ended
// first and the call was abandoned.
func (g *Guard) runAside(ctx context.Context, o op, key string, value []byte, ttl time.Duration) (r result, cut bool) {
	c := g.calls.Get().(*call)
	c.op, c.key, c.value, c.ttl = o, key, value, ttl
	go g.run(ctx, c)
	select {
	case <-c.done:
	case <-ctx.Done():
		select {
		case <-c.done: // the result and the deadline came together: take the result
		default:
			return result{}, true // the goroutine still owns c; it becomes garbage when it ends
		}
	}
	r = result{c.val, c.rttl, c.err}
	g.recycle(c)
	return r, false
}

// run executes c in the wrapped store and hands it back on c.done. It holds
// an in-flight slot until the store returns.
func (g *Guard) run(ctx context.Context, c *call) {
	defer g.release()
	defer func() {
		if p := recover(); p != nil {
			// A panicking store would otherwise crash the process from a
			// goroutine no caller can recover on: report it as a failure.
			c.val, c.rttl = nil, 0
			c.err = g.panicked(c.op, p)
			c.done <- c
		}
	}()
	c.val, c.rttl, c.err = g.exec(ctx, c.op, c.key, c.value, c.ttl)
	c.done <- c
}

// runInline runs one operation on the caller's goroutine, for a store that
// ends its calls by their context's deadline (see [callBounder]). The
// context it gets carries parent's values and a deadline at most the op
// timeout away (see deadline); it returns that context for the caller to
// classify the result, and the func that releases it when it is the call's
// own (nil for a shared window). The caller's cancellation is not passed on: the call
// ends when the store answers or at the deadline, and a connection is not
// torn down mid-reply because a client went away.
func (g *Guard) runInline(parent context.Context, o op, key string, value []byte, ttl time.Duration) (ctx context.Context, cancel context.CancelFunc, r result) {
	defer g.release()
	ctx, cancel = g.deadline(parent)
	defer func() {
		if p := recover(); p != nil {
			r = result{err: g.panicked(o, p)}
		}
	}()
	r.val, r.rttl, r.err = g.exec(ctx, o, key, value, ttl)
	return ctx, cancel, r
}

// expired reports whether ctx has a deadline that has passed.
func expired(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// exec calls the wrapped store for one operation.
func (g *Guard) exec(ctx context.Context, o op, key string, value []byte, ttl time.Duration) (val []byte, rttl time.Duration, err error) {
	switch o {
	case opGet:
		val, err = g.inner.Get(ctx, key)
	case opGetTTL:
		if tg, ok := g.inner.(TTLGetter); ok {
			val, rttl, err = tg.GetTTL(ctx, key)
		} else {
			val, err = g.inner.Get(ctx, key)
		}
	case opSet:
		err = g.inner.Set(ctx, key, value, ttl)
	case opDelete:
		err = g.inner.Delete(ctx, key)
	case opPing:
		err = g.inner.(Pinger).Ping(ctx)
	}
	return val, rttl, err
}

// panicked is the error of a call whose store panicked with p.
func (g *Guard) panicked(o op, p any) error {
	return fmt.Errorf("store: %s: %s: panic in wrapped store: %v", g.opts.name, opNames[o], p)
}

// callBounder is implemented by a store that may report that it ends every
// call by its context's deadline by itself ([Redis] over a client built
// with ContextTimeoutEnabled; see endsByDeadline). A [Guard] runs such a
// store's calls on the caller's goroutine, without a goroutine and a timer
// per call.
type callBounder interface{ boundsCalls() bool }

// deadlineWindow is a context whose deadline calls that start within
// windowSlack of its creation share.
type deadlineWindow struct {
	ctx     context.Context
	cancel  context.CancelFunc // never called: its timer ends it at its deadline
	created time.Time
}

// windowSlack is how much earlier than the op timeout a call that shares a
// deadline window may have to end: 1/32 of the op timeout (about 3 ms of the
// default 100 ms). A shared window costs one timer per windowSlack instead
// of one per call.
func (g *Guard) windowSlack() time.Duration { return g.opts.opTimeout / 32 }

// deadline returns the context of an inline call: parent's values, with a
// deadline between op timeout minus windowSlack and op timeout from now,
// shared with the calls that started around the same time, and Done closed
// at it. When parent's own deadline is earlier, the call gets a context of
// its own, derived from parent, and a cancel func to release it.
func (g *Guard) deadline(parent context.Context) (context.Context, context.CancelFunc) {
	now := time.Now()
	if d, ok := parent.Deadline(); ok && d.Before(now.Add(g.opts.opTimeout)) {
		return context.WithTimeout(parent, g.opts.opTimeout)
	}
	w := g.window.Load()
	if w == nil || now.Before(w.created) || now.Sub(w.created) > g.windowSlack() {
		ctx, cancel := context.WithDeadline(context.Background(), now.Add(g.opts.opTimeout))
		w = &deadlineWindow{ctx: ctx, cancel: cancel, created: now}
		g.window.Store(w)
	}
	return valuesOf{Context: w.ctx, values: parent}, nil
}

// valuesOf is a context with the deadline, Done and Err of the embedded one
// and the values of another.
type valuesOf struct {
	context.Context
	values context.Context
}

// Value returns the embedded context's value for key, else the values
// context's. The embedded one (derived from Background) holds no values of
// its own, only the context package's internal ones, which must come from
// it: they tie context.Cause and the contexts derived from this one to its
// Done, not to the caller's.
func (c valuesOf) Value(key any) any {
	if v := c.Context.Value(key); v != nil {
		return v
	}
	return c.values.Value(key)
}

// recycle returns a call, received back from its goroutine, to the pool.
func (g *Guard) recycle(c *call) {
	*c = call{done: c.done}
	g.calls.Put(c)
}

// acquire takes an in-flight slot, or returns the error refusing the call.
func (g *Guard) acquire(errs *opErrors) error {
	if g.closed.Load() {
		return errs.closed
	}
	if g.inflight.Add(1) > int64(g.opts.maxInFlight) {
		g.release()
		return errs.full
	}
	// Checked again after the increment: Close sets closed before it reads
	// inflight, so either Close waits for this call or this call sees closed.
	if g.closed.Load() {
		g.release()
		return errs.closed
	}
	return nil
}

// release gives back an in-flight slot.
func (g *Guard) release() {
	if g.inflight.Add(-1) == 0 && g.closed.Load() {
		select {
		case g.idle <- struct{}{}:
		default:
		}
	}
}

// cacheLinePad is a cache line's worth of padding: 128 bytes covers the
// 64-byte lines of amd64 with their adjacent-line prefetch, and the
// 128-byte lines of some arm64 CPUs.
type cacheLinePad [128]byte

// turn is a call's admission by the breaker, which settle reports the
// call's outcome to.
type turn struct {
	// done is the breaker's own turn (gobreaker's two-step Allow); nil for
	// a turn taken without asking it, while it was closed.
	done func(error)
	// closedAt is g.closedAt when a turn without done was taken.
	closedAt uint64
}

// allow gives a call its turn, mapping the breaker's refusals to errs.
// State changes the question caused are delivered before it returns.
//
// While the breaker is closed a call is admitted without asking it: a
// closed breaker admits every call, and asking takes its lock and reads
// the clock twice per call, which would serialize every call through the
// guard. Such a turn tells the breaker only what it trips on (see report):
// its failures, and a success that ends a run of failures.
func (g *Guard) allow(errs *opErrors) (turn, error) {
	if c := g.closedAt.Load(); c&1 == 1 {
		return turn{closedAt: c}, nil
	}
	done, err := g.cb.Allow()
	g.deliver()
	switch {
	case err == nil:
		return turn{done: done}, nil
	case errors.Is(err, gobreaker.ErrTooManyRequests):
		return turn{}, errs.busy
	default:
		return turn{}, errs.open
	}
}

// report tells the breaker a call's outcome: nil for a success,
// errBreakerFailure, or errBreakerExcluded for a call that does not count.
//
// A turn taken while the breaker was closed (no done) tells it nothing of
// an excluded call, nor of a success unless failures were told since the
// last success: the breaker trips on consecutive failures, which such a
// success leaves at zero. A failure, or a success that resets the run,
// takes a turn of the breaker now and reports through it, unless the
// breaker changed state since the call began: its outcome then belongs to
// an earlier state, which the breaker would ignore too.
func (g *Guard) report(t turn, outcome error) {
	if t.done != nil {
		t.done(outcome)
		return
	}
	switch {
	case outcome == errBreakerExcluded:
		return
	case outcome == nil && (g.unreset.Load() == 0 || g.unreset.Swap(0) == 0):
		return
	}
	if g.closedAt.Load() != t.closedAt {
		return
	}
	done, err := g.cb.Allow()
	if err != nil {
		return // no longer closed: another call's failure tripped it
	}
	if g.closedAt.Load() != t.closedAt {
		// The breaker changed state between the check and the turn: the
		// turn belongs to the new state; give it back uncounted.
		done(errBreakerExcluded)
		return
	}
	done(outcome)
	if outcome != nil {
		g.unreset.Add(1)
	}
}

// refused accounts for a call refused without trying.
func (g *Guard) refused(ctx context.Context, o op, start time.Time, err error) {
	g.refusedName(ctx, opNames[o], start, err)
}

func (g *Guard) refusedName(ctx context.Context, name string, start time.Time, err error) {
	g.nRejected.Add(1)
	RecordFailure(ctx, err)
	if g.opts.observer != nil {
		g.opts.observer(g.opts.name, name, time.Since(start), ClassOpen)
	}
}

// settle reports a call's outcome, of the given class, to the breaker, the
// counters, the caller's failure tracker and the observer.
func (g *Guard) settle(ctx context.Context, o op, start time.Time, t turn, class Class, err error) {
	g.settleName(ctx, opNames[o], start, t, class, err)
}

func (g *Guard) settleName(ctx context.Context, name string, start time.Time, t turn, class Class, err error) {
	switch {
	case class == ClassCanceled:
		g.report(t, errBreakerExcluded)
	case class.Outage():
		g.nFailures.Add(1)
		if class == ClassTimeout {
			g.nTimeouts.Add(1)
		}
		g.lastClass.Store(int32(class))
		g.report(t, errBreakerFailure)
		RecordFailure(ctx, err)
	default:
		g.report(t, nil)
	}
	g.deliver()
	if g.opts.observer != nil {
		g.opts.observer(g.opts.name, name, time.Since(start), class)
	}
}

// onStateChange is the breaker's callback. It runs with the breaker's lock
// held, so it only records the change for allow and queues it for deliver.
func (g *Guard) onStateChange(_ string, from, to gobreaker.State) {
	t := transition{from: fromBreaker(from), to: fromBreaker(to)}
	c := (g.closedAt.Load()>>1 + 1) << 1
	if to == gobreaker.StateClosed {
		g.unreset.Store(0) // a new state starts its counts at zero
		c |= 1
	}
	g.closedAt.Store(c)
	if t.to == StateOpen {
		g.nTrips.Add(1)
	}
	g.mu.Lock()
	g.queue = append(g.queue, t)
	g.pending.Add(1)
	g.mu.Unlock()
}

// deliver logs queued state changes and passes them to the callback, in
// order and once each. One goroutine delivers at a time; a call made while
// another delivers (including one made from the callback itself) returns at
// once, leaving its changes to the delivering goroutine.
func (g *Guard) deliver() {
	if g.pending.Load() == 0 {
		return
	}
	g.mu.Lock()
	if g.delivering {
		g.mu.Unlock()
		return
	}
	g.delivering = true
	for len(g.queue) > 0 {
		t := g.queue[0]
		g.queue = g.queue[1:]
		if len(g.queue) == 0 {
			g.queue = g.queue[:0:0]
		}
		g.pending.Add(-1)
		g.mu.Unlock()
		g.announce(t)
		g.mu.Lock()
	}
	g.delivering = false
	g.mu.Unlock()
}

// announce records, logs and reports one state change.
func (g *Guard) announce(t transition) {
	g.stamp.Store(&stateStamp{state: t.to, at: g.opts.now()})
	last := Class(g.lastClass.Load())
	attrs := []slog.Attr{
		slog.String("guard", g.opts.name),
		slog.String("from", t.from.String()),
		slog.String("to", t.to.String()),
		slog.String("last_error", last.String()),
	}
	ctx := context.Background() // a state change outlives the request that caused it
	switch t.to {
	case StateOpen:
		attrs = append(attrs, slog.Duration("retry_after", g.opts.openPeriod))
		g.opts.logger.LogAttrs(ctx, slog.LevelWarn, "store: circuit breaker opened", attrs...)
	case StateHalfOpen:
		g.opts.logger.LogAttrs(ctx, slog.LevelInfo, "store: circuit breaker half-open", attrs...)
	default:
		g.opts.logger.LogAttrs(ctx, slog.LevelInfo, "store: circuit breaker closed", attrs...)
	}
	if g.opts.onStateChange != nil {
		g.opts.onStateChange(g.opts.name, t.from, t.to)
	}
}

func fromBreaker(s gobreaker.State) State {
	switch s {
	case gobreaker.StateOpen:
		return StateOpen
	case gobreaker.StateHalfOpen:
		return StateHalfOpen
	}
	return StateClosed
}

// Name returns the guard's name ([WithName]).
func (g *Guard) Name() string {
	if g == nil {
		return ""
	}
	return g.opts.name
}

// State returns the breaker's state. An open breaker whose open period has
// passed reports [StateHalfOpen] (and the change is logged and reported
// then, if no call saw it first).
func (g *Guard) State() State {
	if !g.usable() {
		return StateOpen
	}
	s := fromBreaker(g.cb.State())
	g.deliver()
	return s
}

// RetryAfter returns how long the breaker stays open before it lets a probe
// through: the open period minus the time since it opened, by the guard's
// clock, never negative. It returns 0 unless the breaker is open.
func (g *Guard) RetryAfter() time.Duration {
	return g.retryAfter(g.State())
}

func (g *Guard) retryAfter(s State) time.Duration {
	if s != StateOpen || !g.usable() {
		return 0
	}
	st := g.stamp.Load()
	if st.state != StateOpen {
		// Opened, but another goroutine is still delivering the change.
		return g.opts.openPeriod
	}
	left := g.opts.openPeriod - g.opts.now().Sub(st.at)
	switch {
	case left < 0:
		return 0
	case left > g.opts.openPeriod:
		return g.opts.openPeriod // the clock went backwards
	}
	return left
}

// Stats returns a snapshot of the breaker and the guard's counters. Its
// fields are read one by one, not atomically together.
func (g *Guard) Stats() BreakerStats {
	if !g.usable() {
		return BreakerStats{Name: g.Name(), State: StateOpen}
	}
	s := g.State()
	counts := g.cb.Counts()
	return BreakerStats{
		Name:                 g.opts.name,
		State:                s,
		Since:                g.stamp.Load().at,
		RetryAfter:           g.retryAfter(s),
		Requests:             counts.Requests,
		ConsecutiveFailures:  counts.ConsecutiveFailures,
		ConsecutiveSuccesses: counts.ConsecutiveSuccesses,
		Calls:                g.nCalls.Load(),
		Failures:             g.nFailures.Load(),
		Timeouts:             g.nTimeouts.Load(),
		Rejected:             g.nRejected.Load(),
		Trips:                g.nTrips.Load(),
		InFlight:             int(max(g.inflight.Load(), 0)),
	}
}

// Close makes later calls fail with [ErrClosed] and waits for the calls
// still running in the wrapped store, including those whose callers stopped
// waiting at the op timeout. Those end when the backend answers or the
// client's own timeouts fire, which for a hung Redis may be seconds: close
// the client first to end them at once. (A guard that runs calls on the
// caller's goroutine has no abandoned calls: Close waits at most one op
// timeout.) Close does not close the wrapped store. It always returns nil;
// calling it again waits again.
func (g *Guard) Close() error {
	if !g.usable() {
		return nil
	}
	g.closeMu.Lock()
	defer g.closeMu.Unlock()
	g.closed.Store(true)
	for g.inflight.Load() > 0 {
		<-g.idle
	}
	return nil
}
