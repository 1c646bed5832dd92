package store

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Class sorts an error returned by a store or a Redis command into what it
// means for a cache: nothing, a miss, the caller giving up, bad input, a
// command the server refused, or an outage of one kind or another.
type Class int

const (
	// ClassNone is the class of a nil error.
	ClassNone Class = iota
	// ClassMiss is a miss: [ErrNotFound] or redis.Nil.
	ClassMiss
	// ClassCanceled is the caller's context ending (context.Canceled). The
	// guard also puts a caller's own expired deadline here: neither says
	// anything about the store's health.
	ClassCanceled
	// ClassInvalid is bad input rejected before reaching the backend:
	// [ErrInvalidKey], [ErrValueTooLarge], [ErrInvalidTTL].
	ClassInvalid
	// ClassCommand is an error reply to one command that says nothing about
	// the server's availability: WRONGTYPE, OOM on a write, a syntax error,
	// NOSCRIPT and the like.
	ClassCommand
	// ClassOpen is a call refused without trying: [ErrUnavailable] (the
	// breaker is open) or [ErrClosed].
	ClassOpen
	// ClassTimeout is an operation that ran out of time: the op timeout, a
	// socket deadline, or a connection-pool timeout.
	ClassTimeout
	// ClassConnection is a failure to reach or talk to the server: refused,
	// reset, closed connections, DNS and dial errors.
	ClassConnection
	// ClassServer is a reply that says the server cannot serve now: LOADING,
	// READONLY, MASTERDOWN, CLUSTERDOWN, TRYAGAIN, max clients reached, and
	// authentication or permission failures.
	ClassServer
)

var classNames = [...]string{"none", "miss", "canceled", "invalid", "command", "open", "timeout", "connection", "server"}

// String returns the class name used in logs and metric labels.
func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return "unknown"
	}
	return classNames[c]
}

// Outage reports whether errors of this class mean the store is unavailable:
// ClassOpen, ClassTimeout, ClassConnection and ClassServer. A breaker counts
// only outages as failures (ClassOpen never reaches a breaker: it comes from
// one).
func (c Class) Outage() bool {
	return c >= ClassOpen
}

// IsUnavailable reports whether err means the store is unavailable, as
// opposed to a miss, bad input, a refused command or a cancelled caller.
func IsUnavailable(err error) bool {
	return Classify(err).Outage()
}

// Classify returns the class of err. Unknown errors that are not Redis error
// replies count as connection failures: a store that fails in a way nobody
// foresaw is not one to keep calling.
func Classify(err error) Class {
	switch {
	case err == nil:
		return ClassNone
	case errors.Is(err, ErrNotFound), errors.Is(err, redis.Nil):
		return ClassMiss
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	case errors.Is(err, ErrInvalidKey), errors.Is(err, ErrValueTooLarge), errors.Is(err, ErrInvalidTTL):
		return ClassInvalid
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrClosed), errors.Is(err, redis.ErrClosed):
		return ClassOpen
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted):
		return ClassTimeout
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return classifyReply(rerr)
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return ClassTimeout
	}
	return ClassConnection
}

// classifyReply sorts a Redis error reply.
func classifyReply(err redis.Error) Class {
	switch {
	case redis.IsLoadingError(err), redis.IsReadOnlyError(err), redis.IsMasterDownError(err),
		redis.IsClusterDownError(err), redis.IsTryAgainError(err), redis.IsMaxClientsError(err),
		redis.IsAuthError(err), redis.IsPermissionError(err), redis.IsNoReplicasError(err):
		return ClassServer
	}
	// Older servers and proxies word these differently; match the prefixes
	// the failure model names.
	msg := err.Error()
	for _, p := range [...]string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "NOAUTH", "WRONGPASS", "NOPERM"} {
		if strings.HasPrefix(msg, p) {
			return ClassServer
		}
	}
	if strings.HasPrefix(msg, "ERR max number of clients") || strings.Contains(msg, "invalid password") {
		return ClassServer
	}
	return ClassCommand
}
