package adaptertest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/failsoft/failsoft/health"
)

// healthMount checks that the framework's own conversion of a net/http
// handler is all failsoft's health handlers need, as the adapters' package
// documentation says, behind a wrapped middleware too.
func healthMount[E http.Handler](t *testing.T, a Adapter[E]) {
	h, err := health.New()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	e := a.New()
	a.Use(e, PassThrough)
	a.Mount(e, http.MethodGet, "/livez", h.Livez())
	a.Mount(e, http.MethodHead, "/livez", h.Livez())
	a.Mount(e, http.MethodGet, "/readyz", h.Readyz())
	a.Mount(e, http.MethodGet, "/healthz", h.Healthz())

	tests := []struct {
		method, path string
		contentType  string
		body         string
	}{
		{http.MethodGet, "/livez", "text/plain", "ok"},
		{http.MethodHead, "/livez", "text/plain", ""},
		{http.MethodGet, "/readyz", "text/plain", "ok"},
		{http.MethodGet, "/healthz", "application/health+json", `"status":"pass"`},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := Serve(e, tt.method, tt.path)
			if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), tt.contentType) ||
				!strings.Contains(rec.Body.String(), tt.body) {
				t.Errorf("got %d %q %q, want 200 %s containing %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body, tt.contentType, tt.body)
			}
		})
	}
}
