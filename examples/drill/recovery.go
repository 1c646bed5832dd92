package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Recovery after Redis comes back, in open-loop runs. The arrival rate is
// fixed there, so throughput cannot show a recovery; goodput can: answers
// 200 (that keep the contract) per second.
const (
	// recoveryShare is the share of the steady phase's goodput that counts
	// as recovered: a margin for the second-to-second jitter of an open
	// loop on a shared machine, small enough that a service shedding a
	// tenth of its load has not recovered.
	recoveryShare = 0.9
	// goalRecovery is the bound on the recovery.
	goalRecovery = 10 * time.Second
)

// recovery is how the service's goodput came back after the restarted Redis
// accepted connections.
type recovery struct {
	// ref is the steady phase's goodput, answers 200 per second over its
	// second half: its first half holds the cold start, where every key is
	// a miss, and would lower the bar.
	ref       float64
	threshold float64 // recoveryShare * ref
	back      time.Duration
	// seconds are the whole seconds from back to the drill's end: second i
	// holds the requests that ended in [back+i s, back+(i+1) s).
	seconds []bucket
	// after is the recovery: the first k*1s such that every one of seconds
	// k, k+1, ..., the last had at least threshold answers 200 (0: the
	// goodput never fell below it). -1: the last second had fewer, or there
	// was no whole second to judge.
	after time.Duration
}

// measureRecovery measures the recovery from samples (ordered by end) and
// the primary's samples prim: steady is the steady phase, back when the
// restarted Redis accepted connections, end when the drill ended (all since
// the drill's start).
func measureRecovery(samples []sample, prim []inFlightSample, steady phaseResult, back, end time.Duration) recovery {
	r := recovery{ref: goodput(samples, steady.start+steady.dur/2, steady.start+steady.dur), back: back, after: -1}
	r.threshold = recoveryShare * r.ref
	if whole := int((end - back) / time.Second); whole > 0 {
		r.seconds = buckets(samples, prim, back, end)[:whole]
	}
	r.after = recoveredAfter(r.seconds, r.threshold)
	return r
}

// goodput is the answers 200 that ended in [from, to) per second.
func goodput(samples []sample, from, to time.Duration) float64 {
	if to <= from {
		return 0
	}
	n := 0
	for _, s := range samples {
		if e := s.end(); e >= from && e < to && s.fail == failNone {
			n++
		}
	}
	return float64(n) / (to - from).Seconds()
}

// recoveredAfter returns k seconds for the first k from which every second
// of seconds had at least threshold answers 200, or -1 when the last one
// had fewer (or seconds is empty): recovered means recovered for the rest
// of the run, not touched once.
func recoveredAfter(seconds []bucket, threshold float64) time.Duration {
	k := len(seconds)
	for k > 0 && float64(seconds[k-1].ok) >= threshold {
		k--
	}
	if k == len(seconds) {
		return -1
	}
	return time.Duration(k) * time.Second
}

// fmtRecovery formats the recovery for the report and the chart.
func fmtRecovery(r recovery) string {
	switch {
	case len(r.seconds) == 0:
		return "not measured: no whole second after Redis came back"
	case r.after < 0:
		return fmt.Sprintf("not recovered: the last second had %d answers 200, below %.0f", r.seconds[len(r.seconds)-1].ok, r.threshold)
	case r.after == 0:
		return "recovered after 0s (no second after Redis came back fell below the threshold)"
	}
	return fmt.Sprintf("recovered after %.0fs", r.after.Seconds())
}

// judgeable reports whether the steady phase answered at least
// recoveryShare of the requests sent at rate with 200: "recovers to the
// steady throughput" presumes a steady phase that served its load, and one
// that already failed many requests sets a bar that a failing service
// clears.
func (r recovery) judgeable(rate float64) bool { return r.ref >= recoveryShare*rate }

// refShare says how the reference compares with the arrival rate: a steady
// phase that already failed many requests sets a low bar, and the recovery
// then says little.
func refShare(r recovery, rate float64) string {
	return fmt.Sprintf("steady's answers 200 were %.1f%% of the %.0f requests/s sent", 100*r.ref/rate, rate)
}

// printRecovery prints the per-second view from the restarted Redis
// accepting connections to the drill's end, and the recovery.
func printRecovery(out io.Writer, res *result) {
	r := res.recovery
	fmt.Fprintf(out, "\nafter the restarted Redis accepted connections (at %.2fs), per second:\n", r.back.Seconds())
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "second\t200\t503\tother\tp99\toverloads\tprimary peak\t")
	for i, b := range r.seconds {
		mark := ""
		if float64(b.ok) < r.threshold {
			mark = "  < threshold"
		}
		fmt.Fprintf(tw, "+%d\t%d\t%d\t%d\t%s\t%.0f\t%.0f\t%s\n", i, b.ok, b.shed, b.other, fmtDur(b.p99), b.overloads, b.peak, mark)
	}
	tw.Flush()
	fmt.Fprintf(out, "threshold: %.0f%% of the steady phase's %.1f answers 200/s over its second half = %.1f/s (%s)\n",
		recoveryShare*100, r.ref, r.threshold, refShare(r, res.cfg.rate))
	fmt.Fprintln(out, fmtRecovery(r))
}
