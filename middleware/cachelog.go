// The cache's logging: per-request events at Debug, checked before their
// arguments are built, and warnings rate-limited per kind.

package middleware

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// cacheLog is a Cache's logger. It is safe for concurrent use.
type cacheLog struct {
	*slog.Logger
	now    func() time.Time
	warned [numWarn]atomic.Int64 // unix nanos of the last log of each kind
}

// warnKind names a rate-limited warning.
type warnKind int

const (
	warnDecode warnKind = iota
	warnWrite
	warnPanic
	numWarn
)

// warnEvery is the least time between two warnings of one kind.
const warnEvery = time.Minute

// debugOn reports whether per-request events are logged; callers check it
// before building log arguments, so that a quiet logger costs nothing.
func (l *cacheLog) debugOn(ctx context.Context) bool {
	return l.Enabled(ctx, slog.LevelDebug)
}

// warn logs at Warn level at most once per warnEvery for each kind, so
// trouble that repeats on every request is logged once, not per request.
func (l *cacheLog) warn(kind warnKind, msg string, args ...any) {
	now := l.now().UnixNano()
	last := l.warned[kind].Load()
	if last != 0 && now-last < int64(warnEvery) && now >= last {
		return
	}
	if !l.warned[kind].CompareAndSwap(last, now) {
		return
	}
	l.Warn(msg, args...)
}
