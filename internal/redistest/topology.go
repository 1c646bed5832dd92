package redistest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Topologies for failsoft's Sentinel and Cluster tests: a master with a
// replica watched by three sentinels, and a cluster of masters without
// replicas. Every process runs on a free loopback port and is stopped by
// t.Cleanup.

// SentinelSetup is one master, one replica and three sentinels monitoring
// the master under [SentinelSetup.MasterName], with a short
// down-after-milliseconds so that a failover takes a few seconds.
type SentinelSetup struct {
	MasterName string
	Master     *Server
	Replica    *Server
	Sentinels  []*SentinelProc
}

// SentinelProc is a redis-server process started from a config file (a sentinel).
// Kill stops it; t.Cleanup stops it too.
type SentinelProc struct {
	port int
	once sync.Once
	cmd  *exec.Cmd
	done chan struct{}
}

// Addr is the process's host:port on 127.0.0.1.
func (p *SentinelProc) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// Kill kills the process and waits for it to exit.
func (p *SentinelProc) Kill() {
	p.once.Do(func() {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Kill()
		<-p.done
	})
}

// StartSentinel starts a master, a replica of it, and three sentinels
// (quorum 2, down-after-milliseconds downAfter, failover-timeout 3 s), and
// waits until the replica is in sync and every sentinel knows the replica
// and the two other sentinels, so that a failover can start as soon as the
// master is down.
func StartSentinel(t testing.TB, downAfter time.Duration) *SentinelSetup {
	t.Helper()
	s := &SentinelSetup{MasterName: "mymaster"}
	s.Master = Start(t)
	s.Replica = Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(s.Master.Port()))
	for i := 0; i < 3; i++ {
		s.Sentinels = append(s.Sentinels, topoStartSentinel(t, s.MasterName, s.Master.Port(), downAfter))
	}
	deadline := time.Now().Add(20 * time.Second)
	topoWaitFor(t, deadline, "replica in sync", func() bool {
		info, err := CommandAt(s.Replica.Addr(), "INFO", "replication")
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	for _, sn := range s.Sentinels {
		topoWaitFor(t, deadline, "sentinel "+sn.Addr()+" sees the replica and the other sentinels", func() bool {
			m, err := CommandAt(sn.Addr(), "SENTINEL", "MASTER", s.MasterName)
			if err != nil {
				return false
			}
			f := topoPairFields(m)
			return f["num-slaves"] == "1" && f["num-other-sentinels"] == "2"
		})
	}
	return s
}

// SentinelAddrs returns the sentinels' addresses.
func (s *SentinelSetup) SentinelAddrs() []string {
	addrs := make([]string, len(s.Sentinels))
	for i, sn := range s.Sentinels {
		addrs[i] = sn.Addr()
	}
	return addrs
}

// MasterAddr asks the sentinels for the current master's address, the
// answer of the first one that answers.
func (s *SentinelSetup) MasterAddr() (string, error) {
	var last error
	for _, sn := range s.Sentinels {
		a, err := CommandAt(sn.Addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName)
		if err != nil {
			last = err
			continue
		}
		hp := strings.Split(a, "\n")
		if len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		last = fmt.Errorf("unexpected reply %q", a)
	}
	return "", last
}

func topoStartSentinel(t testing.TB, name string, masterPort int, downAfter time.Duration) *SentinelProc {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := topoFreePort()
		if err != nil {
			lastErr = err
			continue
		}
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %s %d\n"+
			"sentinel failover-timeout %s 3000\n"+
			"sentinel parallel-syncs %s 1\n",
			port, dir, name, masterPort, name, downAfter.Milliseconds(), name, name)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatalf("redistest: sentinel config: %v", err)
		}
		p, err := topoStartProc(bin, dir, port, conf, "--sentinel")
		if err != nil {
			lastErr = err
			continue
		}
		t.Cleanup(p.Kill)
		return p
	}
	t.Fatalf("redistest: start sentinel: %v", lastErr)
	return nil
}

// topoStartProc starts bin with args, logging to dir, and waits until port
// answers PING.
func topoStartProc(bin, dir string, port int, args ...string) (*SentinelProc, error) {
	logf, err := os.Create(filepath.Join(dir, "proc-"+strconv.Itoa(port)+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &SentinelProc{port: port, cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		cmd.Wait()
		logf.Close()
	}()
	if err := topoWaitReady(p.Addr(), 5*time.Second); err != nil {
		p.Kill()
		out, _ := os.ReadFile(logf.Name())
		return nil, fmt.Errorf("%w; log:\n%s", err, out)
	}
	return p, nil
}

// Cluster is a Redis Cluster of masters without replicas, with the slots
// split evenly and cluster-require-full-coverage off, so that the healthy
// shards keep serving when one master dies.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts n (at least 3) cluster-enabled servers, assigns each
// an even range of the 16384 slots, joins them, and waits until every node
// reports cluster_state:ok and knows all n nodes.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 3 {
		t.Fatalf("redistest: StartCluster: %d nodes, need at least 3", n)
	}
	c := &Cluster{}
	for i := 0; i < n; i++ {
		c.Nodes = append(c.Nodes, Start(t,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "1000",
			"--cluster-require-full-coverage", "no",
		))
	}
	per := 16384 / n
	for i, s := range c.Nodes {
		lo, hi := i*per, (i+1)*per-1
		if i == n-1 {
			hi = 16383
		}
		if _, err := CommandAt(s.Addr(), "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)); err != nil {
			t.Fatalf("redistest: CLUSTER ADDSLOTSRANGE on %s: %v", s.Addr(), err)
		}
	}
	for _, s := range c.Nodes[1:] {
		if _, err := CommandAt(c.Nodes[0].Addr(), "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(s.Port())); err != nil {
			t.Fatalf("redistest: CLUSTER MEET %s: %v", s.Addr(), err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range c.Nodes {
		topoWaitFor(t, deadline, "cluster_state:ok on "+s.Addr(), func() bool {
			info, err := CommandAt(s.Addr(), "CLUSTER", "INFO")
			if err != nil {
				return false
			}
			f := topoInfoFields(info)
			return f["cluster_state"] == "ok" && f["cluster_known_nodes"] == strconv.Itoa(n) &&
				f["cluster_slots_assigned"] == "16384"
		})
	}
	return c
}

// Addrs returns the nodes' addresses.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// NodeFor returns the node that serves key's slot: the slot from CLUSTER
// KEYSLOT, the node from the even split StartCluster made.
func (c *Cluster) NodeFor(t testing.TB, key string) *Server {
	t.Helper()
	for _, s := range c.Nodes {
		out, err := CommandAt(s.Addr(), "CLUSTER", "KEYSLOT", key)
		if err != nil {
			continue
		}
		slot, err := strconv.Atoi(out)
		if err != nil {
			t.Fatalf("redistest: CLUSTER KEYSLOT %q: %q", key, out)
		}
		i := min(slot/(16384/len(c.Nodes)), len(c.Nodes)-1)
		return c.Nodes[i]
	}
	t.Fatalf("redistest: no cluster node answers CLUSTER KEYSLOT")
	return nil
}

// topoWaitFor polls cond every 20 ms until it holds, failing t at deadline.
func topoWaitFor(t testing.TB, deadline time.Time, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("redistest: timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// topoInfoFields parses the "name:value" lines of INFO and CLUSTER INFO.
func topoInfoFields(s string) map[string]string {
	m := make(map[string]string)
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimRight(l, "\r"), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// topoPairFields parses a flattened map reply (name and value on alternate
// lines, as [CommandAt] returns it).
func topoPairFields(s string) map[string]string {
	m := make(map[string]string)
	lines := strings.Split(s, "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		m[lines[i]] = lines[i+1]
	}
	return m
}

// CommandAt sends one command to addr over a fresh connection and returns the
// whole reply as text: a status, bulk string or integer as it is, an array
// as its elements one per line (nested arrays flattened), nil as "". An
// error reply is returned as an error.
func CommandAt(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	var out []string
	if err := topoReadReply(bufio.NewReader(c), &out); err != nil {
		return "", err
	}
	return strings.Join(out, "\n"), nil
}

// topoReadReply reads one RESP2 value and appends its text to out.
func topoReadReply(r *bufio.Reader, out *[]string) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return fmt.Errorf("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		*out = append(*out, line[1:])
	case '-':
		return fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return err
		}
		if n < 0 {
			*out = append(*out, "")
			return nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		*out = append(*out, string(buf[:n]))
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := topoReadReply(r, out); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// topoFreePort returns a loopback port that was free a moment ago.
func topoFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// topoWaitReady polls addr with PING until it answers PONG.
func topoWaitReady(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		out, err := CommandAt(addr, "PING")
		if err == nil && out == "PONG" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready: %v %q", addr, err, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
