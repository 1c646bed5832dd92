package main

import (
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	out := []byte(`Running 5s test @ http://127.0.0.1:41011/api/data/k1
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   612.09us  400.51us  12.01ms   91.84%
    Req/Sec    52.69k     2.61k   56.25k    84.00%
  Latency Distribution
     50%  548.00us
     75%  690.00us
     90%    0.87ms
     99%    2.05ms
  262205 requests in 5.00s, 305.78MB read
  Socket errors: connect 1, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:  52433.87
Transfer/sec:     61.15MB
`)
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := round{requests: 262205, elapsed: 5 * time.Second, p50: 548 * time.Microsecond, p99: 2050 * time.Microsecond, failed: 10}
	if r != want {
		t.Errorf("parseWrk = %+v, want %+v", r, want)
	}
	if _, err := parseWrk([]byte("unable to connect to 127.0.0.1:1 Connection refused\n")); err == nil {
		t.Error("parseWrk accepted output without a report")
	}
}
