// Package reliability holds failsoft's reliability suite: tests that run the
// library against real redis-server processes under real faults (a proxy that
// adds latency, blackholes, resets and trickles bytes; servers that answer
// LOADING, READONLY, OOM, maxclients and AUTH errors; TLS and ACL users;
// Sentinel and Cluster topologies; bad input and a soak run).
//
// It is a nested module so that the test-only dependencies (Toxiproxy and
// its transitive requirements) stay out of the root go.mod. The package has
// no exported API; everything lives in _test.go files.
package reliability
