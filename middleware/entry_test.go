package middleware

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// sameEntry reports how a and b differ, "" when they are equal: times by
// instant, a nil and an empty Header or Body alike.
func sameEntry(a, b *entry) string {
	switch {
	case a.Kind != b.Kind:
		return fmt.Sprintf("kind %d != %d", a.Kind, b.Kind)
	case a.Status != b.Status:
		return fmt.Sprintf("status %d != %d", a.Status, b.Status)
	case len(a.Header) != len(b.Header):
		return fmt.Sprintf("header %v != %v", a.Header, b.Header)
	case !bytes.Equal(a.Body, b.Body):
		return fmt.Sprintf("body %q != %q", a.Body, b.Body)
	case !a.StoredAt.Equal(b.StoredAt), !a.FreshUntil.Equal(b.FreshUntil),
		!a.SWRUntil.Equal(b.SWRUntil), !a.StaleUntil.Equal(b.StaleUntil):
		return fmt.Sprintf("times %v %v %v %v != %v %v %v %v",
			a.StoredAt, a.FreshUntil, a.SWRUntil, a.StaleUntil, b.StoredAt, b.FreshUntil, b.SWRUntil, b.StaleUntil)
	case !slices.Equal(a.VaryHeaders, b.VaryHeaders):
		return fmt.Sprintf("vary %q != %q", a.VaryHeaders, b.VaryHeaders)
	case a.Nonce != b.Nonce:
		return fmt.Sprintf("nonce %d != %d", a.Nonce, b.Nonce)
	}
	for k, v := range a.Header {
		if !slices.Equal(v, b.Header[k]) {
			return fmt.Sprintf("header %q: %q != %q", k, v, b.Header[k])
		}
	}
	return ""
}

// sampleEntry is a typical stored response: 1 KiB body, six headers.
func sampleEntry() *entry {
	now := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	e := &entry{
		Kind:   kindResponse,
		Status: http.StatusOK,
		Header: http.Header{
			"Content-Type":   {"application/json"},
			"Cache-Control":  {"public, max-age=60"},
			"Etag":           {`"abc123"`},
			"Vary":           {"Accept-Encoding"},
			"Last-Modified":  {"Sat, 01 Mar 2025 11:00:00 GMT"},
			"X-Request-Cost": {"3", "5"},
		},
		Body: bytes.Repeat([]byte("0123456789abcdef"), 64),
	}
	e.setLifetimes(now, 0, time.Minute, 30*time.Second, 24*time.Hour)
	return e
}

func TestEntryRoundTrip(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	local := time.Date(2025, 3, 1, 13, 0, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		e    *entry
	}{
		{"typical response", sampleEntry()},
		{"empty response", &entry{Kind: kindResponse, Status: 204}},
		{"status bounds low", &entry{Kind: kindResponse, Status: 100}},
		{"status bounds high", &entry{Kind: kindResponse, Status: 999}},
		{"empty header value", &entry{Kind: kindResponse, Status: 200, Header: http.Header{"X-Empty": {""}}}},
		{"values keep order", &entry{Kind: kindResponse, Status: 200, Header: http.Header{
			"Link": {"<a>; rel=next", "<b>; rel=prev", "<a>; rel=next"},
		}}},
		{"non-canonical name kept", &entry{Kind: kindResponse, Status: 200, Header: http.Header{"x-lower": {"1"}, "X-Lower": {"2"}}}},
		{"binary body and values", &entry{Kind: kindResponse, Status: 200,
			Header: http.Header{"X-Bin": {"\x00\xff\r\n"}}, Body: []byte{0, 1, 2, 0xff}}},
		{"long value", &entry{Kind: kindResponse, Status: 200, Header: http.Header{"X-Long": {strings.Repeat("v", 300)}}}},
		{"max headers", &entry{Kind: kindResponse, Status: 200, Header: http.Header{"X-Many": slices.Repeat([]string{"v"}, maxHeaders)}}},
		{"times in another zone", &entry{Kind: kindResponse, Status: 200,
			StoredAt: local, FreshUntil: local, SWRUntil: local.Add(time.Second), StaleUntil: local.Add(time.Hour)}},
		{"times before 1970", &entry{Kind: kindResponse, Status: 200,
			StoredAt: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), FreshUntil: time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC),
			SWRUntil: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), StaleUntil: time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"zero time is earliest", &entry{Kind: kindResponse, Status: 200, StaleUntil: time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"vary marker", &entry{Kind: kindVary, VaryHeaders: []string{"Accept", "Accept-Encoding"}, Nonce: 1<<64 - 1,
			StoredAt: now, FreshUntil: now, SWRUntil: now, StaleUntil: now.Add(time.Hour)}},
		{"vary marker without names", &entry{Kind: kindVary}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encodeEntry(nil, tt.e)
			got, err := decodeEntry(b, 1<<20)
			if err != nil {
				t.Fatalf("decodeEntry: %v", err)
			}
			if d := sameEntry(tt.e, got); d != "" {
				t.Fatalf("round trip: %s", d)
			}
			if tt.e.Kind == kindResponse && got.Header == nil {
				t.Error("decoded Header is nil")
			}
			if again := encodeEntry(nil, got); !bytes.Equal(again, b) {
				t.Errorf("re-encoding differs:\n%x\n%x", again, b)
			}
		})
	}
}

func TestEntryEncodeAppends(t *testing.T) {
	e := sampleEntry()
	prefix := []byte("prefix")
	b := encodeEntry(prefix, e)
	if !bytes.HasPrefix(b, prefix) {
		t.Fatalf("encodeEntry dropped dst: %q", b[:10])
	}
	if want := encodeEntry(nil, e); !bytes.Equal(b[len(prefix):], want) {
		t.Fatal("encoding after a prefix differs")
	}
	for range 10 { // map order must not show
		if again := encodeEntry(nil, e); !bytes.Equal(again, b[len(prefix):]) {
			t.Fatal("encoding is not deterministic")
		}
	}
}

func TestEntryZeroTime(t *testing.T) {
	b := encodeEntry(nil, &entry{Kind: kindResponse, Status: 200})
	if !bytes.HasSuffix(b, []byte{0, 0, 0, 0}) {
		t.Fatalf("zero times not encoded as 0: %x", b)
	}
	e, err := decodeEntry(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !e.StoredAt.IsZero() || !e.StaleUntil.IsZero() {
		t.Errorf("zero times decode as %v, %v", e.StoredAt, e.StaleUntil)
	}
}

func TestEntryBodyAliasing(t *testing.T) {
	b := encodeEntry(nil, &entry{Kind: kindResponse, Status: 200, Body: []byte("body"),
		StoredAt: time.Unix(1, 0), FreshUntil: time.Unix(2, 0), SWRUntil: time.Unix(3, 0), StaleUntil: time.Unix(4, 0)})
	orig := bytes.Clone(b)
	e, err := decodeEntry(b, 100)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(e.Body, "more bytes"...)
	if !bytes.Equal(b, orig) {
		t.Fatal("appending to the decoded body wrote into the input")
	}
	for i := range b { // header strings must not alias b
		b[i] = 'x'
	}
	_ = e
}

func TestEntryHeaderStringsCopied(t *testing.T) {
	b := encodeEntry(nil, &entry{Kind: kindResponse, Status: 200, Header: http.Header{"X-A": {"value"}}})
	e, err := decodeEntry(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	clear(b)
	if got := e.Header["X-A"]; len(got) != 1 || got[0] != "value" {
		t.Fatalf("header changed with the input: %q", e.Header)
	}
}

func TestEntryHeaderValuesIndependent(t *testing.T) {
	b := encodeEntry(nil, &entry{Kind: kindResponse, Status: 200, Header: http.Header{"A": {"1"}, "B": {"2"}}})
	e, err := decodeEntry(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.Header.Add("A", "appended")
	if got := e.Header["B"]; !slices.Equal(got, []string{"2"}) {
		t.Fatalf("appending to one name changed another: %q", e.Header)
	}
}

func TestEntryVersionMismatch(t *testing.T) {
	b := encodeEntry(nil, sampleEntry())
	for _, v := range []byte{0, entryVersion + 1, 0xff} {
		t.Run(fmt.Sprint("version ", v), func(t *testing.T) {
			c := bytes.Clone(b)
			c[len(entryMagic)] = v
			_, err := decodeEntry(c, 1<<20)
			if !errors.Is(err, errBadEntry) || !strings.Contains(err.Error(), "version") {
				t.Fatalf("err = %v, want a version error wrapping errBadEntry", err)
			}
		})
	}
}

func TestEntryTruncated(t *testing.T) {
	for _, e := range []*entry{sampleEntry(), {Kind: kindVary, VaryHeaders: []string{"Accept"}, Nonce: 7}} {
		b := encodeEntry(nil, e)
		for n := range len(b) {
			if _, err := decodeEntry(b[:n], 1<<20); !errors.Is(err, errBadEntry) {
				t.Fatalf("kind %d truncated to %d of %d bytes: err = %v", e.Kind, n, len(b), err)
			}
		}
	}
}

// patch returns the encoding of e with f applied to it.
func patch(e *entry, f func(*entry)) []byte {
	f(e)
	return encodeEntry(nil, e)
}

func TestEntryRejects(t *testing.T) {
	resp := func() *entry { return &entry{Kind: kindResponse, Status: 200} }
	good := encodeEntry(nil, resp())
	headerStart := len(entryMagic) + 2 + 2
	tests := []struct {
		name    string
		b       []byte
		maxBody int
		want    string
	}{
		{"empty", nil, 0, "magic"},
		{"wrong magic", append([]byte("XSC"), good[3:]...), 0, "magic"},
		{"unknown kind", append([]byte("FSC\x01\x03"), good[5:]...), 0, "kind"},
		{"kind zero", append([]byte("FSC\x01\x00"), good[5:]...), 0, "kind"},
		{"status 99", patch(resp(), func(e *entry) { e.Status = 99 }), 0, "status"},
		{"status 1000", patch(resp(), func(e *entry) { e.Status = 1000 }), 0, "status"},
		{"too many headers", patch(resp(), func(e *entry) {
			e.Header = http.Header{"X": slices.Repeat([]string{""}, maxHeaders+1)}
		}), 0, "length out of range"},
		{"header count beyond input", append(bytes.Clone(good[:headerStart]), 5, 0, 0, 0, 0, 0), 0, "exceed"},
		{"header count beyond maxHeaders", append(bytes.Clone(good[:headerStart]), 0x81, 0x02, 0, 0, 0, 0, 0), 0, "length out of range"},
		{"empty header name", patch(resp(), func(e *entry) { e.Header = http.Header{"": {"v"}} }), 0, "empty header name"},
		{"body over maxBody", patch(resp(), func(e *entry) { e.Body = []byte("12345") }), 4, "length out of range"},
		{"body length beyond input", append(bytes.Clone(good[:headerStart]), 0, 100, 'x'), 1000, "length out of range"},
		{"times out of order", patch(resp(), func(e *entry) {
			e.StoredAt, e.FreshUntil = time.Unix(10, 0), time.Unix(5, 0)
		}), 0, "order"},
		{"stale before swr", patch(resp(), func(e *entry) {
			e.SWRUntil, e.StaleUntil = time.Unix(10, 0), time.Unix(5, 0)
		}), 0, "order"},
		{"zero after a time", patch(resp(), func(e *entry) {
			e.StoredAt = time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)
		}), 0, "order"},
		{"trailing byte", append(bytes.Clone(good), 0), 0, "trailing"},
		{"non-minimal uvarint", append(bytes.Clone(good[:headerStart]), 0x80, 0x00, 0, 0, 0, 0, 0), 0, "uvarint"},
		{"uvarint overflow", append(bytes.Clone(good[:headerStart]), bytes.Repeat([]byte{0xff}, 11)...), 0, "uvarint"},
		{"non-minimal varint", append(bytes.Clone(good[:len(good)-4]), 0x80, 0x00, 0, 0, 0), 0, "varint"},
		{"vary not canonical", patch(&entry{Kind: kindVary}, func(e *entry) { e.VaryHeaders = []string{"accept"} }), 0, "canonical"},
		{"vary not a token", patch(&entry{Kind: kindVary}, func(e *entry) { e.VaryHeaders = []string{"A B"} }), 0, "canonical"},
		{"vary empty name", patch(&entry{Kind: kindVary}, func(e *entry) { e.VaryHeaders = []string{""} }), 0, "canonical"},
		{"vary unsorted", patch(&entry{Kind: kindVary}, func(e *entry) { e.VaryHeaders = []string{"Cookie", "Accept"} }), 0, "sorted"},
		{"vary duplicate", patch(&entry{Kind: kindVary}, func(e *entry) { e.VaryHeaders = []string{"Accept", "Accept"} }), 0, "sorted"},
		{"vary too many", patch(&entry{Kind: kindVary}, func(e *entry) {
			for i := range maxHeaders + 1 {
				e.VaryHeaders = append(e.VaryHeaders, fmt.Sprintf("X-%04d", i))
			}
		}), 0, "length out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := decodeEntry(tt.b, tt.maxBody)
			if !errors.Is(err, errBadEntry) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("decodeEntry = %+v, %v; want an error wrapping errBadEntry with %q", e, err, tt.want)
			}
			if e != nil {
				t.Fatal("entry returned with an error")
			}
		})
	}
}

func TestEntryUnsortedHeaderLines(t *testing.T) {
	// Hand-made: two lines, "B" before "A".
	b := []byte("FSC\x01\x01\x00\xc8\x02\x01B\x00\x01A\x00\x00\x00\x00\x00\x00")
	if _, err := decodeEntry(b, 0); !errors.Is(err, errBadEntry) || !strings.Contains(err.Error(), "sorted") {
		t.Fatalf("err = %v, want header lines not sorted", err)
	}
	// The same lines sorted decode.
	b = []byte("FSC\x01\x01\x00\xc8\x02\x01A\x00\x01B\x00\x00\x00\x00\x00\x00")
	e, err := decodeEntry(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Header) != 2 {
		t.Fatalf("header = %v", e.Header)
	}
	// A name's lines form one run, values in order.
	b = []byte("FSC\x01\x01\x00\xc8\x03\x01A\x01x\x01A\x01y\x01B\x00\x02hi\x02\x04\x04\x06")
	if e, err = decodeEntry(b, 2); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(e.Header["A"], []string{"x", "y"}) || !slices.Equal(e.Header["B"], []string{""}) || string(e.Body) != "hi" {
		t.Fatalf("decoded %q, body %q", e.Header, e.Body)
	}
}

func TestEntryMaxBody(t *testing.T) {
	b := encodeEntry(nil, &entry{Kind: kindResponse, Status: 200, Body: make([]byte, 10)})
	tests := []struct {
		name    string
		maxBody int
		ok      bool
	}{
		{"exact", 10, true},
		{"one short", 9, false},
		{"zero", 0, false},
		{"negative is no limit", -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeEntry(b, tt.maxBody)
			if (err == nil) != tt.ok {
				t.Fatalf("maxBody %d: err = %v, want ok=%v", tt.maxBody, err, tt.ok)
			}
		})
	}
}

func TestEntrySetLifetimes(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name                      string
		age, fresh, swr, sie      time.Duration
		wantStored                time.Duration // offset from now
		wantFresh, wantSWR, wantS time.Duration // offsets from now
	}{
		{"all windows", 0, time.Minute, time.Second, time.Hour, 0, time.Minute, time.Minute + time.Second, time.Minute + time.Hour},
		{"swr longer than sie", 0, time.Minute, time.Hour, time.Second, 0, time.Minute, time.Minute + time.Hour, time.Minute + time.Hour},
		{"nothing", 0, 0, 0, 0, 0, 0, 0, 0},
		{"negative is zero", -time.Minute, -time.Minute, -1, -1, 0, 0, 0, 0},
		{"an age backdates StoredAt", time.Hour, time.Minute, 0, 0, -time.Hour, time.Minute, time.Minute, time.Minute},
		{"the largest age", maxDelta, 0, 0, 0, -maxDelta, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &entry{Kind: kindResponse, Status: 200}
			e.setLifetimes(now, tt.age, tt.fresh, tt.swr, tt.sie)
			if !e.StoredAt.Equal(now.Add(tt.wantStored)) || !e.FreshUntil.Equal(now.Add(tt.wantFresh)) ||
				!e.SWRUntil.Equal(now.Add(tt.wantSWR)) || !e.StaleUntil.Equal(now.Add(tt.wantS)) {
				t.Fatalf("times %v %v %v %v", e.StoredAt, e.FreshUntil, e.SWRUntil, e.StaleUntil)
			}
			if _, err := decodeEntry(encodeEntry(nil, e), 0); err != nil {
				t.Fatalf("entry does not decode: %v", err)
			}
		})
	}
}

func TestEntryDecodeAllocs(t *testing.T) {
	b := encodeEntry(nil, sampleEntry())
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := decodeEntry(b, 1<<20); err != nil {
			t.Fatal(err)
		}
	})
	// The entry, the header section string, the values slice and the map.
	if allocs > 6 {
		t.Errorf("decodeEntry: %v allocations, want at most 6", allocs)
	}
}

func TestEntryDecodeAllocBound(t *testing.T) {
	// Inputs that claim more than they hold must fail before allocating for
	// the claim: a maxHeaders header count, a huge body length, a vary list.
	lying := func(prefix string, n uint64) []byte {
		return append(binary.AppendUvarint([]byte(prefix), n), make([]byte, 300)...)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"header count", lying("FSC\x01\x01\x00\xc8", maxHeaders)},
		{"body length", lying("FSC\x01\x01\x00\xc8\x00", 1<<40)},
		{"vary count", lying("FSC\x01\x02", maxHeaders)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			const runs = 100
			for range runs {
				if _, err := decodeEntry(tt.b, -1); err == nil {
					t.Fatal("decoded")
				}
			}
			runtime.ReadMemStats(&after)
			// The entry and the error: a constant, far less than
			// maxHeaders strings (4 KiB).
			if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 1024 {
				t.Errorf("%d bytes allocated per decode of %d bytes", per, len(tt.b))
			}
		})
	}
}

// TestEntryKeptFields checks that an entry decoded to be kept sets, through
// writeKept, exactly its header fields plus Age and Cache-Status, each
// field's values in order and in a slice of their own; that a shared
// decode carries no runs; and that an owned decode carries runs and no
// Header until fillHeader builds the same one.
func TestEntryKeptFields(t *testing.T) {
	headers := []http.Header{
		{},
		{"Content-Type": {"application/json"}},
		sampleEntry().Header,
		{"A": {"1"}, "B": {"2", "3", "4"}, "C": {""}, "D": {"5"}, "E": {"6", "7"}, "F": {"8"}}, // 9 values: past inlineValues
		{"Age": {"99"}, "Cache-Status": {"other"}, "X": {"y"}},                                 // stored ones are replaced
	}
	for i, h := range headers {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			e := sampleEntry()
			e.Header = h
			b := encodeEntry(nil, e)
			shared, err := decode(b, -1, useShared)
			if err != nil {
				t.Fatal(err)
			}
			if shared.runs != nil || shared.flat != nil {
				t.Errorf("shared: runs %v, flat %q; want none", shared.runs, shared.flat)
			}
			owned, err := decode(b, -1, useOwned)
			if err != nil {
				t.Fatal(err)
			}
			if owned.Header != nil {
				t.Errorf("owned: Header %q before fillHeader, want nil", owned.Header)
			}
			if got, want := len(owned.runs), len(h); got != want {
				t.Errorf("owned: %d runs, want %d", got, want)
			}
			owned.fillHeader()
			if owned.Header == nil || !reflect.DeepEqual(owned.Header, shared.Header) {
				t.Errorf("owned: Header %q after fillHeader, want %q", owned.Header, shared.Header)
			}
			for k, v := range owned.Header {
				if len(v) != cap(v) {
					t.Errorf("owned: %s has capacity %d over its %d values", k, cap(v), len(v))
				}
			}
			kept, err := decode(b, -1, useKept)
			if err != nil {
				t.Fatal(err)
			}
			if len(h) > 0 && kept.runs == nil {
				t.Fatal("a kept entry with header fields has no runs")
			}
			if kept.runs == nil {
				return // writeEntry walks the (empty) map
			}
			dst := http.Header{"Outer": {"kept"}}
			writeKept(dst, kept, "7", "fs; hit")
			want := http.Header{"Outer": {"kept"}}
			for k, v := range h {
				want[k] = v
			}
			want["Age"], want["Cache-Status"] = []string{"7"}, []string{"fs; hit"}
			if len(dst) != len(want) {
				t.Fatalf("fields %q, want %q", dst, want)
			}
			for k, v := range want {
				if !slices.Equal(dst[k], v) {
					t.Errorf("%s = %q, want %q", k, dst[k], v)
				}
				if got := dst[k]; len(got) != cap(got) {
					t.Errorf("%s: capacity %d over its %d values: an append would write into another field", k, cap(got), len(got))
				}
			}
			// Writing into the fields set must not reach the entry.
			for _, v := range dst {
				for j := range v {
					v[j] = "scribbled"
				}
			}
			for k, v := range h {
				if !slices.Equal(kept.Header[k], v) {
					t.Errorf("entry's %s = %q after a write into the served fields, want %q", k, kept.Header[k], v)
				}
			}
		})
	}
}
