// Command hitbench measures failsoft's hit paths against their physical
// limits, side by side in one run (issue 12): over real TCP on loopback, it
// serves
//
//	a. a bare handler writing the same bytes as the cached answer;
//	b. a bare handler doing one go-redis GET and writing the value;
//	c. failsoft.New(rdb, failsoft.WithDefaultTTL(time.Hour)).Then(h): an
//	   in-process hit on one warm key (an hour, so that the key does not
//	   expire, and one request refetch it, during a run);
//	d. the same with failsoft.WithMemory(0): a hit served from Redis;
//	e. a writing also a hit's Age and Cache-Status: the same bytes on the
//	   wire as c;
//	f. b writing also a hit's Age and Cache-Status: the same bytes as d;
//
// and loads each in turn, in several alternating rounds, with a closed loop
// of keep-alive connections from a net/http client in the same process, or
// with wrk (-wrk PATH: one thread, which leaves more of the machine to the
// servers and so shows their differences better; words before the binary
// are kept, so that "taskset -c 0 hitbench -wrk 'taskset -c 1 wrk'" gives
// the servers and redis-server one CPU and wrk the other). It prints
// requests/s, p50 and p99 per app (medians over the rounds), CPU time per
// request, and the ratios against the goal of 0.92: c/a and d/b
// (the bare handlers of the table, which write two header fields
// fewer than any hit) and c/e and d/f (the bare handlers writing the same
// bytes), with e/a and f/b, what net/http costs for those two fields. It
// starts its own redis-server on a free loopback port and sends traffic
// to 127.0.0.1 only.
//
//	go run ./examples/hitbench [-conns 32] [-duration 5s] [-rounds 3] [-body 1024]
//	                           [-wrk /usr/bin/wrk] [-profile-app c]
//	                           [-cpuprofile cpu.out] [-memprofile mem.out]
//
// With -cpuprofile or -memprofile, one more run of the app -profile-app
// names (default c), as long as a round, is profiled after the measured
// rounds: the CPU profile covers that run only; the allocation profile is
// written twice, mem.out.base before that run and mem.out after, so that
// "go tool pprof -sample_index=alloc_space -diff_base mem.out.base mem.out"
// shows that run's allocations only. Without -wrk both include the load
// generator.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"time"
)

// config is hitbench's settings (see the flags).
type config struct {
	conns       int
	duration    time.Duration
	rounds      int
	bodySize    int
	redisServer string
	cpuProfile  string
	memProfile  string
	wrk         string // wrk binary to drive the load; "" for the in-process client
	profileApp  string // the app -cpuprofile and -memprofile profile
}

func defaultConfig() config {
	return config{conns: 32, duration: 5 * time.Second, rounds: 3, bodySize: 1024, profileApp: "c"}
}

func main() {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("hitbench", flag.ExitOnError)
	fs.IntVar(&cfg.conns, "conns", cfg.conns, "concurrent keep-alive connections (closed loop)")
	fs.DurationVar(&cfg.duration, "duration", cfg.duration, "duration of each app's run in each round")
	fs.IntVar(&cfg.rounds, "rounds", cfg.rounds, "alternating rounds; the report shows medians over them")
	fs.IntVar(&cfg.bodySize, "body", cfg.bodySize, "size of the JSON answer in bytes")
	fs.StringVar(&cfg.redisServer, "redis-server", "", "redis-server binary (default: $FAILSOFT_REDIS_SERVER, else redis-server on $PATH)")
	fs.StringVar(&cfg.wrk, "wrk", "", "drive the load with this wrk command (one thread, -conns connections) instead of the in-process client; words before the binary are kept, e.g. \"taskset -c 1 wrk\"")
	fs.StringVar(&cfg.profileApp, "profile-app", cfg.profileApp, "the app (a to f) that -cpuprofile and -memprofile profile")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of one more run of the -profile-app app to this file")
	fs.StringVar(&cfg.memProfile, "memprofile", "", "write allocation profiles around one more run of the -profile-app app to this file (and .base)")
	fs.Parse(os.Args[1:])
	if cfg.conns < 1 || cfg.rounds < 1 || cfg.duration <= 0 {
		fmt.Fprintln(os.Stderr, "hitbench: -conns and -rounds must be at least 1, -duration positive")
		os.Exit(2)
	}
	if cfg.memProfile != "" {
		runtime.MemProfileRate = 64 << 10 // finer than the default 512 KiB: a hit allocates little
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if _, err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "hitbench:", err)
		stop()
		os.Exit(1)
	}
}

// result is a run's measurements: per app, one round per measured round.
type result struct {
	apps   []string // "a. bare handler, same bytes", ...
	rounds [][]round
	// ratios are c/a and d/b of the median requests/s.
	inProcess, redisHit float64
	// cpu ratios are a/c and b/d of the median CPU time per request (b and
	// d with redis-server's): the throughput ratios a machine that only
	// served these apps would show.
	cpuInProcess, cpuRedisHit float64
	// cpu...Same are e/c and f/d of the median CPU time per request: the
	// same against the bare handlers that write the same bytes as a hit.
	cpuInProcessSame, cpuRedisHitSame float64
	// paired are the lower quartile, median and upper quartile of the
	// rounds' own c/a and d/b ratios: the verdict's figure.
	inProcessPaired, redisHitPaired [3]float64
	// fieldsPaired is e/a and redisFieldsPaired f/b, as the paired
	// ratios: the share of each bare handler that a hit's two header
	// fields cost in net/http. hitVsFieldsPaired is c/e and
	// redisHitVsFieldsPaired d/f: each hit path against the bare handler
	// that writes the same bytes.
	fieldsPaired, hitVsFieldsPaired           [3]float64
	redisFieldsPaired, redisHitVsFieldsPaired [3]float64
}

// goal is the bar for both ratios.
const goal = 0.92

// loadAvg returns the 1, 5 and 15 minute load averages (Linux), or
// "unknown".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	var a, b5, c string
	if n, _ := fmt.Sscan(string(b), &a, &b5, &c); n != 3 {
		return "unknown"
	}
	return a + " " + b5 + " " + c
}
