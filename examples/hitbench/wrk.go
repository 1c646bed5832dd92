package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// loadWrk runs wrk (one thread, conns connections, d rounded up to whole
// seconds, as wrk takes) against url and returns what it measured. wrk is
// the command, with any words before it ("taskset -c 1 /usr/bin/wrk"). wrk
// cannot check bodies or headers: failed counts its socket errors and
// non-2xx answers; hits, when not nil, returns the app's cache hits so far,
// and every request that did not add one counts as not hit. Allocations are
// the server's alone (wrk is another process).
func loadWrk(ctx context.Context, wrk, url string, conns int, d time.Duration, hits func() uint64) (round, error) {
	secs := int((d + time.Second - 1) / time.Second)
	var h0 uint64
	if hits != nil {
		h0 = hits()
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := processCPU()
	// wrk may come with a prefix, as in "taskset -c 1 /usr/bin/wrk".
	argv := append(strings.Fields(wrk), "-t1", "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(secs)+"s", "--latency", url)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	cpu := processCPU() - cpu0
	runtime.ReadMemStats(&ms1)
	if err != nil {
		return round{}, fmt.Errorf("%s: %w\n%s", cmd, err, out)
	}
	r, err := parseWrk(out)
	if err != nil {
		return round{}, fmt.Errorf("%s: %w\n%s", cmd, err, out)
	}
	if r.requests > 0 {
		r.allocs = float64(ms1.Mallocs-ms0.Mallocs) / float64(r.requests)
		r.cpu = cpu / time.Duration(r.requests)
	}
	if hits != nil {
		if got := int(hits() - h0); got < r.requests {
			r.notHit = r.requests - got
		}
	}
	return r, nil
}

// parseWrk reads the requests, elapsed time, p50, p99 and errors from wrk's
// --latency report.
func parseWrk(out []byte) (round, error) {
	var r round
	var seen, p50, p99 bool
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			// "289014 requests in 5.00s, 334.43MB read"
			n, err := strconv.Atoi(f[0])
			if err != nil {
				return r, fmt.Errorf("requests %q: %w", f[0], err)
			}
			el, err := time.ParseDuration(strings.TrimSuffix(f[3], ","))
			if err != nil {
				return r, fmt.Errorf("elapsed %q: %w", f[3], err)
			}
			r.requests, r.elapsed, seen = n, el, true
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			v, err := time.ParseDuration(strings.Replace(f[1], "us", "µs", 1))
			if err != nil {
				return r, fmt.Errorf("latency %q: %w", f[1], err)
			}
			if f[0] == "50%" {
				r.p50, p50 = v, true
			} else {
				r.p99, p99 = v, true
			}
		case len(f) >= 2 && f[0] == "Socket" && f[1] == "errors:":
			// "Socket errors: connect 0, read 0, write 0, timeout 0"
			for i := 3; i < len(f); i += 2 {
				n, err := strconv.Atoi(strings.TrimSuffix(f[i], ","))
				if err != nil {
					return r, fmt.Errorf("socket errors %q: %w", sc.Text(), err)
				}
				r.failed += n
			}
		case len(f) == 5 && f[0] == "Non-2xx":
			n, err := strconv.Atoi(f[4])
			if err != nil {
				return r, fmt.Errorf("non-2xx %q: %w", f[4], err)
			}
			r.failed += n
		}
	}
	if !seen || !p50 || !p99 {
		return r, fmt.Errorf("no request count or latency distribution in wrk's output")
	}
	return r, nil
}
