package store

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// boundedConn is a net.Conn whose every Read and Write waits at most bound
// from its start, or until the deadline its user set, whichever is earlier.
// A [Hook] wraps the connections go-redis dials with it, because go-redis
// does not pass a command's context deadline to its socket reads unless the
// client was built with ContextTimeoutEnabled, and may set no deadline at
// all (ReadTimeout -1 or -2).
//
// A Read is also bounded from the start of the exchange it belongs to: the
// last Write, or the last deadline change (go-redis sets the read deadline
// once before it reads a reply), whichever came later. Without this a reply
// that trickles in a few bytes at a time, each Read returning well within
// the bound, would keep a command waiting for go-redis' ReadTimeout (3 s by
// default, then retries) instead of the op timeout. So a Read that starts
// more than bound after the last Write or deadline change times out at once;
// go-redis never reads a connection that long after either.
//
// Deadlines set through SetDeadline, SetReadDeadline and SetWriteDeadline
// reach the wrapped conn at once, so they can still interrupt an I/O in
// progress; each Read and Write then arms its own bounded deadline. go-redis
// sets deadlines only between I/Os on a connection it holds, so a deadline
// cleared while a Read is blocked (which would unbound that Read) does not
// happen there.
//
// Once the bound (not an earlier deadline of the user's) has cut a Read or a
// Write short, the conn is dead: every later Read and Write fails at once
// with the same timeout error. Its reply stream is out of step anyway (a late
// reply would be read as the answer to the next command), and go-redis
// shrugs off a timed-out read in places — it peeks for RESP3 push
// notifications before reading each reply and logs a failed peek — so that
// without this a command would wait the bound once per read.
type boundedConn struct {
	net.Conn
	bound time.Duration
	rd    atomic.Int64 // the user's read deadline, UnixNano; 0 for none
	wd    atomic.Int64 // the user's write deadline, UnixNano; 0 for none
	ex    atomic.Int64 // start of the current exchange (last Write or deadline change), UnixNano; 0 before any
	dead  atomic.Pointer[error]
}

// boundedSysConn is a boundedConn over a conn that implements syscall.Conn.
// go-redis' pool health check peeks at the raw socket through it (without
// blocking); a wrapper that hid it would turn the check off, and one that
// claimed it for a conn without it would fail every check.
type boundedSysConn struct{ *boundedConn }

// SyscallConn returns the wrapped conn's raw connection.
func (c boundedSysConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

// bindConn wraps c so that each Read and Write waits at most bound.
func bindConn(c net.Conn, bound time.Duration) net.Conn {
	bc := &boundedConn{Conn: c, bound: bound}
	if _, ok := c.(syscall.Conn); ok {
		return boundedSysConn{bc}
	}
	return bc
}

// NetConn returns the wrapped conn, as crypto/tls.Conn does.
func (c *boundedConn) NetConn() net.Conn { return c.Conn }

// deadline returns the deadline for an I/O starting at start, given the
// user's, and whether it is the bound's.
func (c *boundedConn) deadline(start time.Time, user int64) (time.Time, bool) {
	d := start.Add(c.bound)
	if user != 0 && user < d.UnixNano() {
		return time.Unix(0, user), false
	}
	return d, true
}

// cut records err if it is the bound's timeout, which kills the conn.
func (c *boundedConn) cut(err error, ours bool) {
	var nerr net.Error
	if ours && errors.As(err, &nerr) && nerr.Timeout() {
		c.dead.CompareAndSwap(nil, &err)
	}
}

func (c *boundedConn) Read(b []byte) (int, error) {
	if err := c.dead.Load(); err != nil {
		return 0, *err
	}
	start := time.Now()
	if ex := c.ex.Load(); ex != 0 && ex < start.UnixNano() {
		start = time.Unix(0, ex) // a Read is bounded from its exchange's start
	}
	d, ours := c.deadline(start, c.rd.Load())
	if err := c.Conn.SetReadDeadline(d); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(b)
	if err != nil {
		c.cut(err, ours)
	}
	return n, err
}

func (c *boundedConn) Write(b []byte) (int, error) {
	if err := c.dead.Load(); err != nil {
		return 0, *err
	}
	now := time.Now()
	c.ex.Store(now.UnixNano())
	d, ours := c.deadline(now, c.wd.Load())
	if err := c.Conn.SetWriteDeadline(d); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(b)
	if err != nil {
		c.cut(err, ours)
	}
	return n, err
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func (c *boundedConn) SetDeadline(t time.Time) error {
	c.ex.Store(time.Now().UnixNano())
	c.rd.Store(unixNano(t))
	c.wd.Store(unixNano(t))
	return c.Conn.SetDeadline(t)
}

func (c *boundedConn) SetReadDeadline(t time.Time) error {
	c.ex.Store(time.Now().UnixNano())
	c.rd.Store(unixNano(t))
	return c.Conn.SetReadDeadline(t)
}

func (c *boundedConn) SetWriteDeadline(t time.Time) error {
	c.ex.Store(time.Now().UnixNano())
	c.wd.Store(unixNano(t))
	return c.Conn.SetWriteDeadline(t)
}
