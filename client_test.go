package failsoft

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// TestCacheClientKeepsSettings: the cache's client is built from the
// caller's options as they mean after go-redis' init, and only its own
// tuning differs.
func TestCacheClientKeepsSettings(t *testing.T) {
	tests := []struct {
		name string
		opt  redis.Options
	}{
		{"defaults", redis.Options{}},
		{"none", redis.Options{MaxRetries: -1, ReadTimeout: -1, WriteTimeout: -1, MinRetryBackoff: -1, MaxRetryBackoff: -1}},
		{"no deadline", redis.Options{ReadTimeout: -2, WriteTimeout: -2}},
		{"explicit", redis.Options{MaxRetries: 7, ReadTimeout: time.Second, WriteTimeout: 2 * time.Second, MinRetryBackoff: time.Millisecond, MaxRetryBackoff: time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt := tt.opt
			opt.Addr = "127.0.0.1:1"
			caller := redis.NewClient(&opt)
			defer caller.Close()
			cc, err := cacheClient(caller)
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			want, got := caller.Options(), cc.(*redis.Client).Options()
			if got.MaxRetries != want.MaxRetries || got.ReadTimeout != want.ReadTimeout || got.WriteTimeout != want.WriteTimeout ||
				got.MinRetryBackoff != want.MinRetryBackoff || got.MaxRetryBackoff != want.MaxRetryBackoff {
				t.Errorf("cache client: retries %d, timeouts %v/%v, backoff %v..%v; caller: %d, %v/%v, %v..%v",
					got.MaxRetries, got.ReadTimeout, got.WriteTimeout, got.MinRetryBackoff, got.MaxRetryBackoff,
					want.MaxRetries, want.ReadTimeout, want.WriteTimeout, want.MinRetryBackoff, want.MaxRetryBackoff)
			}
			if got.DialerRetries != 1 || !got.ContextTimeoutEnabled {
				t.Errorf("cache client tuning: DialerRetries %d, ContextTimeoutEnabled %v; want 1, true", got.DialerRetries, got.ContextTimeoutEnabled)
			}
			// Maintenance notifications off, so that the guard may run the
			// cache's calls inline (store.NewRedis); the caller's stay.
			if m := got.MaintNotificationsConfig; m == nil || m.Mode != maintnotifications.ModeDisabled {
				t.Errorf("cache client maintenance notifications %+v, want disabled", m)
			}
			if m := want.MaintNotificationsConfig; m == nil || m.Mode == maintnotifications.ModeDisabled {
				t.Errorf("caller's maintenance notifications %+v, want its default kept", m)
			}
		})
	}
}

func TestCacheClientKeepsClusterSettings(t *testing.T) {
	caller := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, MaxRedirects: -1, ReadTimeout: -1, MaxRetries: 5})
	defer caller.Close()
	cc, err := cacheClient(caller)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	want, got := caller.Options(), cc.(*redis.ClusterClient).Options()
	if got.MaxRedirects != want.MaxRedirects || got.ReadTimeout != want.ReadTimeout || got.WriteTimeout != want.WriteTimeout || got.MaxRetries != want.MaxRetries {
		t.Errorf("cache client: redirects %d, timeouts %v/%v, retries %d; caller: %d, %v/%v, %d",
			got.MaxRedirects, got.ReadTimeout, got.WriteTimeout, got.MaxRetries, want.MaxRedirects, want.ReadTimeout, want.WriteTimeout, want.MaxRetries)
	}
}
