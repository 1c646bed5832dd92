package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/failsoft/failsoft/examples/internal/appkit"
	"github.com/failsoft/failsoft/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// serve runs the example's router against the Redis at addr.
func serve(t *testing.T, addr string) (*httptest.Server, *appkit.Primary) {
	t.Helper()
	cfg := appkit.Config{RedisURL: "redis://" + addr, PrimaryLatency: 10 * time.Millisecond}
	primary := &appkit.Primary{Latency: cfg.PrimaryLatency}
	router, closeAll, err := newRouter(cfg, slog.New(slog.DiscardHandler), primary)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(router)
	t.Cleanup(func() { srv.Close(); closeAll() })
	return srv, primary
}

// get returns the status, Cache-Status and body of GET path, checking the
// documented contract of a 200.
func get(t *testing.T, srv *httptest.Server, path string) (int, string, appkit.DataResponse) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var d appkit.DataResponse
	if resp.StatusCode == http.StatusOK {
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil || (d.Source != "cache" && d.Source != "primary") || d.Data == "" {
			t.Errorf("GET %s: body %q breaks the {source, data} contract", path, b)
		}
	}
	return resp.StatusCode, resp.Header.Get("Cache-Status"), d
}

// TestDataEndpoint checks the endpoint through Echo: the second GET is a
// cache hit; with Redis killed a known key still answers 200 with its data
// and a new key 200 from the primary.
func TestDataEndpoint(t *testing.T) {
	redis := redistest.Start(t)
	srv, primary := serve(t, redis.Addr())

	status, _, first := get(t, srv, "/api/data/k1")
	if status != http.StatusOK || first.Source != "primary" {
		t.Fatalf("first GET: %d %+v, want 200 from the primary", status, first)
	}
	status, cs, second := get(t, srv, "/api/data/k1")
	if status != http.StatusOK || second != first || !strings.Contains(cs, "; hit") {
		t.Errorf("second GET: %d %+v (Cache-Status %q), want the first answer as a hit", status, second, cs)
	}
	if n := primary.Fetches(); n != 1 {
		t.Errorf("primary fetched %d times, want 1", n)
	}

	redis.Kill()
	tests := []struct {
		key        string
		wantSource string
		wantSame   bool
	}{
		{"k1", "primary", true}, // the cached answer
		{"k2", "primary", false},
		{"k1", "primary", true},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("Redis killed/%d %s", i, tt.key), func(t *testing.T) {
			status, _, got := get(t, srv, "/api/data/"+tt.key)
			if status != http.StatusOK || got.Source != tt.wantSource {
				t.Fatalf("%d %+v, want 200 from %s", status, got, tt.wantSource)
			}
			if tt.wantSame && got != first {
				t.Errorf("got %+v, want the cached %+v", got, first)
			}
		})
	}
	if n := primary.Fetches(); n != 2 {
		t.Errorf("primary fetched %d times, want 2 (k1 before the outage, k2 during it)", n)
	}
}

// TestHealth checks the health handlers mounted with echo.WrapHandler.
func TestHealth(t *testing.T) {
	srv, _ := serve(t, redistest.Start(t).Addr())
	for _, path := range []string{"/livez", "/readyz", "/healthz"} {
		t.Run(path, func(t *testing.T) {
			resp, err := srv.Client().Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status %d, want 200", resp.StatusCode)
			}
		})
	}
}
