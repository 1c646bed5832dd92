// The Cache type: its construction, its lifetime and its parts.

package middleware

import (
	"errors"
	"hash/maphash"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/failsoft/failsoft/internal/decoded"
	"github.com/failsoft/failsoft/store"
)

// Cache is HTTP response cache middleware over a [store.Store], normally a
// [store.Tiered] over a [store.Guard] over Redis. It stores what the
// handler answers by the rules of RFC 9111 and RFC 5861, answers from the
// store while entries are fresh, and keeps answering with stale entries when
// the handler fails (5xx, panic, timeout) or while Redis is unavailable.
// See the package documentation for the rules.
//
// A Cache is safe for concurrent use and is meant to be shared: pass
// c.Handler to alice (alice.New(c.Handler)) or wrap a handler with it.
// It owns background goroutines (store writes, refreshes); Close waits for
// them. The zero value is not usable: build one with [New].
//
// Over a store that keeps decoded values in process ([decoded.Getter]:
// [store.Tiered], [store.Memory]), a hit answered by the in-process tier
// neither copies nor decodes the stored entry: every such hit shares one
// read-only decoded entry, and the response writer gets copies of its
// header values and the stored body bytes (which [io.Writer]'s contract
// forbids Write to modify).
type Cache struct {
	store store.Store
	// decoded is store as a decoded.Getter (an in-process tier that
	// keeps decoded entries), nil when it is not one; decoder is what it
	// decodes with.
	decoded decoded.Getter
	decoder decoded.Decoder
	o       options
	pol     policy
	log     cacheLog
	cs      cacheStatus // Cache-Status values for o.name

	flights   coalescer   // one handler call per key at a time
	bg        tasks       // every background goroutine, for Close to wait for
	refreshes refresher   // stale-while-revalidate
	w         writeBehind // store writes, read-your-writes and invalidations
	budget    *missBudget // WithMissBudget; nil when off
	primaries *keyMemo    // primary keys of recent key material

	closed atomic.Bool
	st     counters
}

// New returns a Cache that stores responses in s. It returns an error when s
// is nil or an option is nil or invalid. The caller keeps ownership of s: Close
// does not close it.
func New(s store.Store, opts ...Option) (*Cache, error) {
	if s == nil {
		return nil, errors.New("middleware: New: nil store")
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	c := &Cache{
		store: s,
		o:     o,
		pol: policy{
			DefaultTTL:   o.defaultTTL,
			StaleIfError: o.staleIfError,
			Statuses:     o.statuses,
			ServerErrors: o.serverErrors,
			Shared:       true,
			Now:          o.now,
		},
		log:       cacheLog{Logger: o.logger, now: o.now},
		cs:        newCacheStatus(o.name),
		refreshes: newRefresher(o.maxRefreshes, o.refreshTimeout),
		budget:    newMissBudget(o.missBudget, o.missBudgetWait, o.missBudgetMode),
		primaries: newKeyMemo(),
	}
	c.w = writeBehind{
		store:        s,
		bg:           &c.bg,
		st:           &c.st,
		log:          &c.log,
		now:          o.now,
		staleIfError: o.staleIfError,
		sem:          make(chan struct{}, o.maxPendingWrites),
		pending:      make(map[string]*entry),
		epochs:       epochs{seed: maphash.MakeSeed()},
	}
	if dg, ok := s.(decoded.Getter); ok {
		c.decoded, c.decoder = dg, entryDecoder{maxBody: o.maxBody}
	}
	return c, nil
}

// Handler returns next wrapped by the cache; it has alice's constructor
// shape. It panics if next is nil.
func (c *Cache) Handler(next http.Handler) http.Handler {
	if next == nil {
		panic("middleware: Cache.Handler: nil handler")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.serve(w, r, next)
	})
}

// Stats returns a snapshot of the cache's counters and of its miss
// budget's state.
func (c *Cache) Stats() Stats {
	s := c.st.snapshot()
	s.MissBudget = c.budget.stats()
	return s
}

// Close stops the cache: later requests pass straight through to the
// handler, running background refreshes are cancelled, and Close waits for
// them and for pending store writes. It does not close the store. Close is
// idempotent and always returns nil.
func (c *Cache) Close() error {
	if !c.closed.Swap(true) {
		c.refreshes.stop()
	}
	c.bg.close()
	return nil
}

// now returns the cache's clock.
func (c *Cache) now() time.Time { return c.o.now() }
