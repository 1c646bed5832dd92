package reliability

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Shared helpers of the Sentinel and Cluster tests, prefixed topo.

// topoPrimaryLatency is the simulated primary source's latency: far below
// the documented 500 ms, to keep the tests fast, far above a Redis hit.
const topoPrimaryLatency = 5 * time.Millisecond

// topoDataKey is the Redis key under which the legacy handler keeps key's
// data.
func topoDataKey(key string) string { return "data:" + key }

// topoKeyStats counts what the legacy handler did for one key.
type topoKeyStats struct {
	hits, fetches, errors atomic.Int64
}

// topoHandler is the documented data endpoint written the legacy way over
// any go-redis client: GET from Redis, on a miss fetch from the (slow)
// primary and SET for an hour, 500 on any Redis error. It counts per key.
type topoHandler struct {
	rdb redis.Cmdable
	mu  sync.Mutex
	per map[string]*topoKeyStats
}

func newTopoHandler(rdb redis.Cmdable) *topoHandler {
	return &topoHandler{rdb: rdb, per: make(map[string]*topoKeyStats)}
}

// stats returns key's counters, creating them.
func (h *topoHandler) stats(key string) *topoKeyStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.per[key]
	if s == nil {
		s = &topoKeyStats{}
		h.per[key] = s
	}
	return s
}

type topoBody struct {
	Source string `json:"source"`
	Data   string `json:"data"`
}

func (h *topoHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	st := h.stats(key)
	val, err := h.rdb.Get(r.Context(), topoDataKey(key)).Result()
	switch {
	case err == nil:
		st.hits.Add(1)
		topoWriteJSON(w, http.StatusOK, topoBody{Source: "cache", Data: val})
	case errors.Is(err, redis.Nil):
		st.fetches.Add(1)
		time.Sleep(topoPrimaryLatency)
		data := "Data for " + key
		if err := h.rdb.Set(r.Context(), topoDataKey(key), data, time.Hour).Err(); err != nil {
			st.errors.Add(1)
			topoWriteJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		topoWriteJSON(w, http.StatusOK, topoBody{Source: "primary", Data: data})
	default:
		st.errors.Add(1)
		topoWriteJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	}
}

func topoWriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// topoMux routes GET /api/data/{key} to h.
func topoMux(h http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /api/data/{key}", h)
	return mux
}

// topoGet sends one request for key through h in process and checks the
// handler's contract: 200, JSON {"source": "cache"|"primary", "data": "Data
// for <key>"}. It returns an error describing any breach.
func topoGet(h http.Handler, key string) error {
	req := httptest.NewRequest(http.MethodGet, "http://api.test/api/data/"+key, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return fmt.Errorf("GET %s: status %d: %s", key, rec.Code, rec.Body.String())
	}
	var b topoBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		return fmt.Errorf("GET %s: body %q: %v", key, rec.Body.String(), err)
	}
	if (b.Source != "cache" && b.Source != "primary") || b.Data != "Data for "+key {
		return fmt.Errorf("GET %s: body %q breaks the contract", key, rec.Body.String())
	}
	return nil
}

// topoLoad sends requests through h from workers goroutines, each picking
// a key with pick, until Stop. It records every contract breach and the
// slowest request.
type topoLoad struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	requests atomic.Int64
	maxNanos atomic.Int64
	mu       sync.Mutex
	failures []string
	nfail    int
}

func startTopoLoad(h http.Handler, workers int, pick func(r *rand.Rand) string) *topoLoad {
	l := &topoLoad{stop: make(chan struct{})}
	for i := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 42))
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				start := time.Now()
				err := topoGet(h, pick(r))
				took := int64(time.Since(start))
				for {
					m := l.maxNanos.Load()
					if took <= m || l.maxNanos.CompareAndSwap(m, took) {
						break
					}
				}
				l.requests.Add(1)
				if err != nil {
					l.mu.Lock()
					l.nfail++
					if len(l.failures) < 10 {
						l.failures = append(l.failures, err.Error())
					}
					l.mu.Unlock()
				}
				time.Sleep(time.Millisecond) // a steady load, not a spin
			}
		}()
	}
	return l
}

// Stop ends the load and waits for the workers; it is safe to call twice.
func (l *topoLoad) Stop() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// check fails t if any request breached the contract.
func (l *topoLoad) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.nfail > 0 {
		t.Errorf("%d of %d requests failed; first ones:\n%v", l.nfail, l.requests.Load(), l.failures)
	}
}

// topoWait polls cond every 10 ms until it holds, failing t after within.
func topoWait(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// topoLogger discards logs unless -v, where it writes warnings to the test
// log.
func topoLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(topoLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type topoLogWriter struct{ t *testing.T }

func (w topoLogWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
