// Invalidation: requests of methods not known to be safe (RFC 9111 §4.4)
// and Purge.

package middleware

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// serveOther passes a request of another method through; a successful
// (2xx, 3xx) one of a method not known to be safe (see [safeMethod]) —
// POST, PUT, PATCH, DELETE, WebDAV's MKCOL, MOVE, PROPPATCH, ..., and any
// method the cache does not know, such as PURGE or M-SEARCH — invalidates
// what is stored for its URL and for its Location and Content-Location on
// the same host (RFC 9111 §4.4).
func (c *Cache) serveOther(w http.ResponseWriter, r *http.Request, next http.Handler) {
	c.st.bypasses.Add(1)
	w.Header()["Cache-Status"] = []string{c.cs.method}
	if safeMethod(r.Method) || r.Method == http.MethodConnect {
		// CONNECT is unsafe, but its target is an authority, never a URL
		// the cache keys, and its handler needs the server's writer for
		// the tunnel.
		next.ServeHTTP(w, r)
		return
	}
	cw := newPassthrough(w)
	next.ServeHTTP(cw, r)
	status := cw.finish(false).status
	if status == 0 {
		status = http.StatusOK
	}
	if status < 200 || status >= 400 {
		return
	}
	c.invalidate(r, w.Header())
}

// safeMethod reports whether method (case-sensitive, RFC 9110 §9.1) is
// known to be safe: GET, HEAD, OPTIONS and TRACE (RFC 9110 §9.2.1), and the
// other methods the IANA HTTP Method Registry marks safe: PROPFIND and
// REPORT (WebDAV, RFC 4918 and RFC 3253), SEARCH (RFC 5323) and PRI (the
// HTTP/2 connection preface, RFC 9113). Every other method, registered or
// not, may change the resource, so a successful answer to it invalidates
// (RFC 9111 §4.4: "including methods whose safety is unknown").
func safeMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		"PROPFIND", "REPORT", "SEARCH", "PRI":
		return true
	}
	return false
}

// invalidate deletes the entries of r's URL and of the same-host URLs that
// the response's Location and Content-Location name. The deletes run before
// the response completes, so that the client's next read sees them. A
// delete that fails is counted (StoreErrors); over a [store.PendingDeletes]
// one that an outage refused is kept and applied later.
func (c *Cache) invalidate(r *http.Request, h http.Header) {
	ctx := context.WithoutCancel(r.Context())
	targets := []*url.URL{r.URL}
	for _, name := range [...]string{"Location", "Content-Location"} {
		v := h.Get(name)
		if v == "" {
			continue
		}
		u, err := r.URL.Parse(v)
		if err != nil || (u.Host != "" && !strings.EqualFold(u.Host, r.Host)) {
			continue
		}
		targets = append(targets, &url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery})
	}
	done := make(map[string]bool, len(targets))
	for _, u := range targets {
		req := r.WithContext(ctx)
		req.Method, req.URL = http.MethodGet, u
		material := c.keyMaterial(req)
		if material == "" {
			continue
		}
		key := hashKey(material)
		if done[key] {
			continue
		}
		done[key] = true
		if err := c.w.invalidate(ctx, key); err != nil && c.log.debugOn(r.Context()) {
			c.log.DebugContext(r.Context(), "failsoft: invalidation failed", "path", u.Path, "err", err)
		}
	}
}

// Purge removes the entry of one URL, and with it every variant of the URL,
// from every tier of the store: it deletes the entry (or the Vary marker,
// whose nonce every variant key contains) under the key that a GET of
// rawURL has. rawURL must be absolute ("https://example.com/a?b=1"); the
// https scheme purges what requests that came over TLS stored. The request
// Purge keys carries no header, so it does not reach what requests with
// key headers stored (see [DefaultKeyHeaders]; behind a proxy that sets
// X-Forwarded-Proto, that is every entry): use [Cache.PurgeRequest] for
// those.
//
// Over a [store.Tiered] whose Redis store announces deletes
// ([store.WithInvalidationChannel], [store.WithBroadcast]), a purge reaches
// other replicas' in-process tiers within a round trip; otherwise when their
// coherence window ends. Over a [store.PendingDeletes], a purge that an
// outage refused returns an error wrapping [store.ErrDeletePending] and is
// applied when Redis is back, before the key is read from it again.
func (c *Cache) Purge(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("middleware: purge %q: not an absolute http(s) URL", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return fmt.Errorf("middleware: purge %q: %w", rawURL, err)
	}
	if u.Scheme == "https" {
		req.TLS = &tls.ConnectionState{}
	}
	return c.purge(ctx, req, rawURL)
}

// PurgeRequest is [Cache.Purge] for the key a GET like r has: its URL,
// Host, TLS and the key headers it carries (see [WithKeyHeaders]), read as
// the cache reads a request it serves, whatever r's method. It is how to
// purge what requests that came through a proxy stored: build r with the
// proxy's headers, such as X-Forwarded-Proto: https. The delete runs under
// r's context.
func (c *Cache) PurgeRequest(r *http.Request) error {
	if r == nil || r.URL == nil {
		return errors.New("middleware: purge: no request URL")
	}
	req := r.WithContext(r.Context())
	req.Method = http.MethodGet
	return c.purge(r.Context(), req, r.URL.String())
}

// purge deletes the entry that the GET req keys to; what names it in errors.
func (c *Cache) purge(ctx context.Context, req *http.Request, what string) error {
	material := c.keyMaterial(req)
	if material == "" {
		return fmt.Errorf("middleware: purge %q: the key function gives no key", what)
	}
	if err := c.w.invalidate(ctx, hashKey(material)); err != nil {
		return fmt.Errorf("middleware: purge %q: %w", what, err)
	}
	return nil
}
