package middleware

import (
	"hash/maphash"
	"sync/atomic"
)

// keyMemoSlots is the number of slots of a [keyMemo]: a power of two.
const keyMemoSlots = 1024

// keyMemoMaxMaterial bounds the material a [keyMemo] remembers, and so its
// memory: at most keyMemoSlots × (keyMemoMaxMaterial + a 45-byte key +
// 64 bytes of headers), about 370 KiB, whatever the requests.
const keyMemoMaxMaterial = 256

// keyMemo remembers the store keys of recently hashed key material, so that
// the requests for a popular URL find their primary key without hashing its
// material again: SHA-256 and base64 are about a sixth of an in-process hit.
//
// It is a direct-mapped table: a seeded [maphash] of the material picks one
// slot, which holds the last material hashed into it and its key. A slot is
// used only when its material equals the request's byte for byte, so a
// collision (or material chosen to collide) costs a SHA-256, never a wrong
// key. Slots are atomic pointers to immutable pairs: lookups take no lock,
// and concurrent fills of one slot leave one of the pairs, each correct.
type keyMemo struct {
	seed  maphash.Seed
	slots [keyMemoSlots]atomic.Pointer[memoKey]
}

// memoKey is one slot's content: material and hashKey(material).
type memoKey struct{ material, key string }

func newKeyMemo() *keyMemo { return &keyMemo{seed: maphash.MakeSeed()} }

// key returns [hashKeyBytes] of material, from the memo when it holds it.
func (m *keyMemo) key(material []byte) string {
	if len(material) > keyMemoMaxMaterial {
		return hashKeyBytes(material)
	}
	slot := &m.slots[maphash.Bytes(m.seed, material)&(keyMemoSlots-1)]
	if p := slot.Load(); p != nil && p.material == string(material) {
		return p.key
	}
	k := hashKeyBytes(material)
	slot.Store(&memoKey{material: string(material), key: k})
	return k
}
