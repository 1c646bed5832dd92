package reliability

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/failsoft/failsoft/internal/redistest"
	"github.com/failsoft/failsoft/store"
)

// TestFaultTLS runs the store and the hook against a redis-server that
// serves TLS only, with a certificate signed by a throwaway CA made here.
func TestFaultTLS(t *testing.T) {
	files, roots := faultTLSFiles(t)
	faultRequireTLS(t)
	srv := redistest.StartConfig(t, redistest.Config{TLS: files})
	url := "rediss://" + srv.Addr()

	withRoots := func(t *testing.T) redis.UniversalClient {
		o, err := store.ClientOptionsFromURL(url)
		if err != nil {
			t.Fatal(err)
		}
		o.TLSConfig.RootCAs = roots
		o.DisableIdentity = true
		return redis.NewClient(o)
	}
	tests := []struct {
		name    string
		client  func(t *testing.T) redis.UniversalClient
		works   bool
		errText string // part of the error when it does not work
	}{
		{"client with the CA in TLSConfig.RootCAs", func(*testing.T) redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true,
				TLSConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}})
		}, true, ""},
		{"ClientOptionsFromURL(rediss://) plus the CA", withRoots, true, ""},
		// A private CA cannot be named in a URL: the system roots refuse it.
		{"NewClientFromURL(rediss://) alone", func(t *testing.T) redis.UniversalClient {
			c, err := store.NewClientFromURL(url)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}, false, "certificate"},
		// The escape hatch that works, and checks nothing.
		{"NewClientFromURL(rediss://...?skip_verify=true)", func(t *testing.T) redis.UniversalClient {
			c, err := store.NewClientFromURL(url + "?skip_verify=true")
			if err != nil {
				t.Fatal(err)
			}
			return c
		}, true, ""},
		// Plain text to a TLS port: the server never answers a command.
		{"plain-text client to the TLS port", func(*testing.T) redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true})
		}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.client(t)
			t.Cleanup(func() { c.Close() })
			g := faultGuard(t, c, "redis-tls", faultQuiet())
			ctx := context.Background()
			start := time.Now()
			err := g.Set(ctx, "tls:"+tt.name, []byte("v"), time.Minute)
			took := time.Since(start)
			if took > faultBounded { // the plain-text client would wait its 3 s read timeout
				t.Errorf("Set took %v, limit %v", took, faultBounded)
			}
			if !tt.works {
				if err == nil {
					t.Fatal("Set succeeded, want a failure")
				}
				if !store.IsUnavailable(err) {
					t.Errorf("Classify(%q) = %v, want an outage", err, store.Classify(err))
				}
				// go-redis retries a failed dial (5 times, 100 ms apart), so
				// through the guard a refused certificate shows as the op
				// timeout; the client's own error says why.
				var direct error
				if tt.errText != "" {
					pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
					direct = c.Ping(pctx).Err()
					cancel()
					if direct == nil || !strings.Contains(direct.Error(), tt.errText) {
						t.Errorf("client error %v does not mention %q", direct, tt.errText)
					}
				}
				t.Logf("TLS %s: guard %q -> %v; client: %v", tt.name, err, store.Classify(err), direct)
				return
			}
			if err != nil {
				t.Fatalf("Set over TLS: %v", err)
			}
			if v, err := g.Get(ctx, "tls:"+tt.name); err != nil || string(v) != "v" {
				t.Fatalf("Get over TLS: %q %v", v, err)
			}
		})
	}

	t.Run("hook and stack over TLS", func(t *testing.T) {
		c := withRoots(t)
		st := newFaultStackOn(t, c, faultQuiet())
		o, err := store.ClientOptionsFromURL(url)
		if err != nil {
			t.Fatal(err)
		}
		o.TLSConfig.RootCAs = roots
		legacyClient, hook := faultHookedClient(t, srv.Addr(), st.guard, o)
		legacy := faultLegacyHandler(legacyClient, 0, "tls value")
		for i, want := range []string{"primary", "cache"} {
			w, took := faultGet(legacy, "http://api.test/api/data/tls")
			if w.Code != http.StatusOK || faultSource(t, w) != want {
				t.Fatalf("request %d over TLS: %d %s, want source %s", i, w.Code, w.Body, want)
			}
			if took > faultBounded {
				t.Errorf("request %d took %v, limit %v", i, took, faultBounded)
			}
		}
		if hook.Dropped() != 0 || st.guard.Stats().Failures != 0 {
			t.Errorf("hook dropped %d writes, guard %+v; want none", hook.Dropped(), st.guard.Stats())
		}
		// The TLS server stops answering: the hook still bounds every call.
		srv.Pause()
		defer srv.Resume()
		for i := range 2 * faultTrips {
			w, took := faultGet(legacy, "http://api.test/api/data/tls-paused")
			if w.Code != http.StatusOK {
				t.Errorf("request %d with the TLS server paused: %d", i, w.Code)
			}
			if took > faultBounded { // unbounded: go-redis' 3 s read timeout
				t.Errorf("request %d with the TLS server paused took %v, limit %v", i, took, faultBounded)
			}
		}
		if s := st.guard.State(); s != store.StateOpen {
			t.Errorf("breaker %v with the TLS server paused, want open", s)
		}
	})
}

// faultRequireTLS fails (under CI=true) or skips the test when the
// redis-server binary was built without TLS. Debian's redis-server 7 links
// libssl; a build without it rejects the tls-* options at start-up.
func faultRequireTLS(t *testing.T) {
	t.Helper()
	bin := redistest.Binary(t)
	out, err := exec.Command("ldd", bin).Output()
	if err != nil || strings.Contains(string(out), "libssl") {
		return // statically linked or unknown: let the start-up tell
	}
	msg := "redistest: " + bin + " is built without TLS (it does not link libssl); " +
		"install a TLS build (Debian's redis-server has one) to run the TLS tests"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// faultTLSFiles writes a throwaway CA and a server certificate for
// 127.0.0.1 and localhost signed by it, and returns their files and a pool
// holding the CA.
func faultTLSFiles(t *testing.T) (*redistest.TLSFiles, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "failsoft test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	files := &redistest.TLSFiles{
		CAFile:   write("ca.crt", "CERTIFICATE", caDER),
		CertFile: write("server.crt", "CERTIFICATE", der),
		KeyFile:  write("server.key", "PRIVATE KEY", keyDER),
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return files, pool
}
