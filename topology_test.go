package failsoft_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft"
	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/failsoft/failsoft/store"
)

// TestSentinel wires New around a Sentinel client: answers are cached in
// the master, the health report passes, a failover to the replica keeps
// every request answered and the cache writes land on the new master, and
// Close ends cleanly.
func TestSentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five redis-server processes and fails a master over")
	}
	sn := redistest.StartSentinel(t, time.Second)
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: sn.MasterName, SentinelAddrs: sn.SentinelAddrs()})
	defer rdb.Close()
	fs, err := failsoft.New(rdb, failsoft.WithDefaultTTL(time.Minute), failsoft.WithOpenPeriod(500*time.Millisecond), failsoft.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	h := fs.Then(&legacy{rdb: rdb})
	if rec := get(h, "/api/data/before"); rec.Code != http.StatusOK {
		t.Fatalf("GET: %d %s", rec.Code, rec.Body)
	}
	if code, status := healthStatus(t, fs.Health()); code != http.StatusOK || status != "pass" {
		t.Fatalf("/healthz = %d %q, want 200 pass", code, status)
	}
	oldMaster := sn.Master.Addr()
	sn.Master.Kill()
	// Until the failover, and after it, every request is answered.
	i := 0
	waitFor(t, "a new master", func() bool {
		i++
		if rec := get(h, fmt.Sprintf("/api/data/during-%d", i)); rec.Code != http.StatusOK {
			t.Fatalf("GET during the failover: %d %s", rec.Code, rec.Body)
		}
		addr, err := sn.MasterAddr()
		return err == nil && addr != oldMaster
	})
	// The cache's own client follows the failover: a new answer is stored
	// in the new master.
	newMaster := sn.Replica
	waitFor(t, "a cache entry written to the new master", func() bool {
		i++
		get(h, fmt.Sprintf("/api/data/after-%d", i))
		n, err := newMaster.Do("EVAL", `return #redis.call('KEYS', 'failsoft:*')`, "0")
		return err == nil && n != "0"
	})
	if err := fs.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestCluster wires New around a Cluster client: each node gets its own
// breaker, a dead shard opens only its own, keys on the other shards are
// still cached in Redis, every request is answered, and the report warns.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	cl := redistest.StartCluster(t, 3)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
	defer rdb.Close()
	fs, err := failsoft.New(rdb, failsoft.WithDefaultTTL(time.Minute), failsoft.WithOpenPeriod(time.Minute), failsoft.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	h := fs.Then(&legacy{rdb: rdb})
	for i := range 20 {
		if rec := get(h, fmt.Sprintf("/api/data/k%d", i)); rec.Code != http.StatusOK {
			t.Fatalf("GET: %d %s", rec.Code, rec.Body)
		}
	}
	if code, status := healthStatus(t, fs.Health()); code != http.StatusOK || status != "pass" {
		t.Fatalf("/healthz = %d %q, want 200 pass", code, status)
	}
	if n := len(fs.Stats().Breakers); n != 3 {
		t.Fatalf("%d breakers, want one per node (3)", n)
	}

	dead := cl.Nodes[0]
	dead.Kill()
	deadName := "redis@" + dead.Addr()
	i := 0
	waitFor(t, "the dead node's breaker to open", func() bool {
		i++
		if rec := get(h, fmt.Sprintf("/api/data/after-%d", i)); rec.Code != http.StatusOK {
			t.Fatalf("GET with a shard dead: %d %s", rec.Code, rec.Body)
		}
		for _, b := range fs.Stats().Breakers {
			if b.Name == deadName {
				return b.State == store.StateOpen
			}
		}
		return false
	})
	for _, b := range fs.Stats().Breakers {
		if b.Name != deadName && b.State != store.StateClosed {
			t.Errorf("breaker %s is %v, want closed: only the dead shard's opens", b.Name, b.State)
		}
	}
	rec := get(fs.Healthz(), "/healthz")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"status":"warn"`) || !strings.Contains(rec.Body.String(), dead.Addr()) {
		t.Fatalf("/healthz with a shard dead = %d %s, want 200 warn naming %s", rec.Code, rec.Body, dead.Addr())
	}
	// A key on a live shard still reaches Redis.
	live := cl.Nodes[1]
	key := keyOn(t, cl, live)
	if rec := get(h, "/api/data/"+key); rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", key, rec.Code, rec.Body)
	}
	waitFor(t, "the key on a live shard", func() bool {
		n, err := rdb.Exists(context.Background(), key).Result()
		return err == nil && n == 1
	})
	if err := fs.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// keyOn returns a data key that the cluster serves from node.
func keyOn(t *testing.T, cl *redistest.Cluster, node *redistest.Server) string {
	t.Helper()
	for i := range 1000 {
		k := fmt.Sprintf("live-%d", i)
		if cl.NodeFor(t, k) == node {
			return k
		}
	}
	t.Fatalf("no key of 1000 lands on %s", node.Addr())
	return ""
}
