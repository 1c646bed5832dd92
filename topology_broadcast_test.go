package failsoft_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft"
	"github.com/failsoft/failsoft/internal/redistest"
)

// topoReplica is newReplica over a client that the test builds.
func topoReplica(t *testing.T, rdb redis.UniversalClient, app http.Handler) replica {
	t.Helper()
	fs, err := failsoft.New(rdb, failsoft.WithOpenPeriod(500*time.Millisecond), failsoft.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fs.Close()
		rdb.Close()
	})
	return replica{fs: fs, h: fs.Then(app)}
}

// purgeReaches caches /item on every replica, purges it on the first and
// waits until every replica serves the new version, each other replica
// having received the announcement.
func purgeReaches(t *testing.T, app *versioned, rs []replica) {
	t.Helper()
	for i, r := range rs {
		waitFor(t, fmt.Sprintf("replica %d subscribed", i), func() bool { return r.fs.Stats().Invalidations.Subscribed })
	}
	old := fmt.Sprintf("v%d", app.v.Load())
	for i, r := range rs {
		waitFor(t, fmt.Sprintf("replica %d caching %s", i, old), func() bool {
			return get(r.h, "/item").Body.String() == old
		})
	}
	received := make([]uint64, len(rs))
	for i, r := range rs {
		received[i] = r.fs.Stats().Invalidations.Received
	}
	want := fmt.Sprintf("v%d", app.v.Add(1))
	waitFor(t, "the purge applied", func() bool {
		return rs[0].fs.Purge(context.Background(), "http://example.com/item") == nil
	})
	for i, r := range rs {
		waitServes(t, r, fmt.Sprintf("replica %d", i), want)
		if i > 0 && r.fs.Stats().Invalidations.Received == received[i] {
			t.Errorf("replica %d received no announcement", i)
		}
	}
}

// TestBroadcastCluster checks the broadcast over sharded pub/sub
// (SPUBLISH, SSUBSCRIBE) on a three-node cluster with two replicas.
func TestBroadcastCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	cl := redistest.StartCluster(t, 3)
	app := &versioned{}
	rs := make([]replica, 2)
	for i := range rs {
		rs[i] = topoReplica(t, redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()}), app)
	}
	purgeReaches(t, app, rs)
}

// TestBroadcastSentinelFailover checks that the subscription follows a
// Sentinel failover: after the master dies and the replica is promoted, a
// purge on one replica reaches the other again.
func TestBroadcastSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five redis-server processes and fails a master over")
	}
	sn := redistest.StartSentinel(t, time.Second)
	app := &versioned{}
	rs := make([]replica, 2)
	for i := range rs {
		rs[i] = topoReplica(t, redis.NewFailoverClient(&redis.FailoverOptions{MasterName: sn.MasterName, SentinelAddrs: sn.SentinelAddrs()}), app)
	}
	purgeReaches(t, app, rs)
	oldMaster := sn.Master.Addr()
	sn.Master.Kill()
	waitFor(t, "a new master", func() bool {
		addr, err := sn.MasterAddr()
		return err == nil && addr != oldMaster
	})
	for i, r := range rs {
		waitFor(t, fmt.Sprintf("replica %d resubscribed", i), func() bool {
			st := r.fs.Stats().Invalidations
			return st.Subscribed && st.Reconnects > 0
		})
	}
	purgeReaches(t, app, rs)
}
