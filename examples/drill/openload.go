package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Key distributions of the open-loop load.
const (
	distUniform = "uniform"
	distZipf    = "zipf"
)

// zipfS is the skew of the Zipf distribution: key-0 is the most asked for,
// and about a third of the requests go to the first 1% of 5,000 keys.
const zipfS = 1.1

// openLoad is open-loop load: requests arrive at a fixed rate, each on its
// own goroutine, whether or not earlier ones were answered, as users of a
// public API arrive. A slow service therefore piles requests up instead of
// slowing its clients down, which is what pushes an outage onto the
// primary.
type openLoad struct {
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples []sample
}

// startOpenLoad sends GET /api/data/key-N to base at cfg.rate requests per
// second until ctx ends, keys drawn by cfg.dist over cfg.keys keys.
func startOpenLoad(ctx context.Context, client *http.Client, base string, cfg config, t0 time.Time) *openLoad {
	l := &openLoad{}
	rng := rand.New(rand.NewPCG(1, 2)) // the same key sequence in every run
	var zipf *rand.Zipf
	if cfg.dist == distZipf {
		zipf = rand.NewZipf(rng, zipfS, 1, uint64(cfg.keys-1))
	}
	interval := time.Duration(float64(time.Second) / cfg.rate)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		next := time.Now()
		for ctx.Err() == nil {
			var k int
			if zipf != nil {
				k = int(zipf.Uint64())
			} else {
				k = rng.IntN(cfg.keys)
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				key := keyName(k)
				s, _, ok := do(ctx, client, base+"/api/data/"+key, key, t0)
				if !ok {
					return
				}
				s.key = int32(k)
				l.mu.Lock()
				l.samples = append(l.samples, s)
				l.mu.Unlock()
			}()
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			}
		}
	}()
	return l
}

// wait waits for every request to end and returns the samples, ordered by
// end time.
func (l *openLoad) wait() []sample {
	l.wg.Wait()
	slices.SortFunc(l.samples, func(a, b sample) int { return int(a.end() - b.end()) })
	return l.samples
}

// inFlightSample is the primary's in-flight gauge and overload counter read
// at one moment.
type inFlightSample struct {
	at        time.Duration // since the drill's start
	n         float64       // dataapi_primary_in_flight
	overloads float64       // dataapi_primary_overloads_total; 0 where the app lacks it
}

// peakSampler reads the app's dataapi_primary_in_flight and
// dataapi_primary_overloads_total every 20 ms: the primary's concurrency,
// sampled (a peak between two reads is missed), and its overloads, which
// the per-second view and the chart attribute to the 20 ms in which they
// were read.
type peakSampler struct {
	done    chan struct{}
	samples []inFlightSample
}

func startPeakSampler(ctx context.Context, client *http.Client, base string, t0 time.Time) *peakSampler {
	p := &peakSampler{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if body, err := scrape(ctx, client, base, ""); err == nil {
				if n, err := parseCounter(bytes.NewReader(body), inFlightMetric); err == nil {
					o, _ := parseCounter(bytes.NewReader(body), overloadsMetric)
					p.samples = append(p.samples, inFlightSample{time.Since(t0), n, o})
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// wait waits for the sampler to stop (its context ended) and returns what
// it read.
func (p *peakSampler) wait() []inFlightSample {
	<-p.done
	return p.samples
}
