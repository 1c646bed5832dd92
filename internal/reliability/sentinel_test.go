package reliability

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/failsoft/failsoft/middleware"
	"github.com/failsoft/failsoft/store"
)

// TestSentinelFailoverUnderLoad fails a Sentinel-managed master over while
// requests flow through the cache to a legacy handler whose FailoverClient
// carries the hook: no request fails, cache writes (the handler's and the
// cache's own) land on the new master, and the shared breaker, which trips
// while the old master is gone, closes again once the new one answers.
func TestSentinelFailoverUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five redis-server processes and fails a master over")
	}
	sn := redistest.StartSentinel(t, time.Second)
	oldMaster := sn.Master.Addr()
	logger := topoLogger(t)

	failoverOptions := func() *redis.FailoverOptions {
		return &redis.FailoverOptions{
			MasterName:    sn.MasterName,
			SentinelAddrs: sn.SentinelAddrs(),
			DialerRetries: 1, // a dead master refuses at once
		}
	}
	// The cache's own client, and the legacy handler's client with the hook:
	// one breaker and op timeout for both, as examples/dataapi wires them.
	cacheRDB := redis.NewFailoverClient(failoverOptions())
	t.Cleanup(func() { cacheRDB.Close() })
	appRDB := redis.NewFailoverClient(failoverOptions())
	t.Cleanup(func() { appRDB.Close() })

	remote, err := store.NewRedis(cacheRDB)
	if err != nil {
		t.Fatal(err)
	}
	var trips atomic.Int64
	guard, err := store.NewGuard(remote,
		store.WithName("redis"), store.WithLogger(logger),
		store.WithFailureThreshold(5), store.WithOpenPeriod(500*time.Millisecond),
		store.WithOnStateChange(func(_ string, _, to store.State) {
			if to == store.StateOpen {
				trips.Add(1)
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { guard.Close() })
	hook, err := store.NewHook(guard, store.WithCacheMode(true))
	if err != nil {
		t.Fatal(err)
	}
	appRDB.AddHook(hook)

	local, err := store.NewMemory(8 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close() })
	tiered, err := store.NewTiered(local, guard, store.WithLogger(logger), store.WithCoherence(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tiered.Close() })
	cache, err := middleware.New(tiered, middleware.WithDefaultTTL(200*time.Millisecond), middleware.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	legacy := newTopoHandler(appRDB)
	h := cache.Handler(topoMux(legacy))

	const hot = 20
	for i := range hot {
		if err := topoGet(h, "k"+strconv.Itoa(i)); err != nil {
			t.Fatalf("warm-up: %v", err)
		}
	}
	// Mostly hot keys; one request in ten asks for a key never seen, so
	// that the handler writes to Redis all along.
	var fresh atomic.Int64
	load := startTopoLoad(h, 8, func(r *rand.Rand) string {
		if r.IntN(10) == 0 {
			return "new" + strconv.FormatInt(fresh.Add(1), 10)
		}
		return "k" + strconv.Itoa(r.IntN(hot))
	})
	t.Cleanup(load.Stop)

	topoWait(t, 5*time.Second, "load running", func() bool { return load.requests.Load() > 200 })
	sn.Master.Kill()

	var newMaster string
	tookFailover := topoWait(t, 30*time.Second, "the sentinels to promote the replica", func() bool {
		a, err := sn.MasterAddr()
		if err == nil && a != oldMaster {
			newMaster = a
			return true
		}
		return false
	})
	if newMaster != sn.Replica.Addr() {
		t.Fatalf("new master %s, want the replica %s", newMaster, sn.Replica.Addr())
	}

	// Writes resume on the new master: the handler's data for keys first
	// asked after the failover, and the cache's own entries.
	cacheKeys := func() int {
		out, err := redistest.CommandAt(newMaster, "EVAL", "return #redis.call('KEYS', ARGV[1])", "0", store.DefaultPrefix+"*")
		n, _ := strconv.Atoi(out)
		if err != nil {
			return -1
		}
		return n
	}
	before := cacheKeys()
	var probe string
	tookWrites := topoWait(t, 15*time.Second, "a handler write and a cache write on the new master", func() bool {
		probe = fmt.Sprintf("after%d", time.Now().UnixNano())
		if err := topoGet(h, probe); err != nil {
			t.Errorf("probe: %v", err)
		}
		v, err := redistest.CommandAt(newMaster, "GET", topoDataKey(probe))
		return err == nil && v == "Data for "+probe && cacheKeys() > before
	})

	// The breaker does not stay open. Right after the promotion it may
	// trip again for a moment (go-redis probes a pool that saw dial errors
	// once a second, and Sentinel kills the promoted replica's client
	// connections while it reconfigures it); then it closes and stays
	// closed: closed for a whole second, then no trip over 300 requests.
	tookClosed := topoWait(t, 15*time.Second, "the breaker closed for a second", func() bool {
		st := guard.Stats()
		return st.State == store.StateClosed && time.Since(st.Since) > time.Second
	})
	tripsAfter := guard.Stats().Trips
	n0 := load.requests.Load()
	topoWait(t, 10*time.Second, "300 more requests against the new master", func() bool {
		return load.requests.Load() > n0+300
	})
	load.Stop()
	load.check(t)
	// A request makes up to three Redis calls (the cache's lookup, the
	// handler's GET and SET), each bounded by the 100 ms op timeout, and may
	// first wait for a coalesced leader doing the same: no request hangs on
	// the dead master (the margin is for a loaded 2-core CI box).
	if slowest := time.Duration(load.maxNanos.Load()); slowest > 2*time.Second {
		t.Errorf("slowest request took %v", slowest)
	}
	st := guard.Stats()
	if st.State != store.StateClosed {
		t.Errorf("breaker %v after the failover, want closed", st.State)
	}
	if st.Trips != tripsAfter {
		t.Errorf("breaker tripped again on the new master: trips %d, then %d", tripsAfter, st.Trips)
	}
	t.Logf("requests %d (0 failed), slowest %v; master killed, promotion seen after %v, writes on the new master %v later, breaker closed %v later; trips %d, hook dropped %d writes, cache %+v",
		load.requests.Load(), time.Duration(load.maxNanos.Load()), tookFailover, tookWrites, tookClosed, st.Trips, hook.Dropped(), cache.Stats())
}
