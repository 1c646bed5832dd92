package store

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// A reply that trickles in one byte at a time must not stretch a command
// beyond the bound: each Read returns quickly, but the exchange (from the
// last Write or deadline change) is bounded as a whole.
func TestBoundedConnTrickle(t *testing.T) {
	const bound = 50 * time.Millisecond
	const slack = 100 * time.Millisecond
	tests := []struct {
		name  string
		start func(c net.Conn) // begins the exchange
	}{
		{"after a write", func(c net.Conn) { c.Write([]byte("GET k\r\n")) }},
		{"after a later read deadline (go-redis WithReader)", func(c net.Conn) { c.SetReadDeadline(time.Now().Add(time.Hour)) }},
		{"after a cleared deadline", func(c net.Conn) { c.SetDeadline(time.Time{}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() { // the peer: drains writes, trickles a reply
				defer close(done)
				go io.Copy(io.Discard, b)
				for {
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
						if _, err := b.Write([]byte("x")); err != nil {
							return
						}
					}
				}
			}()
			defer func() { close(stop); b.Close(); <-done }()
			c := bindConn(a, bound)
			tt.start(c)
			start := time.Now()
			buf := make([]byte, 1)
			var err error
			for err == nil && time.Since(start) < time.Second {
				_, err = c.Read(buf)
			}
			took := time.Since(start)
			var nerr net.Error
			if !errors.As(err, &nerr) || !nerr.Timeout() {
				t.Fatalf("trickled reply: %v after %v, want a timeout", err, took)
			}
			if took > bound+slack {
				t.Errorf("trickled reply read for %v, want at most %v", took, bound)
			}
		})
	}
	t.Run("each exchange gets its own bound", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		c := bindConn(a, bound)
		for i := range 3 {
			c.SetReadDeadline(time.Now().Add(time.Hour))
			go b.Write([]byte("ok"))
			buf := make([]byte, 2)
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatalf("exchange %d: %v", i, err)
			}
			time.Sleep(bound) // idle between commands, longer than the bound
		}
	})
}
