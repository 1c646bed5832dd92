package reliability

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/failsoft/failsoft/store"
)

// TestFaultACL runs the store against ACL users of a real server: a user
// with the commands and keys the store needs works through a
// redis://user:pass@ URL; a user lacking a command or a key pattern gets
// NOPERM, which the failure model counts as unavailable (ClassServer): the
// breaker trips.
func TestFaultACL(t *testing.T) {
	srv := redistest.Start(t)
	const appPW, readerPW = "app-pw-5c81e2", "reader-pw-0f7a3d"
	for _, acl := range [][]string{
		// What the Redis store sends: GET, SET, DEL, PTTL (GetTTL), PING;
		// go-redis' handshake sends HELLO with AUTH.
		{"ACL", "SETUSER", "app", "on", ">" + appPW, "~failsoft:*", "resetchannels", "-@all",
			"+get", "+set", "+del", "+pttl", "+ping", "+hello", "+auth"},
		{"ACL", "SETUSER", "reader", "on", ">" + readerPW, "~failsoft:*", "resetchannels", "-@all",
			"+get", "+pttl", "+ping", "+hello", "+auth"},
	} {
		if r, err := srv.Do(acl...); err != nil || r != "+OK" {
			t.Fatalf("%v: %q %v", acl[:3], r, err)
		}
	}
	url := func(user, pw string) string { return fmt.Sprintf("redis://%s:%s@%s/0", user, pw, srv.Addr()) }
	set := func(ctx context.Context, g *store.Guard) error { return g.Set(ctx, "k", []byte("v"), time.Minute) }
	tests := []struct {
		name   string
		url    string
		prefix string
		op     func(context.Context, *store.Guard) error
		reply  string // "" when the operation must work
	}{
		{"user with the store's commands", url("app", appPW), store.DefaultPrefix, set, ""},
		{"user without SET", url("reader", readerPW), store.DefaultPrefix, set, "NOPERM"},
		{"user outside its key pattern", url("app", appPW), "other:", faultGetOp, "NOPERM"},
		{"user with a wrong password", url("app", "not-"+appPW), store.DefaultPrefix, faultGetOp, "WRONGPASS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := store.NewClientFromURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			rs, err := store.NewRedis(c, store.WithPrefix(tt.prefix))
			if err != nil {
				t.Fatal(err)
			}
			log := &faultLog{}
			g, err := store.NewGuard(rs, store.WithLogger(log.logger()),
				store.WithOpTimeout(faultOpTimeout), store.WithFailureThreshold(faultTrips), store.WithOpenPeriod(faultOpenPeriod))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { g.Close() })
			ctx := context.Background()
			if tt.reply == "" {
				for i := range 2 * faultTrips {
					if err := tt.op(ctx, g); err != nil {
						t.Fatalf("call %d: %v", i, err)
					}
				}
				if v, err := g.Get(ctx, "k"); err != nil || string(v) != "v" {
					t.Fatalf("Get: %q %v", v, err)
				}
				return
			}
			var first error
			for i := range faultTrips {
				err := tt.op(ctx, g)
				if i == 0 {
					first = err
				}
				var rerr redis.Error
				if !errors.As(err, &rerr) || !strings.HasPrefix(rerr.Error(), tt.reply) {
					t.Fatalf("call %d: %v, want a %s reply", i, err, tt.reply)
				}
				if c := store.Classify(err); c != store.ClassServer {
					t.Errorf("Classify(%q) = %v, want server (an outage)", err, c)
				}
			}
			if s := g.State(); s != store.StateOpen {
				t.Errorf("breaker %v after %d %s replies, want open", s, faultTrips, tt.reply)
			}
			if err := tt.op(ctx, g); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("call after the trip: %v, want ErrUnavailable", err)
			}
			for _, pw := range []string{appPW, readerPW} {
				if strings.Contains(first.Error(), pw) || strings.Contains(log.String(), pw) {
					t.Errorf("a password shows in the error %q or the log", first)
				}
			}
			t.Logf("ACL %s: %q -> %v", tt.name, first, store.Classify(first))
		})
	}

	// A read-only user under the full stack: every write is refused, and
	// requests still answer (from the handler) within the bound.
	t.Run("stack with a user without SET", func(t *testing.T) {
		c, err := store.NewClientFromURL(url("reader", readerPW))
		if err != nil {
			t.Fatal(err)
		}
		st := newFaultStackOn(t, c, faultQuiet())
		h := st.cache.Handler(faultOrigin(0, "max-age=60"))
		for i := range 3 * faultTrips {
			w, took := faultGet(h, fmt.Sprintf("http://api.test/acl/%d", i))
			if w.Code != http.StatusOK {
				t.Errorf("request %d: %d", i, w.Code)
			}
			if took > faultBounded {
				t.Errorf("request %d took %v, limit %v", i, took, faultBounded)
			}
		}
		st.cache.Close() // waits for the background writes
		gs, cs := st.guard.Stats(), st.cache.Stats()
		if gs.Failures == 0 || cs.StoreErrors == 0 {
			t.Errorf("guard %+v, cache %+v: want the refused writes counted", gs, cs)
		}
		// Reads (misses) succeed between the refused writes, so the
		// breaker's consecutive count rarely reaches the threshold: the
		// writes fail quietly and reads keep working.
		t.Logf("ACL stack with a read-only user: %d requests all 200; guard failures %d, trips %d; cache store errors %d",
			3*faultTrips, gs.Failures, gs.Trips, cs.StoreErrors)
	})
}
