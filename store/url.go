package store

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// maxURLDB is the highest database number NewClientFromURL accepts: a
// default redis-server has databases 0 to 15, and selecting one beyond fails
// every command with an error reply that is not an outage.
const maxURLDB = 15

// redactedPassword replaces a password in [RedactURL]'s output, as
// url.URL.Redacted does.
const redactedPassword = "xxxxx"

// NewClientFromURL builds a single-node go-redis client from a URL of the
// form
//
//	redis://[[user]:password@]host[:port][/db][?option=value&...]
//	rediss://...   (the same over TLS, verifying the server's name)
//
// The host defaults to localhost, the port to 6379 and db to 0; db must be
// 0 to 15. The query options are go-redis's (redis.ParseURL): dial_timeout,
// read_timeout, write_timeout, pool_size, max_retries, client_name,
// protocol, skip_verify (rediss only) and the rest; an unknown option is an
// error. Reserved characters in a user name, password or option value must
// be percent-encoded: an '@' outside the user info is an error.
//
// Unlike redis.ParseURL, the client honours context deadlines on socket
// reads and writes (ContextTimeoutEnabled), so that a deadline on a call's
// context bounds it, and it dials once per connection attempt
// (DialerRetries 1, go-redis' default is 5 attempts 100 ms apart), so that a
// server refusing connections is a fast failure, as the failure model says.
//
// A rediss:// client checks the server's certificate against the system's
// roots. For a server whose certificate a private CA signed, build the
// options with [ClientOptionsFromURL], add the CA to their TLSConfig.RootCAs
// and call redis.NewClient.
//
// Any other scheme, a malformed URL or a bad option is an error whose text
// never contains the password: the URL it quotes is redacted as by
// [RedactURL], and go-redis parses the URL with the password replaced, so
// the text does not depend on the password at all. No connection is made; the caller owns the client and closes
// it.
func NewClientFromURL(rawURL string) (redis.UniversalClient, error) {
	opts, err := ClientOptionsFromURL(rawURL)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opts), nil
}

// ClientOptionsFromURL parses a URL as [NewClientFromURL] does, under the
// same rules and with the same errors, and returns the options instead of a
// client, so that a caller can change them before calling redis.NewClient:
// typically, for a rediss:// URL, to trust a private CA
// (opts.TLSConfig.RootCAs) or present a client certificate
// (opts.TLSConfig.Certificates). For rediss:// the returned TLSConfig is
// non-nil, with ServerName set to the URL's host; for redis:// it is nil.
// ContextTimeoutEnabled is set and DialerRetries is 1. Each call returns new options that share
// nothing with earlier ones.
func ClientOptionsFromURL(rawURL string) (*redis.Options, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, malformedURLError(rawURL)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("store: redis URL %q: scheme must be redis or rediss", RedactURL(rawURL))
	}
	if strayAt(u) {
		return nil, malformedURLError(rawURL)
	}
	if u.Opaque != "" {
		return nil, fmt.Errorf("store: redis URL %q: want %s://host", RedactURL(rawURL), u.Scheme)
	}
	// go-redis reads the URL with its password replaced, so that none of
	// its errors can quote the password, whatever its version; the password
	// is put back in the options afterwards.
	opts, err := redis.ParseURL(withoutPassword(rawURL, u))
	if err != nil {
		return nil, fmt.Errorf("store: redis URL %q: %v", RedactURL(rawURL), err)
	}
	if p, ok := u.User.Password(); ok {
		opts.Password = p
	}
	if opts.DB < 0 || opts.DB > maxURLDB {
		return nil, fmt.Errorf("store: redis URL %q: database %d is outside 0-%d",
			RedactURL(rawURL), opts.DB, maxURLDB)
	}
	opts.ContextTimeoutEnabled = true
	opts.DialerRetries = 1
	return opts, nil
}

// strayAt reports whether a parsed URL has an '@' outside its user info,
// which in a Redis URL means a password with an unescaped '/', '?' or '#'
// that url.Parse took for the end of the authority: part of the password
// is then in the host, path, query or fragment.
func strayAt(u *url.URL) bool {
	return strings.Contains(u.Path, "@") || strings.Contains(u.RawQuery, "@") ||
		strings.Contains(u.Fragment, "@") || strings.Contains(u.Opaque, "@")
}

// malformedURLError describes a URL that url.Parse rejects. url.Parse's
// error quotes the whole URL, and its cause may quote part of it (an
// "invalid port" that is really the start of a password with a slash in
// it), so neither is used: the redacted URL is parsed again, and its error
// names the problem if the problem is outside the user info.
func malformedURLError(rawURL string) error {
	red := RedactURL(rawURL)
	if _, err := url.Parse(red); err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("store: malformed redis URL %q: %v", red, err)
	}
	return fmt.Errorf("store: malformed redis URL %q: check the user info: "+
		"reserved characters in a user name or password must be percent-encoded", red)
}

// withoutPassword returns rawURL, which parsed as u, with the password in
// its user info (if any) replaced by redactedPassword. The user name, host,
// path and query read back the same.
func withoutPassword(rawURL string, u *url.URL) string {
	if _, ok := u.User.Password(); !ok {
		return rawURL
	}
	v := *u
	v.User = url.UserPassword(u.User.Username(), redactedPassword)
	return v.String()
}

// RedactURL returns rawURL with its password replaced by "xxxxx", for logs
// and error messages. It also redacts a "password" query parameter. A URL
// that does not parse, or has an '@' outside its user info, is redacted by
// hand: everything between the first ':' after the scheme and the last '@'
// is replaced, so a password with unescaped reserved characters is hidden
// too (such a URL may be redacted more than needed, never less). A URL
// without a password is returned unchanged.
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Opaque != "" || strayAt(u) {
		return redactByHand(rawURL)
	}
	changed := false
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), redactedPassword)
			changed = true
		}
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", redactedPassword)
		u.RawQuery = q.Encode()
		changed = true
	}
	if !changed {
		return rawURL
	}
	return u.String()
}

// redactByHand redacts a URL that url.Parse rejects or reads as opaque.
func redactByHand(rawURL string) string {
	start := 0
	if i := strings.Index(rawURL, "://"); i >= 0 {
		start = i + len("://")
	}
	rest := rawURL[start:]
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return redactQueryByHand(rawURL)
	}
	colon := strings.Index(rest[:at], ":")
	if colon < 0 {
		return redactQueryByHand(rawURL)
	}
	return rawURL[:start] + rest[:colon+1] + redactedPassword + redactQueryByHand(rest[at:])
}

// redactQueryByHand replaces the value of a password= query parameter in a
// string that may not parse as a URL.
func redactQueryByHand(s string) string {
	const key = "password="
	for i := 0; ; {
		j := strings.Index(s[i:], key)
		if j < 0 {
			return s
		}
		j += i
		if j > 0 && s[j-1] != '?' && s[j-1] != '&' {
			i = j + len(key)
			continue
		}
		end := strings.IndexAny(s[j+len(key):], "&#")
		if end < 0 {
			end = len(s)
		} else {
			end += j + len(key)
		}
		s = s[:j+len(key)] + redactedPassword + s[end:]
		i = j + len(key) + len(redactedPassword)
	}
}
