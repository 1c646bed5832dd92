// Package echoadapter runs failsoft's net/http middleware (and any other
// func(http.Handler) http.Handler) inside an Echo v4 router. Its
// subpackage echov5 does the same for Echo v5.
//
// [Wrap] turns a middleware into an [echo.MiddlewareFunc]. The middleware
// sees the response of the Echo handlers that follow it (status, headers and
// body), including the response Echo's HTTPErrorHandler writes for an error
// they return, and can answer in their place: failsoft's response cache
// serves a hit or a stale copy where a handler failed with a 5xx, and
// failsoft's recovery turns a panic into 503 with Retry-After.
//
// # Order
//
// Register failsoft before the handlers it protects, with the recovery
// outermost of the two, exactly as in a net/http chain:
//
//	e := echo.New()
//	e.Use(echomw.Recover()) // optional; Echo's recovery outermost is fine
//	e.Use(echoadapter.Wrap(fs.Handler)) // fs from failsoft.New: recovery, then the cache
//	// or, piece by piece: e.Use(echoadapter.Wrap(middleware.Recover()), echoadapter.Wrap(cache.Handler))
//	e.GET("/api/data/:key", getData)
//
// A panic in an Echo handler travels up through the wrapped middleware, so
// failsoft's recovery answers it first; Echo's Recover still catches panics
// raised outside the wrapped part of the chain. Putting Echo's Recover after
// Wrap(Recover) hides every panic from failsoft, and the client gets Echo's
// 500 instead of a stale copy or 503.
//
// # Health handlers
//
// failsoft's health handlers are plain [http.Handler] values; mount them with
// [echo.WrapHandler], which is all they need:
//
//	e.GET("/livez", echo.WrapHandler(h.Livez()))
//	e.GET("/readyz", echo.WrapHandler(h.Readyz()))
//	e.GET("/healthz", echo.WrapHandler(h.Healthz()))
package echoadapter
