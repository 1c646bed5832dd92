package main

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"time"
)

// round is what one closed-loop run against one app measured.
type round struct {
	requests  int
	failed    int // transport errors, non-200 answers, short bodies
	notHit    int // failsoft apps only: 200s without "; hit" in Cache-Status
	elapsed   time.Duration
	p50, p99  time.Duration
	allocs    float64 // heap allocations per request, client and server together
	redisCmds float64 // commands redis-server processed per request
	// cpu is this process's CPU time (user and system) per request: the
	// servers' alone under wrk, the client's too with the in-process
	// client. redisCPU is redis-server's, from INFO.
	cpu, redisCPU time.Duration
}

// rps returns the requests per second of the round.
func (r round) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.requests) / r.elapsed.Seconds()
}

// get sends one GET and returns the status, the body, the Cache-Status
// header and a transport error. For warming only: the load reads bodies
// without keeping them.
func get(ctx context.Context, client *http.Client, url string) (int, []byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header.Get("Cache-Status"), err
}

// load runs conns clients, each sending GET url on its own keep-alive
// connection one request after another (a closed loop), until d has
// passed; a request under way then completes and counts. Each answer must
// be a 200 of bodyLen bytes (and a hit when checkHit). Latencies are from
// sending the request to reading the last byte of the body.
func load(ctx context.Context, client *http.Client, url string, conns int, d time.Duration, bodyLen int64, checkHit bool) round {
	type worker struct {
		lat    []time.Duration
		failed int
		notHit int
	}
	workers := make([]worker, conns)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := processCPU()
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		w.lat = make([]time.Duration, 0, 1<<14)
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				w.failed++
				return
			}
			for ctx.Err() == nil {
				t0 := time.Now()
				if t0.After(end) {
					return
				}
				resp, err := client.Do(req)
				if err != nil {
					w.failed++
					continue
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				w.lat = append(w.lat, time.Since(t0))
				switch {
				case err != nil || resp.StatusCode != http.StatusOK || n != bodyLen:
					w.failed++
				case checkHit && !isHit(resp.Header.Get("Cache-Status")):
					w.notHit++
				}
			}
		})
	}
	wg.Wait()
	r := round{elapsed: time.Since(start)}
	cpu := processCPU() - cpu0
	runtime.ReadMemStats(&ms1)

	var all []time.Duration
	for _, w := range workers {
		all = append(all, w.lat...)
		r.failed += w.failed
		r.notHit += w.notHit
	}
	r.requests = len(all)
	if r.requests > 0 {
		slices.Sort(all)
		r.p50 = all[len(all)*50/100]
		r.p99 = all[min(len(all)*99/100, len(all)-1)]
		r.allocs = float64(ms1.Mallocs-ms0.Mallocs) / float64(r.requests)
		r.cpu = cpu / time.Duration(r.requests)
	}
	return r
}
