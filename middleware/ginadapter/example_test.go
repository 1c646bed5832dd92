package ginadapter_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/failsoft/failsoft/health"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/middleware/ginadapter"
	"github.com/failsoft/failsoft/store"
	"github.com/gin-gonic/gin"
)

// A Gin router with failsoft's recovery and response cache in front of its
// handlers, and the health handlers mounted with gin.WrapH. The in-process
// store stands in for Redis here; an application passes a store.Tiered over
// a store.Guard over store.NewRedis.
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

	r := gin.New()
	r.Use(ginadapter.Wrap(middleware.Recover()), ginadapter.Wrap(cache.Handler))
	calls := 0
	r.GET("/api/data/:key", func(c *gin.Context) {
		calls++
		c.Header("Cache-Control", "max-age=60")
		c.JSON(http.StatusOK, gin.H{"source": "primary", "data": "Data for " + c.Param("key")})
	})
	r.GET("/livez", gin.WrapH(h.Livez()))

	for _, path := range []string{"/api/data/a", "/api/data/a", "/livez"} {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
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

// A panic in a Gin handler becomes failsoft's 503 with Retry-After.
func ExampleWrap_recover() {
	r := gin.New()
	r.Use(gin.Recovery()) // outermost: failsoft answers first
	r.Use(ginadapter.Wrap(middleware.Recover(middleware.WithLogger(discard()))))
	r.GET("/x", func(*gin.Context) { panic("bug") })

	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	fmt.Println(rec.Code, rec.Header().Get("Retry-After"), rec.Header().Get("Content-Type"))
	// Output:
	// 503 5 application/json
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
