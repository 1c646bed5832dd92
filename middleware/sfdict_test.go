package middleware

import (
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func TestParseSFDict(t *testing.T) {
	tests := []struct {
		in   []string
		want string // the serialization; "!" means a parse error
	}{
		{[]string{""}, ""},
		{[]string{"   "}, ""},
		{[]string{"a"}, "a"},
		{[]string{"a=?1"}, "a"},
		{[]string{"a=?0"}, "a=?0"},
		{[]string{"  a=1 ,\tb=2  "}, "a=1, b=2"},
		{[]string{"a=1", "b=2"}, "a=1, b=2"},
		{[]string{"a=1, b=2, a=3"}, "a=3, b=2"},
		{[]string{"a;x;y=?0;x=2"}, "a;x=2;y=?0"},
		{[]string{"a=-999999999999999"}, "a=-999999999999999"},
		{[]string{"a=1000000000000000"}, "!"},
		{[]string{"a=0.5, b=-1.250, c=123456789012.123, d=0.0"}, "a=0.5, b=-1.25, c=123456789012.123, d=0.0"},
		{[]string{"a=1234567890123.1"}, "!"},
		{[]string{"a=1.1234"}, "!"},
		{[]string{"a=1."}, "!"},
		{[]string{"a=-"}, "!"},
		{[]string{`a="x\"y\\z", b=""`}, `a="x\"y\\z", b=""`},
		{[]string{`a="x\y"`}, "!"},
		{[]string{"a=\"\x01\""}, "!"},
		{[]string{`a="unterminated`}, "!"},
		{[]string{"a=tok:en/x*, b=*"}, "a=tok:en/x*, b=*"},
		{[]string{"a=:aGVsbG8=:, b=::"}, "a=:aGVsbG8=:, b=::"},
		{[]string{"a=:aGVsbG8:"}, "!"},
		{[]string{"a=:aGVsbG9=:"}, "!"},
		{[]string{"a=:a*:"}, "!"},
		{[]string{"a=@1659578233, b=@-1"}, "a=@1659578233, b=@-1"},
		{[]string{"a=@1.5"}, "!"},
		{[]string{`a=%"f%c3%bc%22%25"`}, `a=%"f%c3%bc%22%25"`},
		{[]string{`a=%"%C3%BC"`}, "!"},
		{[]string{`a=%"%ff"`}, "!"},
		{[]string{"a=(1 2;x \"s\");y, b=()"}, `a=(1 2;x "s");y, b=()`},
		{[]string{"a=(  1   2  )"}, "a=(1 2)"},
		{[]string{"a=(1,2)"}, "!"},
		{[]string{"a=(1"}, "!"},
		{[]string{"A=1"}, "!"},
		{[]string{"max-age =1"}, "!"},
		{[]string{"max-age= 1"}, "!"},
		{[]string{"a=1,"}, "!"},
		{[]string{",a=1"}, "!"},
		{[]string{"a=1,,b=2"}, "!"},
		{[]string{"a=1 b=2"}, "!"},
		{[]string{"a=?2"}, "!"},
		{[]string{"a=&"}, "!"},
		{[]string{"\ta"}, "!"},
		{[]string{"a=1", ""}, "!"},
		{[]string{strings.Repeat("a", maxSFBytes+1)}, "!"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.in, "|"), func(t *testing.T) {
			d, err := parseSFDict(tt.in)
			got := "!"
			if err == nil {
				got = d.String()
			}
			if got != tt.want {
				t.Errorf("parseSFDict(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzParseSFDict parses arbitrary field lines as a Dictionary. Oracle: no
// panic; an accepted value serializes to a string that parses back to the
// same dictionary and serializes the same again (parse → serialize → parse
// is stable); every key is a valid key; allocation stays linear in the
// input; and targetedDirectives never yields a negative or uncapped
// duration.
func FuzzParseSFDict(f *testing.F) {
	for _, s := range []string{
		"max-age=60, no-store", `no-cache="Set-Cookie", private;a=1`, "a=(1 2.5 \"x\" tok :AA==: ?0 @5 %\"%c3%bc\");p=?1",
		"max-age=10000, &&&&&", `max-age="10000"`, "a=1.", "a=-0.0",
	} {
		f.Add(s, "")
	}
	f.Add("a=1", "b=2")
	f.Fuzz(func(t *testing.T, line1, line2 string) {
		lines := []string{line1, line2}
		if line2 == "" {
			lines = lines[:1]
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		d, err := parseSFDict(lines)
		runtime.ReadMemStats(&after)
		// A generous linear bound: the join, the members and decoded strings.
		if n := after.TotalAlloc - before.TotalAlloc; n > uint64(64*(len(line1)+len(line2))+64<<10) {
			t.Fatalf("parsing %d bytes allocated %d bytes", len(line1)+len(line2), n)
		}
		if err != nil {
			return
		}
		ser := d.String()
		d2, err := parseSFDict([]string{ser})
		if err != nil {
			t.Fatalf("serialization %q of %q does not parse: %v", ser, lines, err)
		}
		if !reflect.DeepEqual(normSF(d), normSF(d2)) || d2.String() != ser {
			t.Fatalf("round trip changed %q:\n%q\n%q", lines, ser, d2.String())
		}
		for _, m := range d {
			if _, err := parseSFDict([]string{m.Key}); err != nil || strings.ContainsAny(m.Key, " =,;") {
				t.Fatalf("bad key %q", m.Key)
			}
		}
		if cc, ok := targetedDirectives(d); ok {
			for _, v := range []int64{int64(cc.MaxAge), int64(cc.SMaxAge), int64(cc.StaleWhileRevalidate), int64(cc.StaleIfError)} {
				if v < 0 || v > int64(maxDelta) {
					t.Fatalf("targeted %q: duration %v", lines, v)
				}
			}
		}
	})
}

// normSF makes empty parameter and inner lists nil, which serialize alike.
func normSF(d sfDict) sfDict {
	out := make(sfDict, len(d))
	for i, m := range d {
		if len(m.Item.Params) == 0 {
			m.Item.Params = nil
		}
		inner := make([]sfItem, len(m.Inner))
		for j, it := range m.Inner {
			if len(it.Params) == 0 {
				it.Params = nil
			}
			inner[j] = it
		}
		m.Inner = inner
		out[i] = m
	}
	return out
}
