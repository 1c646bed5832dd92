package failsoft_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft"
	"github.com/failsoft/failsoft/internal/redistest"
)

// benchReplicas builds n replicas over srv without test logs.
func benchReplicas(b *testing.B, n int, addr string, app http.Handler, opts ...failsoft.Option) []replica {
	b.Helper()
	rs := make([]replica, n)
	for i := range rs {
		rs[i] = benchReplica(b, addr, app, opts...)
	}
	return rs
}

// BenchmarkPurgeAcrossReplicas reports how long after a Purge on one of
// three replicas every other replica has dropped its in-process copy (the
// broadcast received): p50 and p99 over b.N purges, spread round robin over
// the replicas. Run with -benchtime=1000x for the 1,000 purges.
func BenchmarkPurgeAcrossReplicas(b *testing.B) {
	srv := redistest.Start(b)
	app := &versioned{}
	rs := benchReplicas(b, 3, srv.Addr(), app)
	for i, r := range rs {
		deadline := time.Now().Add(10 * time.Second)
		for !r.fs.Stats().Invalidations.Subscribed {
			if time.Now().After(deadline) {
				b.Fatalf("replica %d never subscribed", i)
			}
			time.Sleep(time.Millisecond)
		}
		get(r.h, "/item")
	}
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		from := rs[i%len(rs)]
		before := make([]uint64, len(rs))
		for j, r := range rs {
			before[j] = r.fs.Stats().Invalidations.Received
		}
		start := time.Now()
		if err := from.fs.Purge(ctx, "http://example.com/item"); err != nil {
			b.Fatal(err)
		}
		for j, r := range rs {
			if r.fs == from.fs {
				continue
			}
			for r.fs.Stats().Invalidations.Received == before[j] {
				if time.Since(start) > 10*time.Second {
					b.Fatalf("replica %d never received purge %d", j, i)
				}
				runtime.Gosched()
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds()), "p99-µs")
}

// BenchmarkInProcessHitRatio serves a steady load of GETs over 5,000 keys
// round robin across three replicas and reports the share answered by the
// in-process tier without a Redis call ("inproc-%"), with the broadcast off
// (copies re-checked every 2 s) and on (copies kept for their ttl while the
// subscription is healthy). The difference shows once a key's visits to
// one replica are more than 2 s apart: run with -benchtime=10s or more.
func BenchmarkInProcessHitRatio(b *testing.B) {
	const keys = 5000
	for _, tc := range []struct {
		name string
		on   bool
	}{{"broadcast=off", false}, {"broadcast=on", true}} {
		b.Run(tc.name, func(b *testing.B) {
			srv := redistest.Start(b)
			app := &versioned{}
			rs := benchReplicas(b, 3, srv.Addr(), app, failsoft.WithBroadcast(tc.on))
			if tc.on {
				for _, r := range rs {
					for !r.fs.Stats().Invalidations.Subscribed {
						time.Sleep(time.Millisecond)
					}
				}
			}
			for k := 0; k < keys; k++ { // fill Redis and every tier
				for _, r := range rs {
					get(r.h, fmt.Sprintf("/k%d", k))
				}
			}
			calls := func() (n uint64) {
				for _, r := range rs {
					n += r.fs.Stats().Breakers[0].Calls
				}
				return n
			}
			c0 := calls()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				get(rs[i%len(rs)].h, fmt.Sprintf("/k%d", (i/len(rs))%keys))
			}
			b.StopTimer()
			remote := float64(calls() - c0)
			b.ReportMetric(100*(1-remote/float64(b.N)), "inproc-%")
		})
	}
}

// benchReplica is newReplica for benchmarks: no logs.
func benchReplica(b *testing.B, addr string, app http.Handler, opts ...failsoft.Option) replica {
	b.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	fs, err := failsoft.New(rdb, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		fs.Close()
		rdb.Close()
	})
	return replica{fs: fs, h: fs.Then(app)}
}
