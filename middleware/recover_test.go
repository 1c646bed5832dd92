package middleware

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failsoft/failsoft/store"
)

// fakeBreaker is a BreakerState with a settable state.
type fakeBreaker struct {
	mu    sync.Mutex
	state store.State
	after time.Duration
}

func (b *fakeBreaker) State() store.State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

func (b *fakeBreaker) RetryAfter() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != store.StateOpen {
		return 0
	}
	return b.after
}

func openBreaker(after time.Duration) *fakeBreaker {
	return &fakeBreaker{state: store.StateOpen, after: after}
}

// lockedBuffer is a bytes.Buffer safe for the concurrent use of a logger
// called from a server goroutine and a test reading it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger() (*slog.Logger, *lockedBuffer) {
	buf := &lockedBuffer{}
	return slog.New(slog.NewTextHandler(buf, nil)), buf
}

// serveRecover runs one request through Recover(opts...)(h) on a recorder and
// returns the recorder and whatever panicked out of the middleware.
func serveRecover(t *testing.T, h http.Handler, opts ...RecoverOption) (rec *httptest.ResponseRecorder, panicked any) {
	t.Helper()
	rec = httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/api/data/k", nil)
	func() {
		defer func() { panicked = recover() }()
		Recover(opts...)(h).ServeHTTP(rec, req)
	}()
	return rec, panicked
}

// recordOutage marks the request's context with a Redis outage, as the
// guard and the hook do.
func recordOutage(r *http.Request) {
	store.RecordFailure(r.Context(), store.ErrUnavailable)
}

type errorBody struct {
	Error   string `json:"error"`
	Details string `json:"details"`
}

func TestRecoverPanicBeforeWriting(t *testing.T) {
	const secret = "secret panic value: password=hunter2"
	tests := []struct {
		name        string
		opts        []RecoverOption
		handler     http.HandlerFunc
		wantRetry   string
		wantDetails string // "" means the generic text
	}{
		{
			name:      "string panic, default Retry-After",
			handler:   func(w http.ResponseWriter, r *http.Request) { panic(secret) },
			wantRetry: "5",
		},
		{
			name:      "error panic",
			handler:   func(w http.ResponseWriter, r *http.Request) { panic(errors.New(secret)) },
			wantRetry: "5",
		},
		{
			name:      "configured default Retry-After, rounded up",
			opts:      []RecoverOption{WithRetryAfter(1500 * time.Millisecond)},
			handler:   func(w http.ResponseWriter, r *http.Request) { panic(secret) },
			wantRetry: "2",
		},
		{
			name:      "open breaker sets Retry-After",
			opts:      []RecoverOption{WithBreakers(openBreaker(2300 * time.Millisecond))},
			handler:   func(w http.ResponseWriter, r *http.Request) { panic(secret) },
			wantRetry: "3",
		},
		{
			name: "longest open breaker wins, closed ones ignored",
			opts: []RecoverOption{
				WithBreakers(openBreaker(2*time.Second), &fakeBreaker{state: store.StateClosed, after: time.Hour}),
				WithBreakers(openBreaker(7 * time.Second)),
			},
			handler:   func(w http.ResponseWriter, r *http.Request) { panic(secret) },
			wantRetry: "7",
		},
		{
			name:      "closed breaker leaves the default",
			opts:      []RecoverOption{WithBreakers(&fakeBreaker{state: store.StateClosed})},
			handler:   func(w http.ResponseWriter, r *http.Request) { panic(secret) },
			wantRetry: "5",
		},
		{
			name:      "open breaker with no time left leaves the default",
			opts:      []RecoverOption{WithBreakers(openBreaker(0))},
			handler:   func(w http.ResponseWriter, r *http.Request) { panic(secret) },
			wantRetry: "5",
		},
		{
			name: "held 5xx then panic",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
				panic(secret)
			},
			wantRetry: "5",
		},
		{
			name: "handler headers are dropped",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.Header().Set("Content-Length", "12345")
				w.Header().Set("Set-Cookie", "session=1")
				panic(secret)
			},
			wantRetry: "5",
		},
		{
			name:        "panic details on",
			opts:        []RecoverOption{WithPanicDetails(true)},
			handler:     func(w http.ResponseWriter, r *http.Request) { panic(secret) },
			wantRetry:   "5",
			wantDetails: secret,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, logs := testLogger()
			opts := append([]RecoverOption{WithLogger(logger)}, tt.opts...)
			rec, panicked := serveRecover(t, tt.handler, opts...)
			if panicked != nil {
				t.Fatalf("panic escaped Recover: %v", panicked)
			}
			if rec.Code != http.StatusServiceUnavailable {
				t.Errorf("status = %d, want 503", rec.Code)
			}
			h := rec.Header()
			if got := h.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			if got := h.Get("Retry-After"); got != tt.wantRetry {
				t.Errorf("Retry-After = %q, want %q", got, tt.wantRetry)
			}
			if got := h.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			if got := h.Get("Set-Cookie"); got != "" {
				t.Errorf("handler's Set-Cookie %q survived the panic", got)
			}
			if got, want := h.Get("Content-Length"), len(rec.Body.Bytes()); got != "" && got != strconv.Itoa(want) {
				t.Errorf("Content-Length = %s, body has %d bytes", got, want)
			}
			var body errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q is not JSON: %v", rec.Body, err)
			}
			if body.Error != "Service unavailable" {
				t.Errorf("error = %q, want %q", body.Error, "Service unavailable")
			}
			if tt.wantDetails == "" {
				if body.Details != unavailableDetails {
					t.Errorf("details = %q, want the generic text", body.Details)
				}
				if strings.Contains(rec.Body.String(), "hunter2") {
					t.Errorf("body leaks the panic value: %s", rec.Body)
				}
			} else if body.Details != tt.wantDetails {
				t.Errorf("details = %q, want %q", body.Details, tt.wantDetails)
			}
			log := logs.String()
			for _, want := range []string{"level=ERROR", "hunter2", "recover_test.go", "goroutine"} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
		})
	}
}

func TestRecoverKeepsOuterHeaders(t *testing.T) {
	outer := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Request-Id", "abc")
			next.ServeHTTP(w, r)
		})
	}
	logger, _ := testLogger()
	h := outer(Recover(WithLogger(logger))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Handler", "1")
		panic("boom")
	})))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", rec.Code)
	}
	if got := rec.Header().Get("X-Request-Id"); got != "abc" {
		t.Errorf("outer header X-Request-Id = %q, want abc", got)
	}
	if got := rec.Header().Get("X-Handler"); got != "" {
		t.Errorf("handler header X-Handler = %q, want it dropped", got)
	}
}

func TestRecoverAlreadyWritten(t *testing.T) {
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		wantCode int
		wantBody string
	}{
		{
			name: "status sent",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusOK)
				panic("late")
			},
			wantCode: http.StatusOK,
		},
		{
			name: "body started",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"source":"cache",`)
				panic("late")
			},
			wantCode: http.StatusOK,
			wantBody: `{"source":"cache",`,
		},
		{
			name: "flushed",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.(http.Flusher).Flush()
				panic("late")
			},
			wantCode: http.StatusOK,
		},
		{
			name: "4xx sent",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNotFound)
				panic("late")
			},
			wantCode: http.StatusNotFound,
		},
		{
			name: "5xx with body started",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
				io.WriteString(w, "partial")
				panic("late")
			},
			wantCode: http.StatusInternalServerError,
			wantBody: "partial",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, logs := testLogger()
			rec, panicked := serveRecover(t, tt.handler, WithLogger(logger))
			if panicked != http.ErrAbortHandler {
				t.Fatalf("panicked with %v, want http.ErrAbortHandler", panicked)
			}
			if rec.Code != tt.wantCode {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantCode)
			}
			if got := rec.Body.String(); got != tt.wantBody {
				t.Errorf("body = %q, want %q (nothing more written)", got, tt.wantBody)
			}
			if got := rec.Header().Get("Retry-After"); got != "" {
				t.Errorf("Retry-After = %q written after the status", got)
			}
			if !strings.Contains(logs.String(), "late") {
				t.Errorf("panic not logged:\n%s", logs)
			}
		})
	}
}

func TestRecoverErrAbortHandler(t *testing.T) {
	tests := []struct {
		name  string
		value any
	}{
		{"plain", http.ErrAbortHandler},
		{"wrapped", errors.Join(errors.New("client gone"), http.ErrAbortHandler)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, logs := testLogger()
			rec, panicked := serveRecover(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				panic(tt.value)
			}), WithLogger(logger))
			if panicked != tt.value {
				t.Fatalf("panicked with %v, want %v re-raised unchanged", panicked, tt.value)
			}
			if rec.Body.Len() != 0 || len(rec.Header()) != 0 {
				t.Errorf("wrote a response: headers %v, body %q", rec.Header(), rec.Body)
			}
			if logs.String() != "" {
				t.Errorf("logged an abort:\n%s", logs)
			}
		})
	}
}

// TestRecoverWriterInterfaces checks, over a real HTTP/1.1 server, that the
// writer Recover passes down keeps Flusher, Hijacker and Unwrap.
func TestRecoverWriterInterfaces(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		check   func(t *testing.T, resp *http.Response, body string)
	}{
		{
			name: "flusher and response controller",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if _, ok := w.(http.Flusher); !ok {
					http.Error(w, "no Flusher", http.StatusTeapot)
					return
				}
				rc := http.NewResponseController(w)
				if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
					http.Error(w, "SetWriteDeadline: "+err.Error(), http.StatusTeapot)
					return
				}
				io.WriteString(w, "a")
				if err := rc.Flush(); err != nil {
					panic(err)
				}
				io.WriteString(w, "b")
			},
			check: func(t *testing.T, resp *http.Response, body string) {
				if resp.StatusCode != http.StatusOK || body != "ab" {
					t.Errorf("got %d %q, want 200 \"ab\"", resp.StatusCode, body)
				}
			},
		},
		{
			name: "hijacker",
			handler: func(w http.ResponseWriter, r *http.Request) {
				hj, ok := w.(http.Hijacker)
				if !ok {
					http.Error(w, "no Hijacker", http.StatusTeapot)
					return
				}
				conn, brw, err := hj.Hijack()
				if err != nil {
					panic(err)
				}
				defer conn.Close()
				brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
				brw.Flush()
			},
			check: func(t *testing.T, resp *http.Response, body string) {
				if resp.StatusCode != http.StatusOK || body != "hijacked" {
					t.Errorf("got %d %q, want 200 \"hijacked\"", resp.StatusCode, body)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(Recover()(tt.handler))
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, resp, string(body))
		})
	}
}

// TestRecoverAbortsOverTheWire shows what a client sees when the handler
// panics after starting its response: a broken response, not a 503 glued
// onto a 200.
func TestRecoverAbortsOverTheWire(t *testing.T) {
	logger, logs := testLogger()
	srv := httptest.NewUnstartedServer(Recover(WithLogger(logger))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic("late")
	})))
	srv.Start()
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("read a complete body %q; want the connection aborted", body)
	}
	if resp.StatusCode != http.StatusOK || string(body) != "partial" {
		t.Errorf("got %d %q, want 200 \"partial\" then an error", resp.StatusCode, body)
	}
	if !strings.Contains(logs.String(), "late") {
		t.Errorf("panic not logged:\n%s", logs)
	}
}

func TestRecoverPanicsOnProgrammerErrors(t *testing.T) {
	tests := []struct {
		name string
		f    func()
	}{
		{"nil option", func() { Recover(nil) }},
		{"nil handler", func() { Recover()(nil) }},
		{"nil breaker", func() { WithBreakers(nil) }},
		{"zero retry after", func() { WithRetryAfter(0) }},
		{"negative retry after", func() { WithRetryAfter(-time.Second) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				p := recover()
				if p == nil {
					t.Fatal("did not panic")
				}
				if msg, _ := p.(string); !strings.HasPrefix(msg, "middleware: ") {
					t.Errorf("panic %v lacks the package prefix", p)
				}
			}()
			tt.f()
		})
	}
}

func TestWithBreakersCopiesItsArguments(t *testing.T) {
	bs := []BreakerState{openBreaker(3 * time.Second)}
	opt := WithBreakers(bs...)
	bs[0] = &fakeBreaker{state: store.StateClosed}
	rec, _ := serveRecover(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}), opt)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "3" {
		t.Errorf("got %d Retry-After %q; the option saw the caller's later change", rec.Code, rec.Header().Get("Retry-After"))
	}
}

func BenchmarkRecover(b *testing.B) {
	h := Recover()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// ExampleRecover shows what a client sees when a handler panics.
func ExampleRecover() {
	h := Recover(WithLogger(slog.New(slog.DiscardHandler)))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("nil map in the data handler")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/data/k", nil))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"), "Retry-After:", rec.Header().Get("Retry-After"))
	fmt.Print(rec.Body)
	// Output:
	// 503 application/json Retry-After: 5
	// {"error":"Service unavailable","details":"The service cannot answer this request right now; retry later."}
}

func TestRecoverPanicLogIsRateLimited(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	h := Recover(WithLogger(logger))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	}))
	const n = 50
	for range n {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("status = %d, want 503", w.Code)
		}
	}
	if lines := strings.Count(buf.String(), "panic serving request"); lines < 1 || lines >= n {
		t.Errorf("%d panic log lines for %d panics in well under %v, want 1 (or few on a slow machine)", lines, n, panicLogInterval)
	}
}
