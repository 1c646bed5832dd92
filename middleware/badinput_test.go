package middleware

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Bad input from clients and from handlers: each case ends in a clear status
// or a pass-through, never a panic, and costs memory in proportion to what
// the cache keeps, not to what it is sent.

// badAllocBytes returns the bytes allocated per call of f, averaged over
// runs (after one warm-up call); like testing.AllocsPerRun, but in bytes.
func badAllocBytes(runs int, f func()) uint64 {
	f()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// badServer returns an unstarted test server for h whose error log (net/http
// complaining about the handlers' bad output) is discarded.
func badServer(h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	return srv
}

// badCountingWriter is a ResponseWriter that keeps no body, so that
// allocation measurements see the cache's own.
type badCountingWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *badCountingWriter) Header() http.Header         { return w.h }
func (w *badCountingWriter) WriteHeader(code int)        { w.status = code }
func (w *badCountingWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *badCountingWriter) reset()                      { clear(w.h); w.status, w.n = 0, 0 }

// badHugeTargets are request targets of 1 MiB: a long path, a long sorted
// query, a long query that must be sorted, and one of many parameters.
func badHugeTargets() map[string]string {
	const n = 1 << 20
	many := make([]string, 0, n/8)
	for i := n / 8; i > 0; i-- {
		many = append(many, "p"+strconv.Itoa(i%100000)+"=1")
	}
	return map[string]string{
		"path":           "/" + strings.Repeat("a", n),
		"query":          "/q?a=" + strings.Repeat("b", n),
		"unsorted-query": "/q?z=" + strings.Repeat("b", n/2) + "&a=" + strings.Repeat("c", n/2),
		"many-params":    "/q?" + strings.Join(many, "&")[:n],
	}
}

func TestBadInputHugeURLBypasses(t *testing.T) {
	for name, target := range badHugeTargets() {
		for _, custom := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/custom-key=%v", name, custom), func(t *testing.T) {
				s := newMapStore()
				var opts []Option
				if custom {
					opts = append(opts, WithKeyFunc(DefaultKey))
				}
				c := newTestCache(t, s, opts...)
				o := newOrigin(200, "ok", "Cache-Control", "max-age=60")
				h := c.Handler(o)
				r := httptest.NewRequest(http.MethodGet, "http://example.com"+target, nil)
				w := &badCountingWriter{h: make(http.Header)}
				h.ServeHTTP(w, r)
				c.bg.wait()
				if w.status != 200 || w.n != 2 {
					t.Fatalf("status %d, %d body bytes", w.status, w.n)
				}
				if cs := w.h.Get("Cache-Status"); cs != "failsoft; fwd=bypass; detail=no-key" {
					t.Errorf("Cache-Status %q, want a no-key bypass", cs)
				}
				if s.gets+s.sets != 0 {
					t.Errorf("store used: %d gets, %d sets", s.gets, s.sets)
				}
				size := uint64(len(target))
				got := badAllocBytes(5, func() {
					w.reset()
					h.ServeHTTP(w, r)
				})
				// With the default key the cache sees from the URL's
				// length that the material is over the limit and builds
				// none: nothing in proportion to the URL. A key function
				// of the caller's runs, and DefaultKey called as one is
				// linear in the URL: one copy, and for a query that must
				// be sorted a 16-byte slot per parameter (1 MiB of 8-byte
				// parameters: 3 times the URL). The store key, the store
				// and the capture never see the material.
				limit := size / 8
				if custom {
					limit = 4 * size
				}
				if got > limit {
					t.Errorf("a %d-byte URL allocates %d bytes a request (%.2f times its size), over %d",
						size, got, float64(got)/float64(size), limit)
				}
				t.Logf("%d-byte URL: %d bytes allocated a request", size, got)
			})
		}
	}
}

func TestBadInputHugeURLThroughServer(t *testing.T) {
	c := newTestCache(t, newMapStore())
	var calls atomic.Int64
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "%d", len(r.URL.RawQuery)+len(r.URL.Path))
	}))
	const size = 1 << 20
	tests := []struct {
		name      string
		maxHeader int // server's MaxHeaderBytes; 0: net/http's default (1 MiB)
		target    string
		status    int
		called    bool
	}{
		// net/http's default limit (1 MiB and 4 KiB of slack) lets a 1 MiB
		// request line through to the cache: it bypasses.
		{"path-1MiB", 0, "/" + strings.Repeat("a", size), http.StatusOK, true},
		{"query-1MiB", 0, "/q?z=1&a=" + strings.Repeat("b", size), http.StatusOK, true},
		// Over the limit net/http answers 431 before any handler runs.
		{"path-2MiB", 0, "/" + strings.Repeat("a", 2*size), http.StatusRequestHeaderFieldsTooLarge, false},
		{"query-2MiB", 0, "/q?a=" + strings.Repeat("b", 2*size), http.StatusRequestHeaderFieldsTooLarge, false},
		// A server configured for more hands the cache 4 MiB: bypass.
		{"path-4MiB-allowed", 8 << 20, "/" + strings.Repeat("a", 4*size), http.StatusOK, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := badServer(h)
			srv.Config.MaxHeaderBytes = tt.maxHeader
			srv.Start()
			defer srv.Close()
			before := calls.Load()
			resp, err := srv.Client().Get(srv.URL + tt.target)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if called := calls.Load() > before; called != tt.called {
				t.Errorf("handler called: %v, want %v", called, tt.called)
			}
			if tt.called {
				if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "detail=no-key") {
					t.Errorf("Cache-Status %q, want a no-key bypass", cs)
				}
			}
		})
	}
}

func TestBadInputMaxKeyBytes(t *testing.T) {
	// Material exactly at the limit is cached; one byte more bypasses.
	s := newMapStore()
	c := newTestCache(t, s, WithMaxKeyBytes(64))
	o := newOrigin(200, "ok", "Cache-Control", "max-age=60")
	h := c.Handler(o)
	base := "GET\nexample.com\n/"
	at := "http://example.com/" + strings.Repeat("a", 64-len(base)-1)
	for range 2 {
		do(c, h, "GET", at)
	}
	if o.calls.Load() != 1 {
		t.Errorf("key at the limit: %d handler calls, want 1 (a hit)", o.calls.Load())
	}
	w := do(c, h, "GET", at+"b")
	if cs := w.Header().Get("Cache-Status"); cs != "failsoft; fwd=bypass; detail=no-key" {
		t.Errorf("key over the limit: Cache-Status %q", cs)
	}
}

func TestBadInputThousandsOfRequestHeaders(t *testing.T) {
	const n = 5000
	hdr := make([]string, 0, 2*n+4)
	for i := range n {
		hdr = append(hdr, "X-H-"+strconv.Itoa(i), strings.Repeat("v", 16))
	}
	t.Run("serve", func(t *testing.T) {
		c := newTestCache(t, newMapStore())
		o := newOrigin(200, "ok", "Cache-Control", "max-age=60", "Vary", "X-H-1, X-H-4999")
		h := c.Handler(o)
		for range 2 {
			w := do(c, h, "GET", "http://example.com/a", hdr...)
			if w.Code != 200 || w.Body.String() != "ok" {
				t.Fatalf("%d %q", w.Code, w.Body.String())
			}
		}
		if o.calls.Load() != 1 {
			t.Errorf("%d handler calls, want 1: the variant did not hit", o.calls.Load())
		}
	})
	t.Run("server", func(t *testing.T) {
		c := newTestCache(t, newMapStore())
		o := newOrigin(200, "ok", "Cache-Control", "max-age=60")
		srv := httptest.NewServer(c.Handler(o))
		defer srv.Close()
		for _, tc := range []struct {
			name    string
			headers int
			status  int
		}{
			{"under-limit", 2000, http.StatusOK},
			// 60000 lines are over net/http's 1 MiB header limit: it
			// answers 431 before the cache runs.
			{"over-limit", 60000, http.StatusRequestHeaderFieldsTooLarge},
		} {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/a", nil)
			for i := range tc.headers {
				req.Header["X-H-"+strconv.Itoa(i)] = []string{"0123456789abcdef"}
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
			}
		}
	})
}

func TestBadInputManyVary(t *testing.T) {
	names := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = "X-V-" + strconv.Itoa(i)
		}
		return strings.Join(s, ", ")
	}
	tests := []struct {
		name   string
		vary   []string
		stored bool
	}{
		{"at-limit", []string{names(maxHeaders)}, true},
		{"over-limit", []string{names(maxHeaders + 1)}, false},
		{"over-limit-in-many-lines", strings.Split(names(maxHeaders+1), ", "), false},
		{"duplicates-collapse", []string{names(maxHeaders), names(maxHeaders), strings.ToLower(names(maxHeaders))}, true},
		{"invalid-member", []string{"Accept, X Bad"}, false},
		{"non-ascii-member", []string{"Accept, X-\xff"}, false},
		{"empty-members", []string{",,, ,", "Accept,,"}, true},
		{"huge-line", []string{strings.Repeat("A", 1<<20)}, true},
		{"star", []string{"Accept", "*"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newMapStore()
			c := newTestCache(t, s)
			o := newOrigin(200, "ok", "Cache-Control", "max-age=60")
			o.header["Vary"] = tt.vary
			h := c.Handler(o)
			var hdr []string
			for i := range maxHeaders + 1 {
				hdr = append(hdr, "X-V-"+strconv.Itoa(i), "v")
			}
			for range 2 {
				w := do(c, h, "GET", "http://example.com/a", hdr...)
				if w.Code != 200 || w.Body.String() != "ok" {
					t.Fatalf("%d %q", w.Code, w.Body.String())
				}
			}
			if stored := o.calls.Load() == 1; stored != tt.stored {
				t.Errorf("stored %v (%d handler calls), want %v", stored, o.calls.Load(), tt.stored)
			}
			if !tt.stored && s.len() != 0 {
				t.Errorf("%d entries stored for an unstorable Vary", s.len())
			}
		})
	}
}

func TestBadInputInvalidCacheControl(t *testing.T) {
	huge := strings.Repeat("max-age=60,", 1<<16) // 704 KiB; 60 s, so that the Date header's whole seconds cannot make it stale
	t.Run("request", func(t *testing.T) {
		for _, v := range []string{
			"max-age=-1", "max-age=abc", "max-age=", "max-age", `no-cache="`, `max-age="60`,
			"max-age=99999999999999999999999", "min-fresh=-5", "\xff\xfe", "only-if-cached=\x00",
			",,,", "=", `"`, huge,
		} {
			c := newTestCache(t, newMapStore())
			o := newOrigin(200, "ok", "Cache-Control", "max-age=60")
			h := c.Handler(o)
			do(c, h, "GET", "http://example.com/a") // stored
			w := do(c, h, "GET", "http://example.com/a", "Cache-Control", v)
			if w.Code != 200 || w.Body.String() != "ok" {
				t.Errorf("request Cache-Control %.40q: %d %q", v, w.Code, w.Body.String())
			}
		}
	})
	t.Run("response", func(t *testing.T) {
		for _, tt := range []struct {
			cc     []string
			stored bool // a second request is a hit
		}{
			{[]string{"max-age=-5"}, false},                         // unparsable: 0, stale at once
			{[]string{"max-age=abc"}, false},                        // same
			{[]string{"max-age=99999999999999999999999"}, true},     // capped at 2^31 s
			{[]string{"max-age=60, max-age=0"}, false},              // most restrictive
			{[]string{"max-age=60", "no-store"}, false},             // lines combine
			{[]string{`private="`, "max-age=60"}, false},            // unterminated: unqualified private
			{[]string{`no-cache="Set-Cookie`, "max-age=60"}, false}, // unterminated: unqualified no-cache
			{[]string{`no-cache="Set-Cookie"`, "max-age=60"}, true}, // qualified: the rest is stored
			{[]string{"s-maxage=abc, public, max-age=60"}, false},
			{[]string{"\xff\xfe, max-age=60"}, true},
			{[]string{"max-age=60, \x00=\x00"}, true},
			{[]string{huge}, true},
		} {
			c := newTestCache(t, newMapStore())
			o := newOrigin(200, "ok")
			o.header["Cache-Control"] = tt.cc
			h := c.Handler(o)
			for range 2 {
				w := do(c, h, "GET", "http://example.com/a")
				if w.Code != 200 || w.Body.String() != "ok" {
					t.Errorf("response Cache-Control %.40q: %d %q", tt.cc, w.Code, w.Body.String())
				}
			}
			if hit := o.calls.Load() == 1; hit != tt.stored {
				t.Errorf("response Cache-Control %.40q: stored %v, want %v", tt.cc, hit, tt.stored)
			}
		}
	})
}

func TestBadInputContentLength(t *testing.T) {
	// A handler whose Content-Length disagrees with what it writes: the
	// live answer is what net/http makes of it, and the cache does not keep
	// the broken response to replay.
	tests := []struct {
		name string
		cl   []string
		body string
	}{
		{"longer-than-body", []string{"10"}, "short"},
		{"shorter-than-body", []string{"3"}, "longer body"},
		{"two-values", []string{"5", "7"}, "12345"},
		{"not-a-number", []string{"five"}, "12345"},
		{"negative", []string{"-1"}, "12345"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newMapStore()
			c := newTestCache(t, s)
			var calls atomic.Int64
			h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.Header().Set("Cache-Control", "max-age=60")
				w.Header()["Content-Length"] = tt.cl
				io.WriteString(w, tt.body)
			}))
			srv := badServer(h)
			srv.Start()
			defer srv.Close()
			for range 2 {
				resp, err := srv.Client().Get(srv.URL + "/a")
				if err != nil {
					continue // net/http refused the response: a broken connection, as without the cache
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			c.bg.wait()
			if s.len() != 0 {
				t.Errorf("stored a response with Content-Length %q and a %d-byte body", tt.cl, len(tt.body))
			}
			if calls.Load() != 2 {
				t.Errorf("%d handler calls, want 2", calls.Load())
			}
		})
	}
	t.Run("matching-is-stored", func(t *testing.T) {
		s := newMapStore()
		c := newTestCache(t, s)
		o := newOrigin(200, "12345", "Cache-Control", "max-age=60", "Content-Length", "5")
		h := c.Handler(o)
		for range 2 {
			if w := do(c, h, "GET", "http://example.com/a"); w.Body.String() != "12345" {
				t.Fatalf("body %q", w.Body.String())
			}
		}
		if o.calls.Load() != 1 {
			t.Errorf("%d handler calls, want 1", o.calls.Load())
		}
	})
}

func TestBadInputInvalidStatus(t *testing.T) {
	for _, code := range []int{0, -1, 42, 99, 1000} {
		t.Run("panics-"+strconv.Itoa(code), func(t *testing.T) {
			// net/http panics on these; under the chain Recover answers 503.
			c := newTestCache(t, newMapStore())
			h := Chain(c, WithLogger(slog.New(slog.DiscardHandler))).Then(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(code)
			}))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://example.com/a", nil))
			if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
				t.Errorf("WriteHeader(%d): %d, Retry-After %q; want 503 with Retry-After", code, w.Code, w.Header().Get("Retry-After"))
			}
		})
	}
	for _, code := range []int{100, 199, 299, 600, 999} {
		t.Run("passes-"+strconv.Itoa(code), func(t *testing.T) {
			// Odd but valid three-digit codes: passed on, never stored.
			s := newMapStore()
			c := newTestCache(t, s)
			o := newOrigin(code, "x", "Cache-Control", "max-age=60, public")
			srv := httptest.NewServer(c.Handler(o))
			defer srv.Close()
			for range 2 {
				resp, err := srv.Client().Get(srv.URL + "/a")
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				want := code
				if code < 200 {
					want = 200 // an informational status, then the final 200
				}
				if resp.StatusCode != want {
					t.Errorf("status %d, want %d", resp.StatusCode, want)
				}
			}
			c.bg.wait()
			if code >= 200 && s.len() != 0 {
				t.Errorf("status %d stored", code)
			}
		})
	}
}

func TestBadInputNonUTF8Headers(t *testing.T) {
	c := newTestCache(t, newMapStore())
	o := newOrigin(200, "ok", "Cache-Control", "max-age=60", "X-Bin", "\xff\xfe\x80", "Vary", "X-Req")
	srv := httptest.NewServer(c.Handler(o))
	defer srv.Close()
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/a", nil)
		req.Header["X-Req"] = []string{"\xc3\x28\xff"}
		req.Header["X-Other"] = []string{"\x80\x81"}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Bin") != "\xff\xfe\x80" {
			t.Errorf("request %d: %d, X-Bin %q", i, resp.StatusCode, resp.Header.Get("X-Bin"))
		}
	}
	if o.calls.Load() != 1 {
		t.Errorf("%d handler calls, want 1 (the variant hits)", o.calls.Load())
	}
	// Names a server would never send (set by a handler straight into the
	// map) are kept and replayed as the handler wrote them; net/http drops
	// the invalid ones on the wire either way.
	c2 := newTestCache(t, newMapStore())
	o2 := newOrigin(200, "ok", "Cache-Control", "max-age=60")
	o2.header["X-\xff"] = []string{"1"}
	o2.header["Bad Name"] = []string{"2"}
	h2 := c2.Handler(o2)
	a, b := do(c2, h2, "GET", "http://example.com/a"), do(c2, h2, "GET", "http://example.com/a")
	sameExceptCache(t, a, b)
	if o2.calls.Load() != 1 {
		t.Errorf("%d handler calls, want 1", o2.calls.Load())
	}
}

func TestBadInputRange(t *testing.T) {
	// The key ignores Range: a 206 is never stored, so it cannot answer
	// a request for the whole; a stored 200 answers a Range request whole
	// (a server may ignore Range, RFC 9110 §14.2).
	s := newMapStore()
	c := newTestCache(t, s)
	modTime := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var calls atomic.Int64
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		http.ServeContent(w, r, "a.txt", modTime, strings.NewReader("0123456789"))
	}))
	for _, tc := range []struct {
		rng    string
		status int
		body   string
	}{
		{"bytes=0-3", http.StatusPartialContent, "0123"},
		{"bytes=99-", http.StatusRequestedRangeNotSatisfiable, ""},
		{"bytes=garbage", http.StatusRequestedRangeNotSatisfiable, ""},
		{"", http.StatusOK, "0123456789"},          // stored
		{"bytes=2-4", http.StatusOK, "0123456789"}, // the stored whole
		{"bytes=0-0,2-2,4-4,6-6", http.StatusOK, "0123456789"},
	} {
		hdr := []string{}
		if tc.rng != "" {
			hdr = []string{"Range", tc.rng}
		}
		w := do(c, h, "GET", "http://example.com/a.txt", hdr...)
		if w.Code != tc.status || (tc.body != "" && w.Body.String() != tc.body) {
			t.Errorf("Range %q: %d %q, want %d %q", tc.rng, w.Code, w.Body.String(), tc.status, tc.body)
		}
	}
	if calls.Load() != 4 {
		t.Errorf("%d handler calls, want 4 (three ranges, one whole)", calls.Load())
	}
}

func TestBadInputWriteAfterHijack(t *testing.T) {
	c := newTestCache(t, newMapStore())
	errs := make(chan error, 1)
	h := Chain(c, WithLogger(slog.New(slog.DiscardHandler))).Then(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			errs <- err
			return
		}
		rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		rw.Flush()
		conn.Close()
		w.WriteHeader(http.StatusTeapot) // ignored by net/http, logged
		_, err = w.Write([]byte("late"))
		errs <- err
	}))
	srv := badServer(h)
	srv.Start()
	defer srv.Close()
	for range 2 {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(conn, "GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		if string(body) != "hijacked" {
			t.Errorf("body %q", body)
		}
		if err := <-errs; !errors.Is(err, http.ErrHijacked) {
			t.Errorf("write after hijack: %v, want http.ErrHijacked", err)
		}
	}
	c.bg.wait()
	if st := c.Stats(); st.Stored != 0 || st.Hits != 0 {
		t.Errorf("a hijacked response was stored or served: %+v", st)
	}
}

func TestBadInputHugeBodyStreams(t *testing.T) {
	const limit = 64 << 10
	const size = 16 * limit
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	for _, tc := range []struct {
		name  string
		write func(w io.Writer)
	}{
		{"chunks", func(w io.Writer) {
			for range size / len(chunk) {
				w.Write(chunk)
			}
		}},
		{"one-write", func(w io.Writer) { w.Write(bytes.Repeat([]byte("y"), size)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newMapStore()
			c := newTestCache(t, s, WithMaxBodyBytes(limit))
			var calls atomic.Int64
			h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.Header().Set("Cache-Control", "max-age=60")
				tc.write(w)
			}))
			srv := httptest.NewServer(h)
			defer srv.Close()
			for range 2 {
				resp, err := srv.Client().Get(srv.URL + "/big")
				if err != nil {
					t.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || n != size {
					t.Errorf("status %d, %d bytes, want 200, %d", resp.StatusCode, n, size)
				}
				if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "detail=streamed") {
					t.Errorf("Cache-Status %q, want streamed", cs)
				}
			}
			c.bg.wait()
			if s.len() != 0 || calls.Load() != 2 {
				t.Errorf("%d entries stored, %d handler calls; want 0 and 2", s.len(), calls.Load())
			}
		})
	}
	t.Run("allocation", func(t *testing.T) {
		// The capture holds at most the limit before it streams: the
		// bytes allocated per request do not grow with the body.
		c := newTestCache(t, newMapStore(), WithMaxBodyBytes(limit))
		h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			for range size / len(chunk) {
				w.Write(chunk)
			}
		}))
		r := httptest.NewRequest(http.MethodGet, "http://example.com/big", nil)
		w := &badCountingWriter{h: make(http.Header)}
		got := badAllocBytes(10, func() {
			w.reset()
			h.ServeHTTP(w, r)
		})
		if w.n != size {
			t.Fatalf("%d bytes written, want %d", w.n, size)
		}
		// append's growth can reach twice the limit; the rest is the
		// request's fixed cost.
		if got > 3*limit {
			t.Errorf("a %d-byte body over a %d-byte limit allocates %d bytes a request", size, limit, got)
		}
		t.Logf("%d-byte body, %d-byte limit: %d bytes allocated a request", size, limit, got)
	})
}

func TestBadInputManyVaryTimesManyHeaders(t *testing.T) {
	// Selecting a variant reads each Vary name's lines. With thousands of
	// request header lines and hundreds of Vary names, scanning the map
	// once per name multiplied the two (about half a second a request at
	// 256 names and 40,000 lines, what fits in net/http's 1 MiB); a map
	// with canonical keys only, as net/http builds it, is now read
	// directly. The cost with 256 names must stay within a small multiple
	// of the cost with one: both are one pass over the map.
	r := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
	for i := range 20000 {
		r.Header["X-H-"+strconv.Itoa(i)] = []string{"0123456789abcdef"}
	}
	names := make([]string, maxHeaders)
	for i := range names {
		names[i] = "X-H-" + strconv.Itoa(i)
	}
	names = sortUnique(names)
	fastest := func(names []string) time.Duration {
		best := time.Duration(1 << 62)
		for range 5 {
			start := time.Now()
			variantKey("m", 1, names, r)
			best = min(best, time.Since(start))
		}
		return best
	}
	one, all := fastest(names[:1]), fastest(names)
	if all > 16*one+time.Millisecond {
		t.Errorf("variant key with %d Vary names takes %v, with one %v: the map is scanned per name", len(names), all, one)
	}
	t.Logf("20000 request header lines: 1 Vary name %v, %d names %v", one, len(names), all)

	// A key in another case (set by code, not by net/http) still counts.
	canon := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
	canon.Header["Accept"] = []string{"a"}
	odd := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
	odd.Header["accept"] = []string{"a"}
	if variantKey("m", 1, []string{"Accept"}, canon) != variantKey("m", 1, []string{"Accept"}, odd) {
		t.Error("a non-canonical request header key selects another variant")
	}
}
