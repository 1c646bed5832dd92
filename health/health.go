package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// Handler serves /livez, /readyz and /healthz over a fixed set of checks.
//
// Build one with [New]. A Handler is safe for concurrent use. It starts a
// goroutine for each run of a ping or a [WithCheck] function (at most one
// per check at a time); [Handler.Close] waits for them.
type Handler struct {
	checks       []*check
	timeout      time.Duration
	ttl          time.Duration
	now          func() time.Time
	logger       *slog.Logger
	errorDetails bool
	service      ServiceInfo

	livez, readyz, healthz http.Handler

	closeMu sync.RWMutex
	closed  bool
	wg      sync.WaitGroup
}

// New returns a Handler with the checks and settings of opts. With no
// option it has no check: /readyz and /healthz pass. It returns an error for
// an invalid option: a nil breaker, pinger or function, an empty or
// duplicate check name, a name with a space, a comma or an unprintable
// character, or a duration that is not positive.
func New(opts ...Option) (*Handler, error) {
	c := config{timeout: DefaultTimeout, ttl: DefaultTTL, now: time.Now}
	var errs []error
	for _, opt := range opts {
		if opt == nil {
			errs = append(errs, errors.New("nil Option"))
			continue
		}
		if err := opt(&c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("health: invalid options: %w", err)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	h := &Handler{
		checks:       c.checks,
		timeout:      c.timeout,
		ttl:          c.ttl,
		now:          c.now,
		logger:       c.logger,
		errorDetails: c.errorDetails,
		service:      c.service,
	}
	h.livez = http.HandlerFunc(h.serveLivez)
	h.readyz = http.HandlerFunc(h.serveReadyz)
	h.healthz = http.HandlerFunc(h.serveHealthz)
	return h, nil
}

// Livez returns the liveness handler: 200 "ok" (with ?verbose, a
// "[+]ping ok" listing) for GET and HEAD while the process serves. It runs
// no check.
func (h *Handler) Livez() http.Handler { return h.livez }

// Readyz returns the readiness handler: 200 unless a critical check fails,
// then 503, as text/plain. The body is "ok" on success; with ?verbose, and
// always on failure, it lists each check as "[+]name ok", "[+]name warn:
// reason" or "[-]name failed: reason", then "readyz check passed" or
// "readyz check failed". ?exclude=name (repeated, or comma-separated) leaves
// checks out without running them.
func (h *Handler) Readyz() http.Handler { return h.readyz }

// Healthz returns the detailed report handler: the [Report] as
// application/health+json, 200 for pass and warn, 503 for fail. It honours
// ?exclude like [Handler.Readyz].
func (h *Handler) Healthz() http.Handler { return h.healthz }

// ServeHTTP serves the three endpoints by the last element of the request's
// path ("livez", "readyz" or "healthz"), so that one Handler can be mounted
// at "/" or under a prefix (mux.Handle("/health/", h)); any other path is
// 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch path.Base(r.URL.Path) {
	case "livez":
		h.livez.ServeHTTP(w, r)
	case "readyz":
		h.readyz.ServeHTTP(w, r)
	case "healthz":
		h.healthz.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// Close stops starting check runs and waits for those still running (each
// was given a context that ended at its timeout). After Close, pings and
// [WithCheck] checks report failure; /livez still answers. Close is safe to
// call more than once.
func (h *Handler) Close() error {
	h.closeMu.Lock()
	h.closed = true
	h.closeMu.Unlock()
	h.wg.Wait()
	return nil
}

// Report is the detailed health report, as served by [Handler.Healthz] in
// application/health+json (draft-inadarei-api-health-check).
type Report struct {
	// Status is the worst status of the checks: pass, warn or fail.
	Status      Status `json:"status"`
	Version     string `json:"version,omitempty"`
	ReleaseID   string `json:"releaseId,omitempty"`
	ServiceID   string `json:"serviceId,omitempty"`
	Description string `json:"description,omitempty"`
	// Output lists the checks that warn or fail, with their reasons.
	Output string `json:"output,omitempty"`
	// Checks holds the measurements keyed "component:measurement" (a
	// [WithCheck] check's key is its name).
	Checks map[string][]Measurement `json:"checks,omitempty"`
}

// Measurement is one entry of [Report.Checks].
type Measurement struct {
	ComponentID   string    `json:"componentId,omitempty"`
	ComponentType string    `json:"componentType,omitempty"`
	ObservedValue any       `json:"observedValue,omitempty"`
	ObservedUnit  string    `json:"observedUnit,omitempty"`
	Status        Status    `json:"status"`
	Time          time.Time `json:"time"` // when the check ran (RFC 3339, UTC)
	Output        string    `json:"output,omitempty"`
}

// Report runs the checks (or reuses their cached results) and returns the
// detailed report. The names in exclude are left out.
func (h *Handler) Report(ctx context.Context, exclude ...string) Report {
	checks, _ := h.selectChecks(exclude, false)
	results := h.evaluate(ctx, checks)
	rep := Report{
		Status:      StatusPass,
		Version:     h.service.Version,
		ReleaseID:   h.service.ReleaseID,
		ServiceID:   h.service.ServiceID,
		Description: h.service.Description,
		Checks:      make(map[string][]Measurement),
	}
	var outputs []string
	for i, c := range checks {
		r := results[i]
		rep.Status = worse(rep.Status, r.status)
		if r.status != StatusPass {
			outputs = append(outputs, c.name+": "+r.output)
		}
		for _, v := range r.values {
			m := Measurement{
				ComponentType: v.componentType,
				ObservedValue: v.observed,
				ObservedUnit:  v.unit,
				Status:        r.status,
				Time:          r.at.UTC(),
				Output:        r.output,
			}
			rep.Checks[v.key] = append(rep.Checks[v.key], m)
		}
	}
	rep.Output = strings.Join(outputs, "; ")
	return rep
}

// selectChecks returns the checks not excluded (readiness checks only when
// ready is set) and the excluded names that match no check.
func (h *Handler) selectChecks(exclude []string, ready bool) (checks []*check, unknown []string) {
	for _, c := range h.checks {
		if (!ready || c.ready) && !slices.Contains(exclude, c.name) {
			checks = append(checks, c)
		}
	}
	for _, name := range exclude {
		if !slices.ContainsFunc(h.checks, func(c *check) bool { return c.name == name && (!ready || c.ready) }) {
			unknown = append(unknown, name)
		}
	}
	return checks, unknown
}

// excluded returns the names in the request's exclude parameters, which may
// be repeated or comma-separated.
func excluded(r *http.Request) []string {
	var names []string
	for _, v := range r.URL.Query()["exclude"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				names = append(names, name)
			}
		}
	}
	return names
}

// allowProbe answers methods other than GET and HEAD with 405.
func allowProbe(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// writeText writes a probe's plain-text answer.
func writeText(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write([]byte(body))
}

func (h *Handler) serveLivez(w http.ResponseWriter, r *http.Request) {
	if !allowProbe(w, r) {
		return
	}
	if r.URL.Query().Has("verbose") {
		writeText(w, http.StatusOK, "[+]ping ok\nlivez check passed\n")
		return
	}
	writeText(w, http.StatusOK, "ok")
}

func (h *Handler) serveReadyz(w http.ResponseWriter, r *http.Request) {
	if !allowProbe(w, r) {
		return
	}
	exclude := excluded(r)
	checks, unknown := h.selectChecks(exclude, true)
	results := h.evaluate(r.Context(), checks)
	failed := slices.ContainsFunc(results, func(r result) bool { return r.status == StatusFail })
	if !failed && !r.URL.Query().Has("verbose") {
		writeText(w, http.StatusOK, "ok")
		return
	}
	var b strings.Builder
	for _, c := range h.checks {
		if !c.ready {
			continue
		}
		if slices.Contains(exclude, c.name) {
			fmt.Fprintf(&b, "[+]%s excluded: ok\n", c.name)
			continue
		}
		res := results[slices.Index(checks, c)]
		switch res.status {
		case StatusPass:
			fmt.Fprintf(&b, "[+]%s ok\n", c.name)
		case StatusWarn:
			fmt.Fprintf(&b, "[+]%s warn: %s\n", c.name, oneLine(res.output))
		default:
			fmt.Fprintf(&b, "[-]%s failed: %s\n", c.name, oneLine(res.output))
		}
	}
	if len(unknown) > 0 {
		fmt.Fprintf(&b, "warn: some checks cannot be excluded: no matches for %s\n", oneLine(strings.Join(quoteAll(unknown), ",")))
	}
	status := http.StatusOK
	if failed {
		status = http.StatusServiceUnavailable
		b.WriteString("readyz check failed\n")
	} else {
		b.WriteString("readyz check passed\n")
	}
	writeText(w, status, b.String())
}

func (h *Handler) serveHealthz(w http.ResponseWriter, r *http.Request) {
	if !allowProbe(w, r) {
		return
	}
	rep := h.Report(r.Context(), excluded(r)...)
	body, err := json.Marshal(rep)
	if err != nil {
		// Only a WithCheck ObservedValue that JSON cannot encode gets here.
		h.logger.ErrorContext(r.Context(), "health: encoding the report", slog.Any("error", err))
		rep.Checks, rep.Output = nil, "report could not be encoded"
		rep.Status = StatusFail
		body, _ = json.Marshal(rep)
	}
	status := http.StatusOK
	if rep.Status == StatusFail {
		status = http.StatusServiceUnavailable
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/health+json")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// oneLine keeps a reason on its line of a verbose listing.
func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

func quoteAll(names []string) []string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return q
}
