package failsoft_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft"
)

// A service protected in a few lines: New around the service's own Redis
// client, the chain around its handlers, the health endpoints, Close.
func Example() {
	redisServer, err := miniredis.Run() // stands in for your Redis
	if err != nil {
		log.Fatal(err)
	}
	defer redisServer.Close()
	rdb := redis.NewClient(&redis.Options{Addr: redisServer.Addr()})
	defer rdb.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") })

	fs, err := failsoft.New(rdb, failsoft.WithDefaultTTL(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	defer fs.Close()
	mux.Handle("/health/", fs.Health())
	srv := httptest.NewServer(fs.Then(mux)) // http.ListenAndServe(addr, fs.Then(mux))
	defer srv.Close()

	for _, path := range []string{"/hello", "/hello", "/health/readyz"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cacheStatus, _, _ := strings.Cut(resp.Header.Get("Cache-Status"), "; ttl")
		fmt.Printf("%s %d %q %s\n", path, resp.StatusCode, body, cacheStatus)
	}
	// Output:
	// /hello 200 "hello\n" failsoft; fwd=uri-miss; fwd-status=200; stored
	// /hello 200 "hello\n" failsoft; hit
	// /health/readyz 200 "ok" failsoft; fwd=uri-miss; fwd-status=200
}
