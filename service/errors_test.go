package service

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"example.com/filebatch/upstream"
)

func TestCodeForHTTPStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		httpStatus int
		want       codes.Code
	}{
		{http.StatusBadRequest, codes.InvalidArgument},
		{http.StatusUnprocessableEntity, codes.InvalidArgument},
		{http.StatusUnauthorized, codes.Unauthenticated},
		{http.StatusForbidden, codes.PermissionDenied},
		{http.StatusNotFound, codes.NotFound},
		{http.StatusConflict, codes.Aborted},
		{http.StatusTooManyRequests, codes.ResourceExhausted},
		{http.StatusRequestTimeout, codes.FailedPrecondition},
		{http.StatusGone, codes.FailedPrecondition},
		{http.StatusTeapot, codes.FailedPrecondition},
		{http.StatusInternalServerError, codes.Internal},
		{http.StatusBadGateway, codes.Unavailable},
		{http.StatusServiceUnavailable, codes.Unavailable},
		{http.StatusGatewayTimeout, codes.Unavailable},
		{http.StatusNotImplemented, codes.Internal},
		{http.StatusFound, codes.Unavailable},
	}
	for _, tt := range tests {
		if got := codeForHTTPStatus(tt.httpStatus); got != tt.want {
			t.Errorf("codeForHTTPStatus(%d) = %v, want %v", tt.httpStatus, got, tt.want)
		}
	}
}

func ptr(s string) *string { return &s }

// details returns the ErrorInfo, RequestInfo and RetryInfo of err.
func details(t *testing.T, err error) (*errdetails.ErrorInfo, *errdetails.RequestInfo, *errdetails.RetryInfo) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("error %v is not a status error", err)
	}
	var info *errdetails.ErrorInfo
	var request *errdetails.RequestInfo
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.RequestInfo:
			request = d
		case *errdetails.RetryInfo:
			retry = d
		}
	}
	return info, request, retry
}

func TestUpstreamStatusEnvelope(t *testing.T) {
	t.Parallel()
	s := &Server{upstreamHost: "api.example.test"}
	tests := []struct {
		name       string
		err        *upstream.Error
		wantCode   codes.Code
		wantReason string
		wantMeta   map[string]string
		wantRetry  time.Duration
		// wantMessage is the status message. Empty means the upstream's
		// own message.
		wantMessage string
	}{
		{
			name: "not found with null param and code",
			err: &upstream.Error{StatusCode: 404, Message: "No batch found with id 'vsfb_x'.", Type: "invalid_request_error",
				Meta: upstream.Meta{RequestID: "req_1"}},
			wantCode:   codes.NotFound,
			wantReason: "invalid_request_error",
			wantMeta:   map[string]string{"http_status": "404", "type": "invalid_request_error"},
		},
		{
			name: "rate limit with code and retry after",
			err: &upstream.Error{StatusCode: 429, Message: "Rate limit reached.", Type: "requests", Code: ptr("rate_limit_exceeded"),
				Param: ptr("batch_id"), RetryAfter: 3 * time.Second, Meta: upstream.Meta{RequestID: "req_2"}},
			wantCode:   codes.ResourceExhausted,
			wantReason: "rate_limit_exceeded",
			wantMeta:   map[string]string{"http_status": "429", "type": "requests", "code": "rate_limit_exceeded", "param": "batch_id"},
			wantRetry:  3 * time.Second,
		},
		{
			name:       "unprocessable keeps its status",
			err:        &upstream.Error{StatusCode: 422, Message: "Bad body.", Type: "invalid_request_error", Meta: upstream.Meta{RequestID: "req_3"}},
			wantCode:   codes.InvalidArgument,
			wantReason: "invalid_request_error",
			wantMeta:   map[string]string{"http_status": "422", "type": "invalid_request_error"},
		},
		{
			name:        "code only",
			err:         &upstream.Error{StatusCode: 429, Code: ptr("rate_limit_exceeded"), Meta: upstream.Meta{RequestID: "req_4"}},
			wantCode:    codes.ResourceExhausted,
			wantReason:  "rate_limit_exceeded",
			wantMeta:    map[string]string{"http_status": "429", "code": "rate_limit_exceeded"},
			wantMessage: `upstream HTTP 429 (request id req_4) returned Too Many Requests with no error message, code "rate_limit_exceeded"`,
		},
		{
			name:        "param only",
			err:         &upstream.Error{StatusCode: 400, Param: ptr("batch_id"), Meta: upstream.Meta{RequestID: "req_5"}},
			wantCode:    codes.InvalidArgument,
			wantReason:  ReasonUpstreamError,
			wantMeta:    map[string]string{"http_status": "400", "param": "batch_id"},
			wantMessage: "upstream HTTP 400 (request id req_5) returned Bad Request with no error message",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.upstreamStatus(tt.err, "")
			st := status.Convert(err)
			if st.Code() != tt.wantCode {
				t.Errorf("code = %v, want %v", st.Code(), tt.wantCode)
			}
			wantMessage := tt.wantMessage
			if wantMessage == "" {
				wantMessage = tt.err.Message
			}
			if st.Message() != wantMessage {
				t.Errorf("message = %q, want %q", st.Message(), wantMessage)
			}
			info, request, retry := details(t, err)
			if info == nil {
				t.Fatal("no ErrorInfo")
			}
			if info.Reason != tt.wantReason {
				t.Errorf("ErrorInfo.Reason = %q, want %q", info.Reason, tt.wantReason)
			}
			if info.Domain != "api.example.test" {
				t.Errorf("ErrorInfo.Domain = %q, want the upstream host", info.Domain)
			}
			if len(info.Metadata) != len(tt.wantMeta) {
				t.Errorf("ErrorInfo.Metadata = %v, want %v", info.Metadata, tt.wantMeta)
			}
			for k, v := range tt.wantMeta {
				if info.Metadata[k] != v {
					t.Errorf("ErrorInfo.Metadata[%q] = %q, want %q", k, info.Metadata[k], v)
				}
			}
			if request == nil || request.RequestId != tt.err.Meta.RequestID {
				t.Errorf("RequestInfo = %v, want request id %q", request, tt.err.Meta.RequestID)
			}
			switch {
			case tt.wantRetry == 0 && retry != nil:
				t.Errorf("RetryInfo = %v, want none", retry)
			case tt.wantRetry != 0 && (retry == nil || retry.RetryDelay.AsDuration() != tt.wantRetry):
				t.Errorf("RetryInfo = %v, want %v", retry, tt.wantRetry)
			}
		})
	}
}

func TestUpstreamStatusWithoutEnvelope(t *testing.T) {
	t.Parallel()
	s := &Server{upstreamHost: "api.example.test"}
	err := s.upstreamStatus(&upstream.Error{StatusCode: 502, Body: "<html>Bad Gateway</html>",
		Meta: upstream.Meta{RequestID: "req_9"}}, "")
	st := status.Convert(err)
	if st.Code() != codes.Unavailable {
		t.Errorf("code = %v, want Unavailable", st.Code())
	}
	for _, want := range []string{"502", "req_9", "Bad Gateway"} {
		if !strings.Contains(st.Message(), want) {
			t.Errorf("message %q does not contain %q", st.Message(), want)
		}
	}
	info, _, _ := details(t, err)
	if info.GetReason() != ReasonUpstreamError || info.GetMetadata()["http_status"] != "502" {
		t.Errorf("ErrorInfo = %v, want reason %q and http_status 502", info, ReasonUpstreamError)
	}
}

func TestUpstreamStatusInvalidResponse(t *testing.T) {
	t.Parallel()
	s := &Server{upstreamHost: "api.example.test"}
	err := s.upstreamStatus(&upstream.Error{StatusCode: 200, Err: errors.New("body is not a JSON object"),
		Meta: upstream.Meta{RequestID: "req_5"}}, "")
	st := status.Convert(err)
	if st.Code() != codes.Unavailable {
		t.Errorf("code = %v, want Unavailable", st.Code())
	}
	for _, want := range []string{"HTTP 200", "req_5", "not a JSON object"} {
		if !strings.Contains(st.Message(), want) {
			t.Errorf("message %q does not contain %q", st.Message(), want)
		}
	}
	info, request, _ := details(t, err)
	if info.GetReason() != ReasonInvalidResponse {
		t.Errorf("ErrorInfo.Reason = %q, want %q", info.GetReason(), ReasonInvalidResponse)
	}
	if info.GetMetadata()["http_status"] != "502" || info.GetMetadata()["upstream_status"] != "200" {
		t.Errorf("ErrorInfo.Metadata = %v, want http_status 502 and upstream_status 200", info.GetMetadata())
	}
	if request.GetRequestId() != "req_5" {
		t.Errorf("RequestInfo.RequestId = %q, want req_5", request.GetRequestId())
	}
}

func TestUpstreamStatusConnectionAndContext(t *testing.T) {
	t.Parallel()
	s := &Server{upstreamHost: "api.example.test"}
	tests := []struct {
		name string
		err  error
		want codes.Code
	}{
		{"connection refused", &upstream.ConnError{Err: errors.New("dial tcp 127.0.0.1:1: connect: connection refused")}, codes.Unavailable},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded},
		{"canceled", context.Canceled, codes.Canceled},
		{"unexpected", errors.New("boom at 0xdeadbeef"), codes.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := status.Convert(s.upstreamStatus(tt.err, ""))
			if st.Code() != tt.want {
				t.Errorf("code = %v, want %v", st.Code(), tt.want)
			}
			if tt.want == codes.Internal && strings.Contains(st.Message(), "0xdeadbeef") {
				t.Errorf("message %q leaks the internal error", st.Message())
			}
		})
	}
}

func TestUpstreamStatusRedactsKey(t *testing.T) {
	t.Parallel()
	const key = "sk-secret-0123456789"
	s := &Server{upstreamHost: "api.example.test"}
	errs := []error{
		&upstream.Error{StatusCode: 401, Message: "Incorrect API key provided: " + key, Type: "invalid_request_error", Param: ptr(key)},
		&upstream.Error{StatusCode: 429, Code: ptr(key)},
		&upstream.Error{StatusCode: 502, Body: "<p>Authorization: Bearer " + key + "</p>"},
		&upstream.Error{StatusCode: 200, Err: errors.New("saw " + key)},
		&upstream.ConnError{Err: errors.New("proxy said " + key)},
	}
	for _, in := range errs {
		err := s.upstreamStatus(in, key)
		st := status.Convert(err)
		if strings.Contains(st.Message(), key) {
			t.Errorf("message %q contains the API key", st.Message())
		}
		info, _, _ := details(t, err)
		if strings.Contains(info.GetReason(), key) {
			t.Errorf("ErrorInfo.Reason = %q contains the API key", info.GetReason())
		}
		for k, v := range info.GetMetadata() {
			if strings.Contains(v, key) {
				t.Errorf("ErrorInfo.Metadata[%q] = %q contains the API key", k, v)
			}
		}
	}
}

func TestConnErrorStatusHidesAddresses(t *testing.T) {
	t.Parallel()
	s := &Server{upstreamHost: "api.example.test"}
	refused := &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 443},
		Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name        string
		err         *upstream.ConnError
		wantMessage string
		wantRequest string
	}{
		{
			name:        "refused",
			err:         &upstream.ConnError{Err: refused},
			wantMessage: "upstream connection failed: connection refused",
		},
		{
			name:        "reset mid-body",
			err:         &upstream.ConnError{Err: syscall.ECONNRESET, StatusCode: 200, RequestID: "req_7"},
			wantMessage: "upstream HTTP 200 (request id req_7) answer could not be read: connection reset by the upstream",
			wantRequest: "req_7",
		},
		{
			name:        "truncated",
			err:         &upstream.ConnError{Err: io.ErrUnexpectedEOF, StatusCode: 200},
			wantMessage: "upstream HTTP 200 answer could not be read: connection closed before the answer was complete",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.upstreamStatus(tt.err, "")
			st := status.Convert(err)
			if st.Code() != codes.Unavailable {
				t.Errorf("code = %v, want Unavailable", st.Code())
			}
			if st.Message() != tt.wantMessage {
				t.Errorf("message = %q, want %q", st.Message(), tt.wantMessage)
			}
			if strings.Contains(st.Message(), "10.1.2.3") {
				t.Errorf("message %q names the upstream address", st.Message())
			}
			info, request, _ := details(t, err)
			if info.GetReason() != ReasonUpstreamUnreachable || info.GetMetadata()["http_status"] != "502" {
				t.Errorf("ErrorInfo = %v, want reason %q and http_status 502", info, ReasonUpstreamUnreachable)
			}
			if request.GetRequestId() != tt.wantRequest {
				t.Errorf("RequestInfo.RequestId = %q, want %q", request.GetRequestId(), tt.wantRequest)
			}
		})
	}
}

func TestUpstreamRedirectBecomesBadGateway(t *testing.T) {
	t.Parallel()
	s := &Server{upstreamHost: "api.example.test"}
	err := s.upstreamStatus(&upstream.Error{StatusCode: http.StatusFound, Body: "moved"}, "")
	if code := status.Code(err); code != codes.Unavailable {
		t.Errorf("code = %v, want Unavailable", code)
	}
	info, _, _ := details(t, err)
	if got := info.GetMetadata()[MetadataHTTPStatus]; got != "502" {
		t.Errorf("http_status = %q, want 502", got)
	}
	if got := info.GetMetadata()[MetadataUpstreamStatus]; got != "302" {
		t.Errorf("upstream_status = %q, want 302", got)
	}
}
