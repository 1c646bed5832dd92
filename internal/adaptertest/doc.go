// Package adaptertest is the test suite that every router adapter of
// failsoft (Gin, Echo v4, Echo v5) runs: the same cases, written once,
// against each framework.
//
// An adapter's test plugs its framework in with an [Adapter] (how to build a
// router, mount a wrapped middleware, register a handler written against
// [Ctx], and the few hooks where frameworks legitimately differ) and calls
// [Run], which runs every shared case as a named subtest. Only what is
// genuinely specific to one framework stays in the adapter's own tests.
//
// The package depends on the standard library, go-redis and failsoft's own
// packages only, never on a web framework: the root module names none. The
// cases that need Redis start a throwaway redis-server and skip where there
// is none (see internal/redistest).
package adaptertest
