package service_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"example.com/filebatch/fakeupstream"
	filebatchv1 "example.com/filebatch/gen/filebatch/v1"
	"example.com/filebatch/service"
)

func TestInvalidIDs(t *testing.T) {
	badIDs := []struct {
		name string
		id   string
	}{
		{name: "slash", id: "/"},
		{name: "parent segment", id: "../"},
		{name: "question mark", id: "?"},
		{name: "hash", id: "#"},
		{name: "escaped slash", id: "%2F"},
		{name: "escaped NUL", id: "%00"},
		{name: "space", id: "vs 1"},
		{name: "CR", id: "vs_1\r"},
		{name: "LF", id: "vs_1\n"},
		{name: "NUL", id: "vs_1\x00"},
		{name: "non-ASCII", id: "vs_é"},
		{name: "10 KB", id: strings.Repeat("a", 10<<10)},
		{name: "empty", id: ""},
	}
	env := newEnv(t, envOptions{})
	for _, field := range []string{"vector_store_id", "batch_id"} {
		for _, bad := range badIDs {
			t.Run(field+"/"+bad.name, func(t *testing.T) {
				vectorStoreID, batchID := fakeupstream.VectorStoreID, fakeupstream.BatchInProgress
				if field == "vector_store_id" {
					vectorStoreID = bad.id
				} else {
					batchID = bad.id
				}
				_, _, err := env.cancel(testContext(t), vectorStoreID, batchID)
				checkInvalidField(t, err, field)
				env.upstream.checkRequestCount(t, 0)
			})
		}
	}
	env.checkCancelSucceeds(t)
}

// checkInvalidField fails t unless err is InvalidArgument with a
// BadRequest field violation and ErrorInfo that name field.
func checkInvalidField(t *testing.T, err error, field string) {
	t.Helper()
	st, d := detailsOf(t, err)
	if st.Code() != codes.InvalidArgument {
		t.Errorf("code = %v (%v), want InvalidArgument", st.Code(), err)
	}
	if !strings.Contains(st.Message(), field) {
		t.Errorf("message %q does not name the field %q", st.Message(), field)
	}
	violations := d.badRequest.GetFieldViolations()
	if len(violations) != 1 || violations[0].GetField() != field {
		t.Errorf("BadRequest.FieldViolations = %v, want one for %q", violations, field)
	}
	if d.info.GetReason() != service.ReasonInvalidArgument || d.info.GetDomain() != service.Domain {
		t.Errorf("ErrorInfo = %v, want reason %q in domain %q", d.info, service.ReasonInvalidArgument, service.Domain)
	}
	checkMetadata(t, d.info.GetMetadata(), map[string]string{"type": "invalid_request_error", "param": field})
}

func TestMetadataWithLineBreaks(t *testing.T) {
	tests := []struct {
		name  string
		key   string
		value string
	}{
		{name: "authorization with CRLF", key: "authorization", value: "Bearer k\r\nX: y"},
		{name: "authorization with LF", key: "authorization", value: "Bearer k\nX: y"},
		{name: "organization with CR", key: "openai-organization", value: "org\rX: y"},
		{name: "project with LF", key: "openai-project", value: "proj\nX: y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, envOptions{config: service.Config{Mode: service.CallerFirst, APIKey: serverKey}})
			req := &filebatchv1.CancelFileBatchRequest{
				VectorStoreId: fakeupstream.VectorStoreID,
				BatchId:       fakeupstream.BatchInProgress,
			}

			// grpc-go's client rejects the value before sending anything.
			ctx := metadata.AppendToOutgoingContext(testContext(t), tt.key, tt.value)
			_, err := env.client.CancelFileBatch(ctx, req)
			if code := status.Code(err); code != codes.Internal {
				t.Errorf("client code = %v (%v), want Internal", code, err)
			}
			if msg := status.Convert(err).Message(); !strings.Contains(msg, "non-printable") {
				t.Errorf("client message = %q, want it to report non-printable characters", msg)
			}

			// A transport that lets the value through, such as another
			// client, reaches the handler, which must reject it.
			incoming := metadata.NewIncomingContext(testContext(t), metadata.Pairs(tt.key, tt.value))
			_, err = env.service.CancelFileBatch(incoming, req)
			checkInvalidField(t, err, tt.key)
			env.upstream.checkRequestCount(t, 0)
			env.checkCancelSucceeds(t)
		})
	}
}

// htmlPageBody is the body of fakeupstream.HTMLPage(502) with its white
// space collapsed, as the service quotes it.
const htmlPageBody = "<html> <head><title>502 Bad Gateway</title></head>"

func TestInvalidUpstreamAnswers(t *testing.T) {
	tests := []struct {
		name   string
		fault  fakeupstream.Fault
		config service.Config
		// deadline, when set, is the caller's deadline.
		deadline time.Duration
		wantCode codes.Code
		// wantHTTPStatus is the upstream status that the message names,
		// or 0 when no answer arrived.
		wantHTTPStatus int
		// wantRequestID reports whether the answer had an x-request-id
		// that the message and RequestInfo must carry.
		wantRequestID bool
		// requestID is the x-request-id that the fault sets itself. The
		// test upstream cannot see the headers of a fault that takes over
		// the connection.
		requestID   string
		wantReason  string
		wantMessage []string
	}{
		{
			name:           "malformed JSON",
			fault:          fakeupstream.MalformedJSON(),
			wantCode:       codes.Unavailable,
			wantHTTPStatus: 200,
			wantRequestID:  true,
			wantReason:     service.ReasonInvalidResponse,
			wantMessage:    []string{"invalid response", "unexpected end of JSON input"},
		},
		{
			name:           "empty body",
			fault:          fakeupstream.EmptyBody(),
			wantCode:       codes.Unavailable,
			wantHTTPStatus: 200,
			wantRequestID:  true,
			wantReason:     service.ReasonInvalidResponse,
			wantMessage:    []string{"invalid response"},
		},
		{
			name:           "HTML 502 page",
			fault:          fakeupstream.HTMLPage(http.StatusBadGateway),
			wantCode:       codes.Unavailable,
			wantHTTPStatus: 502,
			wantReason:     service.ReasonUpstreamError,
			wantMessage:    []string{"Bad Gateway", "not an OpenAI error", htmlPageBody},
		},
		{
			name:           "truncated body",
			fault:          fakeupstream.Truncated().WithHeader("X-Request-Id", "req_truncated"),
			wantCode:       codes.Unavailable,
			wantHTTPStatus: 200,
			wantRequestID:  true,
			requestID:      "req_truncated",
			wantReason:     service.ReasonUpstreamUnreachable,
			wantMessage:    []string{"answer could not be read", "connection closed before the answer was complete"},
		},
		{
			name:           "wrong content type",
			fault:          fakeupstream.ContentType("text/plain"),
			wantCode:       codes.Unavailable,
			wantHTTPStatus: 200,
			wantRequestID:  true,
			wantReason:     service.ReasonInvalidResponse,
			wantMessage:    []string{`content type is "text/plain", want application/json`},
		},
		{
			name:           "connection reset mid-body",
			fault:          fakeupstream.ResetMidBody().WithHeader("X-Request-Id", "req_reset"),
			wantCode:       codes.Unavailable,
			wantHTTPStatus: 200,
			wantRequestID:  true,
			requestID:      "req_reset",
			wantReason:     service.ReasonUpstreamUnreachable,
			wantMessage:    []string{"answer could not be read", "connection reset by the upstream"},
		},
		{
			name:        "connection reset without a response",
			fault:       fakeupstream.ResetNoResponse(),
			wantCode:    codes.Unavailable,
			wantReason:  service.ReasonUpstreamUnreachable,
			wantMessage: []string{"upstream connection failed: connection reset by the upstream"},
		},
		{
			// The message is not checked: when the server's copy of the
			// deadline fires first, the client reports the server's
			// RST_STREAM rather than its own "context deadline exceeded".
			name:     "no answer until the caller's deadline",
			fault:    fakeupstream.Hang(),
			deadline: 500 * time.Millisecond,
			wantCode: codes.DeadlineExceeded,
		},
		{
			name:        "no answer until the default timeout",
			fault:       fakeupstream.Hang(),
			config:      service.Config{DefaultTimeout: 200 * time.Millisecond},
			wantCode:    codes.DeadlineExceeded,
			wantReason:  service.ReasonDeadlineExceeded,
			wantMessage: []string{"deadline exceeded before the upstream answered"},
		},
		{
			name:           "200 that is not a batch",
			fault:          fakeupstream.JSON(200, `{"object":"list","data":[]}`),
			wantCode:       codes.Unavailable,
			wantHTTPStatus: 200,
			wantRequestID:  true,
			wantReason:     service.ReasonInvalidResponse,
			wantMessage:    []string{"id is missing"},
		},
		{
			name:           "200 that is a JSON array",
			fault:          fakeupstream.JSON(200, `[]`),
			wantCode:       codes.Unavailable,
			wantHTTPStatus: 200,
			wantRequestID:  true,
			wantReason:     service.ReasonInvalidResponse,
			wantMessage:    []string{"not a JSON object"},
		},
		{
			name: "200 error object",
			fault: fakeupstream.JSON(200,
				`{"error":{"message":"Something broke.","type":"server_error","param":null,"code":null}}`),
			wantCode:       codes.Unavailable,
			wantHTTPStatus: 200,
			wantRequestID:  true,
			wantReason:     service.ReasonInvalidResponse,
			wantMessage:    []string{"error object"},
		},
		{
			name:           "body over the cap",
			fault:          fakeupstream.Oversized(2 << 20),
			wantCode:       codes.Unavailable,
			wantHTTPStatus: 200,
			wantRequestID:  true,
			wantReason:     service.ReasonInvalidResponse,
			wantMessage:    []string{"larger than the 1048576-byte limit"},
		},
		{
			name:           "503 without a body",
			fault:          fakeupstream.Fault{Status: http.StatusServiceUnavailable},
			wantCode:       codes.Unavailable,
			wantHTTPStatus: 503,
			wantRequestID:  true,
			wantReason:     service.ReasonUpstreamError,
			wantMessage:    []string{"Service Unavailable"},
		},
		{
			name:           "redirect",
			fault:          fakeupstream.Fault{Status: http.StatusFound}.WithHeader("Location", "http://127.0.0.1:1/elsewhere"),
			wantCode:       codes.Unavailable,
			wantHTTPStatus: 302,
			wantRequestID:  true,
			wantReason:     service.ReasonUpstreamError,
			wantMessage:    []string{"Found"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, envOptions{config: tt.config})
			env.upstream.Inject(tt.fault)

			// A call without a deadline gets the service's default timeout.
			ctx := t.Context()
			if tt.config.DefaultTimeout == 0 {
				ctx = testContext(t)
			}
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			_, header, err := env.cancel(ctx, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
			st, d := detailsOf(t, err)
			if st.Code() != tt.wantCode {
				t.Errorf("code = %v (%v), want %v", st.Code(), err, tt.wantCode)
			}
			want := append([]string(nil), tt.wantMessage...)
			if tt.wantHTTPStatus != 0 {
				want = append(want, "HTTP "+strconv.Itoa(tt.wantHTTPStatus))
			}
			if tt.wantRequestID {
				requestID := tt.requestID
				if requestID == "" {
					requestID = env.upstream.lastRequestID(t)
				}
				want = append(want, requestID)
				if d.request.GetRequestId() != requestID {
					t.Errorf("RequestInfo.RequestId = %q, want %q", d.request.GetRequestId(), requestID)
				}
				checkHeaderRequestID(t, header, requestID)
			}
			for _, w := range want {
				if !strings.Contains(st.Message(), w) {
					t.Errorf("message %q does not contain %q", st.Message(), w)
				}
			}
			// A caller's own deadline can end the call on the client
			// before the server's status arrives, so its details are not
			// checked.
			if tt.deadline == 0 && d.info.GetReason() != tt.wantReason {
				t.Errorf("ErrorInfo.Reason = %q, want %q", d.info.GetReason(), tt.wantReason)
			}
			env.upstream.checkRequestCount(t, 1)
			env.checkCancelSucceeds(t)
		})
	}
}

// TestInvalidUpstreamAnswersRetried shows which invalid answers are sent
// again when retries are on: broken connections and 5xx pages are, while
// a complete 2xx answer that is not a batch is not.
func TestInvalidUpstreamAnswersRetried(t *testing.T) {
	tests := []struct {
		name         string
		fault        fakeupstream.Fault
		times        int
		wantCode     codes.Code
		wantAttempts int
	}{
		{name: "reset mid-body once", fault: fakeupstream.ResetMidBody(), times: 1, wantCode: codes.OK, wantAttempts: 2},
		{name: "reset mid-body always", fault: fakeupstream.ResetMidBody(), times: 3, wantCode: codes.Unavailable, wantAttempts: 3},
		{name: "truncated once", fault: fakeupstream.Truncated(), times: 1, wantCode: codes.OK, wantAttempts: 2},
		{name: "truncated always", fault: fakeupstream.Truncated(), times: 3, wantCode: codes.Unavailable, wantAttempts: 3},
		{name: "reset without a response once", fault: fakeupstream.ResetNoResponse(), times: 1, wantCode: codes.OK, wantAttempts: 2},
		{name: "HTML 502 page once", fault: fakeupstream.HTMLPage(http.StatusBadGateway), times: 1, wantCode: codes.OK, wantAttempts: 2},
		{name: "malformed JSON", fault: fakeupstream.MalformedJSON(), times: 1, wantCode: codes.Unavailable, wantAttempts: 1},
		{name: "wrong content type", fault: fakeupstream.ContentType("text/html"), times: 1, wantCode: codes.Unavailable, wantAttempts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, envOptions{retry: fastRetry(2)})
			env.upstream.InjectN(tt.times, tt.fault)
			_, _, err := env.cancel(testContext(t), fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
			if code := status.Code(err); code != tt.wantCode {
				t.Errorf("code = %v (%v), want %v", code, err, tt.wantCode)
			}
			env.upstream.checkRequestCount(t, tt.wantAttempts)
			if tt.wantCode != codes.OK {
				env.checkCancelSucceeds(t)
			}
		})
	}
}
