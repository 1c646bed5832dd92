package echoadapter

import (
	"net/http"
	"strings"
	"testing"

	"github.com/failsoft/failsoft/health"
	"github.com/labstack/echo/v4"
)

// TestHealthMount checks that echo.WrapHandler is all failsoft's health handlers
// need, as the package documentation says, behind a wrapped middleware too.
func TestHealthMount(t *testing.T) {
	h, err := health.New()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	r := newEcho()
	r.Use(Wrap(passThrough))
	r.GET("/livez", echo.WrapHandler(h.Livez()))
	r.HEAD("/livez", echo.WrapHandler(h.Livez()))
	r.GET("/readyz", echo.WrapHandler(h.Readyz()))
	r.GET("/healthz", echo.WrapHandler(h.Healthz()))

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
			rec := serve(r, tt.method, tt.path)
			if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), tt.contentType) ||
				!strings.Contains(rec.Body.String(), tt.body) {
				t.Errorf("got %d %q %q, want 200 %s containing %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body, tt.contentType, tt.body)
			}
		})
	}
}
