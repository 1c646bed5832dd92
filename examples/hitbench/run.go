package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft/examples/internal/redisproc"
)

// run starts redis-server and the six apps, measures them in alternating
// rounds, prints the report to out and stops everything it started.
func run(ctx context.Context, cfg config, out io.Writer) (*result, error) {
	body, err := jsonBody(cfg.bodySize)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "failsoft-hitbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	rs, err := redisproc.Start(cfg.redisServer, tmp)
	if err != nil {
		return nil, err
	}
	defer rs.Stop()
	admin := redis.NewClient(&redis.Options{Addr: rs.Addr(), DisableIdentity: true})
	defer admin.Close()

	// One transport for every app: connections are reused, never pooled
	// away, and bodies are not decompressed.
	transport := &http.Transport{
		MaxIdleConns:        6*cfg.conns + 6,
		MaxIdleConnsPerHost: cfg.conns + 1,
		DisableCompression:  true,
		Proxy:               nil, // loopback only, never through a proxy
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}

	fmt.Fprintf(out, "hitbench: %d keep-alive connections, closed loop, %v per app per round, %d alternating rounds, one warm key, %d-byte JSON answer\n",
		cfg.conns, cfg.duration, cfg.rounds, len(body))
	fmt.Fprintf(out, "machine: %d CPUs, GOMAXPROCS %d, load average at start %s; %s %s/%s; %s at %s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), loadAvg(), runtime.Version(), runtime.GOOS, runtime.GOARCH, rs.Version(), rs.Addr())
	if cfg.wrk != "" {
		fmt.Fprintf(out, "load: %s, one thread (wrk cannot check bodies: failed = its errors and non-2xx; not hit = requests the app's cache did not count as hits)\n", cfg.wrk)
		fmt.Fprintf(out, "note: this process (the servers) and redis-server see %d CPUs, shared with wrk unless it is pinned elsewhere; allocs/req are the servers' alone.\n", runtime.NumCPU())
	} else {
		fmt.Fprintf(out, "note: the load generator (a net/http client in this process), the servers and redis-server share these %d CPUs;\n"+
			"      the client's own cost is in every figure, so ratios understate the servers' differences.\n", runtime.NumCPU())
	}

	apps, err := startApps(ctx, rs.Addr(), body, client)
	defer func() {
		for _, a := range apps {
			a.close()
		}
	}()
	if err != nil {
		return nil, err
	}

	res := &result{rounds: make([][]round, len(apps))}
	for _, a := range apps {
		res.apps = append(res.apps, a.id+". "+a.name)
	}
	// A short unmeasured run of each app first: connections opened, pools
	// and caches sized, the heap grown.
	measure := func(a *app, d time.Duration) (round, error) {
		if cfg.wrk != "" {
			return loadWrk(ctx, cfg.wrk, a.url, cfg.conns, d, a.hits)
		}
		return load(ctx, client, a.url, cfg.conns, d, int64(len(body)), a.isHit), nil
	}
	for _, a := range apps {
		if _, err := measure(a, min(cfg.duration/5, time.Second)); err != nil {
			return nil, err
		}
	}
	for r := range cfg.rounds {
		fmt.Fprintf(out, "round %d:", r+1)
		for _, i := range roundOrder(r, len(apps)) {
			a := apps[i]
			rs0 := redisStats(ctx, admin)
			rd, err := measure(a, cfg.duration)
			if err != nil {
				fmt.Fprintln(out)
				return nil, err
			}
			if rd.requests > 0 {
				rs1 := redisStats(ctx, admin)
				rd.redisCmds = float64(rs1.commands-rs0.commands-1) / float64(rd.requests) // -1: the INFO itself
				rd.redisCPU = (rs1.cpu - rs0.cpu) / time.Duration(rd.requests)
			}
			res.rounds[i] = append(res.rounds[i], rd)
			fmt.Fprintf(out, "  %s %s/s", a.id, thousands(rd.rps()))
			if err := ctx.Err(); err != nil {
				fmt.Fprintln(out)
				return nil, err
			}
		}
		fmt.Fprintln(out)
	}
	report(out, res)

	if cfg.cpuProfile != "" || cfg.memProfile != "" {
		i := slices.IndexFunc(apps, func(a *app) bool { return a.id == cfg.profileApp })
		if i < 0 {
			return res, fmt.Errorf("-profile-app %q: no such app", cfg.profileApp)
		}
		if err := profile(cfg, apps[i], out, measure); err != nil {
			return res, err
		}
	}
	return res, nil
}

// roundOrder returns the order in which round r runs n apps. The apps
// compared (a with c, b with d; e, if there is a fifth app, with c; f, if
// there is a sixth, with d) run one right after the other, so that a
// change in the machine's load between them is as small as it can be;
// with four apps, over four rounds each app runs once in each position.
// For other n, the order rotates by one app per round.
func roundOrder(r, n int) []int {
	if n == 5 || n == 6 {
		inProcess, redisHit := []int{0, 2, 4}, []int{1, 3}
		if n == 6 {
			redisHit = append(redisHit, 5)
		}
		if r/2%2 == 1 {
			slices.Reverse(inProcess)
			slices.Reverse(redisHit)
		}
		if r%2 == 1 {
			inProcess, redisHit = redisHit, inProcess
		}
		return append(inProcess, redisHit...)
	}
	if n != 4 {
		order := make([]int, n)
		for j := range order {
			order[j] = (r + j) % n
		}
		return order
	}
	pairs := [2][2]int{{0, 2}, {1, 3}}
	if r%2 == 1 {
		pairs[0], pairs[1] = pairs[1], pairs[0]
	}
	if r/2%2 == 1 {
		for k := range pairs {
			pairs[k][0], pairs[k][1] = pairs[k][1], pairs[k][0]
		}
	}
	return []int{pairs[0][0], pairs[0][1], pairs[1][0], pairs[1][1]}
}

// redisCounters are the counters hitbench reads from redis-server's INFO.
type redisCounters struct {
	commands int64         // total_commands_processed
	cpu      time.Duration // used_cpu_user + used_cpu_sys
}

// redisStats returns redis-server's counters; zero ones when INFO fails.
func redisStats(ctx context.Context, rdb *redis.Client) redisCounters {
	var c redisCounters
	s, err := rdb.Info(ctx, "stats", "cpu").Result()
	if err != nil {
		return c
	}
	for line := range strings.Lines(s) {
		name, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch name {
		case "total_commands_processed":
			c.commands, _ = strconv.ParseInt(v, 10, 64)
		case "used_cpu_user", "used_cpu_sys":
			if secs, err := strconv.ParseFloat(v, 64); err == nil {
				c.cpu += time.Duration(secs * float64(time.Second))
			}
		}
	}
	return c
}

// quartiles returns the lower quartile, the median and the upper quartile
// of v (nearest rank), zeros for an empty v.
func quartiles(v []float64) [3]float64 {
	if len(v) == 0 {
		return [3]float64{}
	}
	v = slices.Sorted(slices.Values(v))
	at := func(p int) float64 { return v[(2*(len(v)-1)*p+4)/8] } // rank (n-1)p/4, rounded half up
	return [3]float64{at(1), at(2), at(3)}
}

// median returns the median of the rounds by f (the upper one of two).
func median(rs []round, f func(round) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// report prints the medians per app and the ratios, and fills res's ratios.
func report(out io.Writer, res *result) {
	rps := func(r round) float64 { return r.rps() }
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	width := 0
	for _, name := range res.apps {
		width = max(width, len(name))
	}
	fmt.Fprintf(tw, "%-*s\trequests/s\tp50\tp99\tcpu/req\tredis cpu/req\tallocs/req\tredis cmds/req\tfailed\tnot hit\t\n", width, "app")
	for i, name := range res.apps {
		rs := res.rounds[i]
		var failed, notHit int
		for _, r := range rs {
			failed += r.failed
			notHit += r.notHit
		}
		fmt.Fprintf(tw, "%-*s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%.2f\t%d\t%d\t\n", width, name,
			thousands(median(rs, rps)),
			micros(median(rs, func(r round) float64 { return float64(r.p50) })),
			micros(median(rs, func(r round) float64 { return float64(r.p99) })),
			microsFine(median(rs, func(r round) float64 { return float64(r.cpu) })),
			microsFine(median(rs, func(r round) float64 { return float64(r.redisCPU) })),
			median(rs, func(r round) float64 { return r.allocs }),
			median(rs, func(r round) float64 { return r.redisCmds }),
			failed, notHit)
	}
	tw.Flush()
	fmt.Fprintln(out, "(medians over the rounds; cpu/req and allocs/req are this process's: the servers', and the client's too unless wrk drives the load;")
	fmt.Fprintln(out, " redis cpu/req is redis-server's; failed and not hit are totals)")

	ratio := func(num, den int) float64 {
		d := median(res.rounds[den], rps)
		if d == 0 {
			return 0
		}
		return median(res.rounds[num], rps) / d
	}
	res.inProcess, res.redisHit = ratio(2, 0), ratio(3, 1)
	// A failsoft app whose answers were not all hits (a Redis op past the
	// op timeout on an overloaded machine is a miss, and then the breaker
	// opens) did not measure its hit path: its ratio says nothing.
	clean := func(i int) bool {
		for _, r := range res.rounds[i] {
			if r.failed > 0 || r.notHit > 0 {
				return false
			}
		}
		return true
	}
	verdict := func(r float64, i int) string {
		if !clean(i) {
			return "INVALID: not every answer was a hit"
		}
		if r >= goal {
			return "met"
		}
		return "NOT met"
	}
	perRound := func(num, den int) []float64 {
		var v []float64
		for r := range min(len(res.rounds[num]), len(res.rounds[den])) {
			if d := res.rounds[den][r].rps(); d > 0 {
				v = append(v, res.rounds[num][r].rps()/d)
			}
		}
		return v
	}
	format := func(v []float64) string {
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = strconv.FormatFloat(x, 'f', 3, 64)
		}
		return strings.Join(parts, " ")
	}
	pc, pd := perRound(2, 0), perRound(3, 1)
	res.inProcessPaired, res.redisHitPaired = quartiles(pc), quartiles(pd)
	fmt.Fprintln(out)
	fmt.Fprintln(out, "ratios of the median requests/s, and the median (with quartiles) of the rounds' ratios, where the two apps ran one after the other:")
	fmt.Fprintf(out, "c/a  in-process hit vs bare handler:      %.3f, per round %.3f (%.3f-%.3f)  (goal >= %.2f: %s; per round: %s)\n",
		res.inProcess, res.inProcessPaired[1], res.inProcessPaired[0], res.inProcessPaired[2],
		goal, verdict(res.inProcessPaired[1], 2), format(pc))
	fmt.Fprintf(out, "d/b  Redis hit vs bare go-redis GET:      %.3f, per round %.3f (%.3f-%.3f)  (goal >= %.2f: %s; per round: %s)\n",
		res.redisHit, res.redisHitPaired[1], res.redisHitPaired[0], res.redisHitPaired[2],
		goal, verdict(res.redisHitPaired[1], 3), format(pd))
	if len(res.rounds) > 5 {
		// The references: bare handlers writing the same bytes as a hit,
		// its Age and Cache-Status included; what those two fields cost
		// net/http by themselves; and each hit path against the bare
		// handler that writes the same bytes, which the goal is judged by
		// too.
		pe, pce := perRound(4, 0), perRound(2, 4)
		pf, pdf := perRound(5, 1), perRound(3, 5)
		res.fieldsPaired, res.hitVsFieldsPaired = quartiles(pe), quartiles(pce)
		res.redisFieldsPaired, res.redisHitVsFieldsPaired = quartiles(pf), quartiles(pdf)
		fmt.Fprintln(out, "against bare handlers writing the same bytes as a hit (its Age and Cache-Status too):")
		fmt.Fprintf(out, "e/a  bare handler with a hit's two fields vs without:        %.3f, per round %.3f (%.3f-%.3f)  (what net/http costs for them; per round: %s)\n",
			ratio(4, 0), res.fieldsPaired[1], res.fieldsPaired[0], res.fieldsPaired[2], format(pe))
		fmt.Fprintf(out, "f/b  bare go-redis GET with a hit's two fields vs without:   %.3f, per round %.3f (%.3f-%.3f)  (what net/http costs for them; per round: %s)\n",
			ratio(5, 1), res.redisFieldsPaired[1], res.redisFieldsPaired[0], res.redisFieldsPaired[2], format(pf))
		fmt.Fprintf(out, "c/e  in-process hit vs bare handler, same bytes:             %.3f, per round %.3f (%.3f-%.3f)  (goal >= %.2f: %s; per round: %s)\n",
			ratio(2, 4), res.hitVsFieldsPaired[1], res.hitVsFieldsPaired[0], res.hitVsFieldsPaired[2],
			goal, verdict(res.hitVsFieldsPaired[1], 2), format(pce))
		fmt.Fprintf(out, "d/f  Redis hit vs bare go-redis GET, same bytes:             %.3f, per round %.3f (%.3f-%.3f)  (goal >= %.2f: %s; per round: %s)\n",
			ratio(3, 5), res.redisHitVsFieldsPaired[1], res.redisHitVsFieldsPaired[0], res.redisHitVsFieldsPaired[2],
			goal, verdict(res.redisHitVsFieldsPaired[1], 3), format(pdf))
	}
	// CPU per request, the inverse of throughput on a machine that only
	// served: less sensitive than requests/s to what else the machine runs.
	cpu := func(r round) float64 { return float64(r.cpu) }
	cpuRedis := func(r round) float64 { return float64(r.cpu + r.redisCPU) }
	cpuRatio := func(num, den int, f func(round) float64) float64 {
		d := median(res.rounds[den], f)
		if d == 0 {
			return 0
		}
		return median(res.rounds[num], f) / d
	}
	res.cpuInProcess, res.cpuRedisHit = cpuRatio(0, 2, cpu), cpuRatio(1, 3, cpuRedis)
	fmt.Fprintf(out, "a/c  CPU per request, bare handler / in-process hit:             %.3f\n", res.cpuInProcess)
	fmt.Fprintf(out, "b/d  CPU per request with redis-server's, bare GET / Redis hit:  %.3f\n", res.cpuRedisHit)
	if len(res.rounds) > 5 {
		res.cpuInProcessSame, res.cpuRedisHitSame = cpuRatio(4, 2, cpu), cpuRatio(5, 3, cpuRedis)
		fmt.Fprintf(out, "e/c  CPU per request, same bytes: bare handler / in-process hit:             %.3f\n", res.cpuInProcessSame)
		fmt.Fprintf(out, "f/d  CPU per request with redis-server's, same bytes: bare GET / Redis hit:  %.3f\n", res.cpuRedisHitSame)
	}
	fmt.Fprintf(out, "load average at the end: %s\n", loadAvg())
}

// profile runs app a once more for cfg.duration, loaded by measure, with
// the CPU profile on and the allocation profile written before and after.
func profile(cfg config, a *app, out io.Writer, measure func(*app, time.Duration) (round, error)) error {
	if cfg.memProfile != "" {
		if err := writeHeap(cfg.memProfile + ".base"); err != nil {
			return err
		}
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	rd, err := measure(a, cfg.duration)
	if cfg.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if cfg.memProfile != "" {
		if err := writeHeap(cfg.memProfile); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nprofiled one more run of %s. %s: %s requests/s (profiling on)\n", a.id, a.name, thousands(rd.rps()))
	return nil
}

func writeHeap(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// thousands formats v rounded, with commas: 58,989.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// microsFine formats nanoseconds as microseconds with two decimals:
// "3.41µs".
func microsFine(ns float64) string {
	return strconv.FormatFloat(ns/1e3, 'f', 2, 64) + "µs"
}

// micros formats nanoseconds as microseconds: "412µs".
func micros(ns float64) string {
	return strconv.FormatFloat(ns/1e3, 'f', 0, 64) + "µs"
}
