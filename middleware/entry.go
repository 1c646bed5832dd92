package middleware

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"
)

// The versioned binary encoding of cache entries as they are stored in every
// tier. Entries read back from a store are outside input (a foreign writer, a
// corrupt value, an older release), so the decoder trusts nothing.

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
// are not ordered StoredAt <= FreshUntil <= SWRUntil <= StaleUntil (the zero
// time counts as the earliest instant). [entry.setLifetimes] sets them from
// the durations [lifetimes] returns in an order that always decodes.
type entry struct {
	Kind entryKind

	// Response fields (kindResponse).
	Status int // 100..999
	// Header is the handler's headers, as written. It is nil in an entry
	// decoded for one request alone (decodeOwned) until
	// [entry.fillHeader]: a fresh hit on it writes its fields from runs
	// and flat without building the map.
	Header http.Header
	Body   []byte

	StoredAt   time.Time // when the response was generated (received minus its initial age); Age counts from here
	FreshUntil time.Time // end of freshness
	SWRUntil   time.Time // end of the stale-while-revalidate window (>= FreshUntil)
	StaleUntil time.Time // end of the stale-if-error window (>= SWRUntil); the entry's TTL in a store

	// Vary marker fields (kindVary).
	VaryHeaders []string // canonical header names, sorted, deduplicated
	Nonce       uint64

	// kept marks an entry that a store keeps decoded and shares between
	// requests ([entryDecoder]): worth remembering hit values in.
	kept bool
	// hit is the Age and Cache-Status a fresh hit on a kept entry was last
	// served with (see [cacheStatus.hitFields]); the only field of an
	// entry that changes once it is built.
	hit atomic.Pointer[hitMemo]
	// spare, set only on an entry decoded for one request alone (see
	// decodeOwned), is room for the Age and Cache-Status values it is
	// served with, so that a fresh hit on it allocates no header slices.
	spare *[2]string
	// runs and flat, set on an entry decoded to be kept (see
	// entryDecoder) or for one request alone (decodeOwned), are its header
	// values in one slice and, per field, the name and the end of its
	// values in flat: a fresh hit walks runs instead of the map (see
	// writeKept and Cache.writeOwned).
	runs []headerRun
	flat []string
}

// headerRun is one field of a kept entry's header: its values are
// flat[previous run's end:end].
type headerRun struct {
	name string
	end  int
}

// setLifetimes sets e's times for a response stored at now, age old when
// received, with the windows [lifetimes] computed. StoredAt = now-age, the
// instant the response was generated, from which the Age it is served with
// counts. Both stale windows count from the end of freshness (RFC 5861):
// FreshUntil = now+fresh, SWRUntil = FreshUntil+swr and StaleUntil =
// FreshUntil+max(swr, sie), so the times are always ordered. Negative
// durations count as 0.
func (e *entry) setLifetimes(now time.Time, age, fresh, swr, sie time.Duration) {
	age, fresh, swr, sie = max(age, 0), max(fresh, 0), max(swr, 0), max(sie, 0)
	e.StoredAt = now.Add(-age)
	e.FreshUntil = now.Add(fresh)
	e.SWRUntil = e.FreshUntil.Add(swr)
	e.StaleUntil = e.FreshUntil.Add(max(swr, sie))
}

// errBadEntry is wrapped by every decode error.
var errBadEntry = errors.New("middleware: bad cache entry")

// entryVersion is the current encoding version; an entry with any other
// version decodes as errBadEntry (a miss) and is overwritten.
const entryVersion = 1

// maxHeaders bounds the header lines of a decoded entry, and the names of a
// Vary marker.
const maxHeaders = 256

// entryMagic starts every encoded entry.
const entryMagic = "FSC"

// encodeEntry appends the encoding of e to dst and returns it.
//
// Layout (uvarint and varint as in encoding/binary):
//
//	"FSC" version:byte kind:byte
//	kindResponse: status:uint16 (big endian)
//	              lines:uvarint { len:uvarint name  len:uvarint value }*lines
//	              len:uvarint body
//	kindVary:     names:uvarint { len:uvarint name }*names  nonce:uint64 (big endian)
//	then, for both kinds: StoredAt FreshUntil SWRUntil StaleUntil as varint
//	Unix nanoseconds, the zero time as 0.
//
// Header lines are written sorted by name (byte order), the values of a name
// in their order, so that the encoding is deterministic; the fields of the
// other kind are not written. Names are written as given (an http.Header's
// names are canonical already); a name without values writes nothing.
//
// encodeEntry does not validate e: an entry outside the decoder's limits
// (status outside 100..999, more than [maxHeaders] lines or names, a body
// over the decoder's maxBody, unordered times) encodes, but decodes as
// errBadEntry, so the caller must not store it. Times outside the years
// 1678..2262 (int64 nanoseconds) are not representable, and the instant
// of the Unix epoch decodes as the zero time.
func encodeEntry(dst []byte, e *entry) []byte {
	// One growth of dst: an exact size up front.
	size := len(entryMagic) + 2 + 4*binary.MaxVarintLen64
	var namesBuf [32]string
	var names []string
	switch e.Kind {
	case kindResponse:
		names = namesBuf[:0]
		lines := 0
		for name, vs := range e.Header {
			if len(vs) == 0 {
				continue
			}
			names = append(names, name)
			lines += len(vs)
			for _, v := range vs {
				size += uvarintLen(len(name)) + len(name) + uvarintLen(len(v)) + len(v)
			}
		}
		slices.Sort(names)
		size += 2 + uvarintLen(lines) + uvarintLen(len(e.Body)) + len(e.Body)
	case kindVary:
		size += uvarintLen(len(e.VaryHeaders)) + 8
		for _, n := range e.VaryHeaders {
			size += uvarintLen(len(n)) + len(n)
		}
	}
	dst = slices.Grow(dst, size)

	dst = append(dst, entryMagic...)
	dst = append(dst, entryVersion, byte(e.Kind))
	switch e.Kind {
	case kindResponse:
		dst = binary.BigEndian.AppendUint16(dst, uint16(e.Status))
		lines := 0
		for _, n := range names {
			lines += len(e.Header[n])
		}
		dst = binary.AppendUvarint(dst, uint64(lines))
		for _, n := range names {
			for _, v := range e.Header[n] {
				dst = appendString(dst, n)
				dst = appendString(dst, v)
			}
		}
		dst = binary.AppendUvarint(dst, uint64(len(e.Body)))
		dst = append(dst, e.Body...)
	case kindVary:
		dst = binary.AppendUvarint(dst, uint64(len(e.VaryHeaders)))
		for _, n := range e.VaryHeaders {
			dst = appendString(dst, n)
		}
		dst = binary.BigEndian.AppendUint64(dst, e.Nonce)
	}
	for _, t := range [...]time.Time{e.StoredAt, e.FreshUntil, e.SWRUntil, e.StaleUntil} {
		dst = binary.AppendVarint(dst, unixNano(t))
	}
	return dst
}

// decodeEntry decodes b, the output of [encodeEntry]. It never panics and
// never allocates more than len(b) plus a constant (the entry, and at most
// [maxHeaders] string headers and map slots): every length and count read is
// checked against the bytes that remain before anything is allocated.
// Header lines are limited to [maxHeaders] and the body to maxBody bytes (a
// negative maxBody: no limit beyond len(b)). Errors wrap [errBadEntry].
//
// The decoder accepts only the encoder's canonical form: minimal varints,
// header lines sorted by name, non-empty header names, a status in
// 100..999, Vary names canonical, sorted and unique, ordered times and no
// trailing bytes; so decoding then encoding gives b back.
//
// The returned entry's Body aliases b (capacity clipped, so appending to it
// never writes into b); header names and values are copied out of b. A
// response entry always has a non-nil Header.
func decodeEntry(b []byte, maxBody int) (*entry, error) {
	return decode(b, maxBody, useShared)
}

// decodeOwned is decodeEntry for an entry that one request alone will
// use: a response entry also gets [entry.spare], runs and flat, in the
// same allocation, and no Header until [entry.fillHeader] builds it, which
// the caller must do before it reads Header.
func decodeOwned(b []byte, maxBody int) (*entry, error) {
	return decode(b, maxBody, useOwned)
}

// entryUse is what a decoded entry is for, which decides what it carries
// beyond its fields.
type entryUse uint8

const (
	useShared entryUse = iota // read-only, no extras
	useOwned                  // one request's alone: entry.spare, runs and flat, Header built on demand
	useKept                   // kept decoded by a store: entry.runs and entry.flat
)

func decode(b []byte, maxBody int, use entryUse) (*entry, error) {
	if len(b) < len(entryMagic)+2 || string(b[:len(entryMagic)]) != entryMagic {
		return nil, fmt.Errorf("%w: no magic", errBadEntry)
	}
	if v := b[len(entryMagic)]; v != entryVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", errBadEntry, v, entryVersion)
	}
	d := decoder{b: b, off: len(entryMagic) + 2, use: use}
	var e *entry
	switch kind := entryKind(b[len(entryMagic)+1]); kind {
	case kindResponse:
		e = d.response(maxBody)
	case kindVary:
		e = &entry{Kind: kind}
		d.vary(e)
	default:
		return nil, fmt.Errorf("%w: kind %d", errBadEntry, kind)
	}
	var ns [4]int64
	for i := range ns {
		ns[i] = d.varint()
	}
	if d.err == nil && !(ordered(ns[0], ns[1]) && ordered(ns[1], ns[2]) && ordered(ns[2], ns[3])) {
		d.fail("times out of order")
	}
	if d.err == nil && d.off != len(b) {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	e.StoredAt, e.FreshUntil, e.SWRUntil, e.StaleUntil = fromUnixNano(ns[0]), fromUnixNano(ns[1]), fromUnixNano(ns[2]), fromUnixNano(ns[3])
	return e, nil
}

// inlineValues is how many header values a decoded response entry holds in
// its own allocation ([entryValues]); more take a slice of their own.
const inlineValues = 8

// entryValues is a decoded response entry with room for its header values,
// so that most decodes allocate one object for both.
type entryValues struct {
	entry
	values [inlineValues]string
}

// ownedValues is entryValues with room for the Age and Cache-Status
// values and the runs of up to inlineValues fields too: the allocation of
// an entry decoded for one request alone.
type ownedValues struct {
	entryValues
	spare [2]string
	runs  [inlineValues]headerRun
}

// entryDecoder is the [decoded.Decoder] of entries, for stores that keep
// decoded values in process ([decoded.Getter]). Such a store shares
// the *entry it returns between requests and keeps it while its copy
// lives: the entry, its Header and their slices, and its Body (which
// aliases the stored bytes) are read-only, as every entry is once built.
// Equal decoders (same maxBody) share decoded entries.
type entryDecoder struct{ maxBody int }

// Decode decodes b with [decodeEntry]; the weight is the entry's
// [entry.decodedWeight].
func (d entryDecoder) Decode(b []byte) (any, int, error) {
	e, err := decode(b, d.maxBody, useKept)
	if err != nil {
		return nil, 0, err
	}
	e.kept = true
	return e, e.decodedWeight(), nil
}

// decodedWeight estimates the bytes a decoded entry holds beyond the
// encoded bytes its Body aliases: the entry itself, the header map with its
// names, values and value slices, and the Vary names.
func (e *entry) decodedWeight() int {
	const mapSlot = 48 // a map slot and its share of the map's overhead
	w := int(unsafe.Sizeof(*e)) + mapSlot
	values := 0
	for name, vs := range e.Header {
		values += len(vs)
		w += mapSlot + len(name) + len(vs)*int(unsafe.Sizeof(""))
		for _, v := range vs {
			w += len(name) + len(v) // the shared section repeats the name on every line
		}
	}
	if e.Kind == kindResponse {
		// Decoded responses come with room for inlineValues values, and
		// may keep a hitMemo with its two strings (Age and Cache-Status).
		w += max(inlineValues-values, 0) * int(unsafe.Sizeof(""))
		w += int(unsafe.Sizeof(hitMemo{})) + 16 + 64
	}
	for _, n := range e.VaryHeaders {
		w += int(unsafe.Sizeof("")) + len(n)
	}
	return w + cap(e.runs)*int(unsafe.Sizeof(headerRun{}))
}

// decoder reads b from off; the first error sticks and every later read
// returns zero values.
type decoder struct {
	b   []byte
	off int
	err error
	use entryUse
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d", errBadEntry, what, d.off)
	}
}

// uvarint reads a minimal uvarint.
func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 || n != uvarintLen64(v) {
		d.fail("bad uvarint")
		return 0
	}
	d.off += n
	return v
}

// varint reads a minimal varint.
func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 || n != uvarintLen64(zigzag(v)) {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return v
}

// length reads a uvarint length and checks it against the bytes that remain
// and against limit (negative: none).
func (d *decoder) length(limit int) int {
	v := d.uvarint()
	if d.err != nil {
		return 0
	}
	if v > uint64(len(d.b)-d.off) || limit >= 0 && v > uint64(limit) {
		d.fail("length out of range")
		return 0
	}
	return int(v)
}

// bytes reads a length-prefixed byte string, aliasing b.
func (d *decoder) bytes() []byte {
	n := d.length(-1)
	if d.err != nil {
		return nil
	}
	s := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return s
}

// response decodes the fields of a kindResponse entry into a new entry,
// which it allocates only once the header section and the body length
// are valid (nil when they are not).
//
// Header strings come from one string conversion of the whole header
// section, the values of all names share one []string (in the entry's
// allocation when there are at most [inlineValues]), and the map is made
// once with its final size: a decode costs a constant number of
// allocations whatever the number of lines.
func (d *decoder) response(maxBody int) *entry {
	if len(d.b)-d.off < 2 {
		d.fail("truncated status")
		return nil
	}
	status := int(binary.BigEndian.Uint16(d.b[d.off:]))
	if status < 100 || status > 999 {
		d.fail("status out of range")
		return nil
	}
	d.off += 2
	lines := d.length(maxHeaders)
	// Each line takes at least two bytes, so this check bounds the []string
	// below by the input before it is allocated.
	if d.err == nil && lines > (len(d.b)-d.off)/2 {
		d.fail("header lines exceed the input")
	}
	if d.err != nil {
		return nil
	}

	// First pass: validate the section, count distinct names (lines are
	// sorted by name, so a name's lines are adjacent).
	start := d.off
	names := 0
	var prev []byte
	for i := range lines {
		name := d.bytes()
		d.bytes()
		if d.err != nil {
			return nil
		}
		switch c := bytes.Compare(prev, name); {
		case len(name) == 0:
			d.fail("empty header name")
			return nil
		case i > 0 && c > 0:
			d.fail("header lines not sorted")
			return nil
		case i == 0 || c < 0:
			names++
		}
		prev = name
	}
	end := d.off
	n := d.length(maxBody)
	if d.err != nil {
		return nil
	}
	bodyEnd := d.off + n

	// Second pass over the validated section: no checks can fail.
	var ev *entryValues
	var runs []headerRun
	if d.use == useOwned {
		ov := &ownedValues{entryValues: entryValues{entry: entry{Kind: kindResponse, Status: status}}}
		ov.entry.spare = &ov.spare
		ev, runs = &ov.entryValues, ov.runs[:0]
	} else {
		ev = &entryValues{entry: entry{Kind: kindResponse, Status: status}}
	}
	e := &ev.entry
	if d.use != useOwned {
		e.Header = make(http.Header, names)
	}
	if lines > 0 {
		section := string(d.b[start:end])
		values := ev.values[:min(lines, inlineValues)]
		if lines > inlineValues {
			values = make([]string, lines)
		}
		if d.use != useShared {
			if names > cap(runs) {
				runs = make([]headerRun, 0, names)
			}
			e.flat, e.runs = values[:lines:lines], runs
		}
		d.off = start
		first, runName := 0, ""
		for i := range lines {
			name := d.sectionString(section, start)
			values[i] = d.sectionString(section, start)
			if i > 0 && name != runName {
				e.addField(runName, values, first, i)
				first = i
			}
			runName = name
		}
		e.addField(runName, values, first, lines)
	}

	if n > 0 {
		e.Body = d.b[bodyEnd-n : bodyEnd : bodyEnd]
	}
	d.off = bodyEnd
	return e
}

// addField sets the decoded field name to values[start:end] (capacity
// clipped) in e.Header, if e has one yet, and records it in e.runs, if e
// has them.
func (e *entry) addField(name string, values []string, start, end int) {
	if e.Header != nil {
		e.Header[name] = values[start:end:end]
	}
	if e.runs != nil {
		e.runs = append(e.runs, headerRun{name: name, end: end})
	}
}

// fillHeader builds the Header of a response entry decoded without one
// (decodeOwned) from its runs: the map aliases flat, each field's values
// capacity clipped. It does nothing to an entry that has its Header.
func (e *entry) fillHeader() {
	if e.Header != nil || e.Kind != kindResponse {
		return
	}
	e.Header = make(http.Header, len(e.runs))
	setRuns(e.Header, e.runs, e.flat)
}

// sectionString reads a length-prefixed string that a first pass
// validated, as a substring of section (which starts at byte start
// of b).
func (d *decoder) sectionString(section string, start int) string {
	v, n := binary.Uvarint(d.b[d.off:])
	d.off += n
	s := section[d.off-start : d.off-start+int(v)]
	d.off += int(v)
	return s
}

// vary decodes the fields of a kindVary entry into e, in two passes like
// response: validate, then allocate exactly what the names need.
func (d *decoder) vary(e *entry) {
	count := d.length(maxHeaders)
	if d.err == nil && count > (len(d.b)-d.off)/2 {
		d.fail("vary names exceed the input")
	}
	if d.err != nil {
		return
	}
	start := d.off
	var prev []byte
	for i := range count {
		name := d.bytes()
		if d.err != nil {
			return
		}
		if !isCanonicalToken(name) {
			d.fail("vary name not canonical")
			return
		}
		if i > 0 && bytes.Compare(prev, name) >= 0 {
			d.fail("vary names not sorted and unique")
			return
		}
		prev = name
	}
	if count > 0 {
		section := string(d.b[start:d.off])
		d.off = start
		e.VaryHeaders = make([]string, count)
		for i := range e.VaryHeaders {
			e.VaryHeaders[i] = d.sectionString(section, start)
		}
	}
	if len(d.b)-d.off < 8 {
		d.fail("truncated nonce")
		return
	}
	e.Nonce = binary.BigEndian.Uint64(d.b[d.off:])
	d.off += 8
}

// isCanonicalToken reports whether b is a token that
// [http.CanonicalHeaderKey] leaves as it is: each letter upper case at the
// start and after "-", lower case elsewhere.
func isCanonicalToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	upper := true
	for _, c := range b {
		if !isTchar(c) {
			return false
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func uvarintLen(n int) int { return uvarintLen64(uint64(n)) }

func uvarintLen64(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// zigzag is the transformation binary.AppendVarint applies before encoding.
func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

// ordered reports whether encoded time a is not after b, the zero time (0)
// being the earliest.
func ordered(a, b int64) bool { return a == 0 || b != 0 && a <= b }

// unixNano encodes t; the zero time is 0.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromUnixNano decodes unixNano's result, in UTC.
func fromUnixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
