// Package redistest starts throwaway redis-server processes on free loopback
// ports for failsoft's tests, and makes outages on demand: kill, pause
// (SIGSTOP), resume (SIGCONT) and restart empty on the same port.
//
// The server binary is $FAILSOFT_REDIS_SERVER or redis-server on $PATH. When
// neither exists the test is skipped, except under CI=true, where it fails:
// CI must never pass for want of Redis. scripts/test installs redis-server.
package redistest

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
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

// Server is one redis-server process owned by a test. Its methods are safe
// for concurrent use; t.Cleanup stops the process.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args []string
	cfg  Config

	mu        sync.Mutex
	loadingOK bool // a -LOADING reply counts as ready (RestartWith)
	cmd       *exec.Cmd
	done      chan struct{} // closed when cmd has been waited for
}

// Binary returns the redis-server path, or skips (fails under CI=true) when
// there is none.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("FAILSOFT_REDIS_SERVER"); p != "" {
		return p
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redistest: redis-server not found and CI=true: run scripts/test, which installs it")
		}
		t.Skip("redistest: redis-server not found; run scripts/test to install it")
	}
	return p
}

// Config describes a server that needs more than extra arguments: a
// password, or TLS instead of plain TCP. The zero value is what [Start]
// starts.
type Config struct {
	// Args are passed on the command line after the defaults, as Start's
	// extra arguments are.
	Args []string
	// Password, when set, is the default user's password (requirepass).
	// Readiness checks and [Server.Do] authenticate with it.
	Password string
	// TLS, when set, makes the server listen for TLS only (--port 0,
	// --tls-port on the free port) with these certificate files.
	TLS *TLSFiles
}

// TLSFiles are the PEM files of a TLS server: its certificate and key, and
// the CA certificate it would check client certificates against (clients
// are not asked for one: --tls-auth-clients no).
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
}

// Start starts a redis-server on a free loopback port with persistence off.
// Extra arguments are passed on the command line (for example "--maxmemory",
// "1mb").
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	return StartConfig(t, Config{Args: extra})
}

// StartConfig starts a redis-server as Start does, configured by cfg. The
// test fails (or, without a redis-server binary, is skipped as by [Binary])
// when the server does not start, for example because it was built without
// TLS.
func StartConfig(t testing.TB, cfg Config) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir(), args: cfg.Args, cfg: cfg}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		s.port, err = freePort()
		if err != nil {
			continue
		}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: start: %v", err)
	}
	t.Cleanup(s.stop)
	return s
}

// Addr is the server's host:port on 127.0.0.1.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Port is the server's TCP port (its TLS port when it was started with
// [Config].TLS).
func (s *Server) Port() int { return s.port }

// Dir is the server's working directory, where SAVE writes dump.rdb and a
// restart loads it from.
func (s *Server) Dir() string { return s.dir }

// Log returns what the server has written to its log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	return string(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	args := []string{"--port", strconv.Itoa(s.port)}
	if f := s.cfg.TLS; f != nil {
		args = []string{
			"--port", "0", "--tls-port", strconv.Itoa(s.port),
			"--tls-cert-file", f.CertFile, "--tls-key-file", f.KeyFile,
			"--tls-ca-cert-file", f.CAFile, "--tls-auth-clients", "no",
		}
	}
	args = append(args,
		"--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--protected-mode", "no", "--daemonize", "no",
	)
	if s.cfg.Password != "" {
		args = append(args, "--requirepass", s.cfg.Password)
	}
	args = append(args, s.args...)
	cmd := exec.Command(s.bin, args...)
	logf, err := os.Create(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		cmd.Wait() // the exit status of a killed server is expected
		logf.Close()
	}()
	if err := s.waitReady(5 * time.Second); err != nil {
		cmd.Process.Kill()
		<-done
		out, _ := os.ReadFile(logf.Name())
		return fmt.Errorf("%w; log:\n%s", err, out)
	}
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return nil
}

// waitReady polls with PING until the server answers PONG (or, after
// RestartWith, LOADING).
func (s *Server) waitReady(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if err := s.ping(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("redis at %s not ready: %w", s.Addr(), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dial connects to the server, over TLS when it serves TLS only. The TLS
// check of the server's certificate is skipped: these connections only
// manage a test's own server; the tests check certificates themselves.
func (s *Server) dial(timeout time.Duration) (net.Conn, error) {
	if s.cfg.TLS == nil {
		return net.DialTimeout("tcp", s.Addr(), timeout)
	}
	d := &net.Dialer{Timeout: timeout}
	return tls.DialWithDialer(d, "tcp", s.Addr(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test harness
}

// ping sends PING (after AUTH when the server has a password) and checks
// the reply.
func (s *Server) ping() error {
	c, err := s.dial(200 * time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	r := bufio.NewReader(c)
	if s.cfg.Password != "" {
		if _, err := c.Write(encode("AUTH", s.cfg.Password)); err != nil {
			return err
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "+OK") && !strings.HasPrefix(line, "-LOADING") {
			return fmt.Errorf("AUTH: unexpected reply %q", strings.TrimSpace(line))
		}
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	s.mu.Lock()
	loadingOK := s.loadingOK
	s.mu.Unlock()
	if strings.HasPrefix(line, "+PONG") || (loadingOK && strings.HasPrefix(line, "-LOADING")) {
		return nil
	}
	return fmt.Errorf("unexpected reply %q", strings.TrimSpace(line))
}

// encode returns a command in RESP.
func encode(args ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return []byte(b.String())
}

// Do sends one command over a fresh connection (authenticated when the
// server has a password, over TLS when it serves TLS) and returns the first
// line of the reply; tests use it to reconfigure the server (CONFIG SET,
// DEBUG) without a go-redis client in the way.
func (s *Server) Do(args ...string) (string, error) {
	c, err := s.dial(time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if s.cfg.Password != "" {
		if _, err := c.Write(encode("AUTH", s.cfg.Password)); err != nil {
			return "", err
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(line, "+OK") {
			return strings.TrimRight(line, "\r\n"), fmt.Errorf("redistest: AUTH refused")
		}
	}
	if _, err := c.Write(encode(args...)); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("redistest: server on %s is not running", s.Addr())
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: signal %v: %v", sig, err)
	}
}

// Pause stops the process with SIGSTOP: connections stay open, nothing
// answers (a blackhole). Resume undoes it; cleanup resumes before killing.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused process with SIGCONT.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

// Kill kills the process with SIGKILL and waits until its port refuses
// connections.
func (s *Server) Kill() {
	s.t.Helper()
	s.stop()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", s.Addr(), 100*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(5 * time.Millisecond)
	}
	s.t.Fatalf("redistest: %s still accepts connections after kill", s.Addr())
}

// Restart starts a new, empty server on the same port after Kill. It
// retries for a while in case the port is briefly held.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	var err error
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart on %s: %v", s.Addr(), err)
}

// RestartWith kills the server and starts it again on the same port and
// directory with extra arguments added to its command line (kept for later
// restarts). Unlike Restart, it returns as soon as the server accepts
// connections, even while it still answers -LOADING: tests restart a server
// over a saved dataset with --key-load-delay to make it answer LOADING.
func (s *Server) RestartWith(extra ...string) {
	s.t.Helper()
	s.mu.Lock()
	s.loadingOK = true
	s.mu.Unlock()
	s.args = append(s.args[:len(s.args):len(s.args)], extra...)
	s.Restart()
}

func (s *Server) stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd != nil {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		<-done
	}
}
