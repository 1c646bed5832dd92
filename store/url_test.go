package store

import (
	"context"
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
// NewClientFromURL shows a password, however badly it is escaped.
func FuzzURLPasswordNeverLeaks(f *testing.F) {
	for _, seed := range []string{"s3cr3t", "s3/cr3t", "p@ss", "a#b?c", "%zz", "12/x", "pa ss", "sec\nret", "x:y:z"} {
		f.Add(seed, "host:6379/0")
	}
	f.Fuzz(func(t *testing.T, password, rest string) {
		const user = "redis://user:"
		raw := user + password + "@" + rest
		// Too short to tell from the rest of the URL, or part of it.
		if len(password) < 4 || strings.Contains(user+"@"+rest+redactedPassword, password) {
			t.Skip()
		}
		if got := RedactURL(raw); strings.Contains(got, password) {
			t.Errorf("RedactURL(%q) = %q shows the password", raw, got)
		}
		c, err := NewClientFromURL(raw)
		if err != nil {
			if strings.Contains(err.Error(), password) {
				t.Errorf("NewClientFromURL(%q): error %q shows the password", raw, err)
			}
			return
		}
		c.Close()
	})
}
