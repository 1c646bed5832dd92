package middleware

import (
	"math/big"
	"strings"
	"testing"
	"time"
)

// FuzzParseAge checks the Age parser against exact oracles: a member is
// accepted iff it is a plain string of ASCII digits, and its value is the
// number it spells (math/big), capped at 2^31 seconds; a field line is read
// by its first non-empty comma-separated member, trimmed of SP and HTAB.
func FuzzParseAge(f *testing.F) {
	for _, s := range []string{"0", "100", "7200, 0", "0,7200", "-5", "7200.0", "abc", "", " , 5",
		"2147483648", "2147483649", "99999999999999999999999", "+1", "1e3", "0x10", "\t42 "} {
		f.Add(s)
	}
	limit := big.NewInt(int64(maxDelta / time.Second))
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ageSeconds(s)
		plain := s != "" && strings.Trim(s, "0123456789") == ""
		if ok != plain {
			t.Fatalf("ageSeconds(%q) ok = %v, want %v", s, ok, plain)
		}
		if plain {
			n, _ := new(big.Int).SetString(s, 10)
			if n.Cmp(limit) > 0 {
				n = limit
			}
			if want := time.Duration(n.Int64()) * time.Second; got != want {
				t.Fatalf("ageSeconds(%q) = %v, want %v", s, got, want)
			}
		} else if got != 0 {
			t.Fatalf("ageSeconds(%q) = %v for an invalid value", s, got)
		}

		if strings.Contains(s, `"`) {
			return // quoted strings are list syntax of their own
		}
		first, members := "", 0
		for _, m := range strings.Split(s, ",") {
			if m = strings.Trim(m, " \t"); m != "" {
				if members == 0 {
					first = m
				}
				members++
			}
		}
		age, present, valid := parseAge([]string{s})
		wantAge, wantValid := ageSeconds(first)
		if !present || valid != (members > 0 && wantValid) || age != wantAge {
			t.Fatalf("parseAge(%q) = %v, %v, %v; want %v, true, %v", s, age, present, valid, wantAge, members > 0 && wantValid)
		}
	})
}
