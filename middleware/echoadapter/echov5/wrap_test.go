package echov5

import (
	"net/http"
	"testing"

	"github.com/failsoft/failsoft/internal/adaptertest"
	"github.com/labstack/echo/v5"
)

// The cases every adapter shares run in TestAdapter (suite_test.go); this
// file holds what only Echo v5's Wrap does.

// TestWrapRoutePattern checks that the middleware sees the route's pattern
// and path values on the request, as with echo.WrapMiddleware.
func TestWrapRoutePattern(t *testing.T) {
	var pattern, key string
	mw := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			pattern, key = r.Pattern, r.PathValue("key")
			next.ServeHTTP(w, r)
		})
	}
	e := echo.New()
	e.GET("/api/data/:key", func(c *echo.Context) error { return c.String(http.StatusOK, c.Param("key")) }, Wrap(mw))

	rec := adaptertest.Serve(e, http.MethodGet, "/api/data/k1")

	if pattern != "/api/data/:key" || key != "k1" || rec.Body.String() != "k1" {
		t.Errorf("middleware saw pattern %q key %q, handler answered %q; want /api/data/:key, k1, k1", pattern, key, rec.Body.String())
	}
}
