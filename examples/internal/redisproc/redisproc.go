// Package redisproc runs a redis-server process of the examples' own on a
// free loopback port, with persistence off, for the outage drill (which
// pauses, resumes, kills and restarts it) and the hit benchmark.
package redisproc

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is a redis-server process on a loopback port, which its owner may
// pause, resume, kill and restart empty (on the same port). Its methods are
// called from one goroutine, except Stop, which is safe to call from any.
type Server struct {
	bin     string
	dir     string
	port    int
	version string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// Find returns the redis-server binary to run: bin if set, else
// $FAILSOFT_REDIS_SERVER, else redis-server on $PATH (as internal/redistest
// finds it).
func Find(bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	if p := os.Getenv("FAILSOFT_REDIS_SERVER"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", ErrNoRedis
	}
	return p, nil
}

// Start starts a redis-server on a free loopback port with persistence
// off, keeping its files and log in dir.
func Start(bin, dir string) (*Server, error) {
	bin, err := Find(bin)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", bin, err)
	}
	s := &Server{bin: bin, dir: dir, version: versionOf(string(out))}
	for attempt := 0; attempt < 5; attempt++ {
		if s.port, err = freePort(); err != nil {
			continue
		}
		if err = s.start(); err == nil {
			return s, nil
		}
	}
	return nil, fmt.Errorf("start redis-server: %w", err)
}

// versionOf picks "7.0.15" out of redis-server --version's "Redis server
// v=7.0.15 sha=...".
func versionOf(s string) string {
	for _, f := range strings.Fields(s) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			return "redis " + v
		}
	}
	return strings.TrimSpace(s)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *Server) start() error {
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--protected-mode", "no", "--daemonize", "no")
	logf, err := os.OpenFile(filepath.Join(s.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
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
		cmd.Wait() // a killed server's exit status is expected
		logf.Close()
	}()
	if err := waitPong(s.Addr(), 5*time.Second); err != nil {
		cmd.Process.Kill()
		<-done
		return err
	}
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return nil
}

// waitPong polls with PING until the server answers PONG or within passes.
func waitPong(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		err := ping(addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server at %s not ready after %v: %w", addr, within, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return fmt.Errorf("redis-server on %s is not running", s.Addr())
	}
	return s.cmd.Process.Signal(sig)
}

// Pause stops the process with SIGSTOP: connections stay open, nothing
// answers.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a paused process with SIGCONT.
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

// Kill kills the process with SIGKILL and waits until its port refuses
// connections.
func (s *Server) Kill() error {
	s.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", s.Addr(), 100*time.Millisecond)
		if err != nil {
			return nil
		}
		c.Close()
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s still accepts connections after SIGKILL", s.Addr())
}

// Restart starts a new, empty server on the same port, retrying for a while
// in case the port is briefly held.
func (s *Server) Restart() error {
	if err := s.Kill(); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.start()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("restart redis-server on %s: %w", s.Addr(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the process (resuming it first if paused) and waits for it.
// It is safe to call more than once.
func (s *Server) Stop() {
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

// Version returns the server's version, as "redis 7.0.15".
func (s *Server) Version() string { return s.version }

// ErrNoRedis is returned when no redis-server binary can be found.
var ErrNoRedis = errors.New("redis-server not found: set FAILSOFT_REDIS_SERVER or put redis-server on PATH")
