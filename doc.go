// Package failsoft keeps a net/http service up when its Redis is not, in a
// few lines:
//
//	fs, err := failsoft.New(rdb, failsoft.WithDefaultTTL(time.Minute))
//	if err != nil {
//		return err
//	}
//	defer fs.Close()
//	mux.Handle("/health/", fs.Health())
//	return http.ListenAndServe(addr, fs.Then(mux))
//
// [New] assembles the recommended stack around the caller's go-redis client:
// a circuit breaker with a strict op timeout (one per node for a Redis
// Cluster), a go-redis hook on the caller's client so that the handlers' own
// Redis calls go through the same breaker and turn outages into misses, an
// in-process tier in front of Redis, the response cache
// ([middleware.Cache]), the recovery middleware ([middleware.Recover]) and
// breaker-aware health handlers ([health.Handler]). Every request the chain
// serves keeps the handler's contract: its status, headers and body, plus
// Age and Cache-Status on cached answers.
//
// The package only assembles: everything it builds is made of the packages
// store, middleware and health, and a service that needs wiring New does
// not offer (several caches over one breaker, a store other than Redis, a
// second cluster) builds the same parts itself.
package failsoft
