package reliability

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/failsoft/failsoft/store"
)

// faultServerCase is one server state that answers with an error reply.
type faultServerCase struct {
	name string
	// setup starts the server(s) in the state, and returns a client of the
	// kind a user would build and the operation that meets the state.
	setup func(t *testing.T) (redis.UniversalClient, func(ctx context.Context, g *store.Guard) error)
	// want is the class every error must have; outage says whether the
	// breaker must trip. When anyOutage is set, any outage class passes (the
	// wire shows the state differently depending on the handshake).
	want      store.Class
	anyOutage bool
	// reply is a prefix the Redis error reply must carry ("" for none).
	reply string
	// secret must appear in no error text nor log line.
	secret string
	// after runs once the breaker has (or has not) tripped.
	after func(t *testing.T, c redis.UniversalClient, g *store.Guard)
}

// TestFaultServerErrors puts real redis-server processes into the states
// the design's failure model names, and checks each through a Guard over
// the Redis store and through Classify: LOADING, READONLY, maxclients and
// AUTH failures are outages (ClassServer) and trip the breaker; OOM on a
// write is a command error (ClassCommand) that does not, and reads keep
// working.
func TestFaultServerErrors(t *testing.T) {
	tests := []faultServerCase{
		{
			name: "LOADING (client without retries)",
			setup: func(t *testing.T) (redis.UniversalClient, func(context.Context, *store.Guard) error) {
				return faultLoadingClient(t, -1), faultGetOp
			},
			want: store.ClassServer, reply: "LOADING", after: faultLoaded,
		},
		{
			name: "LOADING (default client)",
			setup: func(t *testing.T) (redis.UniversalClient, func(context.Context, *store.Guard) error) {
				return faultLoadingClient(t, 0), faultGetOp
			},
			// go-redis retries a LOADING reply (3 times, with backoff), so
			// the guard's op timeout ends the call first: ClassTimeout.
			anyOutage: true, after: faultLoaded,
		},
		{
			name: "READONLY replica (client without retries)",
			setup: func(t *testing.T) (redis.UniversalClient, func(context.Context, *store.Guard) error) {
				return faultReplicaClient(t, -1), faultSetOp
			},
			want: store.ClassServer, reply: "READONLY",
		},
		{
			name: "READONLY replica (default client)",
			setup: func(t *testing.T) (redis.UniversalClient, func(context.Context, *store.Guard) error) {
				return faultReplicaClient(t, 0), faultSetOp
			},
			// go-redis retries READONLY with backoff; the op timeout may
			// end the call first (ClassTimeout): an outage either way.
			anyOutage: true,
		},
		{
			name: "OOM on writes",
			setup: func(t *testing.T) (redis.UniversalClient, func(context.Context, *store.Guard) error) {
				srv := redistest.Start(t, "--maxmemory", "1mb", "--maxmemory-policy", "noeviction")
				c := redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true})
				t.Cleanup(func() { c.Close() })
				ctx := context.Background()
				// A key to read back, written before memory runs out.
				if err := c.Set(ctx, store.DefaultPrefix+"present", "here", 0).Err(); err != nil && !strings.HasPrefix(err.Error(), "OOM") {
					t.Fatal(err)
				}
				big := strings.Repeat("x", 64<<10)
				for i := 0; ; i++ {
					err := c.Set(ctx, fmt.Sprintf("fill:%d", i), big, 0).Err()
					if err != nil && strings.HasPrefix(err.Error(), "OOM") {
						break
					}
					if err != nil || i > 100 {
						t.Fatalf("filling to maxmemory: %v after %d writes", err, i)
					}
				}
				return c, func(ctx context.Context, g *store.Guard) error {
					return g.Set(ctx, "k", []byte("v"), time.Minute)
				}
			},
			want: store.ClassCommand, reply: "OOM",
			after: func(t *testing.T, c redis.UniversalClient, g *store.Guard) {
				ctx := context.Background()
				if v, err := g.Get(ctx, "present"); err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Errorf("read under OOM: %v", err)
				} else if err == nil && string(v) != "here" {
					t.Errorf("read under OOM: %q", v)
				}
				if _, err := g.Get(ctx, "absent"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("read of a missing key under OOM: %v, want a miss", err)
				}
				// The whole stack keeps answering, storing nothing in Redis.
				st := newFaultStackOn(t, c, faultQuiet())
				h := st.cache.Handler(faultOrigin(0, "max-age=60"))
				for i := range 10 {
					if w, _ := faultGet(h, fmt.Sprintf("http://api.test/oom/%d", i)); w.Code != http.StatusOK {
						t.Errorf("request under OOM: %d", w.Code)
					}
				}
				st.cache.Close() // waits for the background writes
				if s := st.guard.State(); s != store.StateClosed {
					t.Errorf("stack breaker %v under OOM, want closed", s)
				}
			},
		},
		{
			name: "maxclients reached (RESP2 client without retries)",
			setup: func(t *testing.T) (redis.UniversalClient, func(context.Context, *store.Guard) error) {
				srv := faultFullServer(t)
				c := redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true, Protocol: 2, MaxRetries: -1})
				t.Cleanup(func() { c.Close() })
				return c, func(ctx context.Context, g *store.Guard) error {
					_, err := g.Get(ctx, "k")
					return err
				}
			},
			// The server writes "-ERR max number of clients reached" and
			// closes at once, so the client meets the reply (ClassServer) or
			// the closed socket first (a broken pipe: ClassConnection).
			anyOutage: true,
		},
		{
			name: "maxclients reached (default client)",
			setup: func(t *testing.T) (redis.UniversalClient, func(context.Context, *store.Guard) error) {
				srv := faultFullServer(t)
				c := redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true})
				t.Cleanup(func() { c.Close() })
				return c, func(ctx context.Context, g *store.Guard) error {
					_, err := g.Get(ctx, "k")
					return err
				}
			},
			// go-redis retries the max-clients reply (and its RESP3 handshake
			// meets it first): the op timeout ends the call, an outage.
			anyOutage: true,
		},
		{
			name: "AUTH wrong password",
			setup: func(t *testing.T) (redis.UniversalClient, func(context.Context, *store.Guard) error) {
				srv := redistest.StartConfig(t, redistest.Config{Password: "right-pw-4f1c9a"})
				c := redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true, Password: "wrong-pw-7d2e0b"})
				t.Cleanup(func() { c.Close() })
				return c, func(ctx context.Context, g *store.Guard) error {
					_, err := g.Get(ctx, "k")
					return err
				}
			},
			want: store.ClassServer, reply: "WRONGPASS", secret: "wrong-pw-7d2e0b",
		},
		{
			name: "AUTH wrong password in a URL",
			setup: func(t *testing.T) (redis.UniversalClient, func(context.Context, *store.Guard) error) {
				srv := redistest.StartConfig(t, redistest.Config{Password: "right-pw-4f1c9a"})
				c, err := store.NewClientFromURL("redis://:wrong-pw-91ab3c@" + srv.Addr() + "/0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c, func(ctx context.Context, g *store.Guard) error {
					return g.Set(ctx, "k", []byte("v"), time.Minute)
				}
			},
			want: store.ClassServer, reply: "WRONGPASS", secret: "wrong-pw-91ab3c",
		},
		{
			name: "AUTH missing password",
			setup: func(t *testing.T) (redis.UniversalClient, func(context.Context, *store.Guard) error) {
				srv := redistest.StartConfig(t, redistest.Config{Password: "right-pw-4f1c9a"})
				c := redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true})
				t.Cleanup(func() { c.Close() })
				return c, func(ctx context.Context, g *store.Guard) error {
					_, err := g.Get(ctx, "k")
					return err
				}
			},
			want: store.ClassServer, reply: "NOAUTH", secret: "right-pw-4f1c9a",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, op := tt.setup(t)
			log := &faultLog{}
			g := faultGuard(t, client, "redis", log.logger())
			outage := tt.anyOutage || tt.want.Outage()
			var errs []error
			// Twice the trip threshold: an outage opens the breaker within
			// the first faultTrips calls, a command error never does.
			for i := range 2 * faultTrips {
				start := time.Now()
				err := runFault(g, op)
				took := time.Since(start)
				if took > faultBounded {
					t.Errorf("call %d took %v, limit %v", i, took, faultBounded)
				}
				if err == nil {
					t.Fatalf("call %d succeeded, want the server's error", i)
				}
				errs = append(errs, err)
			}
			first := errs[0]
			class := store.Classify(first)
			switch {
			case tt.anyOutage && !class.Outage():
				t.Errorf("Classify(%q) = %v, want an outage", first, class)
			case !tt.anyOutage && class != tt.want:
				t.Errorf("Classify(%q) = %v, want %v", first, class, tt.want)
			}
			if store.IsUnavailable(first) != outage {
				t.Errorf("IsUnavailable(%q) = %v, want %v", first, !outage, outage)
			}
			if tt.reply != "" {
				var rerr redis.Error
				if !errors.As(first, &rerr) || !strings.HasPrefix(rerr.Error(), tt.reply) {
					t.Errorf("error %q does not carry the %s reply", first, tt.reply)
				}
			}
			stats := g.Stats()
			if outage {
				if stats.State != store.StateOpen || stats.Trips != 1 {
					t.Errorf("breaker %v after %d trips, want open after the first %d errors", stats.State, stats.Trips, faultTrips)
				}
				if last := errs[len(errs)-1]; !errors.Is(last, store.ErrUnavailable) {
					t.Errorf("call after the trip: %v, want ErrUnavailable at once", last)
				}
			} else if stats.State != store.StateClosed || stats.Failures != 0 {
				t.Errorf("breaker %v with %d failures, want closed and none", stats.State, stats.Failures)
			}
			if tt.secret != "" {
				for _, err := range errs {
					if strings.Contains(err.Error(), tt.secret) {
						t.Errorf("error text shows the password: %q", err)
					}
				}
				if strings.Contains(log.String(), tt.secret) {
					t.Errorf("log shows the password:\n%s", log)
				}
			}
			t.Logf("SERVER %s: %q -> class %v, outage %v; breaker %v (%d trips, %d failures)",
				tt.name, first, class, class.Outage(), stats.State, stats.Trips, stats.Failures)
			if tt.after != nil {
				tt.after(t, client, g)
			}
		})
	}
}

// faultGetOp reads one key through the guard.
func faultGetOp(ctx context.Context, g *store.Guard) error {
	_, err := g.Get(ctx, "k")
	return err
}

// faultSetOp writes one key through the guard.
func faultSetOp(ctx context.Context, g *store.Guard) error {
	return g.Set(ctx, "k", []byte("v"), time.Minute)
}

// faultReplicaClient starts a primary and a replica of it and returns a
// client to the replica with the given MaxRetries.
func faultReplicaClient(t *testing.T, maxRetries int) redis.UniversalClient {
	t.Helper()
	primary := redistest.Start(t)
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port()))
	c := redis.NewClient(&redis.Options{Addr: replica.Addr(), DisableIdentity: true, MaxRetries: maxRetries})
	t.Cleanup(func() { c.Close() })
	return c
}

// faultLoadingClient starts a server that answers -LOADING for a couple of
// seconds (a saved dataset of 30,000 keys reloaded with --key-load-delay)
// and returns a client to it with the given MaxRetries.
func faultLoadingClient(t *testing.T, maxRetries int) redis.UniversalClient {
	t.Helper()
	srv := redistest.Start(t, "--enable-debug-command", "yes",
		"--loading-process-events-interval-bytes", "1024")
	for _, cmd := range [][]string{{"DEBUG", "POPULATE", "30000"}, {"SAVE"}} {
		if r, err := srv.Do(cmd...); err != nil || r != "+OK" {
			t.Fatalf("%v: %q %v", cmd, r, err)
		}
	}
	// 10 µs per key, which a sleeping server stretches to 50-100 µs.
	srv.RestartWith("--key-load-delay", "10")
	if r, _ := srv.Do("GET", "key:1"); !strings.HasPrefix(r, "-LOADING") {
		t.Fatalf("restarted server answers %q, want -LOADING (key-load-delay unsupported?)", r)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true, MaxRetries: maxRetries})
	t.Cleanup(func() { c.Close() })
	return c
}

// faultLoaded waits until the dataset has loaded and a probe has closed
// the breaker.
func faultLoaded(t *testing.T, _ redis.UniversalClient, g *store.Guard) {
	t.Helper()
	took := faultWaitFor(t, 15*time.Second, "the dataset loaded and the breaker closed", func() bool {
		_, err := g.Get(context.Background(), "k")
		return store.Classify(err) == store.ClassMiss && g.State() == store.StateClosed
	})
	t.Logf("loaded and closed %v after the trip", took.Round(time.Millisecond))
}

// runFault runs op with a request-like context.
func runFault(g *store.Guard, op func(context.Context, *store.Guard) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return op(ctx, g)
}

// faultFullServer starts a server with --maxclients 1 and holds its one
// client slot with a raw connection until cleanup.
func faultFullServer(t *testing.T) *redistest.Server {
	t.Helper()
	srv := redistest.Start(t, "--maxclients", "1")
	hold, err := net.DialTimeout("tcp", srv.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hold.Close() })
	hold.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := hold.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(hold).ReadString('\n'); err != nil || !strings.HasPrefix(line, "+PONG") {
		t.Fatalf("holding the only client slot: %q %v", line, err)
	}
	hold.SetDeadline(time.Time{})
	// The exact reply a client meets, read off a raw connection, is
	// classified as an outage by its wording.
	extra, err := net.DialTimeout("tcp", srv.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(extra).ReadString('\n')
	line = strings.TrimPrefix(strings.TrimSpace(line), "-")
	if !strings.HasPrefix(line, "ERR max number of clients reached") {
		t.Fatalf("a second client got %q, want the max-clients reply", line)
	}
	if c := store.Classify(faultReply(line)); c != store.ClassServer {
		t.Errorf("Classify(%q) = %v, want server", line, c)
	}
	return srv
}

// faultReply is a Redis error reply as go-redis presents one (it implements
// redis.Error), for classifying replies read off the wire by hand.
type faultReply string

func (e faultReply) Error() string { return string(e) }

// RedisError marks faultReply as a redis.Error.
func (faultReply) RedisError() {}
