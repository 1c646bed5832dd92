package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// failKind says why a request failed.
type failKind uint8

const (
	failNone      failKind = iota
	failTimeout            // no answer within the client timeout
	failTransport          // connection refused, reset, ...
	failStatus             // a status other than 200
	failContract           // a 200 whose body breaks {"source","data"}
)

func (k failKind) String() string {
	switch k {
	case failNone:
		return "ok"
	case failTimeout:
		return "timeout"
	case failTransport:
		return "transport error"
	case failStatus:
		return "status"
	case failContract:
		return "broken contract"
	}
	return fmt.Sprintf("failKind(%d)", uint8(k))
}

// sample is one request as a client saw it.
type sample struct {
	at     time.Duration // start, since the drill's start
	lat    time.Duration
	status uint16 // 0 without a response
	fail   failKind
	key    int32 // the key's index
	// retryAfter: the answer had Retry-After; stale: its Cache-Status says
	// it came from a stale copy (a negative ttl).
	retryAfter, stale bool
}

// end is when the client had its answer (or gave up), since the drill's
// start. The drill counts a request in the phase and second it ended in: a
// request that hangs from the last moment of one phase into a fault is a
// victim of the fault.
func (s sample) end() time.Duration { return s.at + s.lat }

// load is the closed-loop clients of a drill.
type load struct {
	wg      sync.WaitGroup
	samples [][]sample                   // one slice per client, written only by its client
	seen    []map[string]map[string]bool // per client: key -> data values answered
}

// keyName is the i-th key the clients ask for.
func keyName(i int) string { return fmt.Sprintf("key-%02d", i) }

// startLoad starts cfg.clients clients that send GET /api/data/key-NN to base
// one after another until ctx ends. Client c asks for keys c, c+1, c+2 ...
// modulo cfg.keys, so every key is asked for at once from the start.
func startLoad(ctx context.Context, client *http.Client, base string, cfg config, t0 time.Time) *load {
	l := &load{samples: make([][]sample, cfg.clients), seen: make([]map[string]map[string]bool, cfg.clients)}
	for c := range cfg.clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			var out []sample
			seen := make(map[string]map[string]bool)
			for n := c; ctx.Err() == nil; n++ {
				key := keyName(n % cfg.keys)
				s, data, ok := do(ctx, client, base+"/api/data/"+key, key, t0)
				if !ok { // cut off by the drill's end: not a client's request
					break
				}
				s.key = int32(n % cfg.keys)
				out = append(out, s)
				if s.fail == failNone {
					if seen[key] == nil {
						seen[key] = make(map[string]bool)
					}
					seen[key][data] = true
				}
			}
			l.samples[c], l.seen[c] = out, seen
		}()
	}
	return l
}

// versions returns, after wait, how many different answers the clients got
// for each key. Every call to the primary source returns a new value (it
// carries the time of the fetch), so this counts the fetches whose answer
// reached a client, per key.
func (l *load) versions() map[string]int {
	all := make(map[string]map[string]bool)
	for _, seen := range l.seen {
		for key, vals := range seen {
			if all[key] == nil {
				all[key] = make(map[string]bool)
			}
			for v := range vals {
				all[key][v] = true
			}
		}
	}
	out := make(map[string]int, len(all))
	for k, v := range all {
		out[k] = len(v)
	}
	return out
}

// wait waits for the clients to stop and returns every sample, ordered by
// end time.
func (l *load) wait() []sample {
	l.wg.Wait()
	var all []sample
	for _, s := range l.samples {
		all = append(all, s...)
	}
	slices.SortFunc(all, func(a, b sample) int { return int(a.end() - b.end()) })
	return all
}

// do sends one request and checks the answer; its sample's at is the start
// time since t0. ok is false when the request was cut off because ctx ended.
func do(ctx context.Context, client *http.Client, url, key string, t0 time.Time) (s sample, data string, ok bool) {
	start := time.Now()
	s.at = start.Sub(t0)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		s.fail = failTransport
		return s, "", true
	}
	resp, err := client.Do(req)
	if err != nil {
		s.lat = time.Since(start)
		if ctx.Err() != nil {
			return s, "", false
		}
		var te interface{ Timeout() bool }
		if errors.As(err, &te) && te.Timeout() {
			s.fail = failTimeout
		} else {
			s.fail = failTransport
		}
		return s, "", true
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	s.lat = time.Since(start)
	s.status = uint16(resp.StatusCode)
	s.retryAfter = resp.Header.Get("Retry-After") != ""
	s.stale = strings.Contains(resp.Header.Get("Cache-Status"), "ttl=-")
	switch {
	case err != nil && ctx.Err() != nil:
		return s, "", false
	case err != nil:
		s.fail = failTransport
	case resp.StatusCode != http.StatusOK:
		s.fail = failStatus
	default:
		var ok bool
		if data, ok = contract(body, key); !ok {
			s.fail = failContract
		}
	}
	return s, data, true
}

// contract reports whether body is the documented data endpoint's answer
// for key: exactly {"source":"cache"|"primary","data":"Data for KEY ..."},
// and returns its data.
func contract(body []byte, key string) (string, bool) {
	var v struct {
		Source *string `json:"source"`
		Data   *string `json:"data"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil || dec.More() {
		return "", false
	}
	if v.Source == nil || v.Data == nil {
		return "", false
	}
	if *v.Source != "cache" && *v.Source != "primary" {
		return "", false
	}
	return *v.Data, strings.HasPrefix(*v.Data, "Data for "+key+" fetched at ")
}

// keyWatcher measures how long a restarted Redis takes to hold every key
// again: at least n cache entries under failsoft: (entries) and the n data
// keys key-00 ... (data), polling every 20 ms from start until close.
type keyWatcher struct {
	rdb  *redis.Client
	n    int
	data []string

	mu                    sync.Mutex
	entriesBack, dataBack time.Duration // -1 until seen
	entries, dataKeys     int           // last counts
	cancel                context.CancelFunc
	done                  chan struct{}
}

func newKeyWatcher(addr string, n int) *keyWatcher {
	w := &keyWatcher{
		rdb: redis.NewClient(&redis.Options{
			Addr: addr, DialTimeout: 200 * time.Millisecond,
			ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
			MaxRetries: -1, PoolSize: 1, DialerRetries: 1,
		}),
		n: n, entriesBack: -1, dataBack: -1,
	}
	for i := range n {
		w.data = append(w.data, keyName(i))
	}
	return w
}

// start starts polling; the clock starts now.
func (w *keyWatcher) start(ctx context.Context) {
	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan struct{})
	t0 := time.Now()
	go func() {
		defer close(w.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			entries, errE := w.rdb.Keys(ctx, "failsoft:[ev]:*").Result()
			data, errD := w.rdb.Exists(ctx, w.data...).Result()
			since := time.Since(t0)
			w.mu.Lock()
			if errE == nil {
				w.entries = len(entries)
				if w.entriesBack < 0 && len(entries) >= w.n {
					w.entriesBack = since
				}
			}
			if errD == nil {
				w.dataKeys = int(data)
				if w.dataBack < 0 && int(data) == w.n {
					w.dataBack = since
				}
			}
			both := w.entriesBack >= 0 && w.dataBack >= 0
			w.mu.Unlock()
			if both {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// close stops polling and closes the client. It is safe to call more than
// once.
func (w *keyWatcher) close() {
	if w.cancel != nil {
		w.cancel()
		<-w.done
	}
	w.rdb.Close()
}

func (w *keyWatcher) result() (entriesBack, dataBack time.Duration, entries, dataKeys int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.entriesBack, w.dataBack, w.entries, w.dataKeys
}
