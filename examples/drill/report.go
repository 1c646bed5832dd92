package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Goals of the protected app (FAILSOFT on), from the design.
const (
	goalFaultShare = 0.5                    // of the steady phase's throughput
	goalP99        = 100 * time.Millisecond // in each fault phase
	goalFetches    = 2                      // primary calls per key over the drill
	goalKeysBack   = 10 * time.Second       // for the restarted Redis
)

// summarize sorts samples into phases by the time they ended: phase i ran from
// starts[i] to starts[i+1], and counts[i] was the primary-fetch counter at
// starts[i].
func summarize(cfg config, samples []sample, starts []time.Duration, counts []counters, inFlight []inFlightSample) []phaseResult {
	out := make([]phaseResult, 0, len(cfg.phases))
	answered := make(map[int32]bool) // keys answered 200 in the steady phase
	for i, p := range cfg.phases {
		if i+1 >= len(starts) {
			break
		}
		pr := phaseResult{name: p.name, start: starts[i], dur: starts[i+1] - starts[i],
			fetches: counts[i+1].fetches - counts[i].fetches, overloads: counts[i+1].overloads - counts[i].overloads}
		for _, f := range inFlight {
			if f.at >= starts[i] && f.at < starts[i+1] {
				pr.peak = max(pr.peak, f.n)
			}
		}
		var lats []time.Duration
		for _, s := range samples {
			if e := s.end(); e < starts[i] || e >= starts[i+1] {
				continue
			}
			pr.requests++
			if s.fail != failNone {
				pr.failed++
			}
			if s.status == 503 && s.retryAfter {
				pr.shed++
			}
			if s.status == 200 && s.stale {
				pr.stale++
			}
			switch {
			case p.name == phaseSteady && s.status == 200:
				answered[s.key] = true
			case p.name != phaseSteady && answered[s.key] && s.status != 200:
				pr.lostKeys++
			}
			lats = append(lats, s.lat)
		}
		pr.p50, pr.p99, pr.max = percentile(lats, 0.50), percentile(lats, 0.99), percentile(lats, 1)
		out = append(out, pr)
	}
	return out
}

// percentile returns the q-quantile of lats (nearest rank), sorting lats.
func percentile(lats []time.Duration, q float64) time.Duration {
	if len(lats) == 0 {
		return 0
	}
	slices.Sort(lats)
	i := int(q*float64(len(lats))+0.999999) - 1
	return lats[max(0, min(i, len(lats)-1))]
}

// failureKinds counts failed requests by kind ("status 500", "timeout").
func failureKinds(samples []sample) map[string]int {
	out := make(map[string]int)
	for _, s := range samples {
		switch s.fail {
		case failNone:
		case failStatus:
			out[fmt.Sprintf("status %d", s.status)]++
		default:
			out[s.fail.String()]++
		}
	}
	return out
}

// fmtDur formats a latency for the table: 0.42ms, 12.3ms, 5.00s.
func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
}

// fmtBack formats a "keys back after" duration; negative means never.
func fmtBack(d time.Duration) string {
	if d < 0 {
		return "not before the drill ended"
	}
	return fmt.Sprintf("after %.2fs", d.Seconds())
}

// report prints the table, the key recovery and, with failsoft on, the goals.
func report(out io.Writer, res *result) {
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\trequests\treq/s\tfailed\t503\tstale\tp50\tp99\tmax\tprimary fetches\toverloads\tprimary peak\tsteady keys not 200\t")
	var total phaseResult
	for _, p := range res.phases {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%d\t%d\t%d\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%d\t\n",
			p.name, p.requests, p.throughput(), p.failed, p.shed, p.stale, fmtDur(p.p50), fmtDur(p.p99), fmtDur(p.max),
			p.fetches, p.overloads, p.peak, p.lostKeys)
		total.requests += p.requests
		total.failed += p.failed
		total.shed += p.shed
		total.stale += p.stale
		total.overloads += p.overloads
		total.peak = max(total.peak, p.peak)
		total.lostKeys += p.lostKeys
		total.dur += p.dur
	}
	fmt.Fprintf(tw, "total\t%d\t%.0f\t%d\t%d\t%d\t\t\t\t%.0f\t%.0f\t%.0f\t%d\t\n", total.requests, total.throughput(), total.failed,
		total.shed, total.stale, res.fetches, total.overloads, total.peak, total.lostKeys)
	tw.Flush()

	if len(res.failures) > 0 {
		kinds := make([]string, 0, len(res.failures))
		for k, n := range res.failures {
			kinds = append(kinds, fmt.Sprintf("%s: %d", k, n))
		}
		sort.Strings(kinds)
		fmt.Fprintf(out, "\nfailed requests by kind: %s\n", strings.Join(kinds, ", "))
	}
	if res.cfg.control {
		fmt.Fprintln(out, "\ncontrol run: Redis was never touched, so there is no recovery to time and no goal to check")
		return
	}
	if res.cfg.rate > 0 {
		if res.redisBack >= 0 {
			printRecovery(out, res)
		}
		mode := "on"
		if !res.cfg.failsoft {
			mode = "off, for comparison"
		}
		fmt.Fprintf(out, "\ncold-key goals (FAILSOFT %s):\n", mode)
		printGoals(out, coldGoals(res))
		return
	}
	fmt.Fprintf(out, "\nrestarted Redis (empty) held:\n")
	fmt.Fprintf(out, "  cache entries (failsoft:[ev]:*, >= %d):  %s (%d at the end)\n", res.cfg.keys, fmtBack(res.entriesBack), res.entries)
	fmt.Fprintf(out, "  data keys (key-NN, all %d):          %s (%d at the end)\n", res.cfg.keys, fmtBack(res.dataBack), res.dataKeys)
	maxV := 0
	for _, n := range res.versions {
		maxV = max(maxV, n)
	}
	fmt.Fprintf(out, "answers per key: at most %d different values (one per primary fetch that reached a client)\n", maxV)

	if !res.cfg.failsoft {
		return
	}
	fmt.Fprintln(out, "\ngoals (FAILSOFT on):")
	printGoals(out, goals(res))
}

// printGoals prints each goal as met or MISSED.
func printGoals(out io.Writer, gs []goal) {
	for _, g := range gs {
		mark := "met   "
		switch {
		case g.na:
			mark = "n/a   "
		case !g.met:
			mark = "MISSED"
		}
		fmt.Fprintf(out, "  %s  %s: %s\n", mark, g.name, g.detail)
	}
}

// goal is one of the protected app's goals, checked against a drill.
type goal struct {
	name   string
	met    bool
	detail string
	// na says the run cannot judge the goal (neither met nor missed), as
	// a recovery to a steady phase that was itself failing.
	na bool
}

// goals checks res against the protected app's goals.
func goals(res *result) []goal {
	if res.cfg.rate > 0 {
		return coldGoals(res)
	}
	var out []goal
	failed := 0
	for _, p := range res.phases {
		failed += p.failed
	}
	out = append(out, goal{name: "no failed request", met: failed == 0, detail: fmt.Sprintf("%d failed", failed)})

	var steady float64
	for _, p := range res.phases {
		if p.name == phaseSteady {
			steady = p.throughput()
			continue
		}
		share := 0.0
		if steady > 0 {
			share = p.throughput() / steady
		}
		out = append(out, goal{
			name:   p.name + " keeps throughput and latency",
			met:    share >= goalFaultShare && p.p99 <= goalP99,
			detail: fmt.Sprintf("%.0f%% of steady (want >= %.0f%%), p99 %s (want <= %s)", share*100, goalFaultShare*100, fmtDur(p.p99), fmtDur(goalP99)),
		})
	}

	maxV := 0
	for _, n := range res.versions {
		maxV = max(maxV, n)
	}
	keys := float64(res.cfg.keys)
	out = append(out, goal{
		name:   "primary asked at most twice per key",
		met:    res.fetches <= goalFetches*keys && maxV <= goalFetches,
		detail: fmt.Sprintf("%.0f fetches for %d keys, at most %d answers per key", res.fetches, res.cfg.keys, maxV),
	})
	out = append(out, goal{
		name:   "restarted Redis holds every key within 10s",
		met:    res.entriesBack >= 0 && res.entriesBack <= goalKeysBack,
		detail: "cache entries " + fmtBack(res.entriesBack),
	})
	return out
}

// coldGoals checks a cold-key drill (open-loop load over many keys, a
// primary that can fall over) against the goals: the primary never
// overloads, a key answered 200 in the steady phase (before the outage)
// answers 200 in every later phase, every other answer is 200 or 503 with
// Retry-After, and the goodput is back within 10 s of the restarted Redis
// accepting connections (see [recovery]) to a steady phase that answered at
// least 90% of the requests sent with 200 (else that goal is n/a).
func coldGoals(res *result) []goal {
	var overloads float64
	var lost, other int
	var where []string
	for _, p := range res.phases {
		overloads += p.overloads
		lost += p.lostKeys
		other += p.failed - p.shed
		if p.overloads > 0 {
			where = append(where, fmt.Sprintf("%s %.0f", p.name, p.overloads))
		}
	}
	detail := fmt.Sprintf("%.0f overloads", overloads)
	if len(where) > 0 {
		detail += " (" + strings.Join(where, ", ") + ")"
	}
	out := []goal{
		{name: "no primary overload in any phase", met: overloads == 0, detail: detail},
		{name: "keys answered 200 before the outage still answer 200", met: lost == 0, detail: fmt.Sprintf("%d requests for such keys got no 200", lost)},
		{name: "every answer is 200 or 503 with Retry-After", met: other == 0, detail: fmt.Sprintf("%d other answers", other)},
	}
	if res.redisBack < 0 {
		return out // -control: Redis never came back, there is no recovery
	}
	r := res.recovery
	g := goal{name: "goodput back within 10s of Redis coming back", met: r.after >= 0 && r.after <= goalRecovery,
		detail: fmtRecovery(r) + "; " + refShare(r, res.cfg.rate)}
	if !r.judgeable(res.cfg.rate) {
		g.met, g.na = false, true
		g.detail = fmt.Sprintf("cannot be judged: %s (want >= %.0f%% for a steady state to recover to); measured against it, %s",
			refShare(r, res.cfg.rate), recoveryShare*100, fmtRecovery(r))
	}
	return append(out, g)
}
