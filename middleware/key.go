package middleware

import (
	"net/http"
)

// Contract (bodies being written): cache keys.

// KeyFunc returns the primary cache key material for a request: the default
// is [DefaultKey]. The result is hashed before it reaches any store, so a
// request cannot choose or inject a store key. Returning "" bypasses the
// cache for that request.
type KeyFunc func(r *http.Request) string

// DefaultKey is the documented canonical form: "GET" for GET and HEAD (a HEAD
// is answered from a GET's entry), then the host lowercased without a
// default port (":80" for http, ":443" for https), then the escaped path,
// then the query with its parameters sorted by name (values of a repeated
// name keep their order), separated by "\n". The scheme is included when
// the request came over TLS. Headers such as X-Forwarded-Host are never
// part of the key.
func DefaultKey(r *http.Request) string { panic("todo") }

// hashKey returns the store key for key material: a fixed prefix and the
// base64url (unpadded) SHA-256 of material. Length is constant.
func hashKey(material string) string { panic("todo") }

// variantKey returns the store key of one variant: the hash of the primary
// material, the marker's nonce, and for each name in varyHeaders (canonical,
// sorted) the request's values of that header, whitespace-normalised and
// joined with ",".
func variantKey(material string, nonce uint64, varyHeaders []string, r *http.Request) string {
	panic("todo")
}

// parseVary returns the canonical, sorted, deduplicated header names in the
// response's Vary fields, and star=true when any is "*".
func parseVary(h http.Header) (names []string, star bool) { panic("todo") }
