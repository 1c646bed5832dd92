package middleware

import "sync"

// tasks tracks a Cache's background goroutines so that Close can wait for
// them. Unlike a sync.WaitGroup, start may race with close: after close it
// refuses new tasks.
type tasks struct {
	mu     sync.Mutex
	cond   sync.Cond
	n      int
	closed bool
}

// start registers a task; it returns false once close was called.
func (t *tasks) start() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.n++
	return true
}

// done ends a task that start registered.
func (t *tasks) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 && t.cond.L != nil {
		t.cond.Broadcast()
	}
}

// wait blocks until no task runs.
func (t *tasks) wait() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cond.L == nil {
		t.cond.L = &t.mu
	}
	for t.n > 0 {
		t.cond.Wait()
	}
}

// close refuses new tasks and waits for the running ones.
func (t *tasks) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.wait()
}
