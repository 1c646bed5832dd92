// Package echov5 runs failsoft's net/http middleware (and any other
// func(http.Handler) http.Handler) inside an Echo v5 router. It is the Echo
// v5 twin of package echoadapter, with the same contract.
//
// [Wrap] turns a middleware into an [echo.MiddlewareFunc]. The middleware
// sees the response of the Echo handlers that follow it (status, headers and
// body), including the response the HTTPErrorHandler writes for an error they
// return, and can answer in their place: failsoft's response cache serves a
// hit or a stale copy where a handler failed with a 5xx, and failsoft's
// recovery turns a panic into 503 with Retry-After.
//
// # Order
//
// Register failsoft before the handlers it protects, with the recovery
// outermost of the two, exactly as in a net/http chain:
//
//	e := echo.New()
//	e.Use(echomw.Recover()) // optional; Echo's recovery outermost is fine
//	e.Use(echov5.Wrap(fs.Handler)) // fs from failsoft.New: recovery, then the cache
//	// or, piece by piece: e.Use(echov5.Wrap(middleware.Recover()), echov5.Wrap(cache.Handler))
//	e.GET("/api/data/:key", getData)
//
// Putting Echo's Recover after Wrap(Recover) hides every panic from
// failsoft, and the client gets Echo's 500 instead of a stale copy or 503.
//
// # Health handlers
//
// failsoft's health handlers are plain [http.Handler] values; mount them with
// [echo.WrapHandler], which is all they need:
//
//	e.GET("/livez", echo.WrapHandler(h.Livez()))
//	e.GET("/readyz", echo.WrapHandler(h.Readyz()))
//	e.GET("/healthz", echo.WrapHandler(h.Healthz()))
package echov5
