package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/failsoft/failsoft/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestDrillSmoke runs a short drill against the protected app and checks
// the goals that hold on a noisy, shared two-core CI machine: no failed
// request, at most two primary fetches per key, and every cache entry back
// in the restarted Redis within 10 s. Throughput and p99 are printed, not
// checked: they measure the machine as much as failsoft.
func TestDrillSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("the drill takes about 20 s, plus building the app")
	}
	cfg := defaultConfig()
	cfg.redisServer = redistest.Binary(t)
	cfg.clients, cfg.keys = 8, 10
	cfg.latency = 100 * time.Millisecond
	cfg.phases = [5]phaseSpec{
		{phaseSteady, 2 * time.Second},
		{phasePaused, 2 * time.Second},
		{phaseResumed, 2 * time.Second},
		{phaseKilled, 2 * time.Second},
		{phaseRestarted, goalKeysBack}, // long enough to see the goal met or missed
	}
	res, _ := runDrill(t, cfg)
	for _, p := range res.phases {
		if p.requests == 0 {
			t.Errorf("phase %s: no request completed", p.name)
		}
		if p.failed != 0 {
			t.Errorf("phase %s: %d of %d requests failed (%v)", p.name, p.failed, p.requests, res.failures)
		}
	}
	if max := goalFetches * float64(cfg.keys); res.fetches > max || res.fetches < float64(cfg.keys) {
		t.Errorf("primary fetched %.0f times for %d keys, want %d to %.0f", res.fetches, cfg.keys, cfg.keys, max)
	}
	for key, n := range res.versions {
		if n > goalFetches {
			t.Errorf("key %s: %d different answers, want at most %d", key, n, goalFetches)
		}
	}
	if res.entriesBack < 0 || res.entriesBack > goalKeysBack {
		t.Errorf("cache entries back in the restarted Redis %s, want within %v (%d entries at the end)", fmtBack(res.entriesBack), goalKeysBack, res.entries)
	}
}

// TestDrillColdSmoke runs a short open-loop drill with the miss budget
// sized to the primary and always on, and checks what does not depend on
// the machine's speed: every phase has answers, the restarted Redis is
// timed inside its phase, the recovery judges whole seconds from then on,
// and the primary never overloads (the budget holds at most as many
// handler calls as the primary serves at once, and only handler calls
// fetch). The recovery time and the other goals are printed, not checked.
func TestDrillColdSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("the drill takes about 7 s, plus building the app")
	}
	cfg := defaultConfig()
	cfg.redisServer = redistest.Binary(t)
	cfg.rate, cfg.keys, cfg.dist = 100, 500, distZipf
	cfg.latency, cfg.capacity, cfg.missBudget, cfg.budgetMode = 50*time.Millisecond, 4, "4", "always"
	cfg.phases = [5]phaseSpec{
		{phaseSteady, time.Second},
		{phasePaused, time.Second},
		{phaseResumed, time.Second},
		{phaseKilled, time.Second},
		{phaseRestarted, 3 * time.Second},
	}
	res, out := runDrill(t, cfg)
	var overloads float64
	for _, p := range res.phases {
		if p.requests == 0 {
			t.Errorf("phase %s: no request completed", p.name)
		}
		overloads += p.overloads
	}
	if overloads != 0 {
		t.Errorf("%.0f primary overloads with a miss budget of %s, always, over a primary of %d", overloads, cfg.missBudget, cfg.capacity)
	}
	restarted := res.phases[len(res.phases)-1]
	if res.redisBack < restarted.start || res.redisBack >= restarted.start+restarted.dur {
		t.Errorf("Redis back at %v, want within the restarted phase [%v, %v)", res.redisBack, restarted.start, restarted.start+restarted.dur)
	}
	r := res.recovery
	if want := int((restarted.start + restarted.dur - res.redisBack) / time.Second); len(r.seconds) != want || r.back != res.redisBack {
		t.Errorf("recovery judged %d seconds from %v, want %d from %v", len(r.seconds), r.back, want, res.redisBack)
	}
	if !strings.Contains(out, "cold-key goals") || !strings.Contains(out, "goodput back within 10s") {
		t.Errorf("no cold-key goals in the output")
	}
}

// TestParseFlags checks the flags and the limits that keep the drill
// bounded.
func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(config) bool
		wantErr string
	}{
		{name: "defaults", check: func(c config) bool {
			return c.clients == 32 && c.keys == 20 && c.failsoft && c.latency == 500*time.Millisecond && c.phases[1].dur == 10*time.Second
		}},
		{name: "phase durations", args: []string{"-paused", "3s", "-restarted", "1m"}, check: func(c config) bool {
			return c.phases[1].name == phasePaused && c.phases[1].dur == 3*time.Second && c.phases[4].dur == time.Minute
		}},
		{name: "failsoft off", args: []string{"-failsoft=false", "-clients", "4", "-keys", "5"}, check: func(c config) bool {
			return !c.failsoft && c.clients == 4 && c.keys == 5
		}},
		{name: "no clients", args: []string{"-clients", "0"}, wantErr: "-clients"},
		{name: "too many keys", args: []string{"-keys", "100000"}, wantErr: "-keys"},
		{name: "phase too short", args: []string{"-killed", "1ms"}, wantErr: "-killed"},
		{name: "phase too long", args: []string{"-steady", "1h"}, wantErr: "-steady"},
		{name: "negative latency", args: []string{"-latency", "-1s"}, wantErr: "-latency"},
		{name: "tiny timeout", args: []string{"-timeout", "1ms"}, wantErr: "-timeout"},
		{name: "bad duration", args: []string{"-paused", "ten"}, wantErr: "invalid value"},
		{name: "stray argument", args: []string{"now"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(cfg) {
				t.Errorf("config %+v", cfg)
			}
		})
	}
}

// TestContract checks what the drill counts as a failed answer.
func TestContract(t *testing.T) {
	tests := []struct {
		name string
		body string
		ok   bool
	}{
		{"from the primary", `{"source":"primary","data":"Data for key-01 fetched at 2026-01-01T00:00:00Z"}` + "\n", true},
		{"from the cache", `{"source":"cache","data":"Data for key-01 fetched at 2026-01-01T00:00:00Z"}`, true},
		{"another key's data", `{"source":"cache","data":"Data for key-02 fetched at 2026-01-01T00:00:00Z"}`, false},
		{"unknown source", `{"source":"stale","data":"Data for key-01 fetched at x"}`, false},
		{"no data", `{"source":"cache"}`, false},
		{"extra field", `{"source":"cache","data":"Data for key-01 fetched at x","error":"boom"}`, false},
		{"error body", `{"error":"redis: connection refused"}`, false},
		{"two values", `{"source":"cache","data":"Data for key-01 fetched at x"}{}`, false},
		{"not JSON", `Service Unavailable`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := contract([]byte(tt.body), "key-01"); ok != tt.ok {
				t.Errorf("contract(%q) = %v, want %v", tt.body, ok, tt.ok)
			}
		})
	}
}

// TestPercentile checks the nearest-rank quantiles of the table.
func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var out []time.Duration
		for _, n := range ns {
			out = append(out, time.Duration(n)*time.Millisecond)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i
	}
	tests := []struct {
		name string
		lats []time.Duration
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.99, 0},
		{"one", ms(7), 0.5, 7 * time.Millisecond},
		{"median of four", ms(4, 1, 3, 2), 0.5, 2 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 0.99, 99 * time.Millisecond},
		{"max", ms(hundred...), 1, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.lats, tt.q); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSVG checks that the chart is well-formed SVG with the fault windows
// shaded, and that a second without answers leaves a gap in the p99 line.
func TestSVG(t *testing.T) {
	cfg := defaultConfig()
	res := &result{cfg: cfg}
	for i, p := range cfg.phases {
		res.phases = append(res.phases, phaseResult{name: p.name, start: time.Duration(i) * 2 * time.Second, dur: 2 * time.Second})
	}
	for at := time.Duration(0); at < 10*time.Second; at += 10 * time.Millisecond {
		if at >= 2*time.Second && at < 4*time.Second { // paused: nothing ends
			continue
		}
		res.samples = append(res.samples, sample{at: at, lat: time.Millisecond, status: 200})
	}
	var b bytes.Buffer
	writeSVG(&b, res)
	count, fills, _ := svgElements(t, b.Bytes())
	if count["svg"] != 1 {
		t.Errorf("%d svg elements, want 1", count["svg"])
	}
	// throughput, failed, and the p99 line in two pieces around the gap
	if count["polyline"] != 4 {
		t.Errorf("%d polylines, want 4", count["polyline"])
	}
	for _, fill := range []string{"#fde2b8", "#f8c4c4"} {
		if !fills[fill] {
			t.Errorf("no fault window shaded %s", fill)
		}
	}
}

// svgElements parses an SVG, failing t unless it is well-formed, and
// returns how many elements of each name it has, the fills of its rects
// and the text of its text elements.
func svgElements(t *testing.T, b []byte) (count map[string]int, fills map[string]bool, texts []string) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	count, fills = map[string]int{}, map[string]bool{}
	depth := 0 // inside a text element
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			count[tok.Name.Local]++
			for _, a := range tok.Attr {
				if tok.Name.Local == "rect" && a.Name.Local == "fill" {
					fills[a.Value] = true
				}
			}
			if tok.Name.Local == "text" {
				depth++
			}
		case xml.CharData:
			if depth > 0 {
				text.Write(tok)
			}
		case xml.EndElement:
			if tok.Name.Local == "text" {
				if depth--; depth == 0 {
					texts = append(texts, text.String())
					text.Reset()
				}
			}
		}
	}
	return count, fills, texts
}

// TestSVGCold checks the open-loop chart: well-formed, the fault windows
// shaded, one line per series, and Redis' return and the recovery marked
// (or the lack of one said).
func TestSVGCold(t *testing.T) {
	sec := time.Second
	cfg := defaultConfig()
	cfg.rate, cfg.capacity, cfg.missBudget, cfg.budgetMode = 100, 8, "8", "always"
	res := &result{cfg: cfg, redisBack: 8*sec + sec/2}
	for i, p := range cfg.phases {
		res.phases = append(res.phases, phaseResult{name: p.name, start: time.Duration(i) * 2 * sec, dur: 2 * sec})
	}
	for s := range 10 * sec / sec {
		res.samples = append(res.samples, answers(s*sec, 90, ok200)...)
		res.samples = append(res.samples, answers(s*sec, 5, shed503)...)
		res.samples = append(res.samples, answers(s*sec, 5, err500)...)
		res.primary = append(res.primary, inFlightSample{at: s*sec + sec/2, n: float64(s), overloads: float64(s)})
	}
	tests := []struct {
		name  string
		ref   float64 // steady's answers 200 per second, of 100 sent
		after time.Duration
		want  []string // texts the chart must have
	}{
		{"recovered", 90, sec, []string{"Redis back", "recovered (+1s)", "capacity 8", "200", "503 with Retry-After", "miss budget 8, always"}},
		{"not recovered", 90, -1, []string{"Redis back", "not recovered"}},
		{"a failing steady phase", 50, 0, []string{"Redis back", "recovery n/a: steady answered 50% with 200"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res.recovery = recovery{ref: tt.ref, threshold: 0.9 * tt.ref, back: res.redisBack, seconds: make([]bucket, 1), after: tt.after}
			var b bytes.Buffer
			writeSVG(&b, res)
			count, fills, texts := svgElements(t, b.Bytes())
			if count["svg"] != 1 {
				t.Errorf("%d svg elements, want 1", count["svg"])
			}
			// 200s, 503s, others, p99, overloads, concurrency: no gap, as
			// every second has answers.
			if count["polyline"] != 6 {
				t.Errorf("%d polylines, want 6", count["polyline"])
			}
			for _, fill := range []string{"#fde2b8", "#f8c4c4"} {
				if !fills[fill] {
					t.Errorf("no fault window shaded %s", fill)
				}
			}
			all := strings.Join(texts, "|")
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("no text %q in the chart (%s)", w, all)
				}
			}
			if (tt.after < 0 || tt.ref < 90) && strings.Contains(all, "recovered (") {
				t.Errorf("a recovery marked for a run that did not recover or cannot be judged")
			}
		})
	}
}

// TestSummarizeCold: the cold-key columns of a phase.
func TestSummarizeCold(t *testing.T) {
	cfg := defaultConfig()
	sec := time.Second
	starts := []time.Duration{0, 10 * sec, 20 * sec, 30 * sec, 40 * sec, 50 * sec}
	counts := []counters{{0, 0}, {100, 0}, {150, 7}, {150, 7}, {150, 7}, {160, 7}}
	inFlight := []inFlightSample{{at: sec, n: 3}, {at: 11 * sec, n: 9}, {at: 12 * sec, n: 4}}
	samples := []sample{
		{at: sec, lat: 1, status: 200, key: 1},
		{at: 11 * sec, lat: 1, status: 503, retryAfter: true, fail: failStatus, key: 2},
		{at: 11 * sec, lat: 1, status: 200, stale: true, key: 1},
		{at: 12 * sec, lat: 1, status: 500, fail: failStatus, key: 1},
	}
	tests := []struct {
		phase                 int
		shed, stale, lostKeys int
		overloads, peak       float64
	}{
		{0, 0, 0, 0, 0, 3},
		{1, 1, 1, 1, 7, 9},
		{2, 0, 0, 0, 0, 0},
	}
	got := summarize(cfg, samples, starts, counts, inFlight)
	for _, tt := range tests {
		t.Run(got[tt.phase].name, func(t *testing.T) {
			p := got[tt.phase]
			if p.shed != tt.shed || p.stale != tt.stale || p.lostKeys != tt.lostKeys || p.overloads != tt.overloads || p.peak != tt.peak {
				t.Errorf("got shed %d stale %d lost %d overloads %v peak %v, want %+v", p.shed, p.stale, p.lostKeys, p.overloads, p.peak, tt)
			}
		})
	}
	res := &result{cfg: cfg, phases: got, redisBack: -1}
	res.cfg.rate = 100
	gs := goals(res)
	if len(gs) != 3 {
		t.Fatalf("%d goals, want the 3 cold-key goals without a recovery (Redis never came back)", len(gs))
	}
	for _, g := range gs {
		if g.met {
			t.Errorf("goal %q met, want missed (%s)", g.name, g.detail)
		}
	}
}

// runDrill runs the drill with cfg, logs its output and checks that every
// phase was measured.
func runDrill(t *testing.T, cfg config) (*result, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	res, err := run(ctx, cfg, &out)
	t.Logf("drill output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.phases) != len(cfg.phases) {
		t.Fatalf("%d phases measured, want %d", len(res.phases), len(cfg.phases))
	}
	return res, out.String()
}
