package middleware

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/failsoft/failsoft/store"
)

// outageStore is a mapStore that can be "down": then Get answers with a
// value it holds (as a tiered store's in-process copy does) and fails with
// store.ErrUnavailable for the others, and Set fails.
type outageStore struct {
	*mapStore
	down atomic.Bool
}

func newOutageStore() *outageStore { return &outageStore{mapStore: newMapStore()} }

func (s *outageStore) Get(ctx context.Context, key string) ([]byte, error) {
	if !s.down.Load() {
		return s.mapStore.Get(ctx, key)
	}
	v, err := s.mapStore.Get(ctx, key)
	if err != nil {
		return nil, store.ErrUnavailable
	}
	return v, nil
}

func (s *outageStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if s.down.Load() {
		return store.ErrUnavailable
	}
	return s.mapStore.Set(ctx, key, value, ttl)
}

// gatedOrigin is a handler whose calls each block until the test lets one
// finish: it reports each call's path on started (in call order) and
// tracks how many run at once.
type gatedOrigin struct {
	started        chan string
	release        chan struct{}
	inFlight, peak atomic.Int64
	calls          atomic.Int64
}

func newGatedOrigin() *gatedOrigin {
	return &gatedOrigin{started: make(chan string, 64), release: make(chan struct{})}
}

func (g *gatedOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.calls.Add(1)
	n := g.inFlight.Add(1)
	for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
	}
	g.started <- r.URL.Path
	<-g.release
	g.inFlight.Add(-1)
	w.Header().Set("Cache-Control", "max-age=10")
	io.WriteString(w, "ok "+r.URL.Path)
}

// next waits for the next handler call to start and returns its path.
func (g *gatedOrigin) next(t *testing.T) string {
	t.Helper()
	select {
	case p := <-g.started:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no handler call started")
		return ""
	}
}

// async sends a GET through h on its own goroutine; the recorder is on the
// returned channel when it is answered.
func async(h http.Handler, target string) <-chan *httptest.ResponseRecorder {
	ch := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		ch <- w
	}()
	return ch
}

func recv(t *testing.T, ch <-chan *httptest.ResponseRecorder) *httptest.ResponseRecorder {
	t.Helper()
	select {
	case w := <-ch:
		return w
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
		return nil
	}
}

func waitStats(t *testing.T, c *Cache, what string, cond func(MissBudgetStats) bool) {
	t.Helper()
	if !spinUntil(func() bool { return cond(c.Stats().MissBudget) }) {
		t.Fatalf("miss budget never reached %s: %+v", what, c.Stats().MissBudget)
	}
}

// recoverPanicAnswer is what Recover answers for a panic: the 503 the miss
// budget must answer with too.
func recoverPanicAnswer() *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	Recover(WithLogger(slog.New(slog.DiscardHandler)))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("x") })).
		ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	return w
}

// TestMissBudgetOverBudget: a miss that finds the budget taken gets a
// stale copy at once when it has one, else waits, bounded, and gets the
// 503 of Recover; in the default mode only while the store is unavailable.
func TestMissBudgetOverBudget(t *testing.T) {
	tests := []struct {
		name       string
		mode       MissBudgetMode
		down       bool // the store is unavailable during the test
		stale      bool // the request has a stale copy
		wantStatus int
		wantCalls  int64  // handler calls for the request
		wantDetail string // in Cache-Status
	}{
		{"down, no stale copy: 503 after the wait", MissBudgetWhileUnavailable, true, false, 503, 0, "detail=miss-budget"},
		{"down, stale copy: stale at once", MissBudgetWhileUnavailable, true, true, 200, 0, "detail=miss-budget"},
		{"up, default mode: no budget", MissBudgetWhileUnavailable, false, false, 200, 1, ""},
		{"up, always: 503 after the wait", MissBudgetAlways, false, false, 503, 0, "detail=miss-budget"},
		{"up, always, stale copy: stale at once", MissBudgetAlways, false, true, 200, 0, "detail=miss-budget"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newTestClock()
			s := newOutageStore()
			g := newGatedOrigin()
			// A stale answer must come at once: give those cases a wait so
			// long that having waited it shows beyond any machine's load.
			wait := 50 * time.Millisecond
			if tt.stale {
				wait = 10 * time.Second
			}
			c := newTestCache(t, s, WithClock(clk.Now), WithMissBudget(1, wait), WithMissBudgetMode(tt.mode))
			h := c.Handler(g)
			if tt.stale {
				first := async(h, "http://example.com/stale")
				g.next(t)
				g.release <- struct{}{}
				recv(t, first)
				c.Close() // wait for the store write
				c = newTestCache(t, s, WithClock(clk.Now), WithMissBudget(1, wait), WithMissBudgetMode(tt.mode))
				h = c.Handler(g)
				clk.Add(time.Minute) // past max-age=10, within stale-if-error
			}
			s.down.Store(tt.down)
			// The holder takes the only slot (and, down, tells the budget
			// that the store is unavailable).
			holder := async(h, "http://example.com/holder")
			g.next(t)
			defer func() {
				close(g.release)
				recv(t, holder)
			}()
			calls := g.calls.Load()
			start := time.Now()
			var w *httptest.ResponseRecorder
			if tt.wantCalls > 0 {
				ch := async(h, "http://example.com/other")
				g.next(t)
				if n := g.peak.Load(); n != 2 {
					t.Errorf("handler calls at once = %d, want 2", n)
				}
				g.release <- struct{}{} // one for each call: either may take either
				g.release <- struct{}{}
				w = recv(t, ch)
			} else {
				w = recv(t, async(h, "http://example.com/"+map[bool]string{true: "stale", false: "cold"}[tt.stale]))
			}
			took := time.Since(start)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", w.Code, tt.wantStatus, w.Body)
			}
			if got := g.calls.Load() - calls; got != tt.wantCalls {
				t.Errorf("handler calls = %d, want %d", got, tt.wantCalls)
			}
			if cs := w.Header().Get("Cache-Status"); !strings.Contains(cs, tt.wantDetail) {
				t.Errorf("Cache-Status = %q, want %q in it", cs, tt.wantDetail)
			}
			st := c.Stats().MissBudget
			switch {
			case tt.wantStatus == 503:
				if took < wait {
					t.Errorf("shed after %v, before the wait of %v", took, wait)
				}
				if st.Shed != 1 || st.Stale != 0 || st.LastShed.IsZero() {
					t.Errorf("stats = %+v, want one shed", st)
				}
				want := recoverPanicAnswer()
				if w.Body.String() != want.Body.String() {
					t.Errorf("body = %q, want Recover's %q", w.Body, want.Body)
				}
				for _, k := range []string{"Content-Type", "Cache-Control", "Retry-After", "Content-Length"} {
					if w.Header().Get(k) != want.Header().Get(k) {
						t.Errorf("%s = %q, want %q", k, w.Header().Get(k), want.Header().Get(k))
					}
				}
				if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Retry-After") != "5" {
					t.Errorf("header = %v", w.Header())
				}
			case tt.stale:
				if w.Body.String() != "ok /stale" {
					t.Errorf("body = %q, want the stale copy", w.Body)
				}
				if took >= wait {
					t.Errorf("stale answer took %v: it waited", took)
				}
				if st.Stale != 1 || st.Shed != 0 {
					t.Errorf("stats = %+v, want one stale answer", st)
				}
			default:
				if st.Stale != 0 || st.Shed != 0 {
					t.Errorf("stats = %+v, want nothing shed", st)
				}
			}
		})
	}
}

// TestMissBudgetFIFO: waiters get slots in the order they came, a waiter
// is handed a slot as soon as one is released, and a hit never waits.
func TestMissBudgetFIFO(t *testing.T) {
	s := newOutageStore()
	g := newGatedOrigin()
	c := newTestCache(t, s, WithMissBudget(1, time.Minute), WithMissBudgetMode(MissBudgetAlways))
	h := c.Handler(g)

	// A cached entry for the hit.
	first := async(h, "http://example.com/hot")
	g.next(t)
	g.release <- struct{}{}
	recv(t, first)
	c.Close()
	c = newTestCache(t, s, WithMissBudget(1, time.Minute), WithMissBudgetMode(MissBudgetAlways))
	h = c.Handler(g)

	holder := async(h, "http://example.com/holder")
	g.next(t)
	var answers []<-chan *httptest.ResponseRecorder
	for i, p := range []string{"/a", "/b", "/c"} {
		answers = append(answers, async(h, "http://example.com"+p))
		waitStats(t, c, "another waiter", func(s MissBudgetStats) bool { return s.Waiting == i+1 })
	}
	if w := get(h, "http://example.com/hot"); w.Code != 200 || !strings.Contains(w.Header().Get("Cache-Status"), "hit") {
		t.Fatalf("hit with a full budget: %d %q", w.Code, w.Header().Get("Cache-Status"))
	}
	g.release <- struct{}{}
	recv(t, holder)
	var order []string
	for range answers {
		order = append(order, g.next(t))
		if n := g.inFlight.Load(); n != 1 {
			t.Errorf("handler calls at once = %d, want 1", n)
		}
		g.release <- struct{}{}
	}
	for _, ch := range answers {
		if w := recv(t, ch); w.Code != 200 {
			t.Errorf("status = %d, want 200", w.Code)
		}
	}
	if strings.Join(order, " ") != "/a /b /c" {
		t.Errorf("slots went to %v, want /a /b /c (arrival order)", order)
	}
	if st := c.Stats().MissBudget; st.Waited != 3 || st.InUse != 0 || st.Waiting != 0 || st.Size != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// TestMissBudgetCoalesced: requests coalesced behind a leader take no slot;
// when the leader gets none, they get its answer (503) at once.
func TestMissBudgetCoalesced(t *testing.T) {
	s := newOutageStore()
	s.down.Store(true)
	g := newGatedOrigin()
	c := newTestCache(t, s, WithMissBudget(1, 0))
	h := c.Handler(g)

	leader := async(h, "http://example.com/k")
	g.next(t)
	var followers []<-chan *httptest.ResponseRecorder
	for range 4 {
		followers = append(followers, async(h, "http://example.com/k"))
	}
	if !spinUntil(func() bool { return waitingFollowers() == 4 }) {
		t.Fatal("the followers never waited")
	}
	// Another key finds the slot taken: shed at once (wait 0), and so are
	// its followers.
	other := async(h, "http://example.com/other")
	if w := recv(t, other); w.Code != 503 {
		t.Errorf("other key: status = %d, want 503", w.Code)
	}
	g.release <- struct{}{}
	for _, ch := range append(followers, leader) {
		if w := recv(t, ch); w.Code != 200 || w.Body.String() != "ok /k" {
			t.Errorf("status = %d %q, want the leader's 200", w.Code, w.Body)
		}
	}
	if n := g.calls.Load(); n != 1 {
		t.Errorf("handler calls = %d, want 1", n)
	}
	if st := c.Stats().MissBudget; st.Shed != 1 || st.Waited != 0 {
		t.Errorf("stats = %+v, want one shed", st)
	}
}

// TestMissBudgetShedFollowers: when a leader's wait for a slot runs out,
// the requests coalesced behind it are answered 503 at once, without
// queueing again.
func TestMissBudgetShedFollowers(t *testing.T) {
	s := newOutageStore()
	s.down.Store(true)
	g := newGatedOrigin()
	c := newTestCache(t, s, WithMissBudget(1, 50*time.Millisecond))
	h := c.Handler(g)
	holder := async(h, "http://example.com/holder")
	g.next(t)
	defer func() {
		close(g.release)
		recv(t, holder)
	}()
	leader := async(h, "http://example.com/k")
	waitStats(t, c, "a waiter", func(s MissBudgetStats) bool { return s.Waiting == 1 })
	follower := async(h, "http://example.com/k")
	if w := recv(t, leader); w.Code != 503 {
		t.Errorf("leader: status = %d, want 503", w.Code)
	}
	w := recv(t, follower)
	if w.Code != 503 || !strings.Contains(w.Header().Get("Cache-Status"), "collapsed") {
		t.Errorf("follower: status = %d, Cache-Status %q; want a collapsed 503", w.Code, w.Header().Get("Cache-Status"))
	}
	if n := g.calls.Load(); n != 1 {
		t.Errorf("handler calls = %d, want 1 (the holder's)", n)
	}
	if st := c.Stats().MissBudget; st.Shed != 2 || st.Waited != 0 {
		t.Errorf("stats = %+v, want two shed", st)
	}
}

// TestMissBudgetClientGone: a waiter whose client leaves gives its place
// up, and the slot goes to the next one.
func TestMissBudgetClientGone(t *testing.T) {
	b := newMissBudget(1, time.Minute, MissBudgetAlways)
	if b.acquire(context.Background(), true) != admitted {
		t.Fatal("first acquire refused")
	}
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan admission, 1)
	go func() { gone <- b.acquire(ctx, true) }()
	if !spinUntil(func() bool { return b.stats().Waiting == 1 }) {
		t.Fatal("never queued")
	}
	cancel()
	if a := <-gone; a != clientGone {
		t.Errorf("admission = %v, want clientGone", a)
	}
	if b.acquire(context.Background(), false) != overBudget {
		t.Error("a slot appeared")
	}
	b.release()
	if st := b.stats(); st.InUse != 0 || st.Waiting != 0 {
		t.Errorf("stats = %+v, want all free", st)
	}
}

func TestMissBudgetOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		want string
	}{
		{"negative size", []Option{WithMissBudget(-1, time.Second)}, "miss budget -1 is negative"},
		{"negative wait", []Option{WithMissBudget(1, -time.Second)}, "miss budget wait -1s is negative"},
		{"unknown mode", []Option{WithMissBudgetMode(7)}, "miss budget mode 7 is unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(newMapStore(), tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	c := newTestCache(t, newMapStore())
	if st := c.Stats().MissBudget; st != (MissBudgetStats{}) {
		t.Errorf("default: %+v, want off", st)
	}
}

// TestIntegrationMissBudgetRedisKilled: under load over many cold keys,
// with Redis killed, the handler never runs more than the budget's calls
// at once, and every request is answered 200 or 503.
func TestIntegrationMissBudgetRedisKilled(t *testing.T) {
	srv := redistest.Start(t)
	a := newITStack(t, srv)
	const budget = 4
	var inFlight, peak, calls atomic.Int64
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		n := inFlight.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		defer inFlight.Add(-1)
		select { // a slow primary
		case <-time.After(5 * time.Millisecond):
		case <-r.Context().Done():
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "v "+r.URL.Path)
	})
	c := itCache(t, a.tiered, WithMissBudget(budget, 20*time.Millisecond))
	h := Recover(WithLogger(slog.New(slog.DiscardHandler)), WithBreakers(a.guard))(c.Handler(origin))

	var stop atomic.Bool
	var wg sync.WaitGroup
	var ok200, shed503, other atomic.Int64
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				w := get(h, "http://example.com/k/"+strconv.Itoa(i*100000+n))
				switch {
				case w.Code == 200:
					ok200.Add(1)
				case w.Code == 503 && w.Header().Get("Retry-After") != "":
					shed503.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	if !spinUntil(func() bool { return calls.Load() > 200 }) {
		t.Fatal("no load")
	}
	peakUp := peak.Load()
	srv.Kill()
	if !spinUntil(func() bool { return a.guard.State() == store.StateOpen }) {
		t.Fatal("the breaker never opened")
	}
	peak.Store(0)
	shedBefore := c.Stats().MissBudget.Shed
	if !spinUntil(func() bool { return c.Stats().MissBudget.Shed > shedBefore+50 }) {
		t.Fatal("nothing shed while Redis was down")
	}
	stop.Store(true)
	wg.Wait()
	if p := peak.Load(); p > budget {
		t.Errorf("handler calls at once while Redis was down = %d, want at most %d", p, budget)
	}
	if other.Load() != 0 {
		t.Errorf("%d answers neither 200 nor 503 with Retry-After", other.Load())
	}
	t.Logf("peak while up %d, down %d; 200: %d, 503: %d; %+v", peakUp, peak.Load(), ok200.Load(), shed503.Load(), c.Stats().MissBudget)
}
