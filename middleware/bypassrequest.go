// Requests the cache never handles although their method is GET or HEAD:
// those with a body, and those that override their method.

package middleware

import "net/http"

// hasRequestBody reports whether r carries a body (a "fat" GET or HEAD): a
// Content-Length above 0 (r.ContentLength, or a Content-Length field line
// other than "0"), any Transfer-Encoding (r.TransferEncoding or a field
// line), or an unknown length (-1) with a Body that is not nil or
// [http.NoBody]. A handler that reads such a body may answer from it, so
// its answer is neither served from nor stored in the cache.
func hasRequestBody(r *http.Request) bool {
	if r.ContentLength > 0 || len(r.TransferEncoding) > 0 {
		return true
	}
	if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
		return true
	}
	linesOf := lineLookup(r.Header) // one scan of the keys, not one per name
	if len(linesOf(r.Header, "Transfer-Encoding")) > 0 {
		return true
	}
	for _, v := range linesOf(r.Header, "Content-Length") {
		if trimOWS(v) != "0" {
			return true
		}
	}
	return false
}

// methodOverrideHeaders are the request headers with which frameworks let
// a GET act as another method (a DELETE, a PUT). A GET that carries one is
// not a safe request for such a handler, so the cache neither answers it
// from an entry (the handler's side effect would not happen) nor stores its
// answer.
var methodOverrideHeaders = [...]string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// overridesMethod reports whether r carries one of [methodOverrideHeaders].
func overridesMethod(r *http.Request) bool {
	if len(r.Header) == 0 {
		return false
	}
	linesOf := lineLookup(r.Header)
	for _, name := range methodOverrideHeaders {
		if len(linesOf(r.Header, name)) > 0 {
			return true
		}
	}
	return false
}
