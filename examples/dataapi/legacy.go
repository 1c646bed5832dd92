package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// This file is the documented data endpoint written the way a legacy service
// writes it: it reads Redis directly, falls back to the slow primary source
// on a miss, and answers 500 when Redis fails. failsoft is wired around it in
// main.go; nothing here knows about failsoft.

// primary is the slow source of truth behind the cache (a database, an
// upstream API), simulated by a sleep.
type primary struct {
	latency time.Duration
	fetches prometheus.Counter
}

func (p *primary) fetch(key string) string {
	p.fetches.Inc()
	time.Sleep(p.latency)
	return fmt.Sprintf("Data for %s fetched at %s", key, time.Now().UTC().Format(time.RFC3339Nano))
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
		data := h.primary.fetch(key)
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
