package middleware

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCacheConditional(t *testing.T) {
	lm := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)
	tests := []struct {
		name     string
		reqHdr   []string
		wantCode int
	}{
		{name: "if-none-match matches", reqHdr: []string{"If-None-Match", `"v1"`}, wantCode: 304},
		{name: "if-none-match weak matches", reqHdr: []string{"If-None-Match", `W/"v1"`}, wantCode: 304},
		{name: "if-none-match list", reqHdr: []string{"If-None-Match", `"a", "v1"`}, wantCode: 304},
		{name: "if-none-match star", reqHdr: []string{"If-None-Match", `*`}, wantCode: 304},
		{name: "if-none-match other", reqHdr: []string{"If-None-Match", `"v2"`}, wantCode: 200},
		{name: "if-none-match garbage", reqHdr: []string{"If-None-Match", `v1, "`}, wantCode: 200},
		{name: "if-modified-since later", reqHdr: []string{"If-Modified-Since", time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)}, wantCode: 304},
		{name: "if-modified-since earlier", reqHdr: []string{"If-Modified-Since", time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)}, wantCode: 200},
		{name: "if-modified-since garbage", reqHdr: []string{"If-Modified-Since", "yesterday"}, wantCode: 200},
		{name: "if-none-match wins over if-modified-since", reqHdr: []string{"If-None-Match", `"v2"`, "If-Modified-Since", time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)}, wantCode: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin(200, "body", "Cache-Control", "max-age=60", "Etag", `"v1"`, "Last-Modified", lm, "X-Other", "1")
			c := newTestCache(t, newMapStore())
			h := c.Handler(o)
			do(c, h, "GET", "http://example.com/a")
			w := do(c, h, "GET", "http://example.com/a", tt.reqHdr...)
			if w.Code != tt.wantCode {
				t.Fatalf("status %d, want %d", w.Code, tt.wantCode)
			}
			if o.calls.Load() != 1 {
				t.Errorf("handler called %d times, want 1", o.calls.Load())
			}
			if w.Code == 304 {
				if w.Body.Len() != 0 || w.Header().Get("Etag") != `"v1"` || w.Header().Get("X-Other") != "" ||
					w.Header().Get("Cache-Control") != "max-age=60" || w.Header().Get("Content-Length") != "" {
					t.Errorf("304 headers %v body %q", w.Header(), w.Body.String())
				}
				if c.Stats().Hits != 1 {
					t.Errorf("Hits %d, want 1", c.Stats().Hits)
				}
			}
		})
	}
}

func TestCacheRevalidation(t *testing.T) {
	tests := []struct {
		name      string
		validator []string
		wantReq   string // request header the handler must see
	}{
		{name: "etag", validator: []string{"Etag", `"v1"`}, wantReq: "If-None-Match"},
		{name: "last-modified", validator: []string{"Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"}, wantReq: "If-Modified-Since"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newTestClock()
			var calls atomic.Int64
			var sawConditional atomic.Bool
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				if r.Header.Get(tt.wantReq) == tt.validator[1] {
					sawConditional.Store(true)
					w.Header().Set("Cache-Control", "max-age=100")
					w.Header().Set("X-Updated", "yes")
					w.WriteHeader(http.StatusNotModified)
					return
				}
				w.Header().Set("Cache-Control", "max-age=10")
				w.Header().Set(tt.validator[0], tt.validator[1])
				fmt.Fprint(w, "full body")
			})
			c := newTestCache(t, newMapStore(), WithClock(clk.Now))
			ch := c.Handler(h)
			do(c, ch, "GET", "http://example.com/a")
			clk.Add(time.Minute)
			w := do(c, ch, "GET", "http://example.com/a")
			if !sawConditional.Load() {
				t.Fatal("the handler did not get the stored validator")
			}
			if w.Code != 200 || w.Body.String() != "full body" || w.Header().Get("X-Updated") != "yes" ||
				w.Header().Get("Cache-Control") != "max-age=100" {
				t.Errorf("got %d %q %v, want the stored body with updated headers", w.Code, w.Body.String(), w.Header())
			}
			if cs := w.Header().Get("Cache-Status"); cs != "failsoft; fwd=stale; fwd-status=304; stored" {
				t.Errorf("Cache-Status %q", cs)
			}
			clk.Add(50 * time.Second)
			w = do(c, ch, "GET", "http://example.com/a")
			if calls.Load() != 2 || w.Body.String() != "full body" || w.Header().Get("Cache-Status") != "failsoft; hit; ttl=50" {
				t.Errorf("after revalidation: calls %d, %q, %q", calls.Load(), w.Body.String(), w.Header().Get("Cache-Status"))
			}
			if c.Stats().Revalidated != 1 {
				t.Errorf("Revalidated %d, want 1", c.Stats().Revalidated)
			}
		})
	}
	t.Run("client conditional passes through", func(t *testing.T) {
		clk := newTestClock()
		o := newOrigin(200, "body", "Cache-Control", "max-age=10", "Etag", `"v1"`)
		c := newTestCache(t, newMapStore(), WithClock(clk.Now))
		ch := c.Handler(o)
		do(c, ch, "GET", "http://example.com/a")
		clk.Add(time.Minute)
		do(c, ch, "GET", "http://example.com/a", "If-None-Match", `"zzz"`)
		if got := o.lastRequest().Header.Get("If-None-Match"); got != `"zzz"` {
			t.Errorf("handler saw If-None-Match %q, want the client's", got)
		}
	})
	t.Run("no-cache response revalidated on every use", func(t *testing.T) {
		clk := newTestClock()
		o := newOrigin(200, "body", "Cache-Control", "no-cache", "Etag", `"v1"`)
		c := newTestCache(t, newMapStore(), WithClock(clk.Now))
		ch := c.Handler(o)
		do(c, ch, "GET", "http://example.com/a")
		do(c, ch, "GET", "http://example.com/a")
		if o.calls.Load() != 2 || o.lastRequest().Header.Get("If-None-Match") != `"v1"` {
			t.Errorf("calls %d, If-None-Match %q", o.calls.Load(), o.lastRequest().Header.Get("If-None-Match"))
		}
	})
}

func TestETagScan(t *testing.T) {
	tests := []struct {
		list []string
		etag string
		want bool
	}{
		{[]string{`"a"`}, `"a"`, true},
		{[]string{`W/"a"`}, `"a"`, true},
		{[]string{`"a"`}, `W/"a"`, true},
		{[]string{`"b", W/"a"`}, `"a"`, true},
		{[]string{`"b"`, `"a"`}, `"a"`, true},
		{[]string{`"a,b"`}, `"a,b"`, true},
		{[]string{`"b"`}, `"a"`, false},
		{[]string{`a`}, `"a"`, false},
		{[]string{`"a`}, `"a"`, false},
		{[]string{``}, `"a"`, false},
		{[]string{`W/`}, `"a"`, false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.list, "|"), func(t *testing.T) {
			if got := etagMatchWeak(tt.list, tt.etag); got != tt.want {
				t.Errorf("etagMatchWeak(%q, %q) = %v", tt.list, tt.etag, got)
			}
		})
	}
}

// TestCacheRevalidationOtherRepresentation checks RFC 9111 §4.3.4: a 304
// updates the stored response only when its validators identify it; one
// naming another representation is not used, and the cache asks again
// without validators, in the foreground and in a background refresh.
func TestCacheRevalidationOtherRepresentation(t *testing.T) {
	lm := "Mon, 01 Jan 2024 00:00:00 GMT"
	tests := []struct {
		name      string
		stored    []string // the validators of the stored response
		in304     []string // the validators of the 304
		confirmed bool     // the 304 updates the stored response
	}{
		{name: "same strong etag", stored: []string{"Etag", `"a"`}, in304: []string{"Etag", `"a"`}, confirmed: true},
		{name: "other strong etag", stored: []string{"Etag", `"a"`}, in304: []string{"Etag", `"b"`}},
		{name: "weak etag of the stored strong one", stored: []string{"Etag", `"a"`}, in304: []string{"Etag", `W/"a"`}, confirmed: true},
		{name: "strong etag of a stored weak one", stored: []string{"Etag", `W/"a"`}, in304: []string{"Etag", `"a"`}},
		{name: "other weak etag", stored: []string{"Etag", `W/"a"`}, in304: []string{"Etag", `W/"b"`}},
		{name: "etag where none is stored", stored: []string{"Last-Modified", lm}, in304: []string{"Etag", `"a"`}},
		{name: "same last-modified, other format", stored: []string{"Last-Modified", lm}, in304: []string{"Last-Modified", "Monday, 01-Jan-24 00:00:00 GMT"}, confirmed: true},
		{name: "other last-modified", stored: []string{"Last-Modified", lm}, in304: []string{"Last-Modified", "Tue, 02 Jan 2024 00:00:00 GMT"}},
		{name: "last-modified where none is stored", stored: []string{"Etag", `"a"`}, in304: []string{"Last-Modified", lm}},
		{name: "no validator", stored: []string{"Etag", `"a"`}, in304: nil, confirmed: true},
	}
	for _, tt := range tests {
		for _, background := range []bool{false, true} {
			name := tt.name
			if background {
				name += "/stale-while-revalidate"
			}
			t.Run(name, func(t *testing.T) {
				clk := newTestClock()
				var calls atomic.Int64
				var unconditional atomic.Int64 // handler calls without a validator after the first
				cc := "max-age=10"
				if background {
					cc += ", stale-while-revalidate=60"
				}
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					n := calls.Add(1)
					hdr := w.Header()
					switch {
					case n == 1:
						hdr.Set("Cache-Control", cc)
						hdr.Set(tt.stored[0], tt.stored[1])
						hdr.Set("X-Version", "1")
						fmt.Fprint(w, "v1")
					case r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "":
						hdr.Set("Cache-Control", "max-age=100")
						for i := 0; i+1 < len(tt.in304); i += 2 {
							hdr.Set(tt.in304[i], tt.in304[i+1])
						}
						hdr.Set("X-Version", "304")
						w.WriteHeader(http.StatusNotModified)
					default:
						unconditional.Add(1)
						hdr.Set("Cache-Control", "max-age=100")
						for i := 0; i+1 < len(tt.in304); i += 2 {
							hdr.Set(tt.in304[i], tt.in304[i+1])
						}
						hdr.Set("X-Version", "2")
						fmt.Fprint(w, "v2")
					}
				})
				c := newTestCache(t, newMapStore(), WithClock(clk.Now))
				ch := c.Handler(h)
				do(c, ch, "GET", "http://example.com/a")
				clk.Add(20 * time.Second)
				w := do(c, ch, "GET", "http://example.com/a")
				c.bg.wait()

				wantBody, wantVersion, wantCalls := "v1", "304", int64(2)
				if !tt.confirmed {
					wantBody, wantVersion, wantCalls = "v2", "2", 3
				}
				if !background && (w.Code != 200 || w.Body.String() != wantBody || w.Header().Get("X-Version") != wantVersion) {
					t.Errorf("revalidating request: %d %q X-Version %q, want 200 %q %q", w.Code, w.Body.String(), w.Header().Get("X-Version"), wantBody, wantVersion)
				}
				if background && (w.Body.String() != "v1" || w.Header().Get("X-Version") != "1") {
					t.Errorf("stale answer %q X-Version %q, want the stored v1", w.Body.String(), w.Header().Get("X-Version"))
				}
				if calls.Load() != wantCalls || unconditional.Load() != wantCalls-2 {
					t.Errorf("handler called %d times (%d without validators), want %d (%d)", calls.Load(), unconditional.Load(), wantCalls, wantCalls-2)
				}
				w = do(c, ch, "GET", "http://example.com/a")
				if w.Body.String() != wantBody || w.Header().Get("X-Version") != wantVersion || !strings.Contains(w.Header().Get("Cache-Status"), "; hit") {
					t.Errorf("next request: %q X-Version %q Cache-Status %q, want a hit on %q %q",
						w.Body.String(), w.Header().Get("X-Version"), w.Header().Get("Cache-Status"), wantBody, wantVersion)
				}
				if calls.Load() != wantCalls {
					t.Errorf("next request reached the handler (%d calls)", calls.Load())
				}
			})
		}
	}
}

// TestCacheHeadUpdatesStoredGet checks RFC 9111 §4.3.5: a 200 to a HEAD
// the cache forwards updates the stored GET response when its validators
// and Content-Length match it, and makes it stale when they do not; a 304
// to a conditional HEAD the cache made updates it too.
func TestCacheHeadUpdatesStoredGet(t *testing.T) {
	tests := []struct {
		name      string
		stale     bool     // the stored response is stale when the HEAD comes (else the HEAD says no-cache)
		validator []string // the stored response's
		head      []string // the HEAD answer's fields (besides X-Version: head)
		status    int      // the HEAD answer's: 304 only to the cache's conditional HEAD
		updated   bool     // the next GET is a hit with the HEAD's fields
		madeStale bool     // the next GET finds it stale: the handler is asked (stale-while-revalidate may answer meanwhile)
	}{
		{name: "same etag", stale: true, validator: []string{"Etag", `"a"`}, head: []string{"Etag", `"a"`}, status: 200, updated: true},
		{name: "same etag and length", validator: []string{"Etag", `"a"`}, head: []string{"Etag", `"a"`, "Content-Length", "2"}, status: 200, updated: true},
		{name: "same last-modified", stale: true, validator: []string{"Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"}, head: []string{"Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"}, status: 200, updated: true},
		{name: "304 to the cache's conditional HEAD", stale: true, validator: []string{"Etag", `"a"`}, head: []string{"Etag", `"a"`}, status: 304, updated: true},
		{name: "other etag", validator: []string{"Etag", `"a"`}, head: []string{"Etag", `"b"`}, status: 200, madeStale: true},
		{name: "other length", validator: []string{"Etag", `"a"`}, head: []string{"Etag", `"a"`, "Content-Length", "3"}, status: 200, madeStale: true},
		{name: "no validator", validator: []string{"Etag", `"a"`}, head: nil, status: 200, updated: true},
		{name: "no validator, other length", validator: []string{"Etag", `"a"`}, head: []string{"Content-Length", "0"}, status: 200, madeStale: true},
		{name: "an error", validator: []string{"Etag", `"a"`}, head: []string{"Etag", `"a"`}, status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newTestClock()
			var calls atomic.Int64
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := calls.Add(1)
				hdr := w.Header()
				if r.Method == http.MethodHead {
					hdr.Set("Cache-Control", "max-age=100")
					hdr.Set("X-Version", "head")
					for i := 0; i+1 < len(tt.head); i += 2 {
						hdr.Set(tt.head[i], tt.head[i+1])
					}
					status := tt.status
					if status == 304 && r.Header.Get("If-None-Match") == "" {
						status = 200
					}
					w.WriteHeader(status)
					return
				}
				hdr.Set("Cache-Control", "max-age=10, stale-if-error=600")
				hdr.Set(tt.validator[0], tt.validator[1])
				hdr.Set("X-Version", fmt.Sprint(n))
				fmt.Fprint(w, "v1")
			})
			c := newTestCache(t, newMapStore(), WithClock(clk.Now))
			ch := c.Handler(h)
			do(c, ch, "GET", "http://example.com/a")
			var headHdr []string
			if tt.stale {
				clk.Add(20 * time.Second)
			} else {
				headHdr = []string{"Cache-Control", "no-cache"}
			}
			w := do(c, ch, "HEAD", "http://example.com/a", headHdr...)
			c.bg.wait()
			if calls.Load() != 2 {
				t.Fatalf("HEAD: handler called %d times in all, want 2", calls.Load())
			}
			if w.Body.Len() != 0 {
				t.Errorf("HEAD answer has a body %q", w.Body.String())
			}
			w = do(c, ch, "GET", "http://example.com/a")
			c.bg.wait()
			cs := w.Header().Get("Cache-Status")
			hit := strings.Contains(cs, "; hit") && !strings.Contains(cs, "stale")
			switch {
			case tt.updated:
				if !hit || w.Header().Get("X-Version") != "head" || w.Body.String() != "v1" || calls.Load() != 2 {
					t.Errorf("GET after the HEAD: %q X-Version %q body %q, %d calls; want a hit with the HEAD's fields and the stored body",
						w.Header().Get("Cache-Status"), w.Header().Get("X-Version"), w.Body.String(), calls.Load())
				}
			case tt.madeStale:
				if hit || calls.Load() != 3 {
					t.Errorf("GET after the HEAD: %q, %d calls; want the stored response stale, the handler asked", cs, calls.Load())
				}
			default:
				if !hit || w.Header().Get("X-Version") != "1" || calls.Load() != 2 {
					t.Errorf("GET after a failed HEAD: %q X-Version %q, %d calls; want the stored response as it was",
						w.Header().Get("Cache-Status"), w.Header().Get("X-Version"), calls.Load())
				}
			}
		})
	}
}
