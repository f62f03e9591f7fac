package upstream

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Error is an upstream answer that is not a usable result: a non-2xx status,
// or a 2xx whose body is not a file batch. [Client] methods return it as a
// *Error, so callers find it with errors.As.
type Error struct {
	// StatusCode is the HTTP status of the upstream answer.
	StatusCode int
	// Message, Type, Param and Code are the fields of the OpenAI error
	// envelope {"error":{...}}. They are empty, or nil for Param and Code,
	// when the body was not that envelope or the field was null.
	Message string
	Type    string
	Param   *string
	Code    *string
	// Body is a short excerpt of the raw body, kept when the body was not
	// the OpenAI error envelope, such as an HTML page from a proxy.
	Body string
	// Meta holds the request id and the forwarded headers of the answer.
	Meta Meta
	// RetryAfter is the delay the upstream asked for through retry-after-ms
	// or Retry-After, or zero when it sent neither.
	RetryAfter time.Duration
	// Err is the reason a 2xx answer could not be used, such as a JSON
	// syntax error or a missing field. It is nil for non-2xx answers.
	Err error

	// shouldRetry is the x-should-retry header, "true", "false" or empty.
	shouldRetry string
}

// Error returns the upstream message when there is one, and otherwise a
// description of the answer. It includes the status and the request id.
func (e *Error) Error() string {
	var what string
	switch {
	case e.Err != nil:
		what = "invalid response: " + e.Err.Error()
	case e.Message != "":
		what = e.Message
	case e.Body != "":
		what = strconv.Quote(e.Body)
	default:
		what = http.StatusText(e.StatusCode)
	}
	if e.Meta.RequestID == "" {
		return fmt.Sprintf("upstream: HTTP %d: %s", e.StatusCode, what)
	}
	return fmt.Sprintf("upstream: HTTP %d (request id %s): %s", e.StatusCode, e.Meta.RequestID, what)
}

// Unwrap returns the reason a 2xx answer could not be used, if any.
func (e *Error) Unwrap() error { return e.Err }

// Invalid reports whether the upstream answered 2xx with a body that is not
// a file batch, such as malformed JSON or an error object.
func (e *Error) Invalid() bool { return e.Err != nil }
