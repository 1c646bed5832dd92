// Package health serves liveness, readiness and a detailed health report
// that know the state of failsoft's circuit breakers.
//
// A [Handler] answers three endpoints, each mountable on its own
// ([Handler.Livez], [Handler.Readyz], [Handler.Healthz]) or all through the
// Handler itself, which routes by the last element of the path:
//
//   - /livez is 200 while the process serves. It runs no check and never
//     touches Redis: restarting a replica does not bring Redis back, and
//     restarting every replica at once is a second outage.
//   - /readyz is 200 unless a check marked critical fails, then 503. A
//     breaker that is closed passes, half-open warns, and open warns (the
//     service still answers, from its in-process tier or its primary
//     source) unless the breaker was marked critical, when it fails. It
//     follows the Kubernetes conventions: ?verbose lists every check as
//     "[+]name ok" or "[-]name failed: reason", and ?exclude=name leaves one
//     out.
//   - /healthz is the detailed report in application/health+json
//     (draft-inadarei-api-health-check): an overall status pass, warn or
//     fail, and checks keyed "component:measurement" with the breakers'
//     states and counts, ping times and the response cache's counters. It is
//     200 for pass and warn, 503 for fail.
//
// Checks that do I/O (pings, [WithCheck] functions) run with a timeout and
// their results are cached for a short time, with one run at a time per
// check, so that a burst of probes costs at most one Redis PING per
// interval. A ping is not sent at all while the pinged store's breaker is
// open: the breaker's own half-open probe decides when Redis is back.
// Breaker states and cache counters are read on every request; they cost no
// I/O.
package health
