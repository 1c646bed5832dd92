package middleware

import (
	"errors"
	"net/http"
	"time"
)

// Contract (bodies being written): the versioned binary encoding of cache
// entries as they are stored in every tier.

// entryKind tells a stored response from a Vary marker.
type entryKind uint8

const (
	// kindResponse is a stored response.
	kindResponse entryKind = 1
	// kindVary is a marker stored under a URL's primary key when the response
	// named Vary: it lists the request headers (canonical, sorted) whose
	// values select the variant, and a random nonce mixed into every variant
	// key, so that a purge (deleting the marker) orphans every old variant
	// for good.
	kindVary entryKind = 2
)

// entry is one stored response or Vary marker.
//
// Times are wall-clock instants; the decoder rejects an entry whose times
// are not ordered StoredAt <= FreshUntil <= SWRUntil <= StaleUntil.
type entry struct {
	Kind entryKind

	// Response fields (kindResponse).
	Status int         // 100..999
	Header http.Header // the handler's headers, as written
	Body   []byte

	StoredAt   time.Time // when the response was generated (Age counts from here)
	FreshUntil time.Time // end of freshness
	SWRUntil   time.Time // end of the stale-while-revalidate window (>= FreshUntil)
	StaleUntil time.Time // end of the stale-if-error window (>= SWRUntil); the entry's TTL in a store

	// Vary marker fields (kindVary).
	VaryHeaders []string // canonical header names, sorted, deduplicated
	Nonce       uint64
}

// errBadEntry is wrapped by every decode error.
var errBadEntry = errors.New("failsoft: bad cache entry")

// entryVersion is the current encoding version; an entry with any other
// version decodes as errBadEntry (a miss) and is overwritten.
const entryVersion = 1

// encodeEntry appends the encoding of e to dst and returns it.
// Layout: magic "FSC", version byte, kind byte, then fields with uvarint
// lengths and varint times (unix nanoseconds).
func encodeEntry(dst []byte, e *entry) []byte { panic("todo") }

// decodeEntry decodes b. It never panics and never allocates more than
// a small constant plus len(b) (every length read is checked against the
// bytes that remain); header count is limited to maxHeaders and body size
// to maxBody. Errors wrap errBadEntry. The returned entry may alias b.
func decodeEntry(b []byte, maxBody int) (*entry, error) { panic("todo") }

// maxHeaders bounds the header lines of a decoded entry.
const maxHeaders = 256
