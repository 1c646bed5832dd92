package middleware

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func BenchmarkEncodeEntry(b *testing.B) {
	e := sampleEntry()
	buf := encodeEntry(nil, e)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf = encodeEntry(buf[:0], e)
	}
}

func BenchmarkEncodeEntryNewBuffer(b *testing.B) {
	e := sampleEntry()
	b.ReportAllocs()
	for b.Loop() {
		_ = encodeEntry(nil, e)
	}
}

func BenchmarkDecodeEntry(b *testing.B) {
	buf := encodeEntry(nil, sampleEntry())
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := decodeEntry(buf, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseCacheControl(b *testing.B) {
	h := http.Header{"Cache-Control": {"public, max-age=60, s-maxage=30, stale-while-revalidate=10, stale-if-error=86400"}}
	b.ReportAllocs()
	for b.Loop() {
		_ = parseCacheControl(h)
	}
}

func BenchmarkDefaultKeyHashed(b *testing.B) {
	r := httptest.NewRequest(http.MethodGet, "http://example.com/api/data/key-42?lang=en&fields=a,b&page=2", nil)
	b.ReportAllocs()
	for b.Loop() {
		_ = hashKey(DefaultKey(r))
	}
}

func BenchmarkVariantKey(b *testing.B) {
	r := httptest.NewRequest(http.MethodGet, "http://example.com/api/data/key-42", nil)
	r.Header.Set("Accept-Encoding", "gzip, deflate, br")
	r.Header.Set("Accept", "application/json")
	vary := []string{"Accept", "Accept-Encoding"}
	material := DefaultKey(r)
	b.ReportAllocs()
	for b.Loop() {
		_ = variantKey(material, 7, vary, r)
	}
}
