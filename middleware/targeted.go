// The directives the cache follows for a response: targeted cache control
// (RFC 9213) over Cache-Control, Pragma where Cache-Control is absent, and
// restrictions read from fields that do not parse.

package middleware

import (
	"net/http"
	"strings"
	"time"
)

// DefaultTargetedFields returns the targeted cache-control fields (RFC 9213)
// a [Cache] obeys by default, highest precedence first: failsoft's own
// Failsoft-Cache-Control, which no other cache reads, then
// CDN-Cache-Control, which every CDN-like cache reads. See
// [WithTargetedFields].
func DefaultTargetedFields() []string {
	return []string{"Failsoft-Cache-Control", "CDN-Cache-Control"}
}

// responseCacheControl returns the directives the cache follows for a
// response with header h, given the targeted fields it obeys (canonical
// names, highest precedence first). targetedUsed reports that they came
// from a targeted field, so that Expires is to be ignored too.
//
// RFC 9213 §2.1: the first targeted field that is a valid, non-empty
// Structured Fields Dictionary ([targetedDirectives]) is used and
// Cache-Control, Pragma and Expires are ignored; a field that does not parse
// (or has a known directive of the wrong type) is ignored as a whole, except
// that a private, no-store or no-cache it names in any spelling still applies
// (see [cacheControl.sloppy]): it would have taken precedence had it been
// valid. Fields of lower precedence than the one used are ignored. One
// departure, on purpose: a private or no-store in Cache-Control still
// applies when a targeted field is used, since failsoft never shares what
// the origin called private or forbade to store (a no-cache or a lifetime
// there does give way, as RFC 9213 intends: "Cache-Control: no-cache" for
// browsers beside "CDN-Cache-Control: max-age=600" is cached).
//
// Without a usable targeted field, Cache-Control applies
// ([parseCacheControl]); when the response has no Cache-Control field at
// all, a Pragma that names no-cache (or private or no-store) in any spelling
// counts as that directive (RFC 9111 §5.4 leaves Pragma in responses
// undefined; an HTTP/1.0-era origin that sends it means "do not reuse").
func responseCacheControl(h http.Header, targeted []string) (cc cacheControl, targetedUsed bool) {
	var restrict cacheControl // what invalid targeted fields name
	for _, name := range targeted {
		lines := fieldLines(h, name)
		if len(lines) == 0 {
			continue
		}
		if d, err := parseSFDict(lines); err == nil && len(d) > 0 {
			if tc, ok := targetedDirectives(d); ok {
				tc.restrictFrom(restrict)
				// Nothing private is shared: Cache-Control's private and
				// no-store still bind, a deliberate departure from RFC
				// 9213 §2.1 (its no-cache and lifetimes do not).
				cc := parseCacheControl(h)
				tc.Private = tc.Private || cc.Private
				tc.NoStore = tc.NoStore || cc.NoStore
				return tc, true
			}
		}
		for _, l := range lines {
			restrict.sloppy(l)
		}
	}
	cc = parseCacheControl(h)
	if !hasField(h, "Cache-Control") {
		for _, l := range fieldLines(h, "Pragma") {
			cc.sloppy(l)
		}
	}
	cc.restrictFrom(restrict)
	return cc, false
}

// restrictFrom adds the private, no-store and no-cache of r to cc.
func (cc *cacheControl) restrictFrom(r cacheControl) {
	cc.Private = cc.Private || r.Private
	cc.NoStore = cc.NoStore || r.NoStore
	cc.NoCache = cc.NoCache || r.NoCache
}

// targetedDirectives maps a targeted field's dictionary to directives (RFC
// 9213 §2.2: a directive without a value is Boolean true, a delta-seconds
// an Integer, a field-name list a String). Parameters are ignored. ok is
// false, and the field is then invalid as a whole, when a known directive
// has a value of another type or a negative integer:
//   - max-age, s-maxage, stale-while-revalidate, stale-if-error: a
//     non-negative Integer, capped at 2^31 seconds;
//   - no-store, must-revalidate, proxy-revalidate, public, immutable,
//     no-transform: a Boolean (false: the directive is absent);
//   - no-cache, private: a Boolean, or a String of field names as in
//     Cache-Control (a String that names no valid field reads as the
//     unqualified directive).
//
// Unknown members are ignored, except that a name that mentions private,
// no-store or no-cache in another spelling (no_store) counts as that
// directive, as in Cache-Control.
func targetedDirectives(d sfDict) (cc cacheControl, ok bool) {
	for _, m := range d {
		v := m.Item.Value
		if m.IsInner {
			v = sfBare{} // no known directive takes a list
		}
		switch m.Key {
		case "max-age", "s-maxage", "stale-while-revalidate", "stale-if-error":
			if v.Kind != sfInteger || v.Int < 0 {
				return cacheControl{}, false
			}
			dur := maxDelta
			if v.Int < int64(maxDelta/time.Second) {
				dur = time.Duration(v.Int) * time.Second
			}
			switch m.Key {
			case "max-age":
				cc.MaxAge, cc.HasMaxAge = dur, true
			case "s-maxage":
				cc.SMaxAge, cc.HasSMaxAge = dur, true
			case "stale-while-revalidate":
				cc.StaleWhileRevalidate, cc.HasStaleWhileRevalidate = dur, true
			default:
				cc.StaleIfError, cc.HasStaleIfError = dur, true
			}
		case "no-store", "must-revalidate", "proxy-revalidate", "public", "immutable", "no-transform":
			if v.Kind != sfBoolean {
				return cacheControl{}, false
			}
			on := v.Int == 1
			switch m.Key {
			case "no-store":
				cc.NoStore = on
			case "must-revalidate":
				cc.MustRevalidate = on
			case "proxy-revalidate":
				cc.ProxyRevalidate = on
			case "public":
				cc.Public = on
			case "immutable":
				cc.Immutable = on
			default:
				cc.NoTransform = on
			}
		case "no-cache", "private":
			flag, fields := &cc.NoCache, &cc.NoCacheFields
			if m.Key == "private" {
				flag, fields = &cc.Private, &cc.PrivateFields
			}
			switch v.Kind {
			case sfBoolean:
				*flag = v.Int == 1
			case sfString:
				if names, ok := fieldNames(v.Str, true); ok {
					*fields = sortUnique(names)
				} else {
					*flag = true
				}
			default:
				return cacheControl{}, false
			}
		default:
			cc.sloppy(m.Key)
		}
	}
	return cc, true
}

// withoutField returns h without the lines of name (in any case), sharing
// the other lines' slices; h itself when it has none.
func withoutField(h http.Header, name string) http.Header {
	if !hasField(h, name) {
		return h
	}
	out := make(http.Header, len(h))
	for k, v := range h {
		if !strings.EqualFold(k, name) {
			out[k] = v
		}
	}
	return out
}
