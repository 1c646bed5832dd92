package main

import (
	"strings"
	"testing"
	"time"
)

// TestRecoveredAfter: the recovery is the first second from which every
// second to the end reaches the threshold, not the first that touches it.
func TestRecoveredAfter(t *testing.T) {
	secs := func(oks ...int) []bucket {
		out := make([]bucket, len(oks))
		for i, n := range oks {
			out[i].ok = n
		}
		return out
	}
	tests := []struct {
		name      string
		seconds   []bucket
		threshold float64
		want      time.Duration
	}{
		{"no seconds", nil, 90, -1},
		{"never below", secs(95, 100, 91), 90, 0},
		{"at the threshold counts", secs(90, 90), 90, 0},
		{"a dip, then back", secs(10, 50, 89, 95, 100), 90, 3 * time.Second},
		{"back once, down again, back", secs(10, 95, 20, 95, 96), 90, 3 * time.Second},
		{"the last second below", secs(95, 96, 89), 90, -1},
		{"only the last second above", secs(0, 0, 0, 90), 90, 3 * time.Second},
		{"a zero threshold", secs(0, 0), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := recoveredAfter(tt.seconds, tt.threshold); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestMeasureRecovery: the reference is the steady phase's second half (its
// cold start does not lower the bar), the seconds start when Redis came
// back, and only whole seconds are judged.
func TestMeasureRecovery(t *testing.T) {
	sec := time.Second
	steady := phaseResult{name: phaseSteady, start: 0, dur: 10 * sec}
	var samples []sample
	for s := range 10 * sec / sec {
		n := 300
		if s < 5 {
			n = 100 // the cold start: answers still slow to come back
			samples = append(samples, answers(s*sec, 200, shed503)...)
		}
		samples = append(samples, answers(s*sec, n, ok200)...)
	}
	back := 30*sec + sec/2
	goodputs := []int{120, 200, 269, 280, 300, 310, 295, 299, 301}
	for i, n := range goodputs {
		samples = append(samples, answers(back+time.Duration(i)*sec, n, ok200)...)
		samples = append(samples, answers(back+time.Duration(i)*sec, max(0, 300-n), err500)...)
	}
	end := back + time.Duration(len(goodputs))*sec + 700*time.Millisecond // a short last second
	samples = append(samples, answers(end-sec/2, 3, ok200)...)            // some in it, some after the end
	prim := []inFlightSample{{at: back + sec/4, n: 40, overloads: 7}}

	r := measureRecovery(samples, prim, steady, back, end)
	if r.ref != 300 {
		t.Errorf("reference %v answers 200/s, want 300 (the steady phase's second half)", r.ref)
	}
	if r.threshold != 270 {
		t.Errorf("threshold %v, want 270", r.threshold)
	}
	if len(r.seconds) != len(goodputs) {
		t.Fatalf("%d seconds judged, want the %d whole ones", len(r.seconds), len(goodputs))
	}
	for i, n := range goodputs {
		if r.seconds[i].ok != n || r.seconds[i].other != max(0, 300-n) {
			t.Errorf("second %d: %d answers 200 and %d others, want %d and %d", i, r.seconds[i].ok, r.seconds[i].other, n, max(0, 300-n))
		}
	}
	if r.seconds[0].overloads != 7 || r.seconds[0].peak != 40 {
		t.Errorf("second 0: %v overloads, peak %v, want 7 and 40", r.seconds[0].overloads, r.seconds[0].peak)
	}
	if r.back != back || r.after != 3*sec {
		t.Errorf("back %v, recovered after %v; want %v and 3s (269 < 270 in second 2)", r.back, r.after, back)
	}

	if r := measureRecovery(samples, prim, steady, end-sec/2, end); len(r.seconds) != 0 || r.after != -1 ||
		!strings.HasPrefix(fmtRecovery(r), "not measured") {
		t.Errorf("Redis back half a second before the end: %d seconds, after %v, %q; want none, -1, not measured", len(r.seconds), r.after, fmtRecovery(r))
	}
}

// TestColdGoals: each cold-key goal fails on its own condition.
func TestColdGoals(t *testing.T) {
	phases := func() []phaseResult {
		var out []phaseResult
		for _, p := range defaultConfig().phases {
			out = append(out, phaseResult{name: p.name, requests: 100})
		}
		return out
	}
	recovered := func(after time.Duration) recovery {
		return recovery{ref: 300, threshold: 270, seconds: make([]bucket, 15), after: after}
	}
	tests := []struct {
		name   string
		change func(*result)
		missed string // the goal missed; "" for none
		na     bool   // the recovery cannot be judged
		detail string // in the detail of the goal missed, or of the recovery when na
	}{
		{name: "all met", change: func(*result) {}},
		{name: "an overload", change: func(r *result) { r.phases[3].overloads = 2 },
			missed: "no primary overload in any phase", detail: "killed 2"},
		{name: "a steady key lost", change: func(r *result) { r.phases[2].lostKeys = 1 },
			missed: "keys answered 200 before the outage still answer 200", detail: "1 requests"},
		{name: "a 500", change: func(r *result) { r.phases[1].failed, r.phases[1].shed = 5, 4 },
			missed: "every answer is 200 or 503 with Retry-After", detail: "1 other"},
		{name: "shed only", change: func(r *result) { r.phases[1].failed, r.phases[1].shed = 4, 4 }},
		{name: "recovered at 10s", change: func(r *result) { r.recovery = recovered(10 * time.Second) }},
		{name: "recovered at 11s", change: func(r *result) { r.recovery = recovered(11 * time.Second) },
			missed: "goodput back within 10s of Redis coming back", detail: "after 11s"},
		{name: "not recovered", change: func(r *result) { r.recovery = recovered(-1) },
			missed: "goodput back within 10s of Redis coming back", detail: "not recovered"},
		{name: "nothing to recover to", change: func(r *result) { r.recovery = recovery{seconds: make([]bucket, 15)} },
			na: true, detail: "0.0% of the 300"},
		{name: "a failing steady phase", change: func(r *result) {
			r.recovery = recovered(0)
			r.recovery.ref = 269 // < 90% of 300
		}, na: true, detail: "89.7% of the 300 requests/s sent (want >= 90%"},
		{name: "a steady phase just healthy", change: func(r *result) {
			r.recovery = recovered(0)
			r.recovery.ref = 270
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := &result{phases: phases(), redisBack: 40 * time.Second, recovery: recovered(0)}
			res.cfg.rate = 300
			tt.change(res)
			gs := coldGoals(res)
			if len(gs) != 4 {
				t.Fatalf("%d goals, want 4", len(gs))
			}
			for _, g := range gs {
				isRecovery := g.name == "goodput back within 10s of Redis coming back"
				switch {
				case g.na != (tt.na && isRecovery):
					t.Errorf("%q: n/a %v, want %v (%s)", g.name, g.na, tt.na && isRecovery, g.detail)
				case g.na && g.met:
					t.Errorf("%q: both n/a and met", g.name)
				case g.na && !strings.Contains(g.detail, tt.detail):
					t.Errorf("%q: detail %q, want it to mention %q", g.name, g.detail, tt.detail)
				case g.na:
				case g.name == tt.missed && g.met:
					t.Errorf("%q met (%s), want missed", g.name, g.detail)
				case g.name == tt.missed && !strings.Contains(g.detail, tt.detail):
					t.Errorf("%q: detail %q, want it to mention %q", g.name, g.detail, tt.detail)
				case g.name != tt.missed && !g.met:
					t.Errorf("%q missed (%s), want met", g.name, g.detail)
				}
			}
		})
	}
}
