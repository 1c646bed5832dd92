package main

import "time"

// bucket is one second of the drill: the requests that ended in it, and
// what the primary did in it.
type bucket struct {
	requests, failed int
	// ok, shed and other split the requests: answers 200 that keep the
	// contract, 503s with Retry-After, and every other answer or failure.
	ok, shed, other int
	p99             time.Duration
	overloads       float64 // the primary's overloads read in this second
	peak            float64 // the primary's highest sampled concurrency in it
}

// buckets groups the samples that ended from from until end by second:
// bucket i holds the requests that ended in [from+i s, from+(i+1) s), and
// the last bucket may be cut short by end. prim (ordered by time) adds the
// primary's overloads and concurrency peaks: a sample's overloads are the
// counter's rise since the sample before it, so an overload counts in the
// second in which it was first read.
func buckets(samples []sample, prim []inFlightSample, from, end time.Duration) []bucket {
	if end < from {
		return nil
	}
	n := int((end-from)/time.Second) + 1
	lats := make([][]time.Duration, n)
	out := make([]bucket, n)
	for _, s := range samples {
		if s.end() < from || s.end() >= end {
			continue
		}
		i := int((s.end() - from) / time.Second)
		b := &out[i]
		b.requests++
		switch {
		case s.fail == failNone:
			b.ok++
		case s.status == 503 && s.retryAfter:
			b.shed++
		default:
			b.other++
		}
		if s.fail != failNone {
			b.failed++
		}
		lats[i] = append(lats[i], s.lat)
	}
	for i := range out {
		out[i].p99 = percentile(lats[i], 0.99)
	}
	prev := 0.0 // the app's counter starts at 0 before the load
	for _, p := range prim {
		rise := p.overloads - prev
		prev = p.overloads
		if p.at < from {
			continue
		}
		if p.at >= end {
			break
		}
		i := int((p.at - from) / time.Second)
		out[i].overloads += rise
		out[i].peak = max(out[i].peak, p.n)
	}
	return out
}
