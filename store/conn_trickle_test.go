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
	// An unbounded trickle never times out: each byte comes within 5 ms, so
	// the read loop below runs until its 10 s cap without an error. A bounded
	// one ends after about bound; 2 s tells the two apart on a loaded runner.
	const limit = 2 * time.Second
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
			for err == nil && time.Since(start) < 10*time.Second {
				_, err = c.Read(buf)
			}
			took := time.Since(start)
			var nerr net.Error
			if !errors.As(err, &nerr) || !nerr.Timeout() {
				t.Fatalf("trickled reply: %v after %v, want a timeout", err, took)
			}
			if took > limit {
				t.Errorf("trickled reply read for %v, want about %v (at most %v)", took, bound, limit)
			}
		})
	}
	t.Run("each exchange gets its own bound", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		// Each exchange must finish within its own bound, so the bound is
		// long enough here that a loaded runner cannot stall one exchange
		// past it, and the reply is already waiting (the peer blocks in
		// Write during the idle time) when the exchange starts.
		const bound = 250 * time.Millisecond
		c := bindConn(a, bound)
		for i := range 3 {
			wrote := make(chan error, 1)
			go func() { _, err := b.Write([]byte("ok")); wrote <- err }()
			// Idle between commands, longer than the bound: a bound counted
			// from an earlier exchange would cut this one at once.
			time.Sleep(bound)
			c.SetReadDeadline(time.Now().Add(time.Hour))
			buf := make([]byte, 2)
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatalf("exchange %d: %v", i, err)
			}
			if err := <-wrote; err != nil {
				t.Fatalf("exchange %d: peer write: %v", i, err)
			}
		}
	})
}
