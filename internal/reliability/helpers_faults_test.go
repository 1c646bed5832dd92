package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

// Shared settings of the fault tests: short enough to keep the suite fast,
// long enough to stay clear of scheduling noise on a 2-core CI machine
// under -race.
const (
	faultOpTimeout  = 100 * time.Millisecond
	faultOpenPeriod = 300 * time.Millisecond
	faultTrips      = 5
	// faultBounded tells a request the library bounds from one that waited
	// on Redis itself. Bounded, a request takes a few op timeouts plus its
	// handler's time (a few hundred ms, over 600 ms seen on a loaded CI
	// runner); unbounded, it waits out go-redis' 3 s read timeout, which the
	// faults below are made to reach. 2 s tells the two apart on a loaded
	// two-core runner under -race. That a single call waits no longer than
	// the op timeout is proven where it can be without a real network, in
	// the store package's tests.
	faultBounded = 2 * time.Second
)

// faultProxy is an in-process Toxiproxy proxy on a free loopback port in
// front of one upstream address.
type faultProxy struct {
	t     testing.TB
	proxy *toxiproxy.Proxy
}

// newFaultProxy starts a proxy to upstream; cleanup stops it.
func newFaultProxy(t testing.TB, upstream string) *faultProxy {
	t.Helper()
	// The bandwidth toxic logs through zerolog's global logger at trace
	// level; silence it (an atomic, process-wide setting of the dependency,
	// never reset: nothing in this test binary wants zerolog output).
	zerolog.SetGlobalLevel(zerolog.Disabled)
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "redis", "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy: start: %v", err)
	}
	t.Cleanup(p.Stop)
	return &faultProxy{t: t, proxy: p}
}

// Addr is the proxy's listening address.
func (p *faultProxy) Addr() string { return p.proxy.Listen }

// add adds a toxic; stream is "upstream" (client to Redis) or "downstream".
func (p *faultProxy) add(name, typ, stream string, attrs map[string]any) {
	p.t.Helper()
	b, err := json.Marshal(map[string]any{
		"name": name, "type": typ, "stream": stream, "toxicity": 1.0, "attributes": attrs,
	})
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.proxy.Toxics.AddToxicJson(bytes.NewReader(b)); err != nil {
		p.t.Fatalf("toxiproxy: add %s: %v", name, err)
	}
}

// remove removes a toxic.
func (p *faultProxy) remove(name string) {
	p.t.Helper()
	if err := p.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
		p.t.Fatalf("toxiproxy: remove %s: %v", name, err)
	}
}

// faultLog is a slog handler's output, safe for concurrent use, for tests
// that check what the library logs.
type faultLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *faultLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *faultLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// logger returns a debug-level text logger writing to l.
func (l *faultLog) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// faultQuiet is a logger that drops everything.
func faultQuiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// faultGuard builds a guard over a Redis store on client with the suite's
// timings; cleanup closes it.
func faultGuard(t testing.TB, client redis.UniversalClient, name string, log *slog.Logger) *store.Guard {
	t.Helper()
	rs, err := store.NewRedis(client)
	if err != nil {
		t.Fatal(err)
	}
	g, err := store.NewGuard(rs, store.WithName(name), store.WithLogger(log),
		store.WithOpTimeout(faultOpTimeout), store.WithFailureThreshold(faultTrips), store.WithOpenPeriod(faultOpenPeriod))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// faultStack is the recommended stack over one Redis address:
// Cache(Tiered(Memory, Guard(Redis))).
type faultStack struct {
	client *redis.Client
	guard  *store.Guard
	mem    *store.Memory
	tiered *store.Tiered
	cache  *middleware.Cache
}

// newFaultStack builds the stack over addr with a go-redis client left at
// its defaults (3 s read timeout, 3 retries), as a real user's would be;
// cleanup closes everything in order.
func newFaultStack(t testing.TB, addr string, log *slog.Logger) *faultStack {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	s := newFaultStackOn(t, client, log)
	s.client = client
	return s
}

// newFaultStackOn builds the stack over client; cleanup closes the client
// (closing a go-redis client twice is harmless) and the rest, in order.
func newFaultStackOn(t testing.TB, client redis.UniversalClient, log *slog.Logger) *faultStack {
	t.Helper()
	s := &faultStack{}
	s.guard = faultGuard(t, client, "redis", log)
	// Cleanups run in reverse: the client closes before the guard, so that
	// the guard's Close does not wait for calls abandoned on a slow proxy.
	t.Cleanup(func() { client.Close() })
	var err error
	if s.mem, err = store.NewMemory(8 << 20); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.mem.Close() })
	if s.tiered, err = store.NewTiered(s.mem, s.guard, store.WithLogger(log)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.tiered.Close() })
	if s.cache, err = middleware.New(s.tiered, middleware.WithLogger(log)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cache.Close() })
	return s
}

// faultGet sends a GET through h and returns the response and how long it
// took.
func faultGet(h http.Handler, target string) (*httptest.ResponseRecorder, time.Duration) {
	w := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
	return w, time.Since(start)
}

// faultWaitFor polls cond every 10 ms until it holds or within passes, and
// returns how long it took; it fails the test on timeout.
func faultWaitFor(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// faultOrigin is a handler that answers after handlerTime with a cacheable
// JSON body naming its path.
func faultOrigin(handlerTime time.Duration, cacheControl string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if handlerTime > 0 {
			select {
			case <-time.After(handlerTime):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", cacheControl)
		fmt.Fprintf(w, `{"source":"primary","data":%q}`, r.URL.Path)
	})
}

// faultLegacyHandler is the documented data endpoint written the naive way:
// it reads Redis itself through rdb (a client with a cache-mode hook), and
// on a miss fetches value from a primary source (taking handlerTime) and
// stores it for an hour.
// It answers 500 on any Redis error it sees, as the original does.
func faultLegacyHandler(rdb *redis.Client, handlerTime time.Duration, value string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := "data:" + strings.TrimPrefix(r.URL.Path, "/api/data/")
		v, err := rdb.Get(r.Context(), key).Result()
		source := "cache"
		switch {
		case errors.Is(err, redis.Nil):
			time.Sleep(handlerTime)
			v, source = value, "primary"
			if err := rdb.Set(r.Context(), key, v, time.Hour).Err(); err != nil {
				http.Error(w, `{"error":"redis"}`, http.StatusInternalServerError)
				return
			}
		case err != nil:
			http.Error(w, `{"error":"redis"}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"source":%q,"data":%q}`, source, v)
	})
}

// faultHookedClient returns a client to addr with a cache-mode hook over g,
// as the design's one-line change makes it (examples/dataapi shares the
// stack's guard the same way); cleanup closes it. opts may be nil.
func faultHookedClient(t testing.TB, addr string, g *store.Guard, opts *redis.Options) (*redis.Client, *store.Hook) {
	t.Helper()
	var o redis.Options
	if opts != nil {
		o = *opts
	}
	o.Addr, o.DisableIdentity = addr, true
	hook, err := store.NewHook(g, store.WithCacheMode(true))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&o)
	rdb.AddHook(hook)
	t.Cleanup(func() { rdb.Close() })
	return rdb, hook
}
