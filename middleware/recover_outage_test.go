package middleware

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/failsoft/failsoft/store"
)

func TestRecoverOutage503(t *testing.T) {
	tests := []struct {
		name      string
		opts      []RecoverOption
		handler   http.HandlerFunc
		wantCode  int
		wantRetry string
		wantBody  string
	}{
		{
			name: "redis failure seen, 500 becomes 503",
			handler: func(w http.ResponseWriter, r *http.Request) {
				recordOutage(r)
				http.Error(w, "redis down", http.StatusInternalServerError)
			},
			wantCode:  http.StatusServiceUnavailable,
			wantRetry: "5",
			wantBody:  "redis down\n",
		},
		{
			name: "open breaker, 500 becomes 503 with its time",
			opts: []RecoverOption{WithBreakers(openBreaker(4 * time.Second))},
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "boom", http.StatusInternalServerError)
			},
			wantCode:  http.StatusServiceUnavailable,
			wantRetry: "4",
			wantBody:  "boom\n",
		},
		{
			name: "failure seen and breaker open: the breaker's time",
			opts: []RecoverOption{WithBreakers(openBreaker(9 * time.Second))},
			handler: func(w http.ResponseWriter, r *http.Request) {
				recordOutage(r)
				w.WriteHeader(http.StatusBadGateway)
			},
			wantCode:  http.StatusServiceUnavailable,
			wantRetry: "9",
		},
		{
			name: "5xx without a body, committed at return",
			handler: func(w http.ResponseWriter, r *http.Request) {
				recordOutage(r)
				w.WriteHeader(http.StatusInternalServerError)
			},
			wantCode:  http.StatusServiceUnavailable,
			wantRetry: "5",
		},
		{
			name: "5xx then flush",
			handler: func(w http.ResponseWriter, r *http.Request) {
				recordOutage(r)
				w.WriteHeader(http.StatusInternalServerError)
				w.(http.Flusher).Flush()
				io.WriteString(w, "x")
			},
			wantCode:  http.StatusServiceUnavailable,
			wantRetry: "5",
			wantBody:  "x",
		},
		{
			name: "failure recorded after the 5xx, before the body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
				recordOutage(r)
				io.WriteString(w, "late failure")
			},
			wantCode:  http.StatusServiceUnavailable,
			wantRetry: "5",
			wantBody:  "late failure",
		},
		{
			name: "handler's Retry-After is kept",
			handler: func(w http.ResponseWriter, r *http.Request) {
				recordOutage(r)
				w.Header().Set("Retry-After", "30")
				w.WriteHeader(http.StatusInternalServerError)
			},
			wantCode:  http.StatusServiceUnavailable,
			wantRetry: "30",
		},
		{
			name: "no failure seen: 500 kept",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "bug", http.StatusInternalServerError)
			},
			wantCode: http.StatusInternalServerError,
			wantBody: "bug\n",
		},
		{
			name: "half-open breaker: 500 kept",
			opts: []RecoverOption{WithBreakers(&fakeBreaker{state: store.StateHalfOpen})},
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
			},
			wantCode: http.StatusInternalServerError,
		},
		{
			name: "command error is not an outage: 500 kept",
			handler: func(w http.ResponseWriter, r *http.Request) {
				store.RecordFailure(r.Context(), store.ErrInvalidKey)
				w.WriteHeader(http.StatusInternalServerError)
			},
			wantCode: http.StatusInternalServerError,
		},
		{
			name: "4xx with failure seen is kept",
			handler: func(w http.ResponseWriter, r *http.Request) {
				recordOutage(r)
				http.Error(w, "no such key", http.StatusNotFound)
			},
			wantCode: http.StatusNotFound,
			wantBody: "no such key\n",
		},
		{
			name: "2xx with failure seen is kept",
			handler: func(w http.ResponseWriter, r *http.Request) {
				recordOutage(r)
				io.WriteString(w, `{"source":"primary"}`)
			},
			wantCode: http.StatusOK,
			wantBody: `{"source":"primary"}`,
		},
		{
			name: "option off: 500 kept",
			opts: []RecoverOption{WithOutage503(false), WithBreakers(openBreaker(time.Second))},
			handler: func(w http.ResponseWriter, r *http.Request) {
				recordOutage(r)
				http.Error(w, "redis down", http.StatusInternalServerError)
			},
			wantCode: http.StatusInternalServerError,
			wantBody: "redis down\n",
		},
		{
			name: "first final status wins",
			handler: func(w http.ResponseWriter, r *http.Request) {
				recordOutage(r)
				w.WriteHeader(http.StatusInternalServerError)
				w.WriteHeader(http.StatusOK)
			},
			wantCode:  http.StatusServiceUnavailable,
			wantRetry: "5",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, panicked := serveRecover(t, tt.handler, tt.opts...)
			if panicked != nil {
				t.Fatalf("panic escaped Recover: %v", panicked)
			}
			if rec.Code != tt.wantCode {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantCode)
			}
			if got := rec.Header().Get("Retry-After"); got != tt.wantRetry {
				t.Errorf("Retry-After = %q, want %q", got, tt.wantRetry)
			}
			if got := rec.Body.String(); got != tt.wantBody {
				t.Errorf("body = %q, want the handler's %q", got, tt.wantBody)
			}
		})
	}
}

func TestRecoverSharesAnOuterTracker(t *testing.T) {
	var seen bool
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		recordOutage(r)
		w.WriteHeader(http.StatusNoContent)
	})
	outer := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r = r.WithContext(store.TrackFailures(r.Context()))
			next.ServeHTTP(w, r)
			_, seen = store.FailureSeen(r.Context())
		})
	}
	outer(Recover()(inner)).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if !seen {
		t.Error("a failure recorded below Recover is not seen by an outer tracker")
	}
}

func TestRecoverLeavesDefinitiveStatuses(t *testing.T) {
	for _, code := range []int{http.StatusNotImplemented, http.StatusHTTPVersionNotSupported} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			h := Recover(WithBreakers(openBreaker(time.Second)))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(code)
			}))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			if w.Code != code {
				t.Errorf("status = %d, want the handler's %d", w.Code, code)
			}
		})
	}
}
