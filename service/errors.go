package service

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"example.com/filebatch/upstream"
)

// Domain is the ErrorInfo domain of errors that the service raises itself.
// Errors the upstream returned carry the upstream's host instead.
const Domain = "filebatch"

// ErrorInfo reasons of errors that the service raises itself.
const (
	ReasonInvalidArgument     = "invalid_argument"
	ReasonUnauthenticated     = "unauthenticated"
	ReasonConcurrencyLimit    = "concurrency_limit"
	ReasonUpstreamUnreachable = "upstream_unreachable"
	ReasonInvalidResponse     = "invalid_upstream_response"
	ReasonUpstreamError       = "upstream_error"
	ReasonDeadlineExceeded    = "deadline_exceeded"
	ReasonCanceled            = "canceled"
)

// ErrorInfo metadata keys. The REST façade uses the first four to rebuild
// the OpenAI error envelope and its HTTP status.
const (
	MetadataHTTPStatus = "http_status"
	MetadataType       = "type"
	MetadataParam      = "param"
	MetadataCode       = "code"
	// MetadataUpstreamStatus is the upstream's HTTP status when it differs
	// from http_status: for an answer that was not a usable batch, and for
	// a 1xx or 3xx answer. The façade then answers 502.
	MetadataUpstreamStatus = "upstream_status"
)

// fieldError is an invalid request field.
type fieldError struct {
	field       string
	description string
}

func invalidFieldStatus(fe *fieldError) error {
	st := status.New(codes.InvalidArgument, "invalid "+fe.field+": "+fe.description)
	return withDetails(st,
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: fe.field, Description: fe.description},
		}},
		&errdetails.ErrorInfo{Reason: ReasonInvalidArgument, Domain: Domain, Metadata: map[string]string{
			MetadataType:  "invalid_request_error",
			MetadataParam: fe.field,
		}},
	)
}

func unauthenticatedStatus(message string) error {
	st := status.New(codes.Unauthenticated, message)
	return withDetails(st, &errdetails.ErrorInfo{Reason: ReasonUnauthenticated, Domain: Domain, Metadata: map[string]string{
		MetadataType: "invalid_request_error",
	}})
}

func concurrencyLimitStatus(size int, wait time.Duration) error {
	st := status.New(codes.ResourceExhausted, "too many concurrent calls: all "+strconv.Itoa(size)+
		" upstream slots stayed busy for "+wait.String()+"; retry later")
	return withDetails(st,
		&errdetails.ErrorInfo{Reason: ReasonConcurrencyLimit, Domain: Domain, Metadata: map[string]string{
			MetadataHTTPStatus: "503",
			MetadataType:       "server_error",
		}},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)},
	)
}

// contextStatus maps the end of the call's context. The default upstream
// timeout also ends in DeadlineExceeded.
func contextStatus(err error) error {
	if errors.Is(err, context.Canceled) {
		st := status.New(codes.Canceled, "the call was canceled before the upstream answered")
		return withDetails(st, &errdetails.ErrorInfo{Reason: ReasonCanceled, Domain: Domain})
	}
	st := status.New(codes.DeadlineExceeded, "deadline exceeded before the upstream answered")
	return withDetails(st, &errdetails.ErrorInfo{Reason: ReasonDeadlineExceeded, Domain: Domain, Metadata: map[string]string{
		MetadataType: "timeout",
	}})
}

// codeForHTTPStatus maps an upstream HTTP status to the gRPC code callers
// receive. It is not the inverse of the façade's code-to-HTTP table, which
// is why the façade carries the upstream status in ErrorInfo metadata.
func codeForHTTPStatus(httpStatus int) codes.Code {
	switch httpStatus {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusConflict:
		return codes.Aborted
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusInternalServerError:
		return codes.Internal
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return codes.Unavailable
	}
	switch {
	case httpStatus >= 400 && httpStatus < 500:
		// The request was wrong in a way the caller must fix first.
		return codes.FailedPrecondition
	case httpStatus >= 500:
		return codes.Internal
	default:
		// 1xx and 3xx are not answers this API sends.
		return codes.Unavailable
	}
}

// upstreamStatus converts an error from the upstream client into the status
// the caller receives. secret, when not empty, is removed from every text
// that came from the upstream.
func (s *Server) upstreamStatus(err error, secret string) error {
	var statusErr *upstream.Error
	var connErr *upstream.ConnError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return contextStatus(err)
	case errors.As(err, &statusErr):
		return s.httpErrorStatus(statusErr, secret)
	case errors.As(err, &connErr):
		return connErrorStatus(connErr)
	default:
		st := status.New(codes.Internal, "internal error")
		return st.Err()
	}
}

// connErrorStatus describes a failed exchange by its kind only, because the
// underlying error names addresses inside the deployment. The full error is
// logged through [CallInfo].
func connErrorStatus(e *upstream.ConnError) error {
	message := "upstream connection failed: " + describeConnError(e.Err)
	if e.StatusCode != 0 {
		message = describeUpstream(&upstream.Error{StatusCode: e.StatusCode, Meta: upstream.Meta{RequestID: e.RequestID}},
			"answer could not be read: "+describeConnError(e.Err))
	}
	metadata := map[string]string{MetadataHTTPStatus: "502", MetadataType: "server_error"}
	if e.StatusCode != 0 {
		metadata[MetadataUpstreamStatus] = strconv.Itoa(e.StatusCode)
	}
	var requestInfo proto.Message
	if e.RequestID != "" {
		requestInfo = &errdetails.RequestInfo{RequestId: e.RequestID}
	}
	st := status.New(codes.Unavailable, message)
	return withDetails(st, &errdetails.ErrorInfo{Reason: ReasonUpstreamUnreachable, Domain: Domain, Metadata: metadata},
		requestInfo, retryInfo(e.RetryAfter))
}

// describeConnError names the kind of a network failure without the
// addresses that its text contains.
func describeConnError(err error) string {
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by the upstream"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection closed before the answer was complete"
	case errors.As(err, &dnsErr):
		return "host name lookup failed"
	case errors.As(err, &certErr):
		return "the upstream's TLS certificate is not trusted"
	case errors.As(err, &recordErr):
		return "TLS handshake failed"
	case isTimeout(err):
		return "network timeout"
	default:
		return "connection failed"
	}
}

func isTimeout(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

func (s *Server) httpErrorStatus(e *upstream.Error, secret string) error {
	info := &errdetails.ErrorInfo{Domain: s.upstreamHost, Metadata: make(map[string]string, 4)}
	var st *status.Status
	switch {
	case e.Invalid():
		info.Domain = Domain
		info.Reason = ReasonInvalidResponse
		info.Metadata[MetadataHTTPStatus] = "502"
		info.Metadata[MetadataType] = "server_error"
		info.Metadata[MetadataUpstreamStatus] = strconv.Itoa(e.StatusCode)
		st = status.New(codes.Unavailable, redact(describeUpstream(e, "returned an invalid response: "+e.Err.Error()), secret))
	case hasEnvelopeFields(e):
		// Type, param and code are redacted like the message, because an
		// upstream or a proxy can echo any request text in any field.
		info.Reason = redact(e.Type, secret)
		if e.Code != nil && *e.Code != "" {
			info.Reason = redact(*e.Code, secret)
		}
		setHTTPStatus(info.Metadata, e.StatusCode)
		if e.Type != "" {
			info.Metadata[MetadataType] = redact(e.Type, secret)
		}
		if e.Param != nil {
			info.Metadata[MetadataParam] = redact(*e.Param, secret)
		}
		if e.Code != nil {
			info.Metadata[MetadataCode] = redact(*e.Code, secret)
		}
		st = status.New(codeForHTTPStatus(e.StatusCode), redact(envelopeMessage(e), secret))
	default:
		info.Reason = ReasonUpstreamError
		setHTTPStatus(info.Metadata, e.StatusCode)
		info.Metadata[MetadataType] = upstreamErrorType(e.StatusCode)
		what := "returned " + http.StatusText(e.StatusCode)
		if e.Body != "" {
			what += " with a body that is not an OpenAI error: " + strconv.Quote(e.Body)
		}
		st = status.New(codeForHTTPStatus(e.StatusCode), redact(describeUpstream(e, what), secret))
	}
	if info.Reason == "" {
		info.Reason = ReasonUpstreamError
	}
	var requestInfo proto.Message
	if e.Meta.RequestID != "" {
		requestInfo = &errdetails.RequestInfo{RequestId: e.Meta.RequestID}
	}
	return withDetails(st, info, requestInfo, retryInfo(e.RetryAfter))
}

// hasEnvelopeFields reports whether the upstream's OpenAI error envelope
// set any of message, type, param or code. An envelope such as
// {"error":{"code":"rate_limit_exceeded"}} counts, so its code still reaches
// the caller.
func hasEnvelopeFields(e *upstream.Error) bool {
	return e.Message != "" || e.Type != "" ||
		e.Param != nil && *e.Param != "" ||
		e.Code != nil && *e.Code != ""
}

// envelopeMessage returns the upstream's error message. For an envelope
// without one, it describes the response by its HTTP status and error code.
func envelopeMessage(e *upstream.Error) string {
	if e.Message != "" {
		return e.Message
	}
	what := "returned an error with no message"
	if text := http.StatusText(e.StatusCode); text != "" {
		what = "returned " + text + " with no error message"
	}
	if e.Code != nil && *e.Code != "" {
		what += ", code " + strconv.Quote(*e.Code)
	}
	return describeUpstream(e, what)
}

// setHTTPStatus records the status the façade answers with: the upstream's
// own for an error status, and 502 Bad Gateway with the upstream's in
// upstream_status for a 1xx or 3xx answer, which the service cannot pass on.
func setHTTPStatus(metadata map[string]string, upstreamStatus int) {
	if upstreamStatus >= 400 {
		metadata[MetadataHTTPStatus] = strconv.Itoa(upstreamStatus)
		return
	}
	metadata[MetadataHTTPStatus] = "502"
	metadata[MetadataUpstreamStatus] = strconv.Itoa(upstreamStatus)
}

// describeUpstream prefixes what with the status and request id of the
// answer, so the message alone identifies the upstream exchange.
func describeUpstream(e *upstream.Error, what string) string {
	var b strings.Builder
	b.WriteString("upstream HTTP ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if e.Meta.RequestID != "" {
		b.WriteString(" (request id ")
		b.WriteString(e.Meta.RequestID)
		b.WriteString(")")
	}
	b.WriteString(" ")
	b.WriteString(what)
	return b.String()
}

// upstreamErrorType picks the OpenAI error type for an answer that did not
// carry one.
func upstreamErrorType(httpStatus int) string {
	if httpStatus >= 500 {
		return "server_error"
	}
	return "invalid_request_error"
}

func retryInfo(delay time.Duration) proto.Message {
	if delay <= 0 {
		return nil
	}
	return &errdetails.RetryInfo{RetryDelay: durationpb.New(delay)}
}

// withDetails attaches the non-nil details to st.
func withDetails(st *status.Status, details ...proto.Message) error {
	p := st.Proto()
	for _, d := range details {
		if d == nil {
			continue
		}
		detail, err := anypb.New(d)
		if err != nil {
			continue // only a message type missing from the binary fails
		}
		p.Details = append(p.Details, detail)
	}
	return status.FromProto(p).Err()
}

// redact removes secret from s. Upstream texts can quote the request's
// headers, and the API key must never reach a caller or a log.
func redact(s, secret string) string {
	return upstream.RedactKey(s, secret)
}
