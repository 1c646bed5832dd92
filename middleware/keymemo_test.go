package middleware

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestKeyMemo checks that the memo returns hashKeyBytes of any material:
// more materials than slots (so slots are shared and replaced), materials
// a byte apart, and material past the memo's bound; asked twice each, in
// two orders.
func TestKeyMemo(t *testing.T) {
	m := newKeyMemo()
	var materials []string
	for i := range 4 * keyMemoSlots {
		materials = append(materials, fmt.Sprintf("GET\x00example.com\x00/api/data/%d", i))
	}
	materials = append(materials,
		"a", "b", "", "ab", "ba",
		strings.Repeat("x", keyMemoMaxMaterial), strings.Repeat("x", keyMemoMaxMaterial+1), strings.Repeat("y", 4096))
	for pass := range 2 {
		for i := range materials {
			if pass == 1 {
				i = len(materials) - 1 - i
			}
			mat := materials[i]
			for range 2 {
				if got, want := m.key([]byte(mat)), hashKeyBytes([]byte(mat)); got != want {
					t.Fatalf("key(%.40q) = %q, want %q", mat, got, want)
				}
			}
		}
	}
}

// TestKeyMemoConcurrent asks one memo from many goroutines for materials
// that share slots; every answer must be the material's own key (and -race
// must see no race).
func TestKeyMemoConcurrent(t *testing.T) {
	m := newKeyMemo()
	want := make(map[string]string)
	var materials []string
	for i := range 3 * keyMemoSlots {
		mat := fmt.Sprintf("/k/%d", i)
		materials = append(materials, mat)
		want[mat] = hashKeyBytes([]byte(mat))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 4 * len(materials) {
				mat := materials[(i*(g+1))%len(materials)]
				if got := m.key([]byte(mat)); got != want[mat] {
					errs <- fmt.Sprintf("key(%q) = %q, want %q", mat, got, want[mat])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestKeyMemoHitAllocs: a material the memo holds costs no allocation (a
// hashed key costs one, the key string).
func TestKeyMemoHitAllocs(t *testing.T) {
	m := newKeyMemo()
	mat := []byte("GET\x00example.com\x00/api/data/1")
	want := m.key(mat)
	if allocs := testing.AllocsPerRun(100, func() {
		if m.key(mat) != want {
			t.Fatal("wrong key")
		}
	}); allocs != 0 {
		t.Errorf("a memo hit allocates %v times, want 0", allocs)
	}
}
