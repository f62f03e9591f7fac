package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	filebatchv1 "example.com/filebatch/gen/filebatch/v1"
)

// statusError returns a status error with the given details.
func statusError(t *testing.T, code codes.Code, message string, details ...protoadapt.MessageV1) error {
	t.Helper()
	st, err := status.New(code, message).WithDetails(details...)
	if err != nil {
		t.Fatalf("attach details: %v", err)
	}
	return st.Err()
}

func errorInfo(md map[string]string) *errdetails.ErrorInfo {
	return &errdetails.ErrorInfo{Reason: "test_reason", Domain: "filebatch", Metadata: md}
}

// envelope returns the decoded form of an OpenAI error body. An empty param
// or code stands for JSON null.
func envelope(message, typ, param, code string) map[string]any {
	inner := map[string]any{"message": message, "type": typ, "param": nil, "code": nil}
	if param != "" {
		inner["param"] = param
	}
	if code != "" {
		inner["code"] = code
	}
	return map[string]any{"error": inner}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		name string
		// err builds the service's error.
		err func(t *testing.T) error
		// header is the response header metadata the service sets.
		header     metadata.MD
		wantStatus int
		wantBody   map[string]any
		// wantHeader lists response headers and their expected values.
		wantHeader map[string]string
	}{
		{
			name: "invalid ID with BadRequest and ErrorInfo",
			err: func(t *testing.T) error {
				return statusError(t, codes.InvalidArgument, "invalid batch_id: must not be empty",
					&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "batch_id", Description: "must not be empty"}}},
					errorInfo(map[string]string{"type": "invalid_request_error", "param": "batch_id"}))
			},
			wantStatus: http.StatusBadRequest,
			wantBody:   envelope("invalid batch_id: must not be empty", "invalid_request_error", "batch_id", ""),
		},
		{
			name: "param from the first field violation",
			err: func(t *testing.T) error {
				return statusError(t, codes.InvalidArgument, "invalid IDs",
					&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "vector_store_id"}, {Field: "batch_id"}}})
			},
			wantStatus: http.StatusBadRequest,
			wantBody:   envelope("invalid IDs", "invalid_request_error", "vector_store_id", ""),
		},
		{
			name:       "InvalidArgument without details",
			err:        func(*testing.T) error { return status.Error(codes.InvalidArgument, "bad request") },
			wantStatus: http.StatusBadRequest,
			wantBody:   envelope("bad request", "invalid_request_error", "", ""),
		},
		{
			name: "InvalidArgument with http_status 422",
			err: func(t *testing.T) error {
				return statusError(t, codes.InvalidArgument, "Unprocessable batch.",
					errorInfo(map[string]string{"http_status": "422", "type": "invalid_request_error", "code": "unprocessable"}))
			},
			wantStatus: http.StatusUnprocessableEntity,
			wantBody:   envelope("Unprocessable batch.", "invalid_request_error", "", "unprocessable"),
		},
		{
			name: "InvalidArgument with http_status 400 from the upstream",
			err: func(t *testing.T) error {
				return statusError(t, codes.InvalidArgument, "File batch 'vsfb_1' cannot be cancelled.",
					errorInfo(map[string]string{"http_status": "400", "type": "invalid_request_error"}))
			},
			header:     metadata.Pairs("x-request-id", "req_400"),
			wantStatus: http.StatusBadRequest,
			wantBody:   envelope("File batch 'vsfb_1' cannot be cancelled.", "invalid_request_error", "", ""),
			wantHeader: map[string]string{"X-Request-Id": "req_400"},
		},
		{
			name:       "OutOfRange",
			err:        func(*testing.T) error { return status.Error(codes.OutOfRange, "out of range") },
			wantStatus: http.StatusBadRequest,
			wantBody:   envelope("out of range", "invalid_request_error", "", ""),
		},
		{
			name:       "FailedPrecondition",
			err:        func(*testing.T) error { return status.Error(codes.FailedPrecondition, "batch is finished") },
			wantStatus: http.StatusBadRequest,
			wantBody:   envelope("batch is finished", "invalid_request_error", "", ""),
		},
		{
			name: "Unauthenticated from the service",
			err: func(t *testing.T) error {
				return statusError(t, codes.Unauthenticated, "missing API key", errorInfo(map[string]string{"type": "invalid_request_error"}))
			},
			wantStatus: http.StatusUnauthorized,
			wantBody:   envelope("missing API key", "invalid_request_error", "", ""),
			wantHeader: map[string]string{"Www-Authenticate": ""},
		},
		{
			name: "Unauthenticated from the upstream",
			err: func(t *testing.T) error {
				return statusError(t, codes.Unauthenticated, "The API key is not valid.",
					errorInfo(map[string]string{"http_status": "401", "type": "invalid_request_error", "code": "invalid_api_key"}),
					&errdetails.RequestInfo{RequestId: "req_401"})
			},
			header:     metadata.Pairs("x-request-id", "req_401"),
			wantStatus: http.StatusUnauthorized,
			wantBody:   envelope("The API key is not valid.", "invalid_request_error", "", "invalid_api_key"),
			wantHeader: map[string]string{"X-Request-Id": "req_401"},
		},
		{
			name:       "PermissionDenied",
			err:        func(*testing.T) error { return status.Error(codes.PermissionDenied, "project has no access") },
			wantStatus: http.StatusForbidden,
			wantBody:   envelope("project has no access", "invalid_request_error", "", ""),
		},
		{
			name:       "NotFound",
			err:        func(*testing.T) error { return status.Error(codes.NotFound, "no such batch") },
			wantStatus: http.StatusNotFound,
			wantBody:   envelope("no such batch", "invalid_request_error", "", ""),
		},
		{
			name: "NotFound from the upstream",
			err: func(t *testing.T) error {
				return statusError(t, codes.NotFound, "File batch 'vsfb_x' does not exist.",
					errorInfo(map[string]string{"http_status": "404", "type": "invalid_request_error"}))
			},
			header:     metadata.Pairs("x-request-id", "req_404", "openai-processing-ms", "7"),
			wantStatus: http.StatusNotFound,
			wantBody:   envelope("File batch 'vsfb_x' does not exist.", "invalid_request_error", "", ""),
			wantHeader: map[string]string{"X-Request-Id": "req_404", "Openai-Processing-Ms": "7"},
		},
		{
			name:       "Aborted",
			err:        func(*testing.T) error { return status.Error(codes.Aborted, "conflict") },
			wantStatus: http.StatusConflict,
			wantBody:   envelope("conflict", "invalid_request_error", "", ""),
		},
		{
			name:       "AlreadyExists",
			err:        func(*testing.T) error { return status.Error(codes.AlreadyExists, "exists") },
			wantStatus: http.StatusConflict,
			wantBody:   envelope("exists", "invalid_request_error", "", ""),
		},
		{
			name: "ResourceExhausted from the upstream with Retry-After",
			err: func(t *testing.T) error {
				return statusError(t, codes.ResourceExhausted, "Rate limit reached.",
					errorInfo(map[string]string{"http_status": "429", "type": "requests", "code": "rate_limit_exceeded"}),
					&errdetails.RetryInfo{RetryDelay: durationpb.New(7 * time.Second)})
			},
			header: metadata.Pairs("retry-after", "7", "x-ratelimit-remaining-requests", "0",
				"x-ratelimit-reset-requests", "7s"),
			wantStatus: http.StatusTooManyRequests,
			wantBody:   envelope("Rate limit reached.", "requests", "", "rate_limit_exceeded"),
			wantHeader: map[string]string{
				"Retry-After": "7", "Retry-After-Ms": "",
				"X-Ratelimit-Remaining-Requests": "0", "X-Ratelimit-Reset-Requests": "7s",
			},
		},
		{
			name: "ResourceExhausted with RetryInfo only",
			err: func(t *testing.T) error {
				return statusError(t, codes.ResourceExhausted, "too many concurrent calls",
					&errdetails.RetryInfo{RetryDelay: durationpb.New(1500 * time.Millisecond)})
			},
			wantStatus: http.StatusTooManyRequests,
			wantBody:   envelope("too many concurrent calls", "requests", "", ""),
			wantHeader: map[string]string{"Retry-After": "2", "Retry-After-Ms": "1500"},
		},
		{
			name: "concurrency limit with http_status 503",
			err: func(t *testing.T) error {
				return statusError(t, codes.ResourceExhausted, "too many concurrent calls",
					errorInfo(map[string]string{"http_status": "503", "type": "server_error"}),
					&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
			},
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   envelope("too many concurrent calls", "server_error", "", ""),
			wantHeader: map[string]string{"Retry-After": "1", "Retry-After-Ms": "1000"},
		},
		{
			name:       "Unavailable",
			err:        func(*testing.T) error { return status.Error(codes.Unavailable, "upstream unreachable") },
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   envelope("upstream unreachable", "server_error", "", ""),
		},
		{
			name: "Unavailable with http_status 502",
			err: func(t *testing.T) error {
				return statusError(t, codes.Unavailable, "upstream returned an invalid response",
					errorInfo(map[string]string{"http_status": "502", "type": "server_error"}))
			},
			wantStatus: http.StatusBadGateway,
			wantBody:   envelope("upstream returned an invalid response", "server_error", "", ""),
		},
		{
			name:       "DeadlineExceeded",
			err:        func(*testing.T) error { return status.Error(codes.DeadlineExceeded, "deadline exceeded") },
			wantStatus: http.StatusGatewayTimeout,
			wantBody:   envelope("deadline exceeded", "timeout", "", ""),
		},
		{
			name:       "Canceled",
			err:        func(*testing.T) error { return status.Error(codes.Canceled, "canceled") },
			wantStatus: statusClientClosedRequest,
			wantBody:   envelope("canceled", "request_cancelled", "", ""),
		},
		{
			name:       "Unimplemented",
			err:        func(*testing.T) error { return status.Error(codes.Unimplemented, "method not implemented") },
			wantStatus: http.StatusNotFound,
			wantBody:   envelope("method not implemented", "invalid_request_error", "", ""),
		},
		{
			name:       "Internal hides its message",
			err:        func(*testing.T) error { return status.Error(codes.Internal, "dial tcp 10.1.2.3:443: secret detail") },
			wantStatus: http.StatusInternalServerError,
			wantBody:   envelope(internalErrorMessage, "server_error", "", ""),
		},
		{
			name: "Internal with ErrorInfo but no http_status hides everything",
			err: func(t *testing.T) error {
				return statusError(t, codes.Internal, "secret detail",
					errorInfo(map[string]string{"type": "secret_type", "param": "secret_param", "code": "secret_code"}))
			},
			wantStatus: http.StatusInternalServerError,
			wantBody:   envelope(internalErrorMessage, "server_error", "", ""),
		},
		{
			name: "Internal with http_status 500 from the upstream",
			err: func(t *testing.T) error {
				return statusError(t, codes.Internal, "The upstream had an error.",
					errorInfo(map[string]string{"http_status": "500", "type": "server_error"}))
			},
			wantStatus: http.StatusInternalServerError,
			wantBody:   envelope("The upstream had an error.", "server_error", "", ""),
		},
		{
			name:       "Unknown hides its message",
			err:        func(*testing.T) error { return status.Error(codes.Unknown, "secret detail") },
			wantStatus: http.StatusInternalServerError,
			wantBody:   envelope(internalErrorMessage, "server_error", "", ""),
		},
		{
			name:       "DataLoss hides its message",
			err:        func(*testing.T) error { return status.Error(codes.DataLoss, "secret detail") },
			wantStatus: http.StatusInternalServerError,
			wantBody:   envelope(internalErrorMessage, "server_error", "", ""),
		},
		{
			name:       "plain error hides its message",
			err:        func(*testing.T) error { return errors.New("open /etc/secret: permission denied") },
			wantStatus: http.StatusInternalServerError,
			wantBody:   envelope(internalErrorMessage, "server_error", "", ""),
		},
		{
			name:       "context.DeadlineExceeded",
			err:        func(*testing.T) error { return context.DeadlineExceeded },
			wantStatus: http.StatusGatewayTimeout,
			wantBody:   envelope(context.DeadlineExceeded.Error(), "timeout", "", ""),
		},
		{
			name:       "context.Canceled",
			err:        func(*testing.T) error { return context.Canceled },
			wantStatus: statusClientClosedRequest,
			wantBody:   envelope(context.Canceled.Error(), "request_cancelled", "", ""),
		},
		{
			name: "http_status without type gets the status's type",
			err: func(t *testing.T) error {
				return statusError(t, codes.Unavailable, "upstream returned Bad Gateway",
					errorInfo(map[string]string{"http_status": "502"}))
			},
			wantStatus: http.StatusBadGateway,
			wantBody:   envelope("upstream returned Bad Gateway", "server_error", "", ""),
		},
		{
			name: "malformed http_status is ignored",
			err: func(t *testing.T) error {
				return statusError(t, codes.NotFound, "no such batch", errorInfo(map[string]string{"http_status": "4o4"}))
			},
			wantStatus: http.StatusNotFound,
			wantBody:   envelope("no such batch", "invalid_request_error", "", ""),
		},
		{
			name: "http_status 200 is ignored",
			err: func(t *testing.T) error {
				return statusError(t, codes.Internal, "secret detail", errorInfo(map[string]string{"http_status": "200"}))
			},
			wantStatus: http.StatusInternalServerError,
			wantBody:   envelope(internalErrorMessage, "server_error", "", ""),
		},
		{
			name: "RequestInfo sets x-request-id when the headers lack it",
			err: func(t *testing.T) error {
				return statusError(t, codes.NotFound, "no such batch", &errdetails.RequestInfo{RequestId: "req_from_detail"})
			},
			wantStatus: http.StatusNotFound,
			wantBody:   envelope("no such batch", "invalid_request_error", "", ""),
			wantHeader: map[string]string{"X-Request-Id": "req_from_detail"},
		},
		{
			name: "forwarded x-request-id wins over RequestInfo",
			err: func(t *testing.T) error {
				return statusError(t, codes.NotFound, "no such batch", &errdetails.RequestInfo{RequestId: "req_detail"})
			},
			header:     metadata.Pairs("x-request-id", "req_header"),
			wantStatus: http.StatusNotFound,
			wantBody:   envelope("no such batch", "invalid_request_error", "", ""),
			wantHeader: map[string]string{"X-Request-Id": "req_header"},
		},
		{
			name:       "other header metadata is dropped",
			err:        func(*testing.T) error { return status.Error(codes.NotFound, "no such batch") },
			header:     metadata.Pairs("x-internal-host", "10.1.2.3", "server", "envoy"),
			wantStatus: http.StatusNotFound,
			wantBody:   envelope("no such batch", "invalid_request_error", "", ""),
			wantHeader: map[string]string{"X-Internal-Host": "", "Server": ""},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stub := &stubServer{cancel: func(ctx context.Context, _ *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error) {
				if tc.header != nil {
					if err := grpc.SetHeader(ctx, tc.header); err != nil {
						t.Errorf("SetHeader() error = %v", err)
					}
				}
				if err := grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t")); err != nil {
					t.Errorf("SetTrailer() error = %v", err)
				}
				return nil, tc.err(t)
			}}
			f := startFacade(t, stub, Options{})
			got := f.post(t, cancelPath("vs_1", "vsfb_1"), http.Header{"Te": {"trailers"}})

			if got.status != tc.wantStatus {
				t.Errorf("status = %d, want %d", got.status, tc.wantStatus)
			}
			if body := decodeAny(t, got.body); !reflect.DeepEqual(body, tc.wantBody) {
				t.Errorf("body = %s\nwant   %s", got.body, mustJSON(t, tc.wantBody))
			}
			if ct := got.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			for name, want := range tc.wantHeader {
				if v := got.header.Get(name); v != want {
					t.Errorf("header %s = %q, want %q", name, v, want)
				}
			}
			if names := grpcMetadataHeaders(got.header); len(names) > 0 {
				t.Errorf("response has grpc-gateway headers %v", names)
			}
			if got.header.Get("Trailer") != "" || got.header.Get("X-Trailer") != "" {
				t.Errorf("response announces or sends trailers: %v", got.header)
			}
			for _, secret := range []string{"secret", "10.1.2.3", "/etc"} {
				if strings.Contains(string(got.body), secret) {
					t.Errorf("body %s leaks %q", got.body, secret)
				}
			}
		})
	}
}

// decodeAny decodes data for comparison with maps built by envelope.
func decodeAny(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("decode JSON %q: %v", data, err)
	}
	return m
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestRoutingErrors(t *testing.T) {
	stub := &stubServer{cancel: func(context.Context, *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error) {
		t.Error("service called for a request that matches no route")
		return nil, status.Error(codes.Internal, "unreachable")
	}}
	f := startFacade(t, stub, Options{})
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantBody   map[string]any
		wantAllow  string
	}{
		{
			name: "unknown path", method: http.MethodPost, path: "/v1/models",
			wantStatus: http.StatusNotFound,
			wantBody:   envelope("Invalid URL (POST /v1/models)", "invalid_request_error", "", ""),
		},
		{
			name: "cancel path without version", method: http.MethodPost, path: "/vector_stores/vs_1/file_batches/b/cancel",
			wantStatus: http.StatusNotFound,
			wantBody:   envelope("Invalid URL (POST /vector_stores/vs_1/file_batches/b/cancel)", "invalid_request_error", "", ""),
		},
		{
			name: "extra segment", method: http.MethodPost, path: cancelPath("vs_1", "b") + "/now",
			wantStatus: http.StatusNotFound,
			wantBody:   envelope("Invalid URL (POST "+cancelPath("vs_1", "b")+"/now)", "invalid_request_error", "", ""),
		},
		{
			name: "escaped traversal and line break", method: http.MethodPost,
			path:       "/v1/vector_stores/vs_1/file_batches/..%2F..%2Fx%0D%0A%E2%80%AE/cancel",
			wantStatus: http.StatusNotFound,
			wantBody: envelope("Invalid URL (POST /v1/vector_stores/vs_1/file_batches/..%2F..%2Fx%0D%0A%E2%80%AE/cancel)",
				"invalid_request_error", "", ""),
		},
		{
			name: "GET on the cancel path", method: http.MethodGet, path: cancelPath("vs_1", "b"),
			wantStatus: http.StatusMethodNotAllowed,
			wantBody:   envelope("Invalid method GET for URL "+cancelPath("vs_1", "b")+", which accepts only POST.", "invalid_request_error", "", ""),
			wantAllow:  "POST",
		},
		{
			name: "DELETE on the cancel path", method: http.MethodDelete, path: cancelPath("vs_1", "b"),
			wantStatus: http.StatusMethodNotAllowed,
			wantBody:   envelope("Invalid method DELETE for URL "+cancelPath("vs_1", "b")+", which accepts only POST.", "invalid_request_error", "", ""),
			wantAllow:  "POST",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := f.do(t, tc.method, tc.path, nil, nil)
			if got.status != tc.wantStatus {
				t.Errorf("status = %d, want %d", got.status, tc.wantStatus)
			}
			if body := decodeAny(t, got.body); !reflect.DeepEqual(body, tc.wantBody) {
				t.Errorf("body = %s\nwant   %s", got.body, mustJSON(t, tc.wantBody))
			}
			if allow := got.header.Get("Allow"); allow != tc.wantAllow {
				t.Errorf("Allow = %q, want %q", allow, tc.wantAllow)
			}
			if ct := got.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
		})
	}
}

func TestCeilSeconds(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want int64
	}{
		{"zero", 0, 0},
		{"whole seconds", 3 * time.Second, 3},
		{"fraction rounds up", 1500 * time.Millisecond, 2},
		{"below one second", time.Millisecond, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ceilSeconds(tc.d); got != tc.want {
				t.Errorf("ceilSeconds(%v) = %d, want %d", tc.d, got, tc.want)
			}
		})
	}
}

func TestOwnErrorGetsRequestID(t *testing.T) {
	stub := &stubServer{cancel: func(context.Context, *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error) {
		return nil, status.Error(codes.Unauthenticated, "missing API key")
	}}
	f := startFacade(t, stub, Options{})
	requestID := regexp.MustCompile(`^req_[0-9a-f]{32}$`)
	seen := make(map[string]bool)
	for _, path := range []string{cancelPath("vs_1", "b"), cancelPath("vs_1", "b"), "/v1/models"} {
		got := f.post(t, path, nil)
		id := got.header.Get("X-Request-Id")
		if !requestID.MatchString(id) {
			t.Errorf("POST %s: X-Request-Id = %q, want req_ and 32 hex digits", path, id)
		}
		if seen[id] {
			t.Errorf("POST %s: X-Request-Id %q repeats an earlier one", path, id)
		}
		seen[id] = true
	}
}
