package store

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// newTestClient returns a go-redis client for addr that is closed when the
// test ends. It does not retry, so that an outage shows at once.
func newTestClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, DialerRetries: 1})
	t.Cleanup(func() { c.Close() })
	return c
}

// newTestRedis returns a Redis store over a client of srv.
func newTestRedis(t testing.TB, srv *redistest.Server, opts ...RedisOption) *Redis {
	t.Helper()
	s, err := NewRedis(newTestClient(t, srv.Addr()), opts...)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	return s
}

// pttl returns the server's PTTL reply for a raw key.
func pttl(t *testing.T, srv *redistest.Server, rawKey string) int {
	t.Helper()
	line, err := srv.Do("PTTL", rawKey)
	if err != nil {
		t.Fatalf("PTTL %s: %v", rawKey, err)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(line, ":"))
	if err != nil {
		t.Fatalf("PTTL %s: reply %q", rawKey, line)
	}
	return n
}

func TestRedisRoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	s := newTestRedis(t, srv)
	ctx := context.Background()
	tests := []struct {
		name  string
		key   string
		value []byte
	}{
		{name: "text", key: "a", value: []byte("hello")},
		{name: "empty", key: "b", value: []byte{}},
		{name: "binary", key: "c", value: []byte{0, '\r', '\n', 255}},
		{name: "large", key: "d", value: bytes.Repeat([]byte("x"), 1<<20)},
		{name: "odd key", key: "GET https://example.com/a b?c=d", value: []byte("v")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Set(ctx, tt.key, tt.value, time.Minute); err != nil {
				t.Fatalf("Set: %v", err)
			}
			got, err := s.Get(ctx, tt.key)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !bytes.Equal(got, tt.value) {
				t.Errorf("Get = %d bytes, want %d", len(got), len(tt.value))
			}
			got, ttl, err := s.GetTTL(ctx, tt.key)
			if err != nil {
				t.Fatalf("GetTTL: %v", err)
			}
			if !bytes.Equal(got, tt.value) || ttl <= 0 || ttl > time.Minute {
				t.Errorf("GetTTL = %d bytes, %v; want %d bytes, ttl in (0, 1m]", len(got), ttl, len(tt.value))
			}
			if line, _ := srv.Do("EXISTS", DefaultPrefix+tt.key); line != ":1" {
				t.Errorf("EXISTS %s%s = %q, want :1 (default prefix)", DefaultPrefix, tt.key, line)
			}
			if err := s.Delete(ctx, tt.key); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if _, err := s.Get(ctx, tt.key); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get after Delete: %v, want ErrNotFound", err)
			}
		})
	}
}

func TestRedisMiss(t *testing.T) {
	srv := redistest.Start(t)
	s := newTestRedis(t, srv)
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
	}{
		{name: "Get", call: func() error { _, err := s.Get(ctx, "missing"); return err }},
		{name: "GetTTL", call: func() error { _, _, err := s.GetTTL(ctx, "missing"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
			if c := Classify(err); c != ClassMiss {
				t.Errorf("Classify = %v, want miss", c)
			}
		})
	}
	if err := s.Delete(ctx, "missing"); err != nil {
		t.Errorf("Delete of a missing key: %v, want nil", err)
	}
}

func TestRedisTTL(t *testing.T) {
	srv := redistest.Start(t)
	s := newTestRedis(t, srv)
	ctx := context.Background()

	t.Run("set with ttl", func(t *testing.T) {
		if err := s.Set(ctx, "k", []byte("v"), 1500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if ms := pttl(t, srv, DefaultPrefix+"k"); ms <= 0 || ms > 1500 {
			t.Errorf("PTTL = %d ms, want in (0, 1500]", ms)
		}
		_, ttl, err := s.GetTTL(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 || ttl > 1500*time.Millisecond {
			t.Errorf("GetTTL ttl = %v, want in (0, 1.5s]", ttl)
		}
	})
	t.Run("sub-millisecond ttl", func(t *testing.T) {
		if err := s.Set(ctx, "tiny", []byte("v"), time.Microsecond); err != nil {
			t.Fatalf("Set: %v", err)
		}
	})
	t.Run("no expiry", func(t *testing.T) {
		if _, err := srv.Do("SET", DefaultPrefix+"forever", "v"); err != nil {
			t.Fatal(err)
		}
		v, ttl, err := s.GetTTL(ctx, "forever")
		if err != nil || string(v) != "v" || ttl != 0 {
			t.Errorf("GetTTL = %q, %v, %v; want v, 0 (no expiry), nil", v, ttl, err)
		}
	})
	t.Run("expires", func(t *testing.T) {
		if err := s.Set(ctx, "short", []byte("v"), 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := s.Get(ctx, "short")
			if errors.Is(err, ErrNotFound) {
				break
			}
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if time.Now().After(deadline) {
				t.Fatal("entry with a 50 ms ttl still there after 5 s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if ms := pttl(t, srv, DefaultPrefix+"short"); ms != -2 {
			t.Errorf("PTTL after expiry = %d, want -2", ms)
		}
	})
}

func TestRedisPrefix(t *testing.T) {
	srv := redistest.Start(t)
	client := newTestClient(t, srv.Addr())
	ctx := context.Background()
	a, err := NewRedis(client, WithPrefix("a:"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewRedis(client, WithPrefix("b:"))
	if err != nil {
		t.Fatal(err)
	}
	none, err := NewRedis(client, WithPrefix(""))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Set(ctx, "k", []byte("from a"), time.Minute); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		store   *Redis
		key     string
		want    string
		wantErr error
	}{
		{name: "same prefix", store: a, key: "k", want: "from a"},
		{name: "other prefix", store: b, key: "k", wantErr: ErrNotFound},
		{name: "no prefix sees the raw key", store: none, key: "a:k", want: "from a"},
		{name: "no prefix, bare key", store: none, key: "k", wantErr: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.store.Get(ctx, tt.key)
			if !errors.Is(err, tt.wantErr) || string(got) != tt.want {
				t.Errorf("Get = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	if err := b.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Get(ctx, "k"); err != nil || string(got) != "from a" {
		t.Errorf("a's entry after b deleted its own: %q, %v", got, err)
	}
	if got := a.Prefix(); got != "a:" {
		t.Errorf("Prefix() = %q, want a:", got)
	}
}

func TestRedisBadInput(t *testing.T) {
	srv := redistest.Start(t)
	s := newTestRedis(t, srv, WithMaxKeyBytes(8), WithMaxValueBytes(16))
	ctx := context.Background()
	tests := []struct {
		name  string
		key   string
		value []byte
		ttl   time.Duration
		want  error
	}{
		{name: "empty key", key: "", value: []byte("v"), ttl: time.Minute, want: ErrInvalidKey},
		{name: "key over limit", key: "123456789", value: []byte("v"), ttl: time.Minute, want: ErrInvalidKey},
		{name: "key at limit", key: "12345678", value: []byte("v"), ttl: time.Minute, want: nil},
		{name: "value over limit", key: "k", value: make([]byte, 17), ttl: time.Minute, want: ErrValueTooLarge},
		{name: "value at limit", key: "k", value: make([]byte, 16), ttl: time.Minute, want: nil},
		{name: "zero ttl", key: "k", value: []byte("v"), ttl: 0, want: ErrInvalidTTL},
		{name: "negative ttl", key: "k", value: []byte("v"), ttl: -time.Second, want: ErrInvalidTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Set(ctx, tt.key, tt.value, tt.ttl)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Set: %v, want %v", err, tt.want)
			}
			if tt.want != nil && Classify(err) != ClassInvalid {
				t.Errorf("Classify(%v) = %v, want invalid", err, Classify(err))
			}
			if tt.want == ErrInvalidKey {
				if _, err := s.Get(ctx, tt.key); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("Get: %v, want ErrInvalidKey", err)
				}
				if _, _, err := s.GetTTL(ctx, tt.key); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("GetTTL: %v, want ErrInvalidKey", err)
				}
				if err := s.Delete(ctx, tt.key); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("Delete: %v, want ErrInvalidKey", err)
				}
			}
		})
	}
	if line, _ := srv.Do("DBSIZE"); line != ":2" {
		t.Errorf("DBSIZE = %q, want :2 (only the two valid writes reached Redis)", line)
	}
}

func TestNewRedisErrors(t *testing.T) {
	var nilClient *redis.Client
	var nilCluster *redis.ClusterClient
	live := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { live.Close() })
	tests := []struct {
		name    string
		client  redis.UniversalClient
		opts    []RedisOption
		wantErr string
	}{
		{name: "nil", client: nil, wantErr: "nil redis client"},
		{name: "typed nil client", client: nilClient, wantErr: "nil redis client"},
		{name: "typed nil cluster", client: nilCluster, wantErr: "nil redis client"},
		{name: "bad option", client: live, opts: []RedisOption{WithMaxValueBytes(-1)}, wantErr: "max value bytes"},
		{name: "nil option", client: live, opts: []RedisOption{nil}, wantErr: "nil Option"},
		{name: "ok", client: live},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewRedis(tt.client, tt.opts...)
			if tt.wantErr == "" {
				if err != nil || s == nil {
					t.Fatalf("NewRedis = %v, %v; want a store", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewRedis: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	t.Run("zero value", func(t *testing.T) {
		var zero Redis
		if _, err := zero.Get(context.Background(), "k"); !errors.Is(err, ErrClosed) {
			t.Errorf("Get on the zero value: %v, want ErrClosed", err)
		}
	})
}

func TestRedisWrongType(t *testing.T) {
	srv := redistest.Start(t)
	s := newTestRedis(t, srv)
	ctx := context.Background()
	if line, err := srv.Do("HSET", DefaultPrefix+"h", "f", "v"); err != nil || line != ":1" {
		t.Fatalf("HSET = %q, %v", line, err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{name: "Get", call: func() error { _, err := s.Get(ctx, "h"); return err }},
		{name: "GetTTL", call: func() error { _, _, err := s.GetTTL(ctx, "h"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
				t.Fatalf("err = %v, want WRONGTYPE", err)
			}
			if c := Classify(err); c != ClassCommand {
				t.Errorf("Classify(%v) = %v, want command", err, c)
			}
			if IsUnavailable(err) {
				t.Errorf("IsUnavailable(%v) = true, want false", err)
			}
		})
	}
}

func TestRedisKilled(t *testing.T) {
	srv := redistest.Start(t)
	s := newTestRedis(t, srv)
	ctx := context.Background()
	if err := s.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	srv.Kill()
	tests := []struct {
		name string
		call func() error
	}{
		{name: "Get", call: func() error { _, err := s.Get(ctx, "k"); return err }},
		{name: "GetTTL", call: func() error { _, _, err := s.GetTTL(ctx, "k"); return err }},
		{name: "Set", call: func() error { return s.Set(ctx, "k", []byte("v"), time.Minute) }},
		{name: "Delete", call: func() error { return s.Delete(ctx, "k") }},
		{name: "Ping", call: func() error { return s.Ping(ctx) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("no error from a killed server")
			}
			if !strings.HasPrefix(err.Error(), "store: redis ") {
				t.Errorf("err = %q, want the store: redis prefix", err)
			}
			if !IsUnavailable(err) {
				t.Errorf("IsUnavailable(%v) = false (class %v), want true", err, Classify(err))
			}
		})
	}
}

func TestRedisPasswordNotInErrors(t *testing.T) {
	const password = "s3cr3t-p4ss"
	srv := redistest.Start(t)
	if line, err := srv.Do("CONFIG", "SET", "requirepass", "other-password"); err != nil || line != "+OK" {
		t.Fatalf("CONFIG SET requirepass = %q, %v", line, err)
	}
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: password, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	s, err := NewRedis(client)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(context.Background(), "k")
	if err == nil {
		t.Fatal("Get with a wrong password: no error")
	}
	if strings.Contains(err.Error(), password) {
		t.Errorf("error %q contains the password", err)
	}
	if c := Classify(err); c != ClassServer {
		t.Errorf("Classify(%v) = %v, want server (an auth failure)", err, c)
	}
}
