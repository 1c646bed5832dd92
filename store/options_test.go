package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Each option is accepted where it is read.
var (
	_ RedisOption      = WithPrefix("")
	_ NodeGuardsOption = WithPrefix("")
	_ RedisOption      = WithMaxKeyBytes(0)
	_ MemoryOption     = WithMaxKeyBytes(0)
	_ NodeGuardsOption = WithMaxKeyBytes(0)
	_ RedisOption      = WithMaxValueBytes(0)
	_ MemoryOption     = WithMaxValueBytes(0)
	_ NodeGuardsOption = WithMaxValueBytes(0)
	_ MemoryOption     = WithClock(nil)
	_ TieredOption     = WithClock(nil)
	_ GuardOption      = WithClock(nil)
	_ NodeGuardsOption = WithClock(nil)
	_ TieredOption     = WithLogger(nil)
	_ GuardOption      = WithLogger(nil)
	_ NodeGuardsOption = WithLogger(nil)
	_ TieredOption     = WithCoherence(0)
	_ TieredOption     = WithMaxBackfills(0)
	_ GuardOption      = WithName("")
	_ GuardOption      = WithOpTimeout(0)
	_ GuardOption      = WithFailureThreshold(0)
	_ GuardOption      = WithOpenPeriod(0)
	_ GuardOption      = WithHalfOpenRequests(0)
	_ GuardOption      = WithMaxInFlight(0)
	_ GuardOption      = WithOnStateChange(nil)
	_ GuardOption      = WithObserver(nil)
	_ NodeGuardsOption = WithOpTimeout(0) // every GuardOption
	_ HookOption       = WithCacheMode(false)
)

// staticType returns the static type of its argument: the interface type
// for the options that return one.
func staticType[T any](T) reflect.Type { return reflect.TypeFor[T]() }

// TestOptionsAcceptedExactlyWhereRead checks every option against every
// option type: it implements the option types of the constructors that read
// it and no other, so that a misplaced option does not compile (a value is
// assignable to an interface type exactly when its type implements it).
func TestOptionsAcceptedExactlyWhereRead(t *testing.T) {
	kinds := []struct {
		name string
		typ  reflect.Type
	}{
		{"Redis", reflect.TypeFor[RedisOption]()},
		{"Memory", reflect.TypeFor[MemoryOption]()},
		{"Tiered", reflect.TypeFor[TieredOption]()},
		{"Guard", reflect.TypeFor[GuardOption]()},
		{"NodeGuards", reflect.TypeFor[NodeGuardsOption]()},
		{"Hook", reflect.TypeFor[HookOption]()},
	}
	guard := "Guard NodeGuards"
	tests := []struct {
		option string
		typ    reflect.Type
		want   string // the kinds that accept it
	}{
		{"WithPrefix", staticType(WithPrefix("")), "Redis NodeGuards"},
		{"WithMaxKeyBytes", staticType(WithMaxKeyBytes(1)), "Redis Memory NodeGuards"},
		{"WithMaxValueBytes", staticType(WithMaxValueBytes(1)), "Redis Memory NodeGuards"},
		{"WithClock", staticType(WithClock(time.Now)), "Memory Tiered Guard NodeGuards"},
		{"WithLogger", staticType(WithLogger(nil)), "Tiered Guard NodeGuards"},
		{"WithCoherence", staticType(WithCoherence(0)), "Tiered"},
		{"WithMaxBackfills", staticType(WithMaxBackfills(1)), "Tiered"},
		{"WithName", staticType(WithName("")), guard},
		{"WithOpTimeout", staticType(WithOpTimeout(1)), guard},
		{"WithFailureThreshold", staticType(WithFailureThreshold(1)), guard},
		{"WithOpenPeriod", staticType(WithOpenPeriod(1)), guard},
		{"WithHalfOpenRequests", staticType(WithHalfOpenRequests(1)), guard},
		{"WithMaxInFlight", staticType(WithMaxInFlight(1)), guard},
		{"WithOnStateChange", staticType(WithOnStateChange(nil)), guard},
		{"WithObserver", staticType(WithObserver(nil)), guard},
		{"WithCacheMode", staticType(WithCacheMode(true)), "Hook"},
	}
	for _, tt := range tests {
		t.Run(tt.option, func(t *testing.T) {
			var got []string
			for _, k := range kinds {
				if tt.typ.Implements(k.typ) {
					got = append(got, k.name)
				}
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("%s (%v) is accepted by the constructors of %q, want %q", tt.option, tt.typ, got, tt.want)
			}
		})
	}
}

// misplaced are calls that pass an option to a constructor that does not
// read it; each must fail to compile, naming the option type it misses.
var misplaced = []struct {
	call string
	want string // the option type named in the type error
}{
	{`store.NewGuard(nil, store.WithPrefix("x"))`, "GuardOption"},
	{`store.NewHook(nil, store.WithLogger(nil))`, "HookOption"},
	{`store.NewHook(nil, store.WithOpTimeout(time.Second))`, "HookOption"},
	{`store.NewMemory(1, store.WithLogger(nil))`, "MemoryOption"},
	{`store.NewMemory(1, store.WithCoherence(0))`, "MemoryOption"},
	{`store.NewRedis(nil, store.WithLogger(nil))`, "RedisOption"},
	{`store.NewRedis(nil, store.WithClock(time.Now))`, "RedisOption"},
	{`store.NewRedis(nil, store.WithName("x"))`, "RedisOption"},
	{`store.NewTiered(nil, nil, store.WithMaxKeyBytes(1))`, "TieredOption"},
	{`store.NewTiered(nil, nil, store.WithPrefix("x"))`, "TieredOption"},
	{`store.NewGuard(nil, store.WithCacheMode(true))`, "GuardOption"},
	{`store.NewGuard(nil, store.WithMaxValueBytes(1))`, "GuardOption"},
	{`store.NewNodeGuards(store.WithCoherence(0))`, "NodeGuardsOption"},
	{`new(store.NodeGuards).Bound(nil, store.WithPrefix("x"))`, "GuardOption"},
}

// wellPlaced is a program that passes every option where it is read: it
// must compile, which shows that the failures above are the type errors
// they claim to be and not a broken build.
const wellPlaced = `package p

import (
	"time"

	"github.com/failsoft/failsoft/store"
)

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
}
`

// TestMisplacedOptionsDoNotCompile builds, with the go command, a module in
// a temporary workspace beside this one: one package per misplaced call,
// which must fail with a type error naming the option type, and one that
// places every option right, which must build. It builds with the race
// detector when this test runs under it, so that the dependencies come
// from the build cache.
func TestMisplacedOptionsDoNotCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	root, err := filepath.Abs("..")
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
	write("ok/p.go", wellPlaced)
	for i, m := range misplaced {
		write(fmt.Sprintf("bad%02d/p.go", i), fmt.Sprintf(`package p

import (
	"time"

	"github.com/failsoft/failsoft/store"
)

var _ = time.Second

func f() { _, _ = %s }
`, m.call))
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
		pkg := fmt.Sprintf("bad%02d", i)
		want := "does not implement store." + m.want + " (missing method"
		errs := got[pkg]
		if len(errs) != 1 || !strings.Contains(errs[0], want) {
			t.Errorf("%s: got errors %q, want one type error containing %q", m.call, errs, want)
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
