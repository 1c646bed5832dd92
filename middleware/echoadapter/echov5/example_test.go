package echov5_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/labstack/echo/v5"
	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/middleware/echoadapter/echov5"
)

// An Echo v5 router protected by failsoft.New: fs.Handler is the whole
// chain (recovery, then the response cache), mounted with the adapter, and
// fs.Health serves the health endpoints. The miniredis server stands in
// for the service's Redis.
func Example() {
	redisServer, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer redisServer.Close()
	rdb := redis.NewClient(&redis.Options{Addr: redisServer.Addr()})
	defer rdb.Close()
	fs, err := failsoft.New(rdb, failsoft.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	defer fs.Close()

	e := echo.New()
	e.Use(echov5.Wrap(fs.Handler))
	calls := 0
	e.GET("/api/data/:key", func(c *echo.Context) error {
		calls++
		c.Response().Header().Set("Cache-Control", "max-age=60")
		return c.JSON(http.StatusOK, map[string]string{"source": "primary", "data": "Data for " + c.Param("key")})
	})
	e.GET("/livez", echo.WrapHandler(fs.Health()))

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
