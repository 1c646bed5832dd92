// Package middleware holds failsoft's net/http middleware: the response
// cache ([Cache]), Redis-failure recovery, and a ready-made chain in the
// recommended order. Every constructor has alice's shape.
//
// # The response cache
//
// [New] builds a [Cache] over a store.Store, normally a store.Tiered (an
// in-process tier) over a store.Guard (breaker and op timeout) over
// store.Redis; c.Handler wraps any handler, unchanged:
//
//	c, err := middleware.New(tiered, middleware.WithDefaultTTL(time.Minute))
//	...
//	defer c.Close()
//	http.Handle("/api/", alice.New(c.Handler).Then(api))
//
// What it caches. GET and HEAD (a HEAD is answered from a GET's entry; a
// HEAD miss is not stored, but a HEAD's 200 or 304 updates the stored GET
// response whose validators and length it matches, and makes it stale
// otherwise: RFC 9111 §4.3.5). Other methods pass through; one not known to
// be safe (anything but GET, HEAD, OPTIONS, TRACE, PROPFIND, REPORT, SEARCH
// and CONNECT: POST, PUT, PATCH, DELETE, PURGE, MKCOL, M-SEARCH, ...)
// answered 2xx or 3xx deletes the entries of its URL and of its Location
// and Content-Location on the same host (RFC 9111 §4.4) before the response
// completes. A response is stored by RFC 9111's rules for a shared cache:
// freshness comes from s-maxage, max-age, Expires (one that is not an
// HTTP-date means already expired), or [WithDefaultTTL] (default 0: a
// response that says nothing is not stored), or, with
// [WithHeuristicFreshness] (off by default), a fraction of the time since
// Last-Modified; with an explicit lifetime or public any final status the
// cache understands may be stored (302, 307, 403, ...), under the default
// TTL only 200, 203, 204, 300, 301, 404, 405, 410, 414 and 501; a 5xx (but
// 501) only under [WithServerErrors], never in place of another stored
// response; a status the cache does not know, 206 and 304 never;
// [WithStatuses] narrows this. Never a response with no-store (unless with
// must-understand, RFC 9111 §5.2.2.3), private, Set-Cookie or Vary: *, nor
// the answer to a request with Authorization unless the response says
// public, s-maxage, or must-revalidate with a max-age or Expires of its own
// (RFC 9111 §3.5). Fields named by a qualified private or no-cache, and
// hop-by-hop fields, are left out of the stored copy. A directive the
// parser cannot read cleanly ("private max-age=60" without its comma,
// "no_store") counts as the private, no-store or no-cache it names, and so
// does a Pragma: no-cache without Cache-Control.
//
// Targeted cache control (RFC 9213). The first of [WithTargetedFields]
// (default Failsoft-Cache-Control, then CDN-Cache-Control) that a response
// carries as a valid Structured Fields Dictionary replaces Cache-Control,
// Pragma and Expires for this cache; an invalid one is ignored as a whole.
// The response, its Cache-Control included, reaches the client unchanged.
//
// Keys. The key material comes from [WithKeyFunc] (default [DefaultKey]:
// method, scheme, host, and the path and query as sent, byte for byte;
// [SortedQueryKey] also merges reordered queries), plus the field lines of
// the forwarding headers a request carries ([DefaultKeyHeaders], such as
// X-Forwarded-Proto and X-Forwarded-Host; [WithKeyHeaders] adds more), and
// is hashed before it reaches the store; material longer than
// [WithMaxKeyBytes] bypasses the cache. A GET or HEAD with a body
// (Content-Length above 0, any Transfer-Encoding) or with a method-override
// header (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override) bypasses
// the cache: it is neither answered from nor stored in it. A response with Vary is stored under
// a variant key (the material, a random nonce and the request's values of
// the named headers) and a marker under the primary key; [Cache.Purge]
// deletes the marker, which orphans every variant.
//
// Answers. A fresh entry is served with the handler's status, header fields
// and body byte for byte; only Age and Cache-Status are added (the stored
// Date is kept). Age is the response's corrected initial age (RFC 9111
// §4.2.3: the larger of its age by Date and the Age it arrived with plus
// the handler's response time) plus the time stored; an Age whose first
// member is not a non-negative integer makes a response stale on arrival.
// A request's If-None-Match (weak comparison) or, without it,
// If-Modified-Since, is answered 304 from an entry with an ETag or, for
// If-Modified-Since, its Last-Modified or else its Date (RFC 9111 §4.3.2).
// Request directives: no-store bypasses the cache; no-cache, max-age=0 or
// a max-age or min-fresh the entry fails go to the handler (and may store
// its answer); only-if-cached without an entry answers 504. max-stale is
// not honoured.
//
// Stale entries. Within stale-while-revalidate (RFC 5861) a stale entry is
// served at once and one background refresh per key runs the handler
// (bounded by [WithMaxRefreshes] and [WithRefreshTimeout]; Close cancels
// refreshes). Beyond it the request goes to the handler; when the entry has
// a validator and the client sent no conditional header of its own, the
// handler gets If-None-Match or If-Modified-Since, and a 304 refreshes the
// stored entry's header fields and lifetimes (RFC 9111 §4.3.4) while the
// client gets the stored response; a 304 whose ETag or Last-Modified names
// another representation is not used, and the handler is asked again
// without validators. When the handler answers 500, 502, 503,
// 504 or another 5xx but 501, panics, or outlives [WithHandlerTimeout], a
// stale entry within its stale-if-error window (the response's own, else
// [WithStaleIfError], default 24 h; none with must-revalidate) answers
// instead; without one the failure passes on unchanged, a panic included
// (a panic value that is or wraps http.ErrAbortHandler, errors.Is, always
// passes on, in the cache as in [Recover]).
//
// Coalescing. Concurrent misses of one key call the handler once; the
// others wait, at most [WithCoalesceWait] and never past their own context,
// and get the leader's response when it is storable (an uncacheable answer
// goes to its own requester alone, and the others call the handler
// themselves). It is in-process, so it works while Redis is down.
//
// Writes. The response goes to the client first; the entry is stored by a
// background write, at most [WithMaxPendingWrites] at once (more are
// dropped and counted). Until a write is done this process reads the entry
// from its pending writes, so the next request is a hit. An entry's store
// TTL ends with its stale-if-error window (an entry with a validator is
// kept at least the default stale-if-error window, to be revalidated).
//
// Streaming. The handler writes into a buffer of up to [WithMaxBodyBytes]
// (default 1 MiB) so that a 5xx can still be replaced. A handler that
// flushes, hijacks, declares trailers or writes more than the limit streams
// through uncached from then on; its response cannot be shared or replaced.
//
// Failures of the store. A lookup error is a miss (counted in
// [Stats].StoreErrors, Cache-Status detail=store-error); an entry that does
// not decode is a miss, logged at Warn at most once a minute, and
// overwritten. The request's context is marked with store.TrackFailures, so
// that the guard and the go-redis hook can record a Redis failure the
// handler saw; a stale answer for such a request says so in its detail.
//
// # Cache-Status
//
// Every response the cache handles carries one Cache-Status member (RFC
// 9211) named by [WithName] (default "failsoft"):
//
//	failsoft; hit; ttl=42                               fresh entry (or 304 from it)
//	failsoft; hit; ttl=-5; detail=stale-while-revalidate stale entry served, refreshed in the background
//	failsoft; fwd=uri-miss; fwd-status=200; stored      no entry; the answer was stored
//	failsoft; fwd=vary-miss; fwd-status=200; stored     no entry for this variant
//	failsoft; fwd=stale; fwd-status=304; stored         stale entry revalidated by the handler
//	failsoft; fwd=request; fwd-status=200               the request asked for the handler (no-cache)
//	failsoft; fwd=miss; ...; detail=store-error         the lookup failed
//	failsoft; fwd=uri-miss; fwd-status=200; collapsed   answered by a concurrent request's handler call
//	failsoft; fwd=stale; fwd-status=500; ttl=-60; detail=stale-if-error
//	                                                    the handler failed; a stale entry answered
//	                                                    (detail also stale-if-panic, stale-if-timeout;
//	                                                    "-redis" appended when a Redis failure was seen)
//	failsoft; fwd=uri-miss; fwd-status=200; detail=streamed  the answer streamed through uncached
//	failsoft; fwd=bypass; detail=no-store|no-key        not handled by the cache
//	                                                    (also request-body, method-override)
//	failsoft; fwd=method                                another method
//
// A stale entry served without calling the handler is a hit with a negative
// ttl; a stale entry served because the handler failed is fwd=stale, since
// the request did go forward.
package middleware
