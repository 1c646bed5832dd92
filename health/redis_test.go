package health

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/failsoft/failsoft/store"
)

// redisGuard returns a guard over a Redis store on srv that trips on the
// first outage error and stays open for a minute.
func redisGuard(t *testing.T, srv *redistest.Server) *store.Guard {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { client.Close() })
	rs, err := store.NewRedis(client)
	if err != nil {
		t.Fatal(err)
	}
	// A generous op timeout (below the checks' 500 ms): these tests count
	// PINGs and read states; a loaded CI machine must not trip the breaker.
	g, err := store.NewGuard(rs, store.WithFailureThreshold(1), store.WithOpenPeriod(time.Minute), store.WithOpTimeout(400*time.Millisecond), store.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

var pingCalls = regexp.MustCompile(`cmdstat_ping:calls=(\d+)`)

// serverPings returns how many PING commands srv has answered since its
// stats were last reset, read over a separate connection.
func serverPings(t *testing.T, srv *redistest.Server) int {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	defer c.Close()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	m := pingCalls.FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// burst sends n concurrent GETs of target to h, released together, and
// returns their statuses.
func burst(h http.Handler, target string, n int) []int {
	codes := make([]int, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
			codes[i] = rec.Code
		})
	}
	close(start)
	wg.Wait()
	return codes
}

func TestRedisBurstSendsOnePing(t *testing.T) {
	srv := redistest.Start(t)
	g := redisGuard(t, srv)
	h, _, _ := newHandler(t, WithBreakerCheck(g, true), WithPinger("redis-ping", g, true))
	if _, err := srv.Do("CONFIG", "RESETSTAT"); err != nil {
		t.Fatal(err)
	}
	for i, c := range burst(h.Readyz(), "/readyz", 1000) {
		if c != http.StatusOK {
			t.Fatalf("probe %d got %d, want 200", i, c)
		}
	}
	if n := serverPings(t, srv); n != 1 {
		t.Errorf("1,000 concurrent probes sent %d PINGs to Redis, want 1", n)
	}
}

func TestRedisDeadReadiness(t *testing.T) {
	tests := []struct {
		name        string
		critical    bool
		wantReady   int
		wantHealthz string
	}{
		{"degraded by default", false, http.StatusOK, `"status":"warn"`},
		{"critical", true, http.StatusServiceUnavailable, `"status":"fail"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t)
			g := redisGuard(t, srv)
			h, clock, _ := newHandler(t, WithBreakerCheck(g, tt.critical), WithPinger("redis-ping", g, tt.critical))
			if rec := get(t, h, "/readyz"); rec.Code != http.StatusOK {
				t.Fatalf("with Redis up: %d %q", rec.Code, rec.Body)
			}
			srv.Kill()
			clock.Advance(DefaultTTL)

			rec := get(t, h, "/readyz?verbose")
			if rec.Code != tt.wantReady {
				t.Errorf("readyz with Redis dead: %d, want %d\n%s", rec.Code, tt.wantReady, rec.Body)
			}
			if g.State() != store.StateOpen {
				t.Fatalf("breaker %v after a failed ping, want open", g.State())
			}
			if rec := get(t, h, "/livez"); rec.Code != http.StatusOK {
				t.Errorf("livez with Redis dead: %d, want 200", rec.Code)
			}
			hz := get(t, h, "/healthz")
			if hz.Code != tt.wantReady || !strings.Contains(hz.Body.String(), tt.wantHealthz) || !strings.Contains(hz.Body.String(), `"observedValue":"open"`) {
				t.Errorf("healthz with Redis dead: %d %s", hz.Code, hz.Body)
			}

			// Redis is back, but the breaker is open: probes send no PING at
			// all, however many and however long apart.
			srv.Restart()
			if _, err := srv.Do("CONFIG", "RESETSTAT"); err != nil { // redistest's own readiness PING
				t.Fatal(err)
			}
			for range 3 {
				clock.Advance(DefaultTTL)
				for i, c := range burst(h.Readyz(), "/readyz", 200) {
					if c != tt.wantReady {
						t.Fatalf("probe %d with the breaker open: %d, want %d", i, c, tt.wantReady)
					}
				}
			}
			if n := serverPings(t, srv); n != 0 {
				t.Errorf("%d PINGs reached Redis while the breaker was open, want 0", n)
			}
		})
	}
}
