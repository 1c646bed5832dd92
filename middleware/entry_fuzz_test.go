package middleware

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeEntry decodes arbitrary bytes, as a store may hand back: no
// panic, every error wraps errBadEntry, and what decodes is in the
// encoder's canonical form (re-encoding gives the input back) and decodes
// again to an equal entry; the decodes for one request alone (whose Header
// is built on demand) and to be kept accept and reject the same bytes and
// give the same entry.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeEntry(nil, sampleEntry()), 1<<20)
	f.Add(encodeEntry(nil, &entry{Kind: kindResponse, Status: 204}), 0)
	f.Add(encodeEntry(nil, &entry{Kind: kindVary, VaryHeaders: []string{"Accept", "Accept-Encoding"}, Nonce: 42}), 0)
	f.Add([]byte("FSC\x01\x01\x00\xc8\x02\x01A\x00\x01A\x01x\x00\x00\x00\x00\x00"), 0)
	f.Add([]byte("FSC\x02"), 0)
	f.Add([]byte{}, -1)
	f.Fuzz(func(t *testing.T, b []byte, maxBody int) {
		e, err := decodeEntry(b, maxBody)
		for _, use := range []entryUse{useOwned, useKept} {
			o, oerr := decode(b, maxBody, use)
			if (oerr == nil) != (err == nil) {
				t.Fatalf("use %d: error %v, shared decode's %v", use, oerr, err)
			}
			if oerr == nil {
				fromRuns := http.Header{}
				start := 0
				for _, r := range o.runs {
					fromRuns[r.name] = o.flat[start:r.end]
					start = r.end
				}
				if start != len(o.flat) {
					t.Fatalf("use %d: runs end at %d of %d values", use, start, len(o.flat))
				}
				o.fillHeader()
				if d := sameEntry(e, o); d != "" {
					t.Fatalf("use %d: differs from the shared decode: %s", use, d)
				}
				if d := sameEntry(e, &entry{Kind: e.Kind, Status: e.Status, Header: fromRuns, Body: e.Body,
					StoredAt: e.StoredAt, FreshUntil: e.FreshUntil, SWRUntil: e.SWRUntil, StaleUntil: e.StaleUntil,
					VaryHeaders: e.VaryHeaders, Nonce: e.Nonce}); e.Kind == kindResponse && d != "" {
					t.Fatalf("use %d: runs differ from the shared decode's Header: %s", use, d)
				}
			}
		}
		if err != nil {
			if !errors.Is(err, errBadEntry) {
				t.Fatalf("error does not wrap errBadEntry: %v", err)
			}
			if e != nil {
				t.Fatal("entry returned with an error")
			}
			return
		}
		if maxBody >= 0 && len(e.Body) > maxBody {
			t.Fatalf("body of %d bytes over maxBody %d", len(e.Body), maxBody)
		}
		if e.Kind == kindResponse && (e.Status < 100 || e.Status > 999) {
			t.Fatalf("status %d", e.Status)
		}
		again := encodeEntry(nil, e)
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, b)
		}
		e2, err := decodeEntry(again, maxBody)
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		if d := sameEntry(e, e2); d != "" {
			t.Fatalf("second decode differs: %s", d)
		}
	})
}

// FuzzEntryRoundTrip encodes entries built from arbitrary fields: every entry
// within the decoder's limits decodes to an equal entry.
func FuzzEntryRoundTrip(f *testing.F) {
	f.Add(uint8(kindResponse), 200, "Content-Type: text/plain\nX-A: 1\nX-A: 2", []byte("hello"), int64(1e18), int64(60e9), int64(30e9), int64(86400e9), uint64(0))
	f.Add(uint8(kindVary), 0, "Accept\nAccept-Encoding", []byte(nil), int64(0), int64(0), int64(0), int64(0), uint64(7))
	f.Fuzz(func(t *testing.T, kind uint8, status int, lines string, body []byte, stored, fresh, swr, stale int64, nonce uint64) {
		e := &entry{Kind: entryKind(kind)}
		switch e.Kind {
		case kindResponse:
			if status < 100 || status > 999 {
				return
			}
			e.Status = status
			e.Header = http.Header{}
			for line := range strings.SplitSeq(lines, "\n") {
				name, value, _ := strings.Cut(line, ":")
				if name == "" {
					continue
				}
				e.Header[name] = append(e.Header[name], value)
			}
			if count := len(strings.Split(lines, "\n")); count > maxHeaders {
				return
			}
			e.Body = body
		case kindVary:
			e.Nonce = nonce
			names := map[string]bool{}
			for line := range strings.SplitSeq(lines, "\n") {
				if isToken(line) {
					names[http.CanonicalHeaderKey(line)] = true
				}
			}
			for n := range names {
				e.VaryHeaders = append(e.VaryHeaders, n)
			}
			e.VaryHeaders = sortUnique(e.VaryHeaders)
			if len(e.VaryHeaders) > maxHeaders {
				return
			}
		default:
			return
		}
		// Ordered times; zero stays zero (the earliest).
		at := func(ns int64) time.Time {
			if ns == 0 {
				return time.Time{}
			}
			return time.Unix(0, ns)
		}
		ts := []int64{stored, stored + max(fresh, 0), stored + max(fresh, 0) + max(swr, 0), stored + max(fresh, 0) + max(swr, 0) + max(stale, 0)}
		for i := 1; i < len(ts); i++ {
			if ts[i] < ts[i-1] { // overflow
				return
			}
		}
		if stored != 0 && (ts[1] == 0 || ts[2] == 0 || ts[3] == 0) {
			return // a later time hit the epoch, which encodes as zero
		}
		e.StoredAt, e.FreshUntil, e.SWRUntil, e.StaleUntil = at(ts[0]), at(ts[1]), at(ts[2]), at(ts[3])

		b := encodeEntry(nil, e)
		got, err := decodeEntry(b, len(body))
		if err != nil {
			t.Fatalf("decodeEntry(encodeEntry(%+v)): %v", e, err)
		}
		if d := sameEntry(e, got); d != "" {
			t.Fatalf("round trip: %s", d)
		}
	})
}

// FuzzCanonicalToken checks the decoder's allocation-free canonical check
// against net/http's.
func FuzzCanonicalToken(f *testing.F) {
	for _, s := range []string{"Accept", "accept", "X-Foo-Bar", "X--A", "-a", "1a", "A B", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := isToken(s) && http.CanonicalHeaderKey(s) == s
		if got := isCanonicalToken([]byte(s)); got != want {
			t.Fatalf("isCanonicalToken(%q) = %v, want %v", s, got, want)
		}
	})
}
