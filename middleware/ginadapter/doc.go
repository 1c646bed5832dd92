// Package ginadapter runs failsoft's net/http middleware (and any other
// func(http.Handler) http.Handler) inside a Gin router.
//
// [Wrap] turns a middleware into a [gin.HandlerFunc]. The middleware sees the
// response of the Gin handlers that follow it (status, headers and body, as
// written through [gin.Context]) and can answer in their place: failsoft's
// response cache serves a hit or a stale copy, and failsoft's recovery turns
// a panic into 503 with Retry-After.
//
// # Order
//
// Register failsoft before the handlers it protects, with the recovery
// outermost of the two, exactly as in a net/http chain:
//
//	r := gin.New()
//	r.Use(gin.Logger(), gin.Recovery()) // optional; gin.Recovery outermost is fine
//	r.Use(ginadapter.Wrap(fs.Handler)) // fs from failsoft.New: recovery, then the cache
//	// or, piece by piece: r.Use(ginadapter.Wrap(middleware.Recover()), ginadapter.Wrap(cache.Handler))
//	r.GET("/api/data/:key", getData)
//
// A panic in a Gin handler travels up through the wrapped middleware, so
// failsoft's recovery answers it before gin.Recovery would; gin.Recovery
// still catches panics raised outside the wrapped part of the chain. Putting
// gin.Recovery after Wrap(Recover) hides every panic from failsoft, and the
// client gets gin's bare 500 instead of a stale copy or 503.
//
// # Health handlers
//
// failsoft's health handlers are plain [http.Handler] values; mount them with
// [gin.WrapH], which is all they need:
//
//	r.GET("/livez", gin.WrapH(h.Livez()))
//	r.GET("/readyz", gin.WrapH(h.Readyz()))
//	r.GET("/healthz", gin.WrapH(h.Healthz()))
package ginadapter
