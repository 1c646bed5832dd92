package ginadapter_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/middleware/ginadapter"
)

// A Gin router protected by failsoft.New: fs.Handler is the whole chain
// (recovery, then the response cache), mounted with the adapter, and
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

	r := gin.New()
	r.Use(ginadapter.Wrap(fs.Handler))
	calls := 0
	r.GET("/api/data/:key", func(c *gin.Context) {
		calls++
		c.Header("Cache-Control", "max-age=60")
		c.JSON(http.StatusOK, gin.H{"source": "primary", "data": "Data for " + c.Param("key")})
	})
	r.GET("/livez", gin.WrapH(fs.Health()))

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
