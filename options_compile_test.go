package failsoft_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// misplaced are calls that pass an option to a constructor that does not
// read it, within a package and across packages; each must fail to
// compile with a type error containing want.
var misplaced = []struct {
	call string
	want string
}{
	{`store.NewGuard(nil, store.WithPrefix("x"))`, "does not implement store.GuardOption"},
	{`store.NewHook(nil, store.WithLogger(nil))`, "does not implement store.HookOption"},
	{`store.NewHook(nil, store.WithOpTimeout(time.Second))`, "does not implement store.HookOption"},
	{`store.NewMemory(1, store.WithLogger(nil))`, "does not implement store.MemoryOption"},
	{`store.NewMemory(1, store.WithCoherence(0))`, "does not implement store.MemoryOption"},
	{`store.NewRedis(nil, store.WithLogger(nil))`, "does not implement store.RedisOption"},
	{`store.NewRedis(nil, store.WithClock(time.Now))`, "does not implement store.RedisOption"},
	{`store.NewRedis(nil, store.WithName("x"))`, "does not implement store.RedisOption"},
	{`store.NewTiered(nil, nil, store.WithMaxKeyBytes(1))`, "does not implement store.TieredOption"},
	{`store.NewTiered(nil, nil, store.WithPrefix("x"))`, "does not implement store.TieredOption"},
	{`store.NewGuard(nil, store.WithCacheMode(true))`, "does not implement store.GuardOption"},
	{`store.NewGuard(nil, store.WithMaxValueBytes(1))`, "does not implement store.GuardOption"},
	{`store.NewNodeGuards(store.WithCoherence(0))`, "does not implement store.NodeGuardsOption"},
	{`new(store.NodeGuards).Bound(nil, store.WithPrefix("x"))`, "does not implement store.GuardOption"},
	{`middleware.New(nil, middleware.WithBreakers())`, "does not implement middleware.Option"},
	{`middleware.Recover(middleware.WithDefaultTTL(time.Second)), error(nil)`, "does not implement middleware.RecoverOption"},
	{`middleware.New(nil, store.WithLogger(nil))`, "does not implement middleware.Option"},
	{`health.New(store.WithLogger(nil))`, "as health.Option value"},
	{`health.New(middleware.WithLogger(nil))`, "as health.Option value"},
	{`failsoft.New(nil, store.WithOpTimeout(time.Second))`, "as failsoft.Option value"},
	{`failsoft.New(nil, middleware.WithLogger(nil))`, "as failsoft.Option value"},
	{`failsoft.New(nil, health.WithTTL(time.Second))`, "as failsoft.Option value"},
	{`store.NewPendingDeletes(nil, store.WithCoherence(0))`, "does not implement store.PendingOption"},
	{`store.NewBroadcast(nil, "c", store.WithMaxPending(1))`, "does not implement store.BroadcastOption"},
	{`store.NewTiered(nil, nil, store.WithInvalidationChannel("c"))`, "does not implement store.TieredOption"},
	{`store.NewRedis(nil, store.WithBroadcast(nil, 0))`, "does not implement store.RedisOption"},
	{`store.NewTiered(nil, nil, store.WithBatchedGets(1))`, "does not implement store.TieredOption"},
}

// wellPlaced passes every option where it is read: it must compile, which
// shows that the failures above are the type errors they claim to be and
// not a broken build.
const wellPlaced = `
func f() {
	_, _ = store.NewRedis(nil, store.WithPrefix("x"), store.WithMaxKeyBytes(1), store.WithMaxValueBytes(1))
	_, _ = store.NewMemory(1, store.WithMaxKeyBytes(1), store.WithMaxValueBytes(1), store.WithClock(time.Now))
	_, _ = store.NewTiered(nil, nil, store.WithCoherence(0), store.WithMaxBackfills(1), store.WithLogger(nil), store.WithClock(time.Now))
	guard := []store.GuardOption{store.WithName("x"), store.WithOpTimeout(1), store.WithFailureThreshold(1),
		store.WithOpenPeriod(1), store.WithHalfOpenRequests(1), store.WithMaxInFlight(1),
		store.WithOnStateChange(nil), store.WithObserver(nil), store.WithLogger(nil), store.WithClock(time.Now)}
	_, _ = store.NewGuard(nil, guard...)
	_, _ = store.NewNodeGuards(guard[0], guard[1], store.WithPrefix("x"), store.WithMaxKeyBytes(1), store.WithMaxValueBytes(1), store.WithLogger(nil))
	_, _ = new(store.NodeGuards).Bound(nil, guard...)
	_, _ = store.NewHook(nil, store.WithCacheMode(true))
	_, _ = middleware.New(nil, middleware.WithLogger(nil), middleware.WithDefaultTTL(time.Second))
	_ = middleware.Recover(middleware.WithLogger(nil), middleware.WithBreakers())
	_, _ = health.New(health.WithLogger(nil), health.WithTTL(time.Second))
	_, _ = failsoft.New(nil, failsoft.WithLogger(nil), failsoft.WithOpTimeout(time.Second))
	_, _ = store.NewPendingDeletes(nil, store.WithMaxPending(1), store.WithLogger(nil))
	_, _ = store.NewBroadcast(nil, "c", store.WithLogger(nil))
	_, _ = store.NewRedis(nil, store.WithInvalidationChannel("c"))
	_, _ = store.NewRedis(nil, store.WithBatchedGets(1))
	_, _ = store.NewTiered(nil, nil, store.WithBroadcast(nil, 0))
	_, _ = failsoft.New(nil, failsoft.WithBroadcast(true), failsoft.WithBroadcastCoherence(0))
}
`

// prelude imports every package the calls name, and uses each once.
const prelude = `package p

import (
	"time"

	"github.com/failsoft/failsoft"
	"github.com/failsoft/failsoft/health"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

var (
	_ = time.Second
	_ failsoft.Option
	_ health.Option
	_ middleware.Option
	_ store.Store
)
`

// TestMisplacedOptionsDoNotCompile builds, with the go command, a module in
// a temporary workspace beside this one: one package per misplaced call,
// which must fail with the expected type error, and one that places every
// option right, which must build. It builds with the race detector when
// this test runs under it, so that the dependencies come from the build
// cache.
func TestMisplacedOptionsDoNotCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := goDirective(t, filepath.Join(root, "go.mod"))

	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module misplaced\n\ngo "+goVersion+"\n")
	write("go.work", fmt.Sprintf("go %s\n\nuse (\n\t.\n\t%q\n)\n", goVersion, root))
	write("ok/p.go", prelude+wellPlaced)
	for i, m := range misplaced {
		write(fmt.Sprintf("bad%02d/p.go", i), prelude+fmt.Sprintf("\nfunc f() { _, _ = %s }\n", m.call))
	}

	args := []string{"build"}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command(gobin, append(args, "./...")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GOWORK="+filepath.Join(dir, "go.work"),
		"GOFLAGS=-buildvcs=false",
		"GOPROXY=off",
		"GOTOOLCHAIN=local",
	)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("go build of the misplaced options succeeded:\n%s", out)
	}
	// Type errors read "bad03/p.go:11:37: cannot use ... does not
	// implement store.MemoryOption (missing method applyMemory)".
	errLine := regexp.MustCompile(`^(?:\./)?(\w+)/p\.go:\d+:\d+: (.*)$`)
	got := make(map[string][]string)
	for line := range strings.Lines(string(out)) {
		if m := errLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			got[m[1]] = append(got[m[1]], m[2])
		}
	}
	if len(got["ok"]) > 0 {
		t.Fatalf("the well-placed options do not compile:\n%s", out)
	}
	for i, m := range misplaced {
		errs := got[fmt.Sprintf("bad%02d", i)]
		if len(errs) != 1 || !strings.Contains(errs[0], m.want) {
			t.Errorf("%s: got errors %q, want one type error containing %q", m.call, errs, m.want)
		}
	}
	if t.Failed() {
		t.Logf("go build output:\n%s", out)
	}
}

// goDirective returns the go version that the go.mod at path requires.
func goDirective(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "go "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("%s has no go directive", path)
	return ""
}
