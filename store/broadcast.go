package store

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Broadcast receives the invalidations that every replica's [Redis] store
// publishes ([WithInvalidationChannel]) and drops the in-process copies of
// the keys named from the [Tiered] stores that listen to it
// ([WithBroadcast]), so that a purge on one replica reaches the others
// within a round trip instead of a coherence window.
//
// It subscribes with SUBSCRIBE, or SSUBSCRIBE (sharded pub/sub) on a
// Cluster client, on a connection of its own, from one goroutine that it
// owns: the goroutine reconnects with a jittered backoff (50 ms to 2 s)
// after any failure, and pings the server when it has heard nothing for a
// second, so that a hung server is noticed within about two. It never
// blocks a request and never goes through a [Guard], so it never trips a
// breaker: the client must not carry a [Hook] either (a subscription's
// blocking reads would count as failures).
//
// Pub/sub delivers at most once: what is published while the subscription
// is down is lost. So the listeners are told when the subscription is
// confirmed and when it is lost: a [Tiered] keeps its copies for the long
// window only while it is confirmed, and only those confirmed against the
// remote after it was.
//
// A Broadcast is safe for concurrent use. The zero value is not usable:
// build one with [NewBroadcast]. It does not own the client: Close stops the
// goroutine and closes the subscription, and the caller closes the client
// after it.
type Broadcast struct {
	client  redis.UniversalClient
	channel string
	log     *slog.Logger

	mu        sync.Mutex
	listeners []listener
	ps        *redis.PubSub // the current subscription, nil between them

	up                   atomic.Bool
	since                atomic.Int64 // time.Now of the last change of up, in Unix nanoseconds
	received, reconnects atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// listener is what a Broadcast tells: a [Tiered].
type listener interface {
	// evict drops the in-process copy of key.
	evict(key string)
	// subscribed says that the subscription was confirmed (up) or lost.
	subscribed(up bool)
}

// BroadcastStats is a snapshot of a [Broadcast]'s state and counters.
type BroadcastStats struct {
	Subscribed bool      // the subscription is confirmed now
	Since      time.Time // when Subscribed last changed (construction counts)
	Received   uint64    // invalidations received
	Reconnects uint64    // subscriptions lost
}

// Timing of a Broadcast's subscription.
const (
	broadcastPing       = time.Second
	broadcastMinBackoff = 50 * time.Millisecond
	broadcastMaxBackoff = 2 * time.Second
)

// NewBroadcast subscribes to channel through client, a *redis.Client (also
// a Sentinel one) or a *redis.ClusterClient, and returns at once: the
// subscription is made in the background (see [Broadcast]). Its only
// option is [WithLogger] (default slog.Default()); a nil client, an empty
// channel, a nil option or a *redis.Ring is an error.
func NewBroadcast(client redis.UniversalClient, channel string, opts ...BroadcastOption) (*Broadcast, error) {
	if isNil(client) {
		return nil, errors.New("store: NewBroadcast: nil redis client")
	}
	if _, ok := client.(*redis.Ring); ok {
		return nil, errors.New("store: NewBroadcast: a *redis.Ring cannot subscribe to one channel")
	}
	if channel == "" {
		return nil, errors.New("store: NewBroadcast: empty channel")
	}
	var c broadcastConfig
	for _, opt := range opts {
		if opt == nil {
			return nil, errNilOption("NewBroadcast")
		}
		opt.applyBroadcast(&c)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	b := &Broadcast{client: client, channel: channel, log: c.logger, done: make(chan struct{})}
	b.since.Store(time.Now().UnixNano())
	b.ctx, b.cancel = context.WithCancel(context.Background())
	go b.run()
	return b, nil
}

// Subscribed reports whether the subscription is confirmed now.
func (b *Broadcast) Subscribed() bool { return b != nil && b.up.Load() }

// Channel returns the channel subscribed to.
func (b *Broadcast) Channel() string {
	if b == nil {
		return ""
	}
	return b.channel
}

// Stats returns a snapshot of the state and counters.
func (b *Broadcast) Stats() BroadcastStats {
	if b == nil {
		return BroadcastStats{}
	}
	return BroadcastStats{
		Subscribed: b.up.Load(),
		Since:      time.Unix(0, b.since.Load()),
		Received:   b.received.Load(),
		Reconnects: b.reconnects.Load(),
	}
}

// Close stops the subscription and waits for its goroutine; listeners are
// told it is lost. It does not close the client. It is safe to call more
// than once; it returns nil.
func (b *Broadcast) Close() error {
	if b == nil || b.cancel == nil {
		return nil
	}
	b.once.Do(func() {
		b.cancel()
		b.mu.Lock()
		if b.ps != nil {
			_ = b.ps.Close() // ends a blocked read at once
		}
		b.mu.Unlock()
		<-b.done
	})
	return nil
}

// listen adds l, and tells it the subscription's state.
func (b *Broadcast) listen(l listener) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.listeners = append(b.listeners, l)
	l.subscribed(b.up.Load())
}

// unlisten removes l.
func (b *Broadcast) unlisten(l listener) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, x := range b.listeners {
		if x == l {
			b.listeners = append(b.listeners[:i:i], b.listeners[i+1:]...)
			return
		}
	}
}

// setUp records the subscription's state and tells the listeners of a
// change; the lock orders it against listen.
func (b *Broadcast) setUp(up bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.up.Swap(up) == up {
		return
	}
	b.since.Store(time.Now().UnixNano())
	for _, l := range b.listeners {
		l.subscribed(up)
	}
	if !up {
		b.reconnects.Add(1)
	}
}

// deliver hands one invalidated key to the listeners.
func (b *Broadcast) deliver(key string) {
	b.mu.Lock()
	ls := b.listeners
	b.mu.Unlock()
	for _, l := range ls {
		l.evict(key)
	}
	b.received.Add(1) // after: a count seen means the copies are gone
}

// run subscribes until Close, again after each failure.
func (b *Broadcast) run() {
	defer close(b.done)
	backoff := broadcastMinBackoff
	var lastErr string
	for {
		confirmed, err := b.session()
		b.setUp(false)
		if b.ctx.Err() != nil {
			return
		}
		if confirmed {
			backoff = broadcastMinBackoff
		}
		if msg := errString(err); msg != lastErr || confirmed {
			lastErr = msg
			b.log.LogAttrs(b.ctx, slog.LevelWarn, "store: broadcast: subscription lost, reconnecting",
				slog.String("channel", b.channel), slog.String("error", msg))
		}
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-b.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, broadcastMaxBackoff)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// session subscribes once and receives until the connection fails or Close;
// it reports whether the subscription was confirmed.
func (b *Broadcast) session() (confirmed bool, err error) {
	var ps *redis.PubSub
	switch c := b.client.(type) {
	case *redis.ClusterClient:
		ps = c.SSubscribe(b.ctx, b.channel)
	default:
		ps = b.client.Subscribe(b.ctx, b.channel)
	}
	b.mu.Lock()
	if b.ctx.Err() != nil {
		b.mu.Unlock()
		_ = ps.Close()
		return false, nil
	}
	b.ps = ps
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.ps = nil
		b.mu.Unlock()
		_ = ps.Close()
	}()

	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(b.ctx, broadcastPing)
		if b.ctx.Err() != nil {
			return confirmed, nil
		}
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() || pinged {
				return confirmed, err
			}
			// Nothing heard for a while: a hung server does not answer.
			if err := ps.Ping(b.ctx); err != nil {
				return confirmed, err
			}
			pinged = true
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			switch m.Kind {
			case "subscribe", "ssubscribe":
				confirmed = true
				b.setUp(true)
			default: // unsubscribed by the server: a Cluster slot moved
				return confirmed, errors.New("unsubscribed by the server")
			}
		case *redis.Message:
			b.deliver(m.Payload)
		}
	}
}
