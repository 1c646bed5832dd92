// Command drill is failsoft's outage drill: it runs the documented data
// endpoint (examples/dataapi) against a real redis-server under closed-loop
// load, walks Redis through an outage, and prints what the clients saw.
//
// It does everything itself and cleans up after itself:
//
//  1. starts a redis-server ($FAILSOFT_REDIS_SERVER, else redis-server on
//     $PATH) on a free loopback port, persistence off;
//
//  2. builds examples/dataapi into a temporary directory with `go build` (run
//     the drill from the repository, where go.work or the examples module
//     resolves the package; -app runs a prebuilt binary instead) and starts
//     it with REDIS_URL pointing at that server, ADDR on a free loopback port,
//     PRIMARY_LATENCY from -latency and FAILSOFT from -failsoft;
//
//  3. drives a closed loop of -clients clients (default 32) over -keys keys
//     (default 20): each client sends GET /api/data/key-NN, waits for the
//     answer, and sends the next; nothing leaves the loopback interface and
//     every request is bounded by -timeout (default 5 s);
//
//  4. walks Redis through five phases, each lasting its flag's duration
//     (default 10 s each, under a minute in all):
//
//     steady     Redis up (the cold start, 20 fetches from the primary, is part of it)
//     paused     redis-server stopped with SIGSTOP: connections open, nothing answers
//     resumed    SIGCONT: Redis answers again with its data
//     killed     SIGKILL: connections refused
//     restarted  a new, empty redis-server on the same port
//
//  5. stops the load, the app (SIGTERM) and Redis, and prints a table.
//
// Per phase the table shows the requests that ended in it (a request that
// hangs from one phase into the next counts in the later one), throughput
// (requests per second), failed requests (a transport error or timeout,
// a status other than 200, or a body that is not exactly
// {"source":"cache"|"primary","data":"Data for KEY fetched at ..."} for the
// key asked for), p50, p99 and maximum latency, and the calls the app made
// to its primary source in the phase (dataapi_primary_fetches_total scraped
// from /metrics at the phase boundaries).
//
// After the table it reports how long the restarted, empty Redis took to hold
// every key again, measured from the moment it accepted connections. Two kinds
// of key live in Redis:
//
//   - cache entries: failsoft's response cache stores one entry per URL under
//     the "failsoft:" prefix, and its tiered store writes its in-process copies
//     back (backfills) to a Redis that came back empty. "Every key" means at
//     least -keys (20) keys under failsoft:, one per URL the clients ask for;
//     this is the goal's measure, because these entries are what other
//     replicas of the service would read;
//   - data keys: the legacy handler SETs key-NN itself when it runs, which is
//     only on a cache miss. While failsoft answers from its cache, the
//     handler does not run and the data keys stay gone until the cache
//     entries go stale (one minute by default); the drill reports how many of
//     them are back, separately.
//
// With FAILSOFT on, the drill then checks failsoft's goals and prints each as
// met or missed: no failed request in any phase; each fault phase (paused,
// resumed, killed, restarted) keeps at least half the steady phase's
// throughput with p99 at most 100 ms; the primary is asked at most twice per
// key over the whole drill; the restarted Redis holds every key again within
// 10 s. The goals are reported, not enforced: the exit status is 0 when the
// drill ran, 1 when it could not (no redis-server, the build failed, the app
// did not start), 2 for bad flags.
//
// Cold-key mode: -rate N replaces the closed loop with an open loop of N
// requests per second, each on its own, over -keys keys drawn by -dist
// (uniform or zipf), so that an outage pushes load onto the primary;
// -primary-capacity and -miss-budget (-miss-budget-mode) set the app's
// PRIMARY_CAPACITY and MISS_BUDGET (MISS_BUDGET_MODE). The table then also
// shows per phase the 503s with Retry-After, stale answers, the primary's
// overloads (dataapi_primary_overloads_total) and its concurrency peak
// (dataapi_primary_in_flight, sampled every 20 ms). The key watcher is off
// (thousands of keys would make its polling a load of its own); instead the
// drill prints, second by second from the moment the restarted Redis
// accepted connections, the answers 200, the 503s with Retry-After, the
// other answers, p99, the primary's overloads and its concurrency peak, and
// the recovery: since the arrival rate is fixed, it is measured as goodput
// (answers 200 per second), and the service has recovered after k seconds
// when the k-th second after Redis came back and every second after it,
// to the drill's end, had at least 90% of the steady phase's answers 200
// per second over that phase's second half (its first half holds the cold
// start, which would lower the bar). It then checks the cold-key
// goals, with FAILSOFT on or off, and prints each as met or missed: no
// primary overload in any phase; keys answered 200 in the steady phase
// answer 200 in every later phase; every other answer is 200 or 503 with
// Retry-After; the goodput is back within 10 s of Redis coming back (n/a,
// neither met nor missed, when the steady phase answered fewer than 90% of
// the requests sent with 200: there is no steady state to recover to).
//
// -svg FILE writes a chart with the fault windows shaded: per second,
// throughput, p99 latency and failed requests; in cold-key mode, answers
// 200, 503s with Retry-After and other answers (with the recovery
// threshold), p99 latency, the primary's overloads and its concurrency
// against its capacity, with lines where Redis came back and where the
// goodput had recovered. -metrics-dir DIR keeps the app's /metrics as scraped
// at each phase boundary. -control walks the same phases without touching
// Redis: on a shared machine, throughput drifts with what else runs, and a
// control run shows how much of a phase-to-phase change is that drift.
//
// Usage, from the repository root:
//
//	go run ./examples/drill -svg /tmp/drill-on.svg
//	go run ./examples/drill -failsoft=false -svg /tmp/drill-off.svg
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "drill:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "drill:", err)
		os.Exit(1)
	}
	if cfg.svg != "" {
		if err := writeSVGFile(cfg.svg, res); err != nil {
			fmt.Fprintln(os.Stderr, "drill:", err)
			os.Exit(1)
		}
		fmt.Printf("chart written to %s\n", cfg.svg)
	}
}

// parseFlags reads the drill's settings from args.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.clients, "clients", cfg.clients, "concurrent closed-loop clients")
	fs.IntVar(&cfg.keys, "keys", cfg.keys, "distinct keys the clients ask for")
	for i := range cfg.phases {
		p := &cfg.phases[i]
		fs.DurationVar(&p.dur, p.name, p.dur, "duration of the "+p.name+" phase")
	}
	fs.BoolVar(&cfg.failsoft, "failsoft", cfg.failsoft, "run the app with failsoft (false: FAILSOFT=off, the naive handler)")
	fs.DurationVar(&cfg.latency, "latency", cfg.latency, "the app's PRIMARY_LATENCY")
	fs.DurationVar(&cfg.timeout, "timeout", cfg.timeout, "client timeout per request (a request that takes longer fails)")
	fs.StringVar(&cfg.svg, "svg", "", "write an SVG chart of throughput and p99 over time to this file")
	fs.StringVar(&cfg.app, "app", "", "prebuilt dataapi binary (default: go build it)")
	fs.BoolVar(&cfg.control, "control", false, "walk the phases without touching Redis, to see how much throughput drifts on this machine by itself")
	fs.StringVar(&cfg.metricsDir, "metrics-dir", "", "save the app's /metrics at each phase's end in this directory (N-PHASE.prom)")
	fs.Float64Var(&cfg.rate, "rate", 0, "open-loop arrival rate in requests/s, each request on its own (0: -clients closed-loop clients)")
	fs.StringVar(&cfg.dist, "dist", cfg.dist, "with -rate: how keys are drawn, uniform or zipf (s=1.1)")
	fs.IntVar(&cfg.capacity, "primary-capacity", 0, "the app's PRIMARY_CAPACITY: fetches its primary serves at once (0: unlimited)")
	fs.StringVar(&cfg.missBudget, "miss-budget", "", `the app's MISS_BUDGET ("off", a number; empty: failsoft's default)`)
	fs.StringVar(&cfg.budgetMode, "miss-budget-mode", "", `the app's MISS_BUDGET_MODE ("unavailable" or "always"; empty: its default)`)
	fs.StringVar(&cfg.redisServer, "redis-server", "", "redis-server binary (default: $FAILSOFT_REDIS_SERVER, else redis-server on $PATH)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return cfg, cfg.validate()
}
