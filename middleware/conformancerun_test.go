package middleware

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failsoft/failsoft/store"
)

// The harness of the conformance table (conformance_test.go): a handler
// that plays the test suite's origin server, and the runner that sends
// each case's requests through a fresh cache and checks the answers.

const (
	wantAny = iota // setup step: no expectation
	wantCached
	wantForwarded
	wantETagValidated
	wantLMValidated
)

// pause is the suite's pause between two requests.
const pause = 3 * time.Second

type confStep struct {
	method     string   // default GET
	query      string   // appended to the URL, "?a=b"
	reqHdr     []string // request header name, value pairs
	status     int      // the handler's status; default 200
	resHdr     []string // the handler's header name, value pairs
	body       string   // the handler's body; default "body <step>"
	after      time.Duration
	want       int
	wantStatus int      // default: 200, or 304 for a validated step whose client asked conditionally
	wantHdr    []string // header name, value pairs the answer must have
	wantNoHdr  []string // header names the answer must not have
	wantReq    []string // request header name, value pairs the handler must have seen
	wantNoReq  []string // request header names the handler must not have seen
	wantAgeMin int64    // when > 0: the answer's Age is at least this
}

type confCase struct {
	id    string // the suite's test id
	note  string // where failsoft's answer differs from the suite's expectation, and why
	opts  []Option
	steps []confStep
}

// T0 is the test clock's start (newTestClock); at gives an HTTP-date s
// seconds after it.
func at(s int) string { return rfc1123(newTestClock().Now().Add(time.Duration(s) * time.Second)) }

// confOrigin plays the suite's server: it answers with the current step's
// status and fields, a 304 when the step expects a validation that the
// request carries, and records what it saw.
type confOrigin struct {
	mu    sync.Mutex
	steps []confStep
	cur   int
	calls []int           // the steps that reached the handler
	reqs  []*http.Request // the requests, by call
}

func (o *confOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	i := o.cur
	st := o.steps[i]
	o.calls = append(o.calls, i)
	o.reqs = append(o.reqs, r)
	o.mu.Unlock()
	status := st.status
	if status == 0 {
		status = http.StatusOK
	}
	if i > 0 && validates(st.want, o.steps[i-1].resHdr, r.Header) {
		status = http.StatusNotModified
	}
	for j := 0; j+1 < len(st.resHdr); j += 2 {
		w.Header().Add(st.resHdr[j], st.resHdr[j+1])
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead && bodyAllowed(status) {
		fmt.Fprint(w, stepBody(st, i))
	}
}

// validates reports whether a request with header h validates the response
// fields prev as want asks.
func validates(want int, prev []string, h http.Header) bool {
	name, field := "", ""
	switch want {
	case wantETagValidated:
		name, field = "ETag", "If-None-Match"
	case wantLMValidated:
		name, field = "Last-Modified", "If-Modified-Since"
	default:
		return false
	}
	for j := 0; j+1 < len(prev); j += 2 {
		if http.CanonicalHeaderKey(prev[j]) == http.CanonicalHeaderKey(name) {
			return h.Get(field) == prev[j+1]
		}
	}
	return false
}

func stepBody(st confStep, i int) string {
	if st.body != "" {
		return st.body
	}
	return fmt.Sprintf("body %d", i+1)
}

// runConformance runs each case on a fresh cache over a memory store that
// shares the test clock.
func runConformance(t *testing.T, cases []confCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.id, func(t *testing.T) {
			clk := newTestClock()
			mem, err := store.NewMemory(1<<20, store.WithClock(clk.Now))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { mem.Close() }) // after the cache's Close, below
			opts := append([]Option{WithClock(clk.Now), WithLogger(slog.New(slog.DiscardHandler))}, tc.opts...)
			c, err := New(mem, opts...)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			t.Cleanup(func() { c.Close() })
			o := &confOrigin{steps: tc.steps}
			h := c.Handler(o)
			stored := "" // the body of the last full response from the handler
			for i, st := range tc.steps {
				o.mu.Lock()
				o.cur = i
				before := len(o.calls)
				o.mu.Unlock()
				method := st.method
				if method == "" {
					method = http.MethodGet
				}
				var body *strings.Reader
				if method != http.MethodGet && method != http.MethodHead {
					body = strings.NewReader("abc")
				}
				var r *http.Request
				if body != nil {
					r = httptest.NewRequest(method, "http://example.com/test"+st.query, body)
				} else {
					r = httptest.NewRequest(method, "http://example.com/test"+st.query, nil)
				}
				for j := 0; j+1 < len(st.reqHdr); j += 2 {
					r.Header.Add(st.reqHdr[j], st.reqHdr[j+1])
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				c.bg.wait()
				o.mu.Lock()
				called := len(o.calls) > before
				var seen *http.Request
				if called {
					seen = o.reqs[before]
				}
				o.mu.Unlock()
				checkStep(t, i+1, st, w, called, seen, stored)
				if called && w.Code == http.StatusOK && method == http.MethodGet {
					stored = w.Body.String()
				}
				clk.Add(st.after)
			}
			if tc.note != "" {
				t.Logf("note: %s", tc.note)
			}
		})
	}
}

func checkStep(t *testing.T, n int, st confStep, w *httptest.ResponseRecorder, called bool, seen *http.Request, stored string) {
	t.Helper()
	switch st.want {
	case wantCached:
		if st.body != "" {
			stored = st.body // the body the cached answer must have, when the last one the client saw is not it
		}
		if called {
			t.Errorf("request %d: went to the handler, want an answer from the cache", n)
		} else if w.Code == http.StatusOK && st.method != http.MethodHead && w.Body.String() != stored {
			t.Errorf("request %d: body %q, want the stored %q", n, w.Body.String(), stored)
		}
	case wantForwarded:
		if !called {
			t.Errorf("request %d: answered from the cache (Cache-Status %q), want the handler", n, w.Header().Get("Cache-Status"))
		}
	case wantETagValidated, wantLMValidated:
		field := "If-None-Match"
		if st.want == wantLMValidated {
			field = "If-Modified-Since"
		}
		switch {
		case !called:
			t.Errorf("request %d: answered from the cache, want a validation", n)
		case seen.Header.Get(field) == "":
			t.Errorf("request %d: the handler got no %s (Cache-Status %q)", n, field, w.Header().Get("Cache-Status"))
		}
	}
	wantStatus := st.wantStatus
	if wantStatus == 0 {
		wantStatus = http.StatusOK
		if st.status != 0 && st.want != wantCached {
			wantStatus = st.status
		}
	}
	if w.Code != wantStatus {
		t.Errorf("request %d: status %d, want %d", n, w.Code, wantStatus)
	}
	for j := 0; j+1 < len(st.wantHdr); j += 2 {
		if got := w.Header().Values(st.wantHdr[j]); strings.Join(got, ", ") != st.wantHdr[j+1] {
			t.Errorf("request %d: %s %q, want %q", n, st.wantHdr[j], got, st.wantHdr[j+1])
		}
	}
	for _, k := range st.wantNoHdr {
		if v, ok := w.Header()[http.CanonicalHeaderKey(k)]; ok {
			t.Errorf("request %d: has %s %q, want none", n, k, v)
		}
	}
	if seen != nil {
		for j := 0; j+1 < len(st.wantReq); j += 2 {
			if got := seen.Header.Get(st.wantReq[j]); got != st.wantReq[j+1] {
				t.Errorf("request %d: the handler got %s %q, want %q", n, st.wantReq[j], got, st.wantReq[j+1])
			}
		}
		for _, k := range st.wantNoReq {
			if v := seen.Header.Get(k); v != "" {
				t.Errorf("request %d: the handler got %s %q, want none", n, k, v)
			}
		}
	}
	if st.wantAgeMin > 0 {
		var age int64
		if _, err := fmt.Sscan(w.Header().Get("Age"), &age); err != nil || age < st.wantAgeMin {
			t.Errorf("request %d: Age %q, want at least %d", n, w.Header().Get("Age"), st.wantAgeMin)
		}
	}
}

// twoStep is the suite's commonest shape: a response with hdr, after a
// pause when paused, then a plain request that wants want.
func twoStep(id string, hdr []string, paused bool, want int) confCase {
	first := confStep{resHdr: hdr}
	if paused {
		first.after = pause
	}
	return confCase{id: id, steps: []confStep{first, {want: want}}}
}
