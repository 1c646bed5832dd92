package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// This file is the documented data endpoint written the way a legacy service
// writes it: it reads Redis directly, falls back to the slow primary source
// on a miss, and answers 500 when Redis fails. failsoft is wired around it in
// main.go; nothing here knows about failsoft.

// primary is the slow source of truth behind the cache (a database, an
// upstream API), simulated by a sleep. Like a database with a bounded
// connection pool, it serves at most capacity fetches at once (0:
// unlimited): a fetch beyond that fails, after the same latency, with
// errOverloaded.
type primary struct {
	latency   time.Duration
	capacity  int
	fetches   prometheus.Counter
	overloads prometheus.Counter
	inFlight  atomic.Int64
	sleep     func(time.Duration) // time.Sleep; tests gate it
}

// errOverloaded is a fetch beyond the primary's capacity.
var errOverloaded = errors.New("primary: too many connections")

func (p *primary) fetch(key string) (string, error) {
	p.fetches.Inc()
	n := p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	sleep := p.sleep
	if sleep == nil {
		sleep = time.Sleep
	}
	sleep(p.latency)
	if p.capacity > 0 && n > int64(p.capacity) {
		p.overloads.Inc()
		return "", errOverloaded
	}
	return fmt.Sprintf("Data for %s fetched at %s", key, time.Now().UTC().Format(time.RFC3339Nano)), nil
}

// dataHandler serves GET /api/data/{key}.
type dataHandler struct {
	rdb     *redis.Client
	primary *primary
}

type dataResponse struct {
	Source string `json:"source"`
	Data   string `json:"data"`
}

func (h *dataHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	val, err := h.rdb.Get(r.Context(), key).Result()
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, dataResponse{Source: "cache", Data: val})
	case errors.Is(err, redis.Nil):
		data, err := h.primary.fetch(key)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		if err := h.rdb.Set(r.Context(), key, data, time.Hour).Err(); err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, dataResponse{Source: "primary", Data: data})
	default:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
