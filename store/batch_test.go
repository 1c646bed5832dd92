package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft/internal/redistest"
)

// gateHook holds the next single command a client sends until the test
// opens the gate, and records the commands of every pipeline of reads;
// with panicPipeline set, the next one panics instead of being sent.
type gateHook struct {
	mu            sync.Mutex
	gate          chan struct{} // held commands wait for it to close; nil: none held
	held          chan struct{} // receives when a command is held
	pipelines     [][]string    // each pipeline's commands, as "get key" / "pttl key"
	panicPipeline bool
	pipeGate      chan struct{} // like gate, for the next pipeline of reads
	pipeHeld      chan struct{}
}

// holdNextPipeline is holdNext for the next pipeline of reads.
func (h *gateHook) holdNextPipeline() (open func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	gate := make(chan struct{})
	h.pipeGate, h.pipeHeld = gate, make(chan struct{}, 1)
	return sync.OnceFunc(func() { close(gate) })
}

// holdNext makes the next single command wait until the returned func is
// called.
func (h *gateHook) holdNext() (open func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	gate := make(chan struct{})
	h.gate, h.held = gate, make(chan struct{}, 1)
	return sync.OnceFunc(func() { close(gate) })
}

func (h *gateHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *gateHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		gate, held := h.gate, h.held
		h.gate = nil
		h.mu.Unlock()
		if gate != nil {
			held <- struct{}{}
			<-gate
		}
		return next(ctx, cmd)
	}
}

func (h *gateHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) == 0 || cmds[0].Name() != "get" {
			return next(ctx, cmds) // go-redis' own, such as a new connection's handshake
		}
		var names []string
		for _, c := range cmds {
			names = append(names, fmt.Sprint(c.Args()...))
		}
		h.mu.Lock()
		h.pipelines = append(h.pipelines, names)
		boom := h.panicPipeline
		h.panicPipeline = false
		gate, held := h.pipeGate, h.pipeHeld
		h.pipeGate = nil
		h.mu.Unlock()
		if boom {
			panic("gateHook: pipeline panics")
		}
		if gate != nil {
			held <- struct{}{}
			<-gate
		}
		return next(ctx, cmds)
	}
}

func (h *gateHook) sentPipelines() [][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]string(nil), h.pipelines...)
}

// newBatchedRedis returns a store with WithBatchedGets(lanes) over a client
// of srv carrying a gateHook.
func newBatchedRedis(t *testing.T, srv *redistest.Server, lanes int) (*Redis, *gateHook) {
	t.Helper()
	c := newTestClient(t, srv.Addr())
	h := &gateHook{}
	c.AddHook(h)
	s, err := NewRedis(c, WithBatchedGets(lanes))
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	return s, h
}

// queued returns the number of reads waiting for a lane, and the lanes in
// use.
func (b *getBatcher) queued() (waiting, active int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue), b.active
}

// readResult is what one read returned.
type readResult struct {
	key string
	val []byte
	ttl time.Duration
	err error
}

// heldLane is a store with WithBatchedGets(1) whose one lane a read of "a"
// holds on the wire until open is called; "a" and "b" hold "value of a"
// and "value of b". ctx bounds the test's reads: one that hangs fails the
// test instead of blocking it.
type heldLane struct {
	s     *Redis
	h     *gateHook
	ctx   context.Context
	open  func()
	first <-chan readResult // the held read's result
}

func newHeldLane(t *testing.T) *heldLane {
	t.Helper()
	s, h := newBatchedRedis(t, redistest.Start(t), 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	for _, k := range []string{"a", "b"} {
		if err := s.Set(ctx, k, []byte("value of "+k), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	open := h.holdNext()
	t.Cleanup(open)
	first := goGet(ctx, s, "a")
	<-h.held
	return &heldLane{s: s, h: h, ctx: ctx, open: open, first: first}
}

// goGet starts s.Get(ctx, key) and returns where its result comes.
func goGet(ctx context.Context, s *Redis, key string) <-chan readResult {
	r := make(chan readResult, 1)
	go func() {
		v, err := s.Get(ctx, key)
		r <- readResult{key: key, val: v, err: err}
	}()
	return r
}

// waitQueued waits until n reads wait for a lane of s.
func waitQueued(t *testing.T, s *Redis, n int) {
	t.Helper()
	waitUntil(t, 10*time.Second, fmt.Sprintf("%d reads to queue", n), func() bool { m, _ := s.batch.queued(); return m == n })
}

// TestRedisBatchedGets holds one read on the wire and checks that the
// reads made meanwhile go in one pipeline when it is back, each with its
// own answer: values, a miss, a GetTTL's time to live.
func TestRedisBatchedGets(t *testing.T) {
	srv := redistest.Start(t)
	s, h := newBatchedRedis(t, srv, 1)
	ctx, cancelAll := context.WithTimeout(context.Background(), 30*time.Second) // a read that hangs fails the test
	defer cancelAll()
	for i := range 8 {
		if err := s.Set(ctx, fmt.Sprintf("k%d", i), []byte(fmt.Sprintf("v%d", i)), time.Hour); err != nil {
			t.Fatal(err)
		}
	}

	open := h.holdNext()
	defer open()
	results := make(chan readResult, 16)
	go func() {
		v, err := s.Get(ctx, "k0")
		results <- readResult{key: "k0", val: v, err: err}
	}()
	<-h.held // the first read holds the lane, on the wire
	keys := []string{"k1", "k2", "k3", "k4", "k5", "k6", "k7", "missing"}
	for i, k := range keys {
		go func() {
			if i == 2 {
				v, ttl, err := s.GetTTL(ctx, k)
				results <- readResult{key: k, val: v, ttl: ttl, err: err}
				return
			}
			v, err := s.Get(ctx, k)
			results <- readResult{key: k, val: v, err: err}
		}()
	}
	waitQueued(t, s, len(keys))
	open()

	for range len(keys) + 1 {
		r := <-results
		switch {
		case r.key == "missing":
			if !errors.Is(r.err, ErrNotFound) {
				t.Errorf("Get(missing) = %q, %v; want ErrNotFound", r.val, r.err)
			}
		case r.err != nil || string(r.val) != "v"+strings.TrimPrefix(r.key, "k"):
			t.Errorf("read %s = %q, %v", r.key, r.val, r.err)
		case r.key == "k3" && (r.ttl <= 59*time.Minute || r.ttl > time.Hour):
			t.Errorf("GetTTL(k3) ttl %v, want about an hour", r.ttl)
		}
	}
	p := h.sentPipelines()
	if len(p) != 1 || len(p[0]) != len(keys)+1 {
		t.Fatalf("pipelines sent: %q; want one with the %d queued reads (GET each, PTTL for k3)", p, len(keys))
	}
	if got := s.batch.batched.Load(); got != uint64(len(keys)) {
		t.Errorf("batched reads %d, want %d", got, len(keys))
	}
	if n, active := s.batch.queued(); n != 0 || active != 0 {
		t.Errorf("after the reads: %d queued, %d lanes in use; want none", n, active)
	}
	// A lone read now goes at once, on its own.
	if v, err := s.Get(ctx, "k1"); err != nil || string(v) != "v1" {
		t.Errorf("lone Get = %q, %v", v, err)
	}
	if len(h.sentPipelines()) != 1 {
		t.Errorf("a lone Get was sent in a pipeline")
	}
}

// TestRedisBatchedGetsEndByOwnContext checks that a queued read ends by its
// own context, without waiting for the read on the wire, and that a read
// whose context ended before its lane came passes the lane on.
func TestRedisBatchedGetsEndByOwnContext(t *testing.T) {
	l := newHeldLane(t)
	s, h, ctx := l.s, l.h, l.ctx

	// A read with a short deadline, queued behind the held one: it must
	// return while that one is still held.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	select {
	case r := <-goGet(short, s, "b"):
		if !errors.Is(r.err, context.DeadlineExceeded) {
			t.Fatalf("queued Get past its deadline = %v, want context.DeadlineExceeded", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a queued Get waited past its deadline for the read on the wire")
	}
	if n, _ := s.batch.queued(); n != 0 {
		t.Fatalf("%d reads queued after the only queued one gave up, want 0", n)
	}
	// A read canceled while queued, and one behind it that must get the lane.
	gone, cancelGone := context.WithCancel(ctx)
	goneDone := goGet(gone, s, "a")
	waitQueued(t, s, 1)
	second := goGet(ctx, s, "b")
	waitQueued(t, s, 2)
	cancelGone()
	if r := <-goneDone; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("canceled queued Get = %v, want context.Canceled", r.err)
	}
	if n, _ := s.batch.queued(); n != 1 {
		t.Fatalf("%d reads queued after one of two gave up, want 1", n)
	}

	l.open()
	if r := <-l.first; r.err != nil || string(r.val) != "value of a" {
		t.Errorf("held Get = %q, %v", r.val, r.err)
	}
	// The lane went to the second read, which sent its read alone: a
	// pipeline of one.
	if r := <-second; r.err != nil || string(r.val) != "value of b" {
		t.Errorf("Get after a canceled one = %q, %v", r.val, r.err)
	}
	if p := h.sentPipelines(); len(p) != 1 || len(p[0]) != 1 {
		t.Errorf("pipelines %q, want the second read's alone", p)
	}
	if n, active := s.batch.queued(); n != 0 || active != 0 {
		t.Errorf("after the reads: %d queued, %d lanes in use; want none", n, active)
	}
}

// TestRedisBatchedGetsSenderCanceled cancels the read that sends a
// pipeline while the pipeline is out: the other reads in it still get
// their values.
func TestRedisBatchedGetsSenderCanceled(t *testing.T) {
	l := newHeldLane(t)
	s, h, ctx := l.s, l.h, l.ctx
	sender, cancelSender := context.WithCancel(ctx)
	defer cancelSender()
	senderDone := goGet(sender, s, "a")
	waitQueued(t, s, 1)
	other := goGet(ctx, s, "b")
	waitQueued(t, s, 2)
	openPipe := h.holdNextPipeline()
	defer openPipe()
	l.open() // the held read returns; the sender gets the lane and sends both
	<-h.pipeHeld
	cancelSender()
	openPipe()
	if r := <-other; r.err != nil || string(r.val) != "value of b" {
		t.Errorf("read batched with a canceled sender = %q, %v; want its value", r.val, r.err)
	}
	if r := <-senderDone; r.err != nil && !errors.Is(r.err, context.Canceled) {
		t.Errorf("canceled sender = %q, %v; want its value or context.Canceled", r.val, r.err)
	}
}

// TestRedisBatchedGetsLatestDeadlineSends queues a read with a short
// deadline before one with a long one, and holds their pipeline past the
// short deadline: the read with the long one sends the pipeline, under its
// own deadline, and gets its value; the other leaves at its deadline.
func TestRedisBatchedGetsLatestDeadlineSends(t *testing.T) {
	l := newHeldLane(t)
	s, h, ctx := l.s, l.h, l.ctx
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	shortDone := goGet(short, s, "a")
	waitQueued(t, s, 1)
	long := goGet(ctx, s, "b")
	waitQueued(t, s, 2)
	openPipe := h.holdNextPipeline()
	defer openPipe()
	l.open()
	<-h.pipeHeld // both reads in one pipeline, held
	select {
	case r := <-shortDone:
		if !errors.Is(r.err, context.DeadlineExceeded) {
			t.Fatalf("short read = %v, want context.DeadlineExceeded at its deadline", r.err)
		}
	case <-time.After(10 * time.Second):
		openPipe()
		t.Fatal("the short read did not return at its deadline: it is sending the held pipeline")
	}
	openPipe()
	if r := <-long; r.err != nil || string(r.val) != "value of b" {
		t.Errorf("long read, batched with one past its deadline = %q, %v; want its value", r.val, r.err)
	}
	if p := h.sentPipelines(); len(p) != 1 || len(p[0]) != 2 {
		t.Errorf("pipelines %q, want one with both reads", p)
	}
}

// TestGetBatcherLeaderWithEndedContext hands a lane to a read whose context
// has ended: it sends nothing and passes the lane to the next read.
func TestGetBatcherLeaderWithEndedContext(t *testing.T) {
	srv := redistest.Start(t)
	s, h := newBatchedRedis(t, srv, 1)
	if err := s.Set(context.Background(), "b", []byte("vb"), time.Hour); err != nil {
		t.Fatal(err)
	}
	b := s.batch
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	lead := &batchCall{ctx: ended, key: s.prefix + "a", done: make(chan struct{}, 1)}
	next := &batchCall{ctx: context.Background(), key: s.prefix + "b", done: make(chan struct{}, 1)}
	lead.state.Store(callLeading)
	b.mu.Lock()
	b.active = 1 // the lane lead was handed
	b.queue = append(b.queue, next)
	b.mu.Unlock()

	b.lead(lead)
	if lead.get != nil {
		t.Errorf("a leader whose context ended sent its read")
	}
	select {
	case <-next.done:
	default:
		t.Fatal("the lane was not passed on")
	}
	if next.state.Load() != callLeading {
		t.Fatalf("next read's state %d, want leading", next.state.Load())
	}
	b.lead(next)
	if v, err := next.get.Bytes(); err != nil || string(v) != "vb" {
		t.Errorf("the next leader's read = %q, %v", v, err)
	}
	if n, active := b.queued(); n != 0 || active != 0 {
		t.Errorf("%d queued, %d lanes in use; want none", n, active)
	}
	if p := h.sentPipelines(); len(p) != 1 || len(p[0]) != 1 {
		t.Errorf("pipelines %q, want one with the next read alone", p)
	}
}

// TestRedisBatchedGetsSenderPanics checks that a panic while a pipeline is
// sent fails the reads in it, reaches the sender, and frees the lane.
func TestRedisBatchedGetsSenderPanics(t *testing.T) {
	l := newHeldLane(t)
	s, h, ctx := l.s, l.h, l.ctx
	h.mu.Lock()
	h.panicPipeline = true
	h.mu.Unlock()
	results := make(chan readResult, 3)
	for _, k := range []string{"p1", "p2", "p3"} {
		go func() {
			defer func() {
				if p := recover(); p != nil {
					results <- readResult{key: k, err: fmt.Errorf("panicked: %v", p)}
				}
			}()
			v, err := s.Get(ctx, k)
			results <- readResult{key: k, val: v, err: err}
		}()
	}
	waitQueued(t, s, 3)
	l.open()
	panicked, aborted := 0, 0
	for range 3 {
		r := <-results
		switch {
		case r.err != nil && strings.HasPrefix(r.err.Error(), "panicked"):
			panicked++
		case errors.Is(r.err, errBatchAborted):
			aborted++
		default:
			t.Errorf("read %s = %q, %v; want a panic or errBatchAborted", r.key, r.val, r.err)
		}
	}
	if panicked != 1 || aborted != 2 {
		t.Errorf("%d panicked, %d aborted; want 1 (the sender) and 2", panicked, aborted)
	}
	waitUntil(t, 10*time.Second, "the lane to be freed", func() bool { _, active := s.batch.queued(); return active == 0 })
	if _, err := s.Get(ctx, "p1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after the panic = %v, want ErrNotFound", err)
	}
}

// TestRedisBatchedGetsOutage checks that reads batched while Redis is down
// all fail, none waits past its deadline, and the lanes are free after.
func TestRedisBatchedGetsOutage(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newBatchedRedis(t, srv, 2)
	srv.Kill()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := s.Get(ctx, fmt.Sprintf("k%d", i))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		var ne net.Error
		if err == nil || errors.Is(err, ErrNotFound) || !(errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "connect")) {
			t.Errorf("Get while Redis is down = %v, want a network error", err)
		}
	}
	if n, active := s.batch.queued(); n != 0 || active != 0 {
		t.Errorf("after the outage: %d queued, %d lanes in use; want none", n, active)
	}
}

func TestNewRedisBatchedGetsErrors(t *testing.T) {
	single := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	t.Cleanup(func() { single.Close(); cluster.Close() })
	if _, err := NewRedis(single, WithBatchedGets(-1)); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Errorf("WithBatchedGets(-1): %v, want an error", err)
	}
	if _, err := NewRedis(cluster, WithBatchedGets(1)); err == nil || !strings.Contains(err.Error(), "single node") {
		t.Errorf("WithBatchedGets on a Cluster client: %v, want an error", err)
	}
	if s, err := NewRedis(cluster, WithBatchedGets(0)); err != nil || s.batch != nil {
		t.Errorf("WithBatchedGets(0) on a Cluster client: %v, batcher %v; want none", err, s.batch)
	}
}

// BenchmarkRawGetConcurrent is the baseline of BenchmarkRedisGetBatched: a
// GET of a 1 KiB value over go-redis from 32 goroutines per P at once (the
// concurrency of a loaded server).
func BenchmarkRawGetConcurrent(b *testing.B) {
	rdb := benchClient(b, nil)
	b.SetParallelism(32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if v, err := rdb.Get(ctx, DefaultPrefix+"k").Bytes(); err != nil || len(v) != len(benchValue) {
				b.Errorf("GET: %d bytes, %v", len(v), err)
				return
			}
		}
	})
}

// BenchmarkRedisGetBatched is the Redis store's Get from 32 goroutines per
// P, each read on its own (lanes=0) or batched over 1 and 2 lanes.
func BenchmarkRedisGetBatched(b *testing.B) {
	for _, lanes := range []int{0, 1, 2} {
		b.Run(fmt.Sprintf("lanes=%d", lanes), func(b *testing.B) {
			st, err := NewRedis(benchClient(b, nil), WithBatchedGets(lanes))
			if err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(32)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if v, err := st.Get(ctx, "k"); err != nil || len(v) != len(benchValue) {
						b.Errorf("Get: %d bytes, %v", len(v), err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkRedisGetBatchedAlone is BenchmarkRedisGet with WithBatchedGets(2):
// one caller always finds a lane free, so its reads go as lone GETs.
func BenchmarkRedisGetBatchedAlone(b *testing.B) { benchRedisGet(b, WithBatchedGets(2)) }
