package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft"
)

// app is one of the six servers measured side by side, each on its own
// loopback port.
type app struct {
	id    string // "a" .. "f"
	name  string
	url   string
	isHit bool          // its answers must carry Cache-Status "; hit"
	hits  func() uint64 // failsoft apps: cache hits so far

	srv     *http.Server
	closers []func() error // after the server, in order
}

// bodyKey is the Redis key that app b reads; failsoft's keys are its own
// ("failsoft:..."), so the two never meet.
const bodyKey = "hitbench:body"

// jsonBody returns a JSON document of exactly n bytes in the shape of the
// documented data endpoint, or an error when n is too small for one.
func jsonBody(n int) ([]byte, error) {
	const head, tail = `{"source":"cache","data":"`, `"}`
	pad := n - len(head) - len(tail)
	if pad < 0 {
		return nil, fmt.Errorf("body size %d is under the %d bytes of an empty document", n, len(head)+len(tail))
	}
	return []byte(head + strings.Repeat("x", pad) + tail), nil
}

// bytesHandler writes body as the handler behind the cache does: its
// headers and its bytes, with no caching headers of its own (failsoft's
// default TTL makes it cacheable).
func bytesHandler(body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
}

// hitFieldsHandler is bytesHandler writing also the two header fields
// every cache hit carries, Age and Cache-Status, with values of a hit's
// length: the same bytes on the wire as an in-process hit, and what
// net/http itself costs for the two fields, which no cache can avoid.
func hitFieldsHandler(body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		setHitFields(h)
		w.Write(body)
	})
}

// setHitFields sets the Age and Cache-Status of a fresh hit on h, as a
// bare handler would write them: two new slices.
func setHitFields(h http.Header) {
	h["Age"] = []string{"0"}
	h["Cache-Status"] = []string{"failsoft; hit; ttl=3599"}
}

// redisGetHandler answers with the value of bodyKey, read with one go-redis
// GET per request: the floor of any answer served from Redis. With
// hitFields it also writes a hit's Age and Cache-Status (see
// hitFieldsHandler): the same bytes as a Redis hit.
func redisGetHandler(rdb *redis.Client, hitFields bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := rdb.Get(r.Context(), bodyKey).Bytes()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		if hitFields {
			setHitFields(h)
		}
		w.Write(v)
	})
}

// startApps starts the six servers against the redis-server at addr,
// stores body under bodyKey and warms failsoft's caches on the one key the
// load asks for. The caller must close every app returned, also on error.
func startApps(ctx context.Context, addr string, body []byte, client *http.Client) ([]*app, error) {
	newClient := func() *redis.Client {
		return redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	}
	quiet := slog.New(slog.DiscardHandler) // nothing is logged on a hit; keep misconfiguration quiet too

	var apps []*app
	add := func(id, name string, isHit bool, h http.Handler, closers ...func() error) error {
		a := &app{id: id, name: name, isHit: isHit, closers: closers}
		apps = append(apps, a)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		a.url = "http://" + ln.Addr().String() + "/api/data/k1"
		a.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go a.srv.Serve(ln)
		return nil
	}

	if err := add("a", "bare handler, same bytes", false, bytesHandler(body)); err != nil {
		return apps, err
	}

	rb := newClient()
	if err := rb.Set(ctx, bodyKey, body, 0).Err(); err != nil {
		rb.Close()
		return apps, fmt.Errorf("SET %s: %w", bodyKey, err)
	}
	if err := add("b", "bare handler, one go-redis GET", false, redisGetHandler(rb, false), rb.Close); err != nil {
		return apps, err
	}

	for _, v := range []struct {
		id, name string
		opts     []failsoft.Option
	}{
		{"c", "failsoft, in-process hit", nil},
		{"d", "failsoft, Redis hit (WithMemory(0))", []failsoft.Option{failsoft.WithMemory(0)}},
	} {
		rdb := newClient() // New adds its hook to the client: one client per Protector
		opts := append([]failsoft.Option{failsoft.WithDefaultTTL(time.Hour), failsoft.WithLogger(quiet)}, v.opts...)
		fs, err := failsoft.New(rdb, opts...)
		if err != nil {
			rdb.Close()
			return apps, err
		}
		if err := add(v.id, v.name, true, fs.Then(bytesHandler(body)), fs.Close, rdb.Close); err != nil {
			return apps, err
		}
		apps[len(apps)-1].hits = func() uint64 { return fs.Stats().Cache.Hits }
	}
	if err := add("e", "bare handler, same bytes and a hit's Age, Cache-Status", false, hitFieldsHandler(body)); err != nil {
		return apps, err
	}
	rf := newClient()
	if err := add("f", "bare handler, one go-redis GET and a hit's Age, Cache-Status", false, redisGetHandler(rf, true), rf.Close); err != nil {
		return apps, err
	}

	for _, a := range apps {
		if err := warm(ctx, client, a, body); err != nil {
			return apps, err
		}
	}
	return apps, nil
}

// warm asks a for the key until it answers with body (and, for failsoft, a
// hit: the first answer is a miss, and the write to Redis is in the
// background), within 10 s.
func warm(ctx context.Context, client *http.Client, a *app, body []byte) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, got, cs, err := get(ctx, client, a.url)
		if err == nil && status == http.StatusOK && string(got) == string(body) && (!a.isHit || isHit(cs)) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("app %s (%s) not warm after 10 s: status %d, %d bytes, Cache-Status %q, %v",
				a.id, a.name, status, len(got), cs, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// isHit reports whether a Cache-Status value says the cache answered.
func isHit(cacheStatus string) bool { return strings.Contains(cacheStatus, "; hit") }

// close shuts a's server down and closes what it holds, in order.
func (a *app) close() error {
	var errs []error
	if a.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, a.srv.Shutdown(ctx))
		cancel()
	}
	for _, c := range a.closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}
