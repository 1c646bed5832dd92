package echov5_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/failsoft/failsoft/health"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/middleware/echoadapter/echov5"
	"github.com/failsoft/failsoft/store"
	"github.com/labstack/echo/v5"
)

// An Echo router with failsoft's recovery and response cache in front of its
// handlers, and the health handlers mounted with echo.WrapHandler. The
// in-process store stands in for Redis here; an application passes a
// store.Tiered over a store.Guard over store.NewRedis.
func Example() {
	mem, err := store.NewMemory(64 << 20)
	if err != nil {
		panic(err)
	}
	defer mem.Close()
	cache, err := middleware.New(mem)
	if err != nil {
		panic(err)
	}
	defer cache.Close()
	h, err := health.New()
	if err != nil {
		panic(err)
	}
	defer h.Close()

	e := echo.New()
	e.Use(echov5.Wrap(middleware.Recover()), echov5.Wrap(cache.Handler))
	calls := 0
	e.GET("/api/data/:key", func(c *echo.Context) error {
		calls++
		c.Response().Header().Set("Cache-Control", "max-age=60")
		return c.JSON(http.StatusOK, map[string]string{"source": "primary", "data": "Data for " + c.Param("key")})
	})
	e.GET("/livez", echo.WrapHandler(h.Livez()))

	for _, path := range []string{"/api/data/a", "/api/data/a", "/livez"} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		hit := strings.Contains(rec.Header().Get("Cache-Status"), "; hit")
		fmt.Printf("%s: %d %s hit=%v\n", path, rec.Code, strings.TrimSpace(rec.Body.String()), hit)
	}
	fmt.Println("handler calls:", calls)
	// Output:
	// /api/data/a: 200 {"data":"Data for a","source":"primary"} hit=false
	// /api/data/a: 200 {"data":"Data for a","source":"primary"} hit=true
	// /livez: 200 ok hit=false
	// handler calls: 1
}

// An error an Echo handler returns is answered inside the wrapped
// middleware, which sees its status; a panic becomes failsoft's 503 with
// Retry-After.
func ExampleWrap_errors() {
	e := echo.New()
	e.Use(echov5.Wrap(middleware.Recover(middleware.WithLogger(slog.New(slog.DiscardHandler)))))
	e.GET("/error", func(*echo.Context) error { return errors.New("redis: connection refused") })
	e.GET("/panic", func(*echo.Context) error { panic("bug") })

	for _, path := range []string{"/error", "/panic"} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		fmt.Printf("%s: %d Retry-After=%q\n", path, rec.Code, rec.Header().Get("Retry-After"))
	}
	// Output:
	// /error: 500 Retry-After=""
	// /panic: 503 Retry-After="5"
}
