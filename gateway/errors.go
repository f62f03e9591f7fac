package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// OpenAI error types used when a status error does not name one.
const (
	typeInvalidRequest = "invalid_request_error"
	typeServer         = "server_error"
	typeRateLimit      = "requests"
	typeTimeout        = "timeout"
	typeCancelled      = "request_cancelled"
)

// internalErrorMessage replaces the message of a failure that the service
// did not mark as fit to show (see [resolveError]), so that no internal
// detail reaches the caller.
const internalErrorMessage = "The server failed to process the request because of an internal error."

// ErrorInfo metadata keys of the service's status errors.
const (
	metaHTTPStatus = "http_status"
	metaType       = "type"
	metaParam      = "param"
	metaCode       = "code"
)

// apiError is an OpenAI error response: the HTTP status and the fields of
// the body {"error":{"message":…,"type":…,"param":…,"code":…}}. A nil
// param or code is written as JSON null.
type apiError struct {
	status  int
	message string
	typ     string
	param   *string
	code    *string
	// retryAfter, when positive, is sent as retry-after-ms and Retry-After
	// unless the forwarded upstream headers have either.
	retryAfter time.Duration
	// requestID is sent as x-request-id unless the forwarded upstream
	// headers have it.
	requestID string
}

// codeMapping is the HTTP status and OpenAI error type for a status code,
// used when the error's ErrorInfo has no http_status. show reports whether
// the status message reaches the caller. It is false for the codes of
// server faults, whose messages may describe internals.
type codeMapping struct {
	status int
	typ    string
	show   bool
}

// mappingForCode returns the response for a status error without http_status.
// The rows follow runtime.HTTPStatusFromCode except Unimplemented, which is
// 404, the OpenAI API's status for an unknown operation, instead of 501.
func mappingForCode(c codes.Code) codeMapping {
	switch c {
	case codes.InvalidArgument, codes.OutOfRange, codes.FailedPrecondition:
		return codeMapping{http.StatusBadRequest, typeInvalidRequest, true}
	case codes.Unauthenticated:
		return codeMapping{http.StatusUnauthorized, typeInvalidRequest, true}
	case codes.PermissionDenied:
		return codeMapping{http.StatusForbidden, typeInvalidRequest, true}
	case codes.NotFound, codes.Unimplemented:
		return codeMapping{http.StatusNotFound, typeInvalidRequest, true}
	case codes.Aborted, codes.AlreadyExists:
		return codeMapping{http.StatusConflict, typeInvalidRequest, true}
	case codes.ResourceExhausted:
		return codeMapping{http.StatusTooManyRequests, typeRateLimit, true}
	case codes.Unavailable:
		return codeMapping{http.StatusServiceUnavailable, typeServer, true}
	case codes.DeadlineExceeded:
		return codeMapping{http.StatusGatewayTimeout, typeTimeout, true}
	case codes.Canceled:
		// 499 is nginx's "client closed request". The client has gone and
		// does not read the response, but the log line gets the status.
		return codeMapping{statusClientClosedRequest, typeCancelled, true}
	default:
		// Internal, Unknown, DataLoss and errors that are not status errors.
		return codeMapping{http.StatusInternalServerError, typeServer, false}
	}
}

// defaultType returns the error type for an HTTP status when the service
// sent http_status without a type.
func defaultType(httpStatus int) string {
	switch {
	case httpStatus == http.StatusTooManyRequests:
		return typeRateLimit
	case httpStatus == http.StatusGatewayTimeout:
		return typeTimeout
	case httpStatus >= 500:
		return typeServer
	default:
		return typeInvalidRequest
	}
}

// resolveError converts an error of the service into the response to send.
//
// When the status error's ErrorInfo metadata has "http_status", that status
// is used, the message is the status message, and "type", "param" and
// "code" fill the body. The service sets http_status for errors that the
// upstream returned, so the caller sees the upstream's status and message.
//
// Otherwise the status code selects the response through [mappingForCode], and
// "param" comes from the metadata or from the first field violation of a
// BadRequest detail. Errors that are not status errors are context errors,
// mapped like the matching status codes, or internal failures.
func resolveError(err error) apiError {
	st := toStatus(err)
	var (
		info       *errdetails.ErrorInfo
		badRequest *errdetails.BadRequest
		retry      *errdetails.RetryInfo
		request    *errdetails.RequestInfo
	)
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			if info == nil {
				info = d
			}
		case *errdetails.BadRequest:
			if badRequest == nil {
				badRequest = d
			}
		case *errdetails.RetryInfo:
			if retry == nil {
				retry = d
			}
		case *errdetails.RequestInfo:
			if request == nil {
				request = d
			}
		}
	}
	md := info.GetMetadata()

	e := apiError{
		param:     optional(md, metaParam),
		code:      optional(md, metaCode),
		requestID: request.GetRequestId(),
	}
	if retry != nil && retry.GetRetryDelay().IsValid() {
		e.retryAfter = retry.GetRetryDelay().AsDuration()
	}

	if httpStatus, ok := parseHTTPStatus(md[metaHTTPStatus]); ok {
		e.status = httpStatus
		e.message = st.Message()
		e.typ = md[metaType]
		if e.typ == "" {
			e.typ = defaultType(httpStatus)
		}
		return e
	}

	m := mappingForCode(st.Code())
	if !m.show {
		// The type, param and code of the metadata are dropped too, because
		// they might name what failed inside the service.
		return apiError{status: m.status, message: internalErrorMessage, typ: m.typ, requestID: e.requestID}
	}
	e.status = m.status
	e.message = st.Message()
	e.typ = md[metaType]
	if e.typ == "" {
		e.typ = m.typ
	}
	if e.param == nil && m.status == http.StatusBadRequest {
		if violations := badRequest.GetFieldViolations(); len(violations) > 0 && violations[0].GetField() != "" {
			field := violations[0].GetField()
			e.param = &field
		}
	}
	return e
}

// toStatus returns the status of err: its own for a status error, Canceled
// or DeadlineExceeded for a context error, and Unknown for any other error.
func toStatus(err error) *status.Status {
	if st, ok := status.FromError(err); ok {
		return st
	}
	return status.FromContextError(err)
}

// optional returns a pointer to md[key], or nil when the key is absent.
func optional(md map[string]string, key string) *string {
	v, ok := md[key]
	if !ok {
		return nil
	}
	return &v
}

// parseHTTPStatus parses the http_status metadata value. Only error
// statuses, 400 to 599, are accepted. A 2xx or 3xx status with an error
// body would confuse every client.
func parseHTTPStatus(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 400 || n > 599 {
		return 0, false
	}
	return n, true
}

// handleError is the mux's runtime.ErrorHandlerFunc. It writes the OpenAI
// error envelope with the forwarded upstream headers.
func handleError(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	var routing *runtime.HTTPStatusError
	if errors.As(err, &routing) {
		// The mux raises these for paths it cannot parse.
		writeAPIError(w, routingError(r, routing.HTTPStatus), nil)
		return
	}
	if rec := callRecordFrom(ctx); rec != nil {
		rec.noteRPC(ctx, toStatus(err).Code())
	}
	var header metadata.MD
	if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
		header = md.HeaderMD
	}
	writeAPIError(w, resolveError(err), header)
}

// handleRoutingError is the mux's runtime.RoutingErrorHandlerFunc for
// requests that match no route.
func handleRoutingError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	writeAPIError(w, routingError(r, httpStatus), nil)
}

// allowedMethods is the Allow header of a 405 response.
//
// NOTE: it holds because every route of FileBatchService is a POST. The mux
// does not report which methods a path has, so a route with another method
// must be added here too.
const allowedMethods = http.MethodPost

// routingError returns the response for a request that matches no route.
// The 404 message has the form the OpenAI API uses for an unknown path.
func routingError(r *http.Request, httpStatus int) apiError {
	switch httpStatus {
	case http.StatusNotFound, http.StatusBadRequest:
		return apiError{
			status:  httpStatus,
			message: "Invalid URL (" + r.Method + " " + quotedPath(r) + ")",
			typ:     typeInvalidRequest,
		}
	case http.StatusMethodNotAllowed:
		return apiError{
			status:  httpStatus,
			message: "Invalid method " + r.Method + " for URL " + quotedPath(r) + ", which accepts only " + allowedMethods + ".",
			typ:     typeInvalidRequest,
		}
	default:
		return apiError{status: http.StatusInternalServerError, message: internalErrorMessage, typ: typeServer}
	}
}

// quotedPath returns the request path for an error message as the client
// sent it, escaped, so that the message shows no decoded "../", line
// breaks or invisible characters. It is cut to maxLoggedPathBytes.
func quotedPath(r *http.Request) string {
	return truncate(r.URL.EscapedPath(), maxLoggedPathBytes)
}

// writeAPIError writes e with the forwarded headers of header, the service's
// response header metadata.
func writeAPIError(w http.ResponseWriter, e apiError, header metadata.MD) {
	h := w.Header()
	for key, values := range header {
		if name, ok := outgoingHeader(key); ok {
			for _, v := range values {
				h.Add(name, v)
			}
		}
	}
	if h.Get("X-Request-Id") == "" {
		if e.requestID == "" {
			// OpenAI sends a request id with every answer, and the SDKs
			// expose it on their errors, so errors the service raised
			// itself get one too.
			e.requestID = newRequestID()
		}
		h.Set("X-Request-Id", e.requestID)
	}
	if e.retryAfter > 0 && h.Get("Retry-After") == "" && h.Get("Retry-After-Ms") == "" {
		h.Set("Retry-After-Ms", strconv.FormatInt(e.retryAfter.Milliseconds(), 10))
		h.Set("Retry-After", strconv.FormatInt(ceilSeconds(e.retryAfter), 10))
	}
	if e.status == http.StatusMethodNotAllowed {
		h.Set("Allow", allowedMethods)
	}
	body := appendErrorBody(make([]byte, 0, errorBodySize(e)), e)
	h.Set("Content-Type", contentTypeJSON)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	// The default error handler deletes these before an error too, in case a
	// forward-response option set them.
	h.Del("Trailer")
	h.Del("Transfer-Encoding")
	w.WriteHeader(e.status)
	_, _ = w.Write(body) // a failed write means the client has gone
}

// newRequestID returns a random request id in the form OpenAI uses,
// "req_" and 32 hex digits.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // since Go 1.24, crypto/rand.Read never returns an error
	return "req_" + hex.EncodeToString(b[:])
}

// ceilSeconds returns d in whole seconds, rounded up, for Retry-After.
func ceilSeconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	if d%time.Second != 0 && s < math.MaxInt64 {
		s++
	}
	return s
}

// The constant parts of an error body.
const (
	errorMessage = `{"error":{"message":`
	errorType    = `,"type":`
	errorParam   = `,"param":`
	errorCode    = `,"code":`
	errorEnd     = `}}`
	jsonNull     = `null`

	errorFixedSize = len(errorMessage) + len(errorType) + len(errorParam) + len(errorCode) + len(errorEnd)
)

// errorBodySize returns the exact length of e's body.
func errorBodySize(e apiError) int {
	return errorFixedSize + quotedLen(e.message) + quotedLen(e.typ) +
		optionalLen(e.param) + optionalLen(e.code)
}

func optionalLen(s *string) int {
	if s == nil {
		return len(jsonNull)
	}
	return quotedLen(*s)
}

// appendErrorBody appends e's body {"error":{…}} to dst.
func appendErrorBody(dst []byte, e apiError) []byte {
	dst = append(dst, errorMessage...)
	dst = appendString(dst, e.message)
	dst = append(dst, errorType...)
	dst = appendString(dst, e.typ)
	dst = append(dst, errorParam...)
	dst = appendOptional(dst, e.param)
	dst = append(dst, errorCode...)
	dst = appendOptional(dst, e.code)
	return append(dst, errorEnd...)
}

func appendOptional(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, jsonNull...)
	}
	return appendString(dst, *s)
}
