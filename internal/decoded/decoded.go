// Package decoded lets failsoft's response cache keep decoded entries in
// the in-process tier, so that an in-process hit neither copies nor decodes
// the stored bytes. It is internal: only failsoft's own packages implement
// and use it.
package decoded

import (
	"context"
	"time"
)

// Decoder turns a stored value into the form its reader works with; see
// [Getter]. Decode may keep references into value in what it returns
// (value never changes), but must not modify value. weight estimates, in
// bytes, the memory the result holds beyond value itself; it counts against
// the in-process budget while the result is kept. Decode must be a pure
// function of value and of the Decoder, which must be comparable (==): two
// equal Decoders share what they decoded.
type Decoder interface {
	Decode(value []byte) (v any, weight int, err error)
}

// Getter is implemented by the in-process stores (store.Memory,
// store.Tiered) to spare a reader that decodes every value it reads both the
// copy Get makes and the decoding: the decoded form is kept with the
// in-process entry and handed out again until the entry is replaced,
// expires or is evicted.
//
// The decoded value is shared by every caller that gets it, and may alias
// the stored bytes: callers must treat it as read-only, and must not hand
// mutable parts of it to code that could modify them.
type Getter interface {
	// GetDecoded is Get followed by d.Decode of the value. A miss or a
	// failure is reported as by Get; an error from d.Decode is returned
	// as is (so errors.Is matches it), and nothing is kept.
	//
	// now is the caller's reading of the system clock (time.Now) taken
	// just before the call, or the zero Time: a store whose clock is the
	// system clock may use it instead of reading the clock again (a clock
	// read is a measurable share of an in-process hit); a store with
	// another clock ignores it.
	GetDecoded(ctx context.Context, key string, d Decoder, now time.Time) (any, error)

	// PeekDecoded returns what GetDecoded would return when it can answer
	// from the in-process copy alone, without asking another store or
	// waiting for anything, and false when it cannot (no copy, or a copy
	// that GetDecoded would check with another store first, or a decoding
	// error). It may decode the copy and keep the result, as GetDecoded
	// does; now is as for GetDecoded.
	PeekDecoded(key string, d Decoder, now time.Time) (any, bool)
}
