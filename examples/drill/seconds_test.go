package main

import (
	"testing"
	"time"
)

// answers returns n copies of s that end spread over the second starting at
// from (each with a latency of 1 ms).
func answers(from time.Duration, n int, s sample) []sample {
	out := make([]sample, 0, n)
	for i := range n {
		s.at = from + time.Duration(i)*time.Second/time.Duration(n)
		s.lat = time.Millisecond
		out = append(out, s)
	}
	return out
}

var (
	ok200   = sample{status: 200}
	shed503 = sample{status: 503, retryAfter: true, fail: failStatus}
	bare503 = sample{status: 503, fail: failStatus} // no Retry-After
	err500  = sample{status: 500, fail: failStatus}
	timeout = sample{fail: failTimeout}
	broken  = sample{status: 200, fail: failContract}
)

// TestBuckets: a second's answers split into 200s, 503s with Retry-After
// and everything else, counted by the second they ended in from an offset,
// and the primary's overloads and peaks by the second they were read in.
func TestBuckets(t *testing.T) {
	sec := time.Second
	var samples []sample
	samples = append(samples, answers(0, 5, ok200)...) // before from: ignored
	samples = append(samples, answers(2*sec+sec/2, 3, ok200)...)
	samples = append(samples, answers(2*sec+sec/2, 2, shed503)...)
	samples = append(samples, answers(3*sec+sec/2, 1, bare503)...)
	samples = append(samples, answers(3*sec+sec/2, 1, err500)...)
	samples = append(samples, answers(3*sec+sec/2, 1, timeout)...)
	samples = append(samples, answers(3*sec+sec/2, 1, broken)...)
	samples = append(samples, answers(3*sec+sec/2, 4, ok200)...)
	samples = append(samples, answers(5*sec, 7, ok200)...) // after end: ignored
	prim := []inFlightSample{
		{at: sec, n: 30, overloads: 10}, // before from: the baseline only
		{at: 2*sec + 600*time.Millisecond, n: 5, overloads: 12},
		{at: 2*sec + 700*time.Millisecond, n: 9, overloads: 15},
		{at: 3*sec + 600*time.Millisecond, n: 2, overloads: 15},
		{at: 4*sec + 600*time.Millisecond, n: 4, overloads: 16}, // in the last, short second
		{at: 5 * sec, n: 99, overloads: 50},                     // after end: ignored
	}
	// from 1.5 s to 4.8 s: seconds [1.5, 2.5), [2.5, 3.5), [3.5, 4.5), [4.5, 4.8).
	got := buckets(samples, prim, sec+sec/2, 4*sec+800*time.Millisecond)
	want := []bucket{
		{},
		{requests: 5, failed: 2, ok: 3, shed: 2, overloads: 5, peak: 9},
		{requests: 8, failed: 4, ok: 4, other: 4, peak: 2},
		{overloads: 1, peak: 4},
	}
	if len(got) != len(want) {
		t.Fatalf("%d buckets, want %d", len(got), len(want))
	}
	for i := range want {
		g := got[i]
		g.p99 = 0
		if g != want[i] {
			t.Errorf("second %d: got %+v, want %+v", i, g, want[i])
		}
	}
	if got[1].p99 != time.Millisecond {
		t.Errorf("second 1: p99 %v, want 1ms", got[1].p99)
	}
	if b := buckets(samples, prim, 5*sec, 4*sec); b != nil {
		t.Errorf("end before from: %d buckets, want none", len(b))
	}
}
