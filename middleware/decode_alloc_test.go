package middleware

import (
	"encoding/binary"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// The decoder reads lengths and counts that come from the store: a corrupt
// or hostile entry may claim anything. These tests craft entries that claim
// huge lengths and check that decoding allocates in proportion to the bytes
// it was given (and the fixed limits), never to what the bytes claim.

// decodeAllocHeader returns an entry prefix: magic, version, kind, and for a
// response the status.
func decodeAllocHeader(kind entryKind) []byte {
	b := append([]byte(entryMagic), entryVersion, byte(kind))
	if kind == kindResponse {
		b = binary.BigEndian.AppendUint16(b, 200)
	}
	return b
}

func TestDecodeEntryClaimsBoundedAllocation(t *testing.T) {
	const maxBody = 1 << 20
	uv := binary.AppendUvarint
	lines := func(n int, nameLen, valueLen uint64) []byte {
		b := uv(decodeAllocHeader(kindResponse), uint64(n))
		for range n {
			b = uv(b, nameLen)
			b = append(b, 'A')
			b = uv(b, valueLen)
			b = append(b, 'v')
		}
		return b
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"line-count-2^63", uv(decodeAllocHeader(kindResponse), 1<<63)},
		{"line-count-max-headers-no-bytes", uv(decodeAllocHeader(kindResponse), maxHeaders)},
		{"line-count-over-max-headers", lines(maxHeaders+1, 1, 1)},
		{"name-length-2^62", lines(1, 1<<62, 1)},
		{"value-length-2^40", lines(1, 1, 1<<40)},
		{"body-length-2^62", uv(lines(0, 0, 0), 1<<62)},
		{"body-length-just-over-input", append(uv(lines(0, 0, 0), 100), make([]byte, 99)...)},
		{"body-over-max-body", append(uv(lines(0, 0, 0), maxBody+1), make([]byte, maxBody+1)...)},
		{"vary-count-2^63", uv(decodeAllocHeader(kindVary), 1<<63)},
		{"vary-name-length-2^62", append(uv(uv(decodeAllocHeader(kindVary), 1), 1<<62), 'A')},
		{"overlong-uvarint", append(decodeAllocHeader(kindResponse), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if e, err := decodeEntry(tt.b, maxBody); err == nil {
				t.Fatalf("decoded %+v", e)
			}
			// A failed decode costs its error and nothing that grows with
			// the claim (the input's own size included: even a body that
			// is really there is never copied).
			got := badAllocBytes(20, func() { _, _ = decodeEntry(tt.b, maxBody) })
			if got > 512 {
				t.Errorf("failed decode of %d bytes allocates %d bytes", len(tt.b), got)
			}
		})
	}
}

func TestDecodeEntryAllocationWithinInput(t *testing.T) {
	// A valid entry costs at most its header section once more (one string
	// for all names and values), the fixed per-line slots, and a constant:
	// the body aliases the input.
	const maxBody = 1 << 20
	for _, tc := range []struct {
		name     string
		lines    int
		valueLen int
		bodyLen  int
	}{
		{"big-body", 1, 10, maxBody},
		{"max-header-lines", maxHeaders, 100, 10},
		{"long-values", 16, 64 << 10, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &entry{Kind: kindResponse, Status: 200, Header: http.Header{}, Body: []byte(strings.Repeat("b", tc.bodyLen))}
			for i := range tc.lines {
				e.Header["X-H-"+strconv.Itoa(i)] = []string{strings.Repeat("v", tc.valueLen)}
			}
			b := encodeEntry(nil, e)
			section := len(b) - tc.bodyLen
			if _, err := decodeEntry(b, maxBody); err != nil {
				t.Fatal(err)
			}
			got := badAllocBytes(10, func() { _, _ = decodeEntry(b, maxBody) })
			// The section as one string (rounded up by the allocator: at
			// most an eighth for small size classes, 8 KiB pages for large
			// objects), a []string slot (16 bytes) and a map slot (up to
			// 96 bytes with the map's load factor) per line, and 1 KiB for
			// the entry and the map's fixed part. The body is not counted:
			// it aliases the input.
			limit := uint64(section + section/8 + 8<<10 + tc.lines*(16+96) + 1<<10)
			if got > limit {
				t.Errorf("decoding %d bytes (%d outside the body) allocates %d bytes, over %d", len(b), section, got, limit)
			}
			t.Logf("%d bytes (%d outside the body): %d bytes allocated", len(b), section, got)
		})
	}
}
