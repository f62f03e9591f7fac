package fakeupstream

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// FaultKind selects how a [Fault] responds.
type FaultKind int

const (
	// FaultRespond sends Status, Header and Body in place of the normal
	// response.
	FaultRespond FaultKind = iota
	// FaultPass sends the normal response, with Header set on top of its
	// headers. Status and Body are ignored.
	FaultPass
	// FaultTruncate sends Status and Header with a Content-Length of
	// len(Body), writes the first half of Body, and closes the connection.
	FaultTruncate
	// FaultResetMidBody is FaultTruncate with a TCP reset in place of the
	// orderly close, so the client reads "connection reset by peer".
	FaultResetMidBody
	// FaultResetNoResponse resets the TCP connection without sending
	// anything.
	FaultResetNoResponse
	// FaultHang sends nothing and blocks until the request's context is
	// done or the server is closed. [Request.Canceled] then reports
	// whether the client gave up.
	FaultHang
)

// Fault replaces the server's response to one request. Build one with the
// constructors below or as a literal. A fault applies before the key check
// and the routing, so it applies to any request, even one without a key.
type Fault struct {
	Kind FaultKind
	// Status is the HTTP status. Zero means 200.
	Status int
	// Header is set on top of the standard headers (see
	// OmitStandardHeaders), replacing those of the same name.
	Header http.Header
	// Body is the response body. The server sets Content-Length to its
	// length.
	Body []byte
	// Delay is waited before the fault applies. The wait ends early, and
	// nothing is sent, when the request's context is done.
	Delay time.Duration
	// OmitStandardHeaders drops the headers of every OpenAI response
	// (Content-Type application/json, x-request-id, openai-processing-ms,
	// openai-version, x-ratelimit-*), as a proxy in front of the API would.
	OmitStandardHeaders bool
}

// WithHeader returns a copy of f that also sets the header name to value.
func (f Fault) WithHeader(name, value string) Fault {
	f.Header = f.Header.Clone()
	if f.Header == nil {
		f.Header = make(http.Header)
	}
	f.Header.Set(name, value)
	return f
}

// WithDelay returns a copy of f that waits d before it applies.
func (f Fault) WithDelay(d time.Duration) Fault {
	f.Delay = d
	return f
}

// APIError returns a fault that sends an OpenAI error envelope with the
// given status, type, code and message. An empty code is sent as null, and
// param is always null.
func APIError(status int, errType, code, message string) Fault {
	return Fault{Status: status, Body: newAPIError(status, errType, code, message).envelope()}
}

// JSON returns a fault that sends body, which need not be valid JSON, with
// the given status and the JSON content type. Examples: `{"foo":1}`, `[]`,
// or an error envelope with status 200.
func JSON(status int, body string) Fault {
	return Fault{Status: status, Body: []byte(body)}
}

// RateLimited returns a 429 fault with code rate_limit_exceeded. It
// requests a wait of retryAfter through both retry-after (whole seconds,
// rounded up) and retry-after-ms.
func RateLimited(retryAfter time.Duration) Fault {
	seconds := int64(math.Ceil(retryAfter.Seconds()))
	return APIError(http.StatusTooManyRequests, TypeRequests, CodeRateLimitExceeded,
		fmt.Sprintf("Too many requests in the current window. Try again in %s.", retryAfter)).
		WithHeader("Retry-After", strconv.FormatInt(seconds, 10)).
		WithHeader("Retry-After-Ms", strconv.FormatInt(retryAfter.Milliseconds(), 10))
}

// QuotaExceeded returns a 429 fault with type and code insufficient_quota,
// which clients must not retry.
func QuotaExceeded() Fault {
	return APIError(http.StatusTooManyRequests, TypeInsufficientQuota, CodeInsufficientQuota,
		"This account has no quota left. Add credit or raise the limit before retrying.")
}

// ServerError returns a fault with the given 5xx status and an OpenAI
// error envelope of type server_error.
func ServerError(status int) Fault {
	return APIError(status, TypeServerError, "",
		"An internal error stopped the request. Retry it after a short wait.")
}

// HTMLPage returns a fault that sends a small HTML error page with the
// given status and no OpenAI headers, as a proxy in front of the API does.
func HTMLPage(status int) Fault {
	text := fmt.Sprintf("%d %s", status, http.StatusText(status))
	page := "<html>\r\n<head><title>" + text + "</title></head>\r\n<body>\r\n<center><h1>" +
		text + "</h1></center>\r\n</body>\r\n</html>\r\n"
	f := Fault{Status: status, Body: []byte(page), OmitStandardHeaders: true}
	return f.WithHeader("Content-Type", "text/html")
}

// MalformedJSON returns a 200 fault whose JSON body ends in the middle of a
// batch object.
func MalformedJSON() Fault {
	body := cancelledBatchBody()
	return Fault{Body: body[:len(body)/2]}
}

// EmptyBody returns a 200 fault with the JSON content type and no body.
func EmptyBody() Fault { return Fault{} }

// ContentType returns a fault that sends the normal response with the given
// Content-Type, such as "text/plain".
func ContentType(contentType string) Fault {
	return Fault{Kind: FaultPass}.WithHeader("Content-Type", contentType)
}

// Delayed returns a fault that sends the normal response after d.
func Delayed(d time.Duration) Fault { return Fault{Kind: FaultPass, Delay: d} }

// Hang returns a fault that sends nothing until the client gives up.
func Hang() Fault { return Fault{Kind: FaultHang} }

// Truncated returns a 200 fault that announces a whole cancelled batch but
// sends only the first half of it before closing the connection.
func Truncated() Fault { return Fault{Kind: FaultTruncate, Body: cancelledBatchBody()} }

// ResetMidBody returns a 200 fault that sends the headers and half of a
// cancelled batch, then resets the connection.
func ResetMidBody() Fault { return Fault{Kind: FaultResetMidBody, Body: cancelledBatchBody()} }

// ResetNoResponse returns a fault that resets the connection without
// sending anything.
func ResetNoResponse() Fault { return Fault{Kind: FaultResetNoResponse} }

// Oversized returns a 200 fault whose body is a valid cancelled batch,
// padded by an extra "padding" field to size bytes. The body is larger than
// size when size is below the length of the batch alone.
func Oversized(size int) Fault {
	const prefix, suffix = `,"padding":"`, `"}`
	batch := bytes.TrimSuffix(cancelledBatchBody(), []byte("}\n"))
	pad := max(size-len(batch)-len(prefix)-len(suffix), 0)
	body := make([]byte, 0, len(batch)+len(prefix)+pad+len(suffix))
	body = append(body, batch...)
	body = append(body, prefix...)
	body = append(body, bytes.Repeat([]byte("x"), pad)...)
	body = append(body, suffix...)
	return Fault{Body: body}
}

// cancelledBatchBody returns the JSON text of [BatchInProgress] after a
// cancel request.
func cancelledBatchBody() []byte {
	b := DefaultBatches()[0]
	b.Status = StatusCancelled
	b.FileCounts.Cancelled += b.FileCounts.InProgress
	b.FileCounts.InProgress = 0
	return encodeJSON(b)
}
