package ginadapter

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/failsoft/failsoft/internal/adaptertest"
	"github.com/gin-gonic/gin"
)

// The cases every adapter shares run in TestAdapter (suite_test.go); this
// file holds what only Gin has.

// TestWrapRespectsEarlierAbort checks that a context aborted before Wrap is
// left alone, whether Gin's own chain stops it or a Gin middleware calls the
// wrapped function itself after aborting.
func TestWrapRespectsEarlierAbort(t *testing.T) {
	aborts := []struct {
		name  string
		abort gin.HandlerFunc
		code  int
	}{
		{"AbortWithStatus", func(c *gin.Context) { c.AbortWithStatus(http.StatusUnauthorized) }, http.StatusUnauthorized},
		{"AbortWithStatusJSON", func(c *gin.Context) {
			c.AbortWithStatusJSON(http.StatusTooManyRequests, gin.H{"error": "slow down"})
		}, http.StatusTooManyRequests},
	}
	mounts := []struct {
		name  string
		chain func(abort, wrapped gin.HandlerFunc) []gin.HandlerFunc
	}{
		{"earlier middleware", func(abort, wrapped gin.HandlerFunc) []gin.HandlerFunc {
			return []gin.HandlerFunc{abort, wrapped}
		}},
		{"same middleware", func(abort, wrapped gin.HandlerFunc) []gin.HandlerFunc {
			return []gin.HandlerFunc{func(c *gin.Context) { abort(c); wrapped(c) }}
		}},
	}
	for _, a := range aborts {
		for _, m := range mounts {
			t.Run(a.name+"/"+m.name, func(t *testing.T) {
				var seen atomic.Int32
				handlerRan := false
				r := gin.New()
				r.Use(m.chain(a.abort, Wrap(adaptertest.Answer(http.StatusOK, "from middleware", &seen)))...)
				r.GET("/x", func(c *gin.Context) { handlerRan = true })

				rec := adaptertest.Serve(r, http.MethodGet, "/x")

				if seen.Load() != 0 || handlerRan {
					t.Errorf("middleware ran %d times, handler ran %v; want neither", seen.Load(), handlerRan)
				}
				if rec.Code != a.code {
					t.Errorf("status = %d, want %d", rec.Code, a.code)
				}
			})
		}
	}
}
