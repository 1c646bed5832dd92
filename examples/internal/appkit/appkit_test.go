package appkit

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string
	}{
		{name: "defaults", want: Config{Addr: "127.0.0.1:8080", PrimaryLatency: 500 * time.Millisecond}},
		{
			name: "set",
			env:  map[string]string{"ADDR": ":9000", "REDIS_URL": "redis://r:6379", "PRIMARY_LATENCY": "0s"},
			want: Config{Addr: ":9000", RedisURL: "redis://r:6379"},
		},
		{name: "latency without unit", env: map[string]string{"PRIMARY_LATENCY": "500"}, wantErr: "PRIMARY_LATENCY"},
		{name: "negative latency", env: map[string]string{"PRIMARY_LATENCY": "-1s"}, wantErr: "PRIMARY_LATENCY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConfigFromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestRedisOptions(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	tests := []struct {
		name     string
		url      string
		wantAddr string // prefix
		wantErr  string
	}{
		{name: "embedded", url: "", wantAddr: "127.0.0.1:"},
		{name: "URL", url: "redis://10.0.0.1:6380/2", wantAddr: "10.0.0.1:6380"},
		{name: "bad URL, password redacted", url: "http://user:s3cret@host", wantErr: "xxxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt, release, err := RedisOptions(tt.url, quiet)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("error %v, want one with %q and without the password", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			if !strings.HasPrefix(opt.Addr, tt.wantAddr) {
				t.Errorf("addr %q, want %s...", opt.Addr, tt.wantAddr)
			}
		})
	}
}
