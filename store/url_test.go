package store

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func TestNewClientFromURL(t *testing.T) {
	tests := []struct {
		name     string
		url      string
		addr     string
		user     string
		password string
		db       int
		tls      bool
		check    func(t *testing.T, o *redis.Options)
	}{
		{name: "host and port", url: "redis://localhost:6379", addr: "localhost:6379"},
		{name: "defaults", url: "redis://", addr: "localhost:6379"},
		{name: "password only", url: "redis://:s3cr3t@cache:6380", addr: "cache:6380", password: "s3cr3t"},
		{name: "user and password", url: "redis://app:s3cr3t@cache:6379/3", addr: "cache:6379", user: "app", password: "s3cr3t", db: 3},
		{name: "escaped password", url: "redis://app:s%2F3%40cr%3Ft@cache/0", addr: "cache:6379", user: "app", password: "s/3@cr?t"},
		{name: "highest db", url: "redis://cache/15", addr: "cache:6379", db: 15},
		{name: "db in query", url: "redis://cache?db=2", addr: "cache:6379", db: 2},
		{name: "tls", url: "rediss://:s3cr3t@cache.example.com:6380/1", addr: "cache.example.com:6380", password: "s3cr3t", db: 1, tls: true,
			check: func(t *testing.T, o *redis.Options) {
				if o.TLSConfig.ServerName != "cache.example.com" {
					t.Errorf("TLS ServerName = %q, want cache.example.com", o.TLSConfig.ServerName)
				}
			}},
		{name: "ipv6", url: "redis://[::1]:7000/2", addr: "[::1]:7000", db: 2},
		{name: "query options", url: "redis://cache?dial_timeout=2s&pool_size=7&client_name=api%40eu", addr: "cache:6379",
			check: func(t *testing.T, o *redis.Options) {
				if o.DialTimeout != 2*time.Second || o.PoolSize != 7 || o.ClientName != "api@eu" {
					t.Errorf("DialTimeout, PoolSize, ClientName = %v, %d, %q; want 2s, 7, api@eu",
						o.DialTimeout, o.PoolSize, o.ClientName)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClientFromURL(tt.url)
			if err != nil {
				t.Fatalf("NewClientFromURL(%q): %v", tt.url, err)
			}
			defer c.Close()
			rc, ok := c.(*redis.Client)
			if !ok {
				t.Fatalf("client is a %T, want *redis.Client", c)
			}
			o := rc.Options()
			if o.Addr != tt.addr || o.Username != tt.user || o.Password != tt.password || o.DB != tt.db {
				t.Errorf("Addr, Username, Password, DB = %q, %q, %q, %d; want %q, %q, %q, %d",
					o.Addr, o.Username, o.Password, o.DB, tt.addr, tt.user, tt.password, tt.db)
			}
			if (o.TLSConfig != nil) != tt.tls {
				t.Errorf("TLS = %v, want %v", o.TLSConfig != nil, tt.tls)
			}
			if !o.ContextTimeoutEnabled {
				t.Error("ContextTimeoutEnabled = false, want true")
			}
			if tt.check != nil {
				tt.check(t, o)
			}
		})
	}
}

func TestNewClientFromURLErrors(t *testing.T) {
	const secret = "s3cr3t"
	tests := []struct {
		name    string
		url     string
		wantErr string
	}{
		{name: "empty", url: "", wantErr: "scheme must be redis or rediss"},
		{name: "http", url: "http://user:" + secret + "@host", wantErr: "scheme must be redis or rediss"},
		{name: "unix", url: "unix://user:" + secret + "@/tmp/redis.sock", wantErr: "scheme must be redis or rediss"},
		{name: "no scheme", url: "user:" + secret + "@host:6379", wantErr: "scheme must be redis or rediss"},
		{name: "db too high", url: "redis://user:" + secret + "@host/16", wantErr: "database 16 is outside 0-15"},
		{name: "db too high in query", url: "redis://user:" + secret + "@host?db=99", wantErr: "database 99 is outside 0-15"},
		{name: "negative db", url: "redis://user:" + secret + "@host/-1", wantErr: "database -1 is outside 0-15"},
		{name: "db not a number", url: "redis://user:" + secret + "@host/abc", wantErr: "invalid database number"},
		{name: "two path segments", url: "redis://user:" + secret + "@host/1/2", wantErr: "invalid URL path"},
		{name: "bad port", url: "redis://user:" + secret + "@host:notaport/0", wantErr: "invalid port"},
		{name: "bad host", url: "redis://:" + secret + "@ho st:6379", wantErr: "invalid character"},
		{name: "unknown option", url: "redis://:" + secret + "@host?colour=blue", wantErr: "unexpected option: colour"},
		{name: "password as option", url: "redis://host?password=" + secret, wantErr: "unexpected option: password"},
		{name: "bad option value", url: "redis://:" + secret + "@host?dial_timeout=soon", wantErr: "invalid dial_timeout"},
		{name: "unescaped slash in password", url: "redis://user:" + secret + "/x@host:6379/0", wantErr: "percent-encoded"},
		{name: "unescaped slash, digits first", url: "redis://user:123/" + secret + "@host", wantErr: "percent-encoded"},
		{name: "unescaped hash in password", url: "redis://user:" + secret + "#x@host", wantErr: "percent-encoded"},
		{name: "unescaped question mark", url: "redis://user:" + secret + "?x@host", wantErr: "percent-encoded"},
		{name: "bad escape in password", url: "redis://user:" + secret + "%zz@host", wantErr: "percent-encoded"},
		{name: "control character", url: "redis://user:" + secret + "\n@host", wantErr: "percent-encoded"},
		{name: "unclosed ipv6", url: "redis://user:" + secret + "@[::1", wantErr: "missing ']'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClientFromURL(tt.url)
			if err == nil {
				c.Close()
				t.Fatalf("NewClientFromURL(%q): no error", tt.url)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantErr) {
				t.Errorf("error %q does not contain %q", msg, tt.wantErr)
			}
			if strings.Contains(msg, secret) {
				t.Errorf("error %q contains the password", msg)
			}
			if !strings.HasPrefix(msg, "store: ") {
				t.Errorf("error %q lacks the store: prefix", msg)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct {
		name string
		url  string
		want string
	}{
		{name: "no password", url: "redis://cache:6379/0", want: "redis://cache:6379/0"},
		{name: "user only", url: "redis://app@cache:6379", want: "redis://app@cache:6379"},
		{name: "password only", url: "redis://:s3cr3t@cache:6379", want: "redis://:xxxxx@cache:6379"},
		{name: "user and password", url: "rediss://app:s3cr3t@cache/2?dial_timeout=1s", want: "rediss://app:xxxxx@cache/2?dial_timeout=1s"},
		{name: "password query", url: "redis://cache?password=s3cr3t&db=1", want: "redis://cache?db=1&password=xxxxx"},
		{name: "malformed", url: "redis://app:s3/cr3t@cache", want: "redis://app:xxxxx@cache"},
		{name: "malformed query password", url: "redis://ca che?password=s3cr3t&db=1", want: "redis://ca che?password=xxxxx&db=1"},
		{name: "opaque", url: "app:s3cr3t@cache", want: "app:xxxxx@cache"},
		{name: "empty", url: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RedactURL(tt.url); got != tt.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tt.url, got, tt.want)
			}
		})
	}
}

func TestNewClientFromURLConnects(t *testing.T) {
	srv := redistest.Start(t)
	if line, err := srv.Do("CONFIG", "SET", "requirepass", "p@ss/w0rd"); err != nil || line != "+OK" {
		t.Fatalf("CONFIG SET requirepass = %q, %v", line, err)
	}
	tests := []struct {
		name    string
		url     string
		wantErr bool
	}{
		{name: "right password, db 2", url: "redis://:p%40ss%2Fw0rd@" + srv.Addr() + "/2"},
		{name: "wrong password", url: "redis://:nope@" + srv.Addr() + "/0?max_retries=-1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClientFromURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, err := NewRedis(c)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			err = s.Set(ctx, "k", []byte("v"), time.Minute)
			if tt.wantErr {
				if err == nil {
					t.Fatal("Set with a wrong password: no error")
				}
				if strings.Contains(err.Error(), "nope") {
					t.Errorf("error %q contains the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Set: %v", err)
			}
			if n, _ := c.Do(ctx, "CLIENT", "INFO").Text(); !strings.Contains(n, " db=2 ") {
				t.Errorf("CLIENT INFO = %q, want db=2", n)
			}
		})
	}
}

// FuzzURLPasswordNeverLeaks checks that neither RedactURL nor the error of
// NewClientFromURL (that is, of ClientOptionsFromURL) shows a password,
// however badly it is escaped.
//
// The oracle is non-interference, not a substring search: the same URL is
// run again with every byte of the password that the URL parsers do not
// treat specially replaced by another byte that they treat the same way
// (see substitutePassword), and both outputs must be identical. Had any
// part of the password reached an output, the two outputs would differ where
// it did; an output that merely contains the same bytes by coincidence (a
// password of "0000" and a host quoted as "\x100001", a password of
// "redis") is the same in both runs and passes.
func FuzzURLPasswordNeverLeaks(f *testing.F) {
	for _, seed := range []string{"s3cr3t", "s3/cr3t", "p@ss", "a#b?c", "%zz", "12/x", "pa ss", "sec\nret", "x:y:z"} {
		f.Add(seed, "host:6379/0")
	}
	f.Fuzz(func(t *testing.T, password, rest string) {
		const user = "redis://user:"
		raw := user + password + "@" + rest
		other := user + substitutePassword(password) + "@" + rest
		if got, want := RedactURL(raw), RedactURL(other); got != want {
			t.Errorf("RedactURL depends on the password:\n%q -> %q\n%q -> %q", raw, got, other, want)
		}
		if got, want := clientError(raw), clientError(other); got != want {
			t.Errorf("ClientOptionsFromURL's error depends on the password:\n%q -> %s\n%q -> %s", raw, got, other, want)
		}
	})
}

// clientError returns the error of ClientOptionsFromURL(rawURL) as text,
// "<nil>" if there is none. NewClientFromURL returns that error unchanged;
// it is not called here because redis.NewClient resolves the host name, and
// a fuzz target must not wait on DNS for a made-up host.
func clientError(rawURL string) string {
	if _, err := ClientOptionsFromURL(rawURL); err != nil {
		return "error: " + err.Error()
	}
	return "<nil>"
}

// substitutePassword returns a password of the same length in which each
// byte is replaced by another byte that net/url's user info rules treat
// alike: a digit by another digit, a hex letter by another hex letter of the
// same case (so an escape stays valid, or invalid), another letter by
// another letter of the same case, a sub-delimiter allowed in user info by
// another one, a printable byte that user info forbids by another one, a
// control byte by another control byte and a non-ASCII byte by another
// non-ASCII byte. The delimiters that decide where the password ends or how
// it is escaped ('/', '?', '#', '@', '%') are kept, so the substitute URL
// splits where the original does.
//
// Then a URL and its substitute take the same path through RedactURL and
// NewClientFromURL. Without '/', '?' or '#' the password lies wholly in the
// user info, which both accept or both reject. With one of them, bytes of
// the password may fall in the host, whose rules (an IPv6 literal, a zone)
// may accept one and reject the other; but both URLs are then redacted by
// hand either way (url.Parse fails, or the '@' is left stray in the path,
// query or fragment), and the output depends only on what follows the last
// '@'.
//
// Only the delimiters survive the substitution, so a leak of anything else
// of the password changes the output. The substitute also changes the value
// of every escape: "%41" becomes "%52", so the decoded password differs too.
func substitutePassword(p string) string {
	classes := [...]string{
		"0123456789",
		"abcdef", "ABCDEF",
		"ghijklmnopqrstuvwxyz", "GHIJKLMNOPQRSTUVWXYZ",
		"-._~!$&'()*+,;=:",
		" \"<>[\\]^`{|}",
	}
	b := []byte(p)
	for i, c := range b {
		switch {
		case c == '/' || c == '?' || c == '#' || c == '@' || c == '%':
		case c < 0x20:
			b[i] = (c + 1) % 0x20
		case c == 0x7f:
			b[i] = 0
		case c >= 0x80:
			b[i] = 0x80 + (c-0x80+1)%0x80
		default:
			for _, class := range classes {
				if j := strings.IndexByte(class, c); j >= 0 {
					b[i] = class[(j+1)%len(class)]
					break
				}
			}
		}
	}
	return string(b)
}

// TestSubstitutePassword checks the fuzz oracle's substitute: every byte but
// the five delimiters changes, and net/url treats the substitute alike in
// user info and in an escape there. (Host rules do not matter: see
// substitutePassword.)
func TestSubstitutePassword(t *testing.T) {
	for i := range 256 {
		c := string([]byte{byte(i)})
		s := substitutePassword(c)
		if len(s) != 1 {
			t.Fatalf("substitute of %q is %q", c, s)
		}
		if keep := strings.Contains("/?#@%", c); (s == c) != keep {
			t.Errorf("substitute of %q is %q", c, s)
		}
		for _, form := range []string{"redis://u:%s@h", "redis://u:%%%s0@h", "redis://u:%%0%s@h"} {
			_, err1 := url.Parse(fmt.Sprintf(form, c))
			_, err2 := url.Parse(fmt.Sprintf(form, s))
			if (err1 == nil) != (err2 == nil) {
				t.Errorf("%q parses as %v, its substitute %q as %v", fmt.Sprintf(form, c), err1, fmt.Sprintf(form, s), err2)
			}
		}
	}
}
