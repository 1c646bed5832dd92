package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/failsoft/failsoft/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestHitbenchSmoke runs hitbench with tiny rounds and checks that it
// measures and reports all six apps, each answering only what it should.
// Throughput is printed, not checked: on a shared two-core machine it
// measures the machine as much as failsoft.
func TestHitbenchSmoke(t *testing.T) {
	cfg := defaultConfig()
	cfg.redisServer = redistest.Binary(t)
	cfg.conns, cfg.duration, cfg.rounds = 4, 200*time.Millisecond, 2
	dir := t.TempDir()
	cfg.cpuProfile, cfg.memProfile = filepath.Join(dir, "cpu.out"), filepath.Join(dir, "mem.out")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var out bytes.Buffer
	res, err := run(ctx, cfg, &out)
	t.Logf("hitbench output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}

	wantApps := []string{"a. bare handler", "b. bare handler, one go-redis GET", "c. failsoft, in-process hit", "d. failsoft, Redis hit", "e. bare handler, same bytes and a hit's", "f. bare handler, one go-redis GET and a hit's"}
	if len(res.apps) != len(wantApps) {
		t.Fatalf("apps %q, want %d", res.apps, len(wantApps))
	}
	for i, want := range wantApps {
		name := res.apps[i]
		if !strings.HasPrefix(name, want) {
			t.Errorf("app %d is %q, want %q...", i, name, want)
		}
		if !strings.Contains(out.String(), name) {
			t.Errorf("report has no row for %q", name)
		}
		if got := len(res.rounds[i]); got != cfg.rounds {
			t.Errorf("%s: %d rounds, want %d", name, got, cfg.rounds)
		}
		for j, r := range res.rounds[i] {
			if r.requests == 0 || r.rps() <= 0 || r.p50 <= 0 || r.p99 < r.p50 {
				t.Errorf("%s round %d: %d requests, %.0f/s, p50 %v, p99 %v", name, j+1, r.requests, r.rps(), r.p50, r.p99)
			}
			// Every request costs this process CPU; b, d and f cost
			// redis-server some too (one GET each).
			if r.cpu <= 0 || (i == 1 || i == 3 || i == 5) && r.redisCPU <= 0 {
				t.Errorf("%s round %d: CPU per request %v, redis-server's %v", name, j+1, r.cpu, r.redisCPU)
			}
			if r.failed != 0 {
				t.Errorf("%s round %d: %d of %d requests failed", name, j+1, r.failed, r.requests)
			}
			// A Redis hit past the op timeout on an overloaded machine is
			// a miss: only the in-process hits are certain.
			if r.notHit != 0 && i == 2 {
				t.Errorf("%s round %d: %d of %d answers were not hits", name, j+1, r.notHit, r.requests)
			}
		}
	}
	// Only b, d and f ask Redis: b and f once per request, d at most once
	// (less when the breaker opened on an overloaded machine); the
	// in-process tier of c may be refreshed now and then, never per request.
	for i, want := range []struct{ lo, hi float64 }{{0, 0.01}, {0.9, 1.1}, {0, 0.1}, {0.01, 1.1}, {0, 0.01}, {0.9, 1.1}} {
		got := median(res.rounds[i], func(r round) float64 { return r.redisCmds })
		if got < want.lo || got > want.hi {
			t.Errorf("%s: %.3f Redis commands per request, want within [%v, %v]", res.apps[i], got, want.lo, want.hi)
		}
	}
	for name, r := range map[string]float64{"c/a": res.inProcess, "d/b": res.redisHit, "a/c  CPU": res.cpuInProcess, "b/d  CPU": res.cpuRedisHit,
		"e/a": res.fieldsPaired[1], "c/e": res.hitVsFieldsPaired[1], "f/b": res.redisFieldsPaired[1], "d/f": res.redisHitVsFieldsPaired[1],
		"e/c  CPU": res.cpuInProcessSame, "f/d  CPU": res.cpuRedisHitSame} {
		if !(r > 0) || math.IsInf(r, 0) {
			t.Errorf("ratio %s = %v, want a positive number", name, r)
		}
		if !strings.Contains(out.String(), name) {
			t.Errorf("report has no ratio %s", name)
		}
	}
	for _, f := range []string{cfg.cpuProfile, cfg.memProfile, cfg.memProfile + ".base"} {
		if !fileNonEmpty(t, f) {
			t.Errorf("profile %s not written", f)
		}
	}
}

func fileNonEmpty(t *testing.T, path string) bool {
	t.Helper()
	fi, err := os.Stat(path)
	return err == nil && fi.Size() > 0
}

// TestRoundOrder: every round runs each app once; a runs right next to c
// and b next to d; over four rounds each app runs once in each position.
func TestRoundOrder(t *testing.T) {
	var seen [4][4]int // app, position
	for r := range 4 {
		order := roundOrder(r, 4)
		pos := make(map[int]int)
		for p, app := range order {
			pos[app] = p
			seen[app][p]++
		}
		if len(pos) != 4 {
			t.Fatalf("round %d: order %v does not run each app once", r, order)
		}
		for _, pair := range [][2]int{{0, 2}, {1, 3}} {
			if d := pos[pair[0]] - pos[pair[1]]; d != 1 && d != -1 {
				t.Errorf("round %d: order %v does not run apps %d and %d one after the other", r, order, pair[0], pair[1])
			}
		}
	}
	for app, ps := range seen {
		for p, n := range ps {
			if n != 1 {
				t.Errorf("app %d ran %d times in position %d over four rounds, want once", app, n, p)
			}
		}
	}
	// Five apps: e (4) also runs next to c (2); six: f (5) also next to
	// d (3).
	for n, pairs := range map[int][][2]int{5: {{0, 2}, {1, 3}, {4, 2}}, 6: {{0, 2}, {1, 3}, {4, 2}, {5, 3}}} {
		for r := range 8 {
			order := roundOrder(r, n)
			pos := make(map[int]int)
			for p, app := range order {
				pos[app] = p
			}
			if len(order) != n || len(pos) != n {
				t.Fatalf("round %d: order %v does not run each of %d apps once", r, order, n)
			}
			for _, pair := range pairs {
				if d := pos[pair[0]] - pos[pair[1]]; d != 1 && d != -1 {
					t.Errorf("round %d: order %v does not run apps %d and %d one after the other", r, order, pair[0], pair[1])
				}
			}
		}
	}
	if got := roundOrder(1, 3); !slices.Equal(got, []int{1, 2, 0}) {
		t.Errorf("roundOrder(1, 3) = %v, want [1 2 0]", got)
	}
}

func TestQuartiles(t *testing.T) {
	tests := []struct {
		v    []float64
		want [3]float64
	}{
		{nil, [3]float64{}},
		{[]float64{7}, [3]float64{7, 7, 7}},
		{[]float64{5, 1, 3, 2, 4}, [3]float64{2, 3, 4}},
		{[]float64{4, 3, 2, 1}, [3]float64{2, 3, 3}},
		{[]float64{9, 1, 8, 2, 7, 3, 6, 4, 5}, [3]float64{3, 5, 7}},
	}
	for _, tt := range tests {
		if got := quartiles(tt.v); got != tt.want {
			t.Errorf("quartiles(%v) = %v, want %v", tt.v, got, tt.want)
		}
	}
}
