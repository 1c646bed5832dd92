package store

import (
	"crypto/x509"
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestClientOptionsFromURL(t *testing.T) {
	tests := []struct {
		url      string
		addr     string
		user     string
		password string
		db       int
		tls      bool
	}{
		{"redis://localhost", "localhost:6379", "", "", 0, false},
		{"redis://:pw@10.0.0.1:6380/3", "10.0.0.1:6380", "", "pw", 3, false},
		{"rediss://app:s%40cret@cache.internal:6390/1", "cache.internal:6390", "app", "s@cret", 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			o, err := ClientOptionsFromURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if o.Addr != tt.addr || o.Username != tt.user || o.Password != tt.password || o.DB != tt.db {
				t.Errorf("options %s %q %q %d, want %s %q %q %d", o.Addr, o.Username, o.Password, o.DB,
					tt.addr, tt.user, tt.password, tt.db)
			}
			if o.DialerRetries != 1 {
				t.Errorf("DialerRetries = %d, want 1 (a refused connection fails fast)", o.DialerRetries)
			}
			if !o.ContextTimeoutEnabled {
				t.Error("ContextTimeoutEnabled is off")
			}
			if (o.TLSConfig != nil) != tt.tls {
				t.Fatalf("TLSConfig %v, want TLS %v", o.TLSConfig, tt.tls)
			}
			if tt.tls {
				if host := strings.Split(tt.addr, ":")[0]; o.TLSConfig.ServerName != host {
					t.Errorf("ServerName %q, want %q", o.TLSConfig.ServerName, host)
				}
				// The point of the function: a caller can trust a private CA,
				// and that changes no later result.
				o.TLSConfig.RootCAs = x509.NewCertPool()
				again, err := ClientOptionsFromURL(tt.url)
				if err != nil {
					t.Fatal(err)
				}
				if again.TLSConfig == o.TLSConfig || again.TLSConfig.RootCAs != nil {
					t.Error("options share their TLS config between calls")
				}
			}
		})
	}
}

// ClientOptionsFromURL rejects what NewClientFromURL rejects, with the same
// redacted errors.
func TestClientOptionsFromURLErrors(t *testing.T) {
	for _, raw := range []string{
		"http://:hunter2@localhost",
		"redis://:hunter2@localhost/16",
		"redis://:hunter2@localhost?bogus=1",
		"redis://:hun/ter2@localhost",
		"redis:localhost",
	} {
		t.Run(raw, func(t *testing.T) {
			_, err := ClientOptionsFromURL(raw)
			_, want := NewClientFromURL(raw)
			if err == nil || want == nil || err.Error() != want.Error() {
				t.Fatalf("ClientOptionsFromURL: %v; NewClientFromURL: %v; want the same error", err, want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "ter2") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// FuzzClientOptionsFromURL checks that ClientOptionsFromURL reads a URL as
// redis.ParseURL does, although it hands go-redis the URL with the password
// replaced and puts the password back: what it accepts, go-redis accepts,
// with the same options but for the two it sets on purpose; and what
// go-redis rejects, it rejects.
func FuzzClientOptionsFromURL(f *testing.F) {
	for _, seed := range []string{
		"redis://localhost:6379", "redis://", "redis://:s3cr3t@cache:6380",
		"redis://app:s%2F3%40cr%3Ft@cache/0", "redis://a%3Ab:c%3Ad@cache",
		"rediss://:s3cr3t@cache.example.com:6380/1?dial_timeout=2s&pool_size=7",
		"redis://u:p@[fe80::1%25en0]:7000/2", "redis://u:@h", "redis://u@h?client_name=api%40eu",
		"redis://u:p@@h:1", "redis://u:p@h//3", "redis://u:p@h?db=2&protocol=3",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := ClientOptionsFromURL(raw)
		want, wantErr := redis.ParseURL(raw)
		if err != nil {
			return // stricter than go-redis: a stray '@', a db over 15
		}
		if wantErr != nil {
			t.Fatalf("ClientOptionsFromURL(%q) accepts what redis.ParseURL rejects: %v", raw, wantErr)
		}
		want.ContextTimeoutEnabled = true
		want.DialerRetries = 1
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ClientOptionsFromURL(%q) = %+v, redis.ParseURL gives %+v", raw, got, want)
		}
	})
}
