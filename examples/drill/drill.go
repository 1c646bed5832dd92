package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/failsoft/failsoft/examples/internal/redisproc"
)

// phaseSpec is one step of the drill: a name and how long it lasts.
type phaseSpec struct {
	name string
	dur  time.Duration
}

// config is the drill's settings (see the flags in main.go).
type config struct {
	clients     int
	keys        int
	phases      [5]phaseSpec // steady, paused, resumed, killed, restarted
	failsoft    bool
	latency     time.Duration
	timeout     time.Duration
	svg         string
	app         string
	redisServer string
	metricsDir  string
	control     bool // walk the phases without touching Redis

	// Cold-key mode: an open-loop arrival rate instead of closed-loop
	// clients, keys drawn from a distribution, a primary that can fall
	// over, and the app's miss budget.
	rate       float64 // requests per second; 0: closed loop
	dist       string  // "uniform" or "zipf", with rate
	capacity   int     // the app's PRIMARY_CAPACITY; 0: unlimited
	missBudget string  // the app's MISS_BUDGET; "": its default
	budgetMode string  // the app's MISS_BUDGET_MODE; "": its default
}

// Phase names, in order.
const (
	phaseSteady    = "steady"
	phasePaused    = "paused"
	phaseResumed   = "resumed"
	phaseKilled    = "killed"
	phaseRestarted = "restarted"
)

func defaultConfig() config {
	return config{
		clients: 32,
		keys:    20,
		phases: [5]phaseSpec{
			{phaseSteady, 10 * time.Second},
			{phasePaused, 10 * time.Second},
			{phaseResumed, 10 * time.Second},
			{phaseKilled, 10 * time.Second},
			{phaseRestarted, 10 * time.Second},
		},
		failsoft: true,
		latency:  500 * time.Millisecond,
		timeout:  5 * time.Second,
		dist:     distUniform,
	}
}

// validate keeps every loop and wait of the drill bounded.
func (c config) validate() error {
	if c.clients < 1 || c.clients > 1024 {
		return fmt.Errorf("-clients %d: want 1 to 1024", c.clients)
	}
	if c.keys < 1 || c.keys > 10000 {
		return fmt.Errorf("-keys %d: want 1 to 10000", c.keys)
	}
	var total time.Duration
	for _, p := range c.phases {
		if p.dur < 100*time.Millisecond || p.dur > 10*time.Minute {
			return fmt.Errorf("-%s %v: want 100ms to 10m", p.name, p.dur)
		}
		total += p.dur
	}
	if total > 30*time.Minute {
		return fmt.Errorf("phases last %v in all: want at most 30m", total)
	}
	if c.latency < 0 || c.latency > time.Minute {
		return fmt.Errorf("-latency %v: want 0 to 1m", c.latency)
	}
	if c.timeout < 10*time.Millisecond || c.timeout > time.Minute {
		return fmt.Errorf("-timeout %v: want 10ms to 1m", c.timeout)
	}
	if c.rate < 0 || c.rate > 20000 {
		return fmt.Errorf("-rate %v: want 0 (closed loop) to 20000 requests/s", c.rate)
	}
	if c.dist != distUniform && c.dist != distZipf {
		return fmt.Errorf("-dist %q: want uniform or zipf", c.dist)
	}
	if c.capacity < 0 {
		return fmt.Errorf("-primary-capacity %d: want 0 (unlimited) or more", c.capacity)
	}
	return nil
}

// phaseResult is what the clients saw in one phase.
type phaseResult struct {
	name     string
	start    time.Duration // since the drill's start
	dur      time.Duration
	requests int
	failed   int
	p50, p99 time.Duration
	max      time.Duration
	fetches  float64 // calls to the primary source during the phase

	shed      int     // 503 answers with Retry-After
	stale     int     // 200 answers from a stale copy (Cache-Status ttl < 0)
	overloads float64 // primary fetches that failed over its capacity
	peak      float64 // primary fetches running at once, highest sampled
	lostKeys  int     // requests for keys answered 200 in steady that got no 200
}

// throughput is requests per second.
func (p phaseResult) throughput() float64 {
	if p.dur <= 0 {
		return 0
	}
	return float64(p.requests) / p.dur.Seconds()
}

// result is the drill's outcome.
type result struct {
	cfg     config
	phases  []phaseResult
	samples []sample // every request, ordered by end
	fetches float64  // calls to the primary source over the drill
	// versions is how many different answers the clients got per key: the
	// primary source's fetches whose answer reached a client.
	versions map[string]int
	// Time from the restarted Redis accepting connections until it held at
	// least cfg.keys cache entries (entriesBack) and every data key
	// (dataBack); negative when that did not happen before the drill ended.
	entriesBack, dataBack time.Duration
	entries, dataKeys     int // counts when the drill ended
	failures              map[string]int
	// redisBack is when the restarted Redis accepted connections, since
	// the drill's start; -1 when Redis was not restarted (-control).
	redisBack time.Duration
	primary   []inFlightSample // the primary's gauge and counter, every 20 ms
	recovery  recovery         // open-loop runs: the goodput after redisBack
}

// run runs the drill, printing progress and the table to out.
func run(ctx context.Context, cfg config, out io.Writer) (*result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "failsoft-drill-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	bin := cfg.app
	if bin == "" {
		fmt.Fprint(out, "building examples/dataapi ... ")
		start := time.Now()
		if bin, err = buildApp(ctx, tmp); err != nil {
			fmt.Fprintln(out, "failed")
			return nil, err
		}
		fmt.Fprintf(out, "%.1fs\n", time.Since(start).Seconds())
	}
	rs, err := redisproc.Start(cfg.redisServer, tmp)
	if err != nil {
		return nil, err
	}
	defer rs.Stop()
	app, err := startApp(ctx, bin, tmp, appEnv(cfg, rs.Addr()))
	if err != nil {
		return nil, err
	}
	defer app.stop()

	mode := "on"
	if !cfg.failsoft {
		mode = "off"
	}
	if cfg.rate > 0 {
		fmt.Fprintf(out, "redis-server %s (%s), app %s, FAILSOFT=%s, PRIMARY_LATENCY=%v, PRIMARY_CAPACITY=%d, MISS_BUDGET=%q MISS_BUDGET_MODE=%q, open loop at %.0f requests/s over %d keys (%s)\n",
			rs.Addr(), rs.Version(), app.addr, mode, cfg.latency, cfg.capacity, cfg.missBudget, cfg.budgetMode, cfg.rate, cfg.keys, cfg.dist)
	} else {
		fmt.Fprintf(out, "redis-server %s (%s), app %s, FAILSOFT=%s, PRIMARY_LATENCY=%v, %d clients over %d keys\n",
			rs.Addr(), rs.Version(), app.addr, mode, cfg.latency, cfg.clients, cfg.keys)
	}
	fmt.Fprintf(out, "machine: %d CPUs, load average %s\n", runtime.NumCPU(), loadAvg())

	conns := cfg.clients * 2
	if cfg.rate > 0 {
		conns = 1024
	}
	transport := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		DisableCompression:  true,
		Proxy:               nil, // loopback only, never through a proxy
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: cfg.timeout}
	base := "http://" + app.addr

	watch := newKeyWatcher(rs.Addr(), cfg.keys)
	defer watch.close()

	// The counter before any load: the steady phase starts with the load.
	save := func(label string) string {
		if cfg.metricsDir == "" {
			return ""
		}
		return filepath.Join(cfg.metricsDir, label+".prom")
	}
	before, err := scrapeCounters(ctx, client, base, save("0-start"))
	if err != nil {
		return nil, err
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	t0 := time.Now()
	var ld interface{ wait() []sample }
	var versions func() map[string]int
	if cfg.rate > 0 {
		ol := startOpenLoad(loadCtx, client, base, cfg, t0)
		ld, versions = ol, func() map[string]int { return nil }
	} else {
		cl := startLoad(loadCtx, client, base, cfg, t0)
		ld, versions = cl, cl.versions
	}
	peaks := startPeakSampler(loadCtx, client, base, t0)

	faults := map[string]func() error{
		phasePaused:    rs.Pause,
		phaseResumed:   rs.Resume,
		phaseKilled:    rs.Kill,
		phaseRestarted: rs.Restart,
	}
	if cfg.control {
		clear(faults) // the same phases with Redis untouched
		fmt.Fprintln(out, "control run: Redis is left alone in every phase")
	}
	res := &result{cfg: cfg, entriesBack: -1, dataBack: -1, redisBack: -1}
	starts := make([]time.Duration, 0, len(cfg.phases)+1)
	counts := make([]counters, 0, len(cfg.phases)+1)
	var runErr error
	for i, p := range cfg.phases {
		if i == 0 {
			counts, starts = append(counts, before), append(starts, 0)
		} else {
			n, err := scrapeCounters(ctx, client, base, save(fmt.Sprintf("%d-%s", i, cfg.phases[i-1].name)))
			if err != nil {
				runErr = fmt.Errorf("before phase %s: %w", p.name, err)
				break
			}
			counts, starts = append(counts, n), append(starts, time.Since(t0))
		}
		if f := faults[p.name]; f != nil {
			if err := f(); err != nil {
				runErr = fmt.Errorf("phase %s: %w", p.name, err)
				break
			}
		}
		if p.name == phaseRestarted && faults[p.name] != nil {
			// Restart returns once the new server answers PING.
			res.redisBack = time.Since(t0)
		}
		if p.name == phaseRestarted && cfg.rate == 0 {
			// Not in open-loop runs: their thousands of keys would make
			// the watcher's KEYS and EXISTS, every 20 ms, a load on Redis
			// and the CPU while the recovery is being measured.
			watch.start(ctx)
		}
		fmt.Fprintf(out, "%6.1fs  %s for %v\n", time.Since(t0).Seconds(), p.name, p.dur)
		select {
		case <-time.After(p.dur):
		case <-ctx.Done():
			runErr = ctx.Err()
		}
		if runErr != nil {
			break
		}
	}
	end := time.Since(t0)
	stopLoad()
	samples := ld.wait()
	inFlight := peaks.wait()
	watch.close()
	if runErr != nil {
		return nil, runErr
	}
	n, err := scrapeCounters(ctx, client, base, save(fmt.Sprintf("%d-%s", len(cfg.phases), cfg.phases[len(cfg.phases)-1].name)))
	if err != nil {
		return nil, fmt.Errorf("after the drill: %w", err)
	}
	counts = append(counts, n)
	starts = append(starts, end)

	res.samples = samples
	res.versions = versions()
	res.phases = summarize(cfg, samples, starts, counts, inFlight)
	res.fetches = counts[len(counts)-1].fetches - counts[0].fetches
	res.entriesBack, res.dataBack, res.entries, res.dataKeys = watch.result()
	res.failures = failureKinds(samples)
	res.primary = inFlight
	if cfg.rate > 0 && res.redisBack >= 0 {
		res.recovery = measureRecovery(samples, inFlight, res.phases[0], res.redisBack, end)
	}
	report(out, res)
	fmt.Fprintf(out, "machine load average at the end: %s\n", loadAvg())
	return res, nil
}

// appEnv is the example app's environment: the caller's, with the drill's
// settings on top (the last value of a key wins in os/exec).
func appEnv(cfg config, redisAddr string) []string {
	mode := "on"
	if !cfg.failsoft {
		mode = "off"
	}
	return append(os.Environ(),
		"ADDR=127.0.0.1:0",
		"REDIS_URL=redis://"+redisAddr,
		"PRIMARY_LATENCY="+cfg.latency.String(),
		"FAILSOFT="+mode,
		"LOG_LEVEL=info",
		"PRIMARY_CAPACITY="+strconv.Itoa(cfg.capacity),
		"MISS_BUDGET="+cfg.missBudget,
		"MISS_BUDGET_MODE="+cfg.budgetMode,
	)
}

// loadAvg returns the 1, 5 and 15 minute load averages (Linux), which say
// how much else competed with the drill for the CPUs, or "unknown".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}
