package middleware

import (
	"strings"
	"sync"
	"testing"
)

func TestCacheWarnRateLimit(t *testing.T) {
	clk := newTestClock()
	var logs strings.Builder
	var mu sync.Mutex
	c := newTestCache(t, newMapStore(), WithClock(clk.Now), WithLogger(newTestLogger(&mu, &logs)))
	for range 5 {
		c.log.warn(warnDecode, "bad entry")
	}
	clk.Add(warnEvery)
	c.log.warn(warnDecode, "bad entry")
	c.log.warn(warnWrite, "write failed")
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Count(logs.String(), "bad entry"); got != 2 {
		t.Errorf("%d warnings of one kind, want 2:\n%s", got, logs.String())
	}
	if got := strings.Count(logs.String(), "write failed"); got != 1 {
		t.Errorf("%d warnings of the other kind, want 1", got)
	}
}
