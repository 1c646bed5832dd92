package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// appPackage is the example app the drill runs.
const appPackage = "github.com/failsoft/failsoft/examples/dataapi"

// buildApp builds the example app into dir and returns the binary's path.
// It runs in the current directory, which must be inside the repository (the
// root's go.work or the examples module resolves the package).
func buildApp(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "dataapi")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, appPackage)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s (run the drill from the repository): %w\n%s", appPackage, err, out)
	}
	return bin, nil
}

// app is the example app running as a subprocess.
type app struct {
	cmd  *exec.Cmd
	addr string // where it listens
	log  string // its log file
	done chan struct{}
}

// startApp runs bin with env, its log going to a file in dir, and waits
// until it listens.
func startApp(ctx context.Context, bin, dir string, env []string) (*app, error) {
	logPath := filepath.Join(dir, "dataapi.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	w := &readyWriter{w: logf, ready: make(chan string, 1)}
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	a := &app{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		cmd.Wait()
		logf.Close()
	}()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case a.addr = <-w.ready:
		return a, nil
	case <-a.done:
		return nil, fmt.Errorf("the app exited before listening; its log:\n%s", tail(logPath))
	case <-timer.C:
		err = fmt.Errorf("the app did not listen within 30s; its log:\n%s", tail(logPath))
	case <-ctx.Done():
		err = ctx.Err()
	}
	a.stop()
	return nil, err
}

// stop ends the app with SIGTERM (a graceful shutdown), or SIGKILL when it
// takes longer than 10 s, and waits for it.
func (a *app) stop() {
	select {
	case <-a.done:
		return
	default:
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
	}
}

// tail returns the last lines of the file at path, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// readyWriter copies the app's log to w and sends the address of its
// "serving" line (log/slog's text format: msg=serving addr=HOST:PORT) on
// ready, once.
type readyWriter struct {
	w     io.Writer
	ready chan string

	mu   sync.Mutex
	buf  []byte
	sent bool
}

func (r *readyWriter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.sent {
		r.buf = append(r.buf, p...)
		for {
			i := bytes.IndexByte(r.buf, '\n')
			if i < 0 {
				break
			}
			line := string(r.buf[:i])
			r.buf = r.buf[i+1:]
			if addr, ok := servingAddr(line); ok {
				r.ready <- addr
				r.sent, r.buf = true, nil
				break
			}
		}
	}
	return r.w.Write(p)
}

// servingAddr extracts addr from a slog text line with msg=serving.
func servingAddr(line string) (string, bool) {
	if !strings.Contains(line, " msg=serving ") {
		return "", false
	}
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "addr="); ok {
			return v, true
		}
	}
	return "", false
}

// fetchesMetric is the app's counter of calls to its primary source.
const fetchesMetric = "dataapi_primary_fetches_total"

// Other metrics of the app the drill reads.
const (
	overloadsMetric = "dataapi_primary_overloads_total"
	inFlightMetric  = "dataapi_primary_in_flight"
)

// counters are the app's counters the drill reads at phase boundaries.
type counters struct{ fetches, overloads float64 }

// scrapeCounters reads the primary's fetches and overloads from the app's
// /metrics (overloads is 0 for an app that does not export it).
func scrapeCounters(ctx context.Context, client *http.Client, base, save string) (counters, error) {
	body, err := scrape(ctx, client, base, save)
	if err != nil {
		return counters{}, err
	}
	var c counters
	if c.fetches, err = parseCounter(bytes.NewReader(body), fetchesMetric); err != nil {
		return counters{}, err
	}
	c.overloads, _ = parseCounter(bytes.NewReader(body), overloadsMetric)
	return c, nil
}

// scrape reads the app's /metrics, and saves it to save unless it is "".
func scrape(ctx context.Context, client *http.Client, base, save string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape /metrics: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("scrape /metrics: %w", err)
	}
	if save != "" {
		if err := os.WriteFile(save, body, 0o644); err != nil {
			return nil, err
		}
	}
	return body, nil
}

// parseCounter finds the sample of an unlabelled metric in the Prometheus
// text format.
func parseCounter(r io.Reader, name string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+" ")
		if !ok {
			continue
		}
		if f := strings.Fields(rest); len(f) > 0 {
			return strconv.ParseFloat(f[0], 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("metric %s not found", name)
}
