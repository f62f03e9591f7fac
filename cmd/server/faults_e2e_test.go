package main

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"example.com/filebatch/fakeupstream"
	filebatchv1 "example.com/filebatch/gen/filebatch/v1"
)

// e2eMaxResponseBytes is the -max-response-bytes of TestServerUpstreamErrorResponses.
const e2eMaxResponseBytes = 4096

// generatedRequestID is the form of the x-request-id that the façade
// generates for an error that carries no upstream request id.
var generatedRequestID = regexp.MustCompile(`^req_[0-9a-f]{32}$`)

// openAIError is the object inside an OpenAI error envelope
// {"error":{"message","type","param","code"}}.
type openAIError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// envelopeFault returns a fault that sends e in an OpenAI error envelope
// with the given status.
func envelopeFault(status int, e openAIError) fakeupstream.Fault {
	// Marshal cannot fail on a struct of strings.
	body, _ := json.Marshal(struct {
		Error openAIError `json:"error"`
	}{e})
	return fakeupstream.JSON(status, string(body))
}

// upstreamErrorCase is one upstream error response of
// TestServerUpstreamErrorResponses, with what the gRPC caller and the façade
// caller must receive.
type upstreamErrorCase struct {
	name string
	// fault is the upstream response. When envelope is set, envelope and
	// upstreamStatus build the response instead.
	fault          fakeupstream.Fault
	upstreamStatus int
	envelope       *openAIError
	// retryAfter is the response's Retry-After header, which the façade must
	// pass on. Empty means none.
	retryAfter string
	// requestID is the response's x-request-id. Empty means none.
	requestID string

	code codes.Code
	// reason, ownDomain and metadata are the expected ErrorInfo. ownDomain
	// selects the domain "filebatch" over the upstream host.
	reason    string
	ownDomain bool
	metadata  map[string]string
	// messageParts are texts that the status message contains, for a
	// response without an envelope. With an envelope, the message must equal
	// the upstream's.
	messageParts []string
	// retryDelay is the expected RetryInfo delay. Zero means no RetryInfo.
	retryDelay time.Duration

	httpStatus int
}

func upstreamErrorCases() []upstreamErrorCase {
	return []upstreamErrorCase{
		{
			name:           "400 with param and code",
			upstreamStatus: http.StatusBadRequest,
			envelope: &openAIError{Message: "Invalid 'batch_id': the ID must start with 'vsfb_'.",
				Type: "invalid_request_error", Param: new("batch_id"), Code: new("invalid_value")},
			requestID:  "req_e2e_status_400",
			code:       codes.InvalidArgument,
			reason:     "invalid_value",
			metadata:   map[string]string{"http_status": "400", "type": "invalid_request_error", "param": "batch_id", "code": "invalid_value"},
			httpStatus: http.StatusBadRequest,
		},
		{
			name:           "401 invalid key",
			upstreamStatus: http.StatusUnauthorized,
			envelope: &openAIError{Message: "Incorrect API key provided. Check the key and try again.",
				Type: "invalid_request_error", Code: new("invalid_api_key")},
			requestID:  "req_e2e_status_401",
			code:       codes.Unauthenticated,
			reason:     "invalid_api_key",
			metadata:   map[string]string{"http_status": "401", "type": "invalid_request_error", "code": "invalid_api_key"},
			httpStatus: http.StatusUnauthorized,
		},
		{
			name:           "403 forbidden",
			upstreamStatus: http.StatusForbidden,
			envelope: &openAIError{Message: "Country, region, or territory not supported.",
				Type: "request_forbidden", Code: new("unsupported_country_region_territory")},
			requestID:  "req_e2e_status_403",
			code:       codes.PermissionDenied,
			reason:     "unsupported_country_region_territory",
			metadata:   map[string]string{"http_status": "403", "type": "request_forbidden", "code": "unsupported_country_region_territory"},
			httpStatus: http.StatusForbidden,
		},
		{
			name:           "404 null param and code",
			upstreamStatus: http.StatusNotFound,
			envelope: &openAIError{Message: "File batch 'vsfb_abc123' does not exist in vector store 'vs_abc123'.",
				Type: "invalid_request_error"},
			requestID:  "req_e2e_status_404",
			code:       codes.NotFound,
			reason:     "invalid_request_error",
			metadata:   map[string]string{"http_status": "404", "type": "invalid_request_error"},
			httpStatus: http.StatusNotFound,
		},
		{
			name:           "409 conflict",
			upstreamStatus: http.StatusConflict,
			envelope: &openAIError{Message: "Another request is changing this file batch. Retry later.",
				Type: "invalid_request_error", Code: new("conflict")},
			requestID:  "req_e2e_status_409",
			code:       codes.Aborted,
			reason:     "conflict",
			metadata:   map[string]string{"http_status": "409", "type": "invalid_request_error", "code": "conflict"},
			httpStatus: http.StatusConflict,
		},
		{
			name:           "422 with param",
			upstreamStatus: http.StatusUnprocessableEntity,
			envelope: &openAIError{Message: "The vector store is being deleted.",
				Type: "invalid_request_error", Param: new("vector_store_id")},
			requestID:  "req_e2e_status_422",
			code:       codes.InvalidArgument,
			reason:     "invalid_request_error",
			metadata:   map[string]string{"http_status": "422", "type": "invalid_request_error", "param": "vector_store_id"},
			httpStatus: http.StatusUnprocessableEntity,
		},
		{
			name:           "429 with Retry-After",
			upstreamStatus: http.StatusTooManyRequests,
			envelope: &openAIError{Message: "Rate limit reached for requests. Try again in 3s.",
				Type: fakeupstream.TypeRequests, Code: new(fakeupstream.CodeRateLimitExceeded)},
			retryAfter: "3",
			requestID:  "req_e2e_status_429",
			code:       codes.ResourceExhausted,
			reason:     fakeupstream.CodeRateLimitExceeded,
			metadata:   map[string]string{"http_status": "429", "type": "requests", "code": "rate_limit_exceeded"},
			retryDelay: 3 * time.Second,
			httpStatus: http.StatusTooManyRequests,
		},
		{
			name:           "429 insufficient quota",
			upstreamStatus: http.StatusTooManyRequests,
			envelope: &openAIError{Message: "You exceeded your current quota. Check your plan and billing details.",
				Type: fakeupstream.TypeInsufficientQuota, Code: new(fakeupstream.CodeInsufficientQuota)},
			requestID:  "req_e2e_quota_429",
			code:       codes.ResourceExhausted,
			reason:     fakeupstream.CodeInsufficientQuota,
			metadata:   map[string]string{"http_status": "429", "type": "insufficient_quota", "code": "insufficient_quota"},
			httpStatus: http.StatusTooManyRequests,
		},
		{
			name:           "500 server error",
			upstreamStatus: http.StatusInternalServerError,
			envelope: &openAIError{Message: "The server had an error while processing your request.",
				Type: fakeupstream.TypeServerError},
			requestID:  "req_e2e_status_500",
			code:       codes.Internal,
			reason:     "server_error",
			metadata:   map[string]string{"http_status": "500", "type": "server_error"},
			httpStatus: http.StatusInternalServerError,
		},
		{
			name:           "502 with envelope",
			upstreamStatus: http.StatusBadGateway,
			envelope: &openAIError{Message: "Bad gateway.",
				Type: fakeupstream.TypeServerError, Code: new("bad_gateway")},
			requestID:  "req_e2e_status_502",
			code:       codes.Unavailable,
			reason:     "bad_gateway",
			metadata:   map[string]string{"http_status": "502", "type": "server_error", "code": "bad_gateway"},
			httpStatus: http.StatusBadGateway,
		},
		{
			name:           "503 with envelope",
			upstreamStatus: http.StatusServiceUnavailable,
			envelope: &openAIError{Message: "The engine is currently overloaded. Please try again later.",
				Type: fakeupstream.TypeServerError},
			requestID:  "req_e2e_status_503",
			code:       codes.Unavailable,
			reason:     "server_error",
			metadata:   map[string]string{"http_status": "503", "type": "server_error"},
			httpStatus: http.StatusServiceUnavailable,
		},
		{
			name:           "504 with envelope",
			upstreamStatus: http.StatusGatewayTimeout,
			envelope: &openAIError{Message: "The upstream timed out.",
				Type: fakeupstream.TypeServerError, Code: new("timeout")},
			requestID:  "req_e2e_status_504",
			code:       codes.Unavailable,
			reason:     "timeout",
			metadata:   map[string]string{"http_status": "504", "type": "server_error", "code": "timeout"},
			httpStatus: http.StatusGatewayTimeout,
		},
		{
			// The page comes from a proxy, so it has no x-request-id.
			name:         "502 HTML page",
			fault:        fakeupstream.HTMLPage(http.StatusBadGateway),
			code:         codes.Unavailable,
			reason:       "upstream_error",
			metadata:     map[string]string{"http_status": "502", "type": "server_error"},
			messageParts: []string{"upstream HTTP 502 ", "Bad Gateway", "not an OpenAI error", "<title>502 Bad Gateway</title>"},
			httpStatus:   http.StatusBadGateway,
		},
		{
			name: "200 error object",
			fault: fakeupstream.JSON(http.StatusOK,
				`{"error":{"message":"The server had an error.","type":"server_error","param":null,"code":null}}`),
			requestID:    "req_e2e_error_object",
			code:         codes.Unavailable,
			reason:       "invalid_upstream_response",
			ownDomain:    true,
			metadata:     map[string]string{"http_status": "502", "type": "server_error", "upstream_status": "200"},
			messageParts: []string{"upstream HTTP 200 ", "invalid response", "error object"},
			httpStatus:   http.StatusBadGateway,
		},
		{
			name:         "200 malformed JSON",
			fault:        fakeupstream.MalformedJSON(),
			requestID:    "req_e2e_malformed",
			code:         codes.Unavailable,
			reason:       "invalid_upstream_response",
			ownDomain:    true,
			metadata:     map[string]string{"http_status": "502", "type": "server_error", "upstream_status": "200"},
			messageParts: []string{"upstream HTTP 200 ", "invalid response", "unexpected end of JSON input"},
			httpStatus:   http.StatusBadGateway,
		},
		{
			name:         "200 empty body",
			fault:        fakeupstream.EmptyBody(),
			requestID:    "req_e2e_empty",
			code:         codes.Unavailable,
			reason:       "invalid_upstream_response",
			ownDomain:    true,
			metadata:     map[string]string{"http_status": "502", "type": "server_error", "upstream_status": "200"},
			messageParts: []string{"upstream HTTP 200 ", "invalid response", "unexpected end of JSON input"},
			httpStatus:   http.StatusBadGateway,
		},
		{
			// The body is the cancelled batch, but the client accepts only
			// application/json, so the batch is rejected.
			name:         "200 batch as HTML",
			fault:        fakeupstream.ContentType("text/html"),
			requestID:    "req_e2e_content_type",
			code:         codes.Unavailable,
			reason:       "invalid_upstream_response",
			ownDomain:    true,
			metadata:     map[string]string{"http_status": "502", "type": "server_error", "upstream_status": "200"},
			messageParts: []string{"upstream HTTP 200 ", "invalid response", `content type is "text/html", want application/json`},
			httpStatus:   http.StatusBadGateway,
		},
		{
			name:         "truncated body",
			fault:        fakeupstream.Truncated(),
			requestID:    "req_e2e_truncated",
			code:         codes.Unavailable,
			reason:       "upstream_unreachable",
			ownDomain:    true,
			metadata:     map[string]string{"http_status": "502", "type": "server_error", "upstream_status": "200"},
			messageParts: []string{"upstream HTTP 200 ", "answer could not be read: connection closed before the answer was complete"},
			httpStatus:   http.StatusBadGateway,
		},
		{
			name:         "reset mid-body",
			fault:        fakeupstream.ResetMidBody(),
			requestID:    "req_e2e_reset",
			code:         codes.Unavailable,
			reason:       "upstream_unreachable",
			ownDomain:    true,
			metadata:     map[string]string{"http_status": "502", "type": "server_error", "upstream_status": "200"},
			messageParts: []string{"upstream HTTP 200 ", "answer could not be read: connection reset by the upstream"},
			httpStatus:   http.StatusBadGateway,
		},
		{
			name:         "body over the cap",
			fault:        fakeupstream.Oversized(2 * e2eMaxResponseBytes),
			requestID:    "req_e2e_oversized",
			code:         codes.Unavailable,
			reason:       "invalid_upstream_response",
			ownDomain:    true,
			metadata:     map[string]string{"http_status": "502", "type": "server_error", "upstream_status": "200"},
			messageParts: []string{"upstream HTTP 200 ", "invalid response", "larger than the 4096-byte limit"},
			httpStatus:   http.StatusBadGateway,
		},
	}
}

// upstreamResponse returns the fault that sends the case's upstream response.
func (tc upstreamErrorCase) upstreamResponse() fakeupstream.Fault {
	fault := tc.fault
	if tc.envelope != nil {
		fault = envelopeFault(tc.upstreamStatus, *tc.envelope)
	}
	if tc.retryAfter != "" {
		fault = fault.WithHeader("Retry-After", tc.retryAfter)
	}
	if tc.requestID != "" {
		fault = fault.WithHeader("X-Request-Id", tc.requestID)
	}
	return fault
}

// TestServerUpstreamErrorResponses sends each upstream error response once
// to a gRPC caller and once to a façade caller, with retries off, and checks
// that the server still serves after each.
func TestServerUpstreamErrorResponses(t *testing.T) {
	fake := fakeupstream.NewTest(t, fakeupstream.Options{})
	srv := startServer(t, []string{"-upstream-url", fake.URL(), "-max-retries", "0",
		"-max-response-bytes", strconv.Itoa(e2eMaxResponseBytes)},
		"OPENAI_API_KEY", fakeupstream.DefaultAPIKey)
	client, _ := dialServer(t, srv.grpcAddr)

	for _, tc := range upstreamErrorCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Run("grpc", func(t *testing.T) {
				fake.Reset()
				fake.Inject(tc.upstreamResponse())
				var header metadata.MD
				_, err := client.CancelFileBatch(callContext(t), cancelRequest(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress),
					grpc.Header(&header))
				checkOneUpstreamRequest(t, fake)
				checkUpstreamErrorStatus(t, tc, err, header, fake.Addr())
			})
			t.Run("facade", func(t *testing.T) {
				fake.Reset()
				fake.Inject(tc.upstreamResponse())
				resp := postFacade(t, http.DefaultClient, srv.apiRoot, "", fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
				checkOneUpstreamRequest(t, fake)
				checkFacadeErrorResponse(t, tc, resp)
			})
			checkServerStillCancels(t, fake, client, srv)
		})
	}
}

// checkOneUpstreamRequest fails t unless the fake received exactly one
// request since its last reset, the cancel request of BatchInProgress.
func checkOneUpstreamRequest(t *testing.T, fake *fakeupstream.Server) {
	t.Helper()
	requests := fake.Requests()
	if len(requests) != 1 {
		t.Errorf("fake.Requests() has %d requests, want 1", len(requests))
		return
	}
	const wantPath = "/v1/vector_stores/" + fakeupstream.VectorStoreID + "/file_batches/" + fakeupstream.BatchInProgress + "/cancel"
	if got := requests[0].Method + " " + requests[0].Path; got != "POST "+wantPath {
		t.Errorf("upstream request = %q, want %q", got, "POST "+wantPath)
	}
}

// checkUpstreamErrorStatus checks the gRPC error and response header
// metadata of a call that received tc's response from the upstream at
// upstreamHost.
func checkUpstreamErrorStatus(t *testing.T, tc upstreamErrorCase, err error, header metadata.MD, upstreamHost string) {
	t.Helper()
	st, ok := status.FromError(err)
	if err == nil || !ok {
		t.Fatalf("CancelFileBatch() error = %v, want a status error", err)
	}
	if st.Code() != tc.code {
		t.Errorf("CancelFileBatch() code = %v (%q), want %v", st.Code(), st.Message(), tc.code)
	}
	if tc.envelope != nil {
		if st.Message() != tc.envelope.Message {
			t.Errorf("CancelFileBatch() message = %q, want the upstream's %q", st.Message(), tc.envelope.Message)
		}
	}
	for _, part := range tc.messageParts {
		if !strings.Contains(st.Message(), part) {
			t.Errorf("CancelFileBatch() message = %q, want it to contain %q", st.Message(), part)
		}
	}
	if tc.envelope == nil && tc.requestID != "" {
		if want := "(request id " + tc.requestID + ")"; !strings.Contains(st.Message(), want) {
			t.Errorf("CancelFileBatch() message = %q, want it to contain %q", st.Message(), want)
		}
	}

	details := rpcErrorDetailsOf(st)
	if details.info == nil {
		t.Errorf("CancelFileBatch() details = %v, want an ErrorInfo", st.Details())
	} else {
		if got := details.info.GetReason(); got != tc.reason {
			t.Errorf("ErrorInfo.Reason = %q, want %q", got, tc.reason)
		}
		wantDomain := upstreamHost
		if tc.ownDomain {
			wantDomain = "filebatch"
		}
		if got := details.info.GetDomain(); got != wantDomain {
			t.Errorf("ErrorInfo.Domain = %q, want %q", got, wantDomain)
		}
		if got := details.info.GetMetadata()["http_status"]; got != tc.metadata["http_status"] {
			t.Errorf("ErrorInfo.Metadata[http_status] = %q, want %q", got, tc.metadata["http_status"])
		}
		if got := details.info.GetMetadata(); !maps.Equal(got, tc.metadata) {
			t.Errorf("ErrorInfo.Metadata = %v, want %v", got, tc.metadata)
		}
	}

	switch {
	case tc.requestID == "" && details.request != nil:
		t.Errorf("RequestInfo = %v, want none for a response without x-request-id", details.request)
	case tc.requestID != "" && details.request.GetRequestId() != tc.requestID:
		t.Errorf("RequestInfo.RequestId = %q, want the upstream's %q", details.request.GetRequestId(), tc.requestID)
	}

	switch {
	case tc.retryDelay == 0 && details.retry != nil:
		t.Errorf("RetryInfo = %v, want none for a response without Retry-After", details.retry)
	case tc.retryDelay != 0 && details.retry == nil:
		t.Errorf("RetryInfo missing, want a delay of %v", tc.retryDelay)
	case tc.retryDelay != 0 && details.retry.GetRetryDelay().AsDuration() != tc.retryDelay:
		t.Errorf("RetryInfo.RetryDelay = %v, want %v", details.retry.GetRetryDelay().AsDuration(), tc.retryDelay)
	}

	var wantIDs []string
	if tc.requestID != "" {
		wantIDs = []string{tc.requestID}
	}
	if got := header.Get("x-request-id"); !slices.Equal(got, wantIDs) {
		t.Errorf("header metadata x-request-id = %q, want %q", got, wantIDs)
	}
	var wantRetryAfter []string
	if tc.retryAfter != "" {
		wantRetryAfter = []string{tc.retryAfter}
	}
	if got := header.Get("retry-after"); !slices.Equal(got, wantRetryAfter) {
		t.Errorf("header metadata retry-after = %q, want %q", got, wantRetryAfter)
	}
}

// checkFacadeErrorResponse checks the façade's response to a request
// whose upstream call received tc's response.
func checkFacadeErrorResponse(t *testing.T, tc upstreamErrorCase, resp facadeResponse) {
	t.Helper()
	if resp.status != tc.httpStatus {
		t.Errorf("POST cancel status = %d, want %d; body %s", resp.status, tc.httpStatus, resp.body)
	}
	if got := resp.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("POST cancel Content-Type = %q, want application/json", got)
	}

	got := decodeErrorEnvelope(t, resp.body)
	want := openAIError{Type: tc.metadata["type"]}
	if tc.envelope != nil {
		want = *tc.envelope
		if got.Message != want.Message {
			t.Errorf("error.message = %q, want the upstream's %q", got.Message, want.Message)
		}
	}
	for _, part := range tc.messageParts {
		if !strings.Contains(got.Message, part) {
			t.Errorf("error.message = %q, want it to contain %q", got.Message, part)
		}
	}
	if got.Type != want.Type {
		t.Errorf("error.type = %q, want %q", got.Type, want.Type)
	}
	if jsonOptional(got.Param) != jsonOptional(want.Param) {
		t.Errorf("error.param = %s, want %s", jsonOptional(got.Param), jsonOptional(want.Param))
	}
	if jsonOptional(got.Code) != jsonOptional(want.Code) {
		t.Errorf("error.code = %s, want %s", jsonOptional(got.Code), jsonOptional(want.Code))
	}

	requestID := resp.header.Get("X-Request-Id")
	switch {
	case tc.requestID == "" && !generatedRequestID.MatchString(requestID):
		t.Errorf("X-Request-Id = %q, want one generated by the façade, req_ and 32 hex digits", requestID)
	case tc.requestID != "" && requestID != tc.requestID:
		t.Errorf("X-Request-Id = %q, want the upstream's %q", requestID, tc.requestID)
	}
	if got := resp.header.Values("Retry-After"); tc.retryAfter == "" && len(got) != 0 {
		t.Errorf("Retry-After = %q, want none", got)
	} else if tc.retryAfter != "" && !slices.Equal(got, []string{tc.retryAfter}) {
		t.Errorf("Retry-After = %q, want the upstream's %q", got, tc.retryAfter)
	}
	if got := resp.header.Values("Retry-After-Ms"); len(got) != 0 {
		t.Errorf("Retry-After-Ms = %q, want none, since the upstream sent none", got)
	}
}

// checkServerStillCancels fails t unless a cancel call succeeds over gRPC
// and over the façade after the fake is reset.
func checkServerStillCancels(t *testing.T, fake *fakeupstream.Server, client filebatchv1.FileBatchServiceClient, srv testServer) {
	t.Helper()
	fake.Reset()
	batch, err := client.CancelFileBatch(callContext(t), cancelRequest(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress))
	if err != nil {
		t.Errorf("CancelFileBatch(%s) after the fault = %v, want success", fakeupstream.BatchInProgress, err)
	} else if batch.GetStatusRaw() != fakeupstream.StatusCancelled {
		t.Errorf("CancelFileBatch(%s) after the fault status = %q, want %q", fakeupstream.BatchInProgress, batch.GetStatusRaw(), fakeupstream.StatusCancelled)
	}
	resp := postFacade(t, http.DefaultClient, srv.apiRoot, "", fakeupstream.OtherVectorStoreID, fakeupstream.OtherBatchInProgress)
	if resp.status != http.StatusOK {
		t.Errorf("POST cancel %s after the fault status = %d, want 200; body %s", fakeupstream.OtherBatchInProgress, resp.status, resp.body)
	}
}

// rpcErrorDetails holds the error details of a gRPC status that these tests
// read, or nil for those it lacks.
type rpcErrorDetails struct {
	info    *errdetails.ErrorInfo
	request *errdetails.RequestInfo
	retry   *errdetails.RetryInfo
}

func rpcErrorDetailsOf(st *status.Status) rpcErrorDetails {
	var d rpcErrorDetails
	for _, detail := range st.Details() {
		switch v := detail.(type) {
		case *errdetails.ErrorInfo:
			d.info = v
		case *errdetails.RequestInfo:
			d.request = v
		case *errdetails.RetryInfo:
			d.retry = v
		}
	}
	return d
}

// decodeErrorEnvelope decodes a façade error body, and fails t unless it is
// {"error":{...}} with exactly the fields message, type, param and code.
func decodeErrorEnvelope(t *testing.T, body []byte) openAIError {
	t.Helper()
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("json.Unmarshal(%s) = %v, want an error envelope", body, err)
	}
	if len(raw) != 1 || raw["error"] == nil {
		t.Errorf("error body %s, want one field, error", body)
	}
	fields := slices.Sorted(maps.Keys(raw["error"]))
	if want := []string{"code", "message", "param", "type"}; !slices.Equal(fields, want) {
		t.Errorf("error body fields = %q, want %q", fields, want)
	}
	var envelope struct {
		Error openAIError `json:"error"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		t.Fatalf("json.Unmarshal(%s) = %v, want string or null fields", body, err)
	}
	return envelope.Error
}

// jsonOptional returns s as JSON: null for nil, else a quoted string.
func jsonOptional(s *string) string {
	if s == nil {
		return "null"
	}
	return strconv.Quote(*s)
}

// TestServerNoResponseBeforeDeadline holds the upstream request past the
// caller's deadline over gRPC, and past -upstream-timeout over the façade.
func TestServerNoResponseBeforeDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	fake := fakeupstream.NewTest(t, fakeupstream.Options{})
	srv := startServer(t, []string{"-upstream-url", fake.URL(), "-max-retries", "0", "-upstream-timeout", timeout.String()},
		"OPENAI_API_KEY", fakeupstream.DefaultAPIKey)
	client, _ := dialServer(t, srv.grpcAddr)

	t.Run("grpc", func(t *testing.T) {
		fake.Reset()
		fake.Inject(fakeupstream.Hang())
		ctx, cancel := context.WithTimeout(callContext(t), timeout)
		defer cancel()
		_, err := client.CancelFileBatch(ctx, cancelRequest(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress))
		if code := status.Code(err); code != codes.DeadlineExceeded {
			t.Errorf("CancelFileBatch() code = %v (%v), want DeadlineExceeded", code, err)
		}
		checkUpstreamRequestEnded(t, fake)
	})
	t.Run("facade", func(t *testing.T) {
		fake.Reset()
		fake.Inject(fakeupstream.Hang())
		resp := postFacade(t, http.DefaultClient, srv.apiRoot, "", fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
		if resp.status != http.StatusGatewayTimeout {
			t.Errorf("POST cancel status = %d, want 504; body %s", resp.status, resp.body)
		}
		if got := resp.header.Get("Content-Type"); got != "application/json" {
			t.Errorf("POST cancel Content-Type = %q, want application/json", got)
		}
		got := decodeErrorEnvelope(t, resp.body)
		if got.Type != "timeout" {
			t.Errorf("error.type = %q, want timeout", got.Type)
		}
		if want := "deadline exceeded before the upstream answered"; got.Message != want {
			t.Errorf("error.message = %q, want %q", got.Message, want)
		}
		if got.Param != nil || got.Code != nil {
			t.Errorf("error.param, error.code = %s, %s, want null, null", jsonOptional(got.Param), jsonOptional(got.Code))
		}
		if id := resp.header.Get("X-Request-Id"); !generatedRequestID.MatchString(id) {
			t.Errorf("X-Request-Id = %q, want req_ and 32 hex digits", id)
		}
		checkUpstreamRequestEnded(t, fake)
	})
	checkServerStillCancels(t, fake, client, srv)
}

// checkUpstreamRequestEnded fails t unless the fake received one request
// and its handler returned because the server gave up on it.
func checkUpstreamRequestEnded(t *testing.T, fake *fakeupstream.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	requests, err := fake.WaitRequests(ctx, 1)
	if err != nil {
		t.Fatalf("fake.WaitRequests(1) = %v", err)
	}
	if len(requests) != 1 {
		t.Errorf("fake.WaitRequests(1) returned %d requests, want 1", len(requests))
	}
	checkUpstreamCanceled(t, requests[0])
}

// TestServerConcurrencyCapRejects holds the only upstream slot and sends a
// second call over gRPC and one over the façade.
func TestServerConcurrencyCapRejects(t *testing.T) {
	up := startRecordingUpstream(t, fakeupstream.Options{}, true)
	srv := startServer(t, []string{"-upstream-url", up.url, "-max-retries", "0",
		"-max-concurrent-upstream", "1", "-queue-timeout", "100ms"},
		"OPENAI_API_KEY", fakeupstream.DefaultAPIKey)
	client, _ := dialServer(t, srv.grpcAddr)

	type result struct {
		batch *filebatchv1.VectorStoreFileBatch
		err   error
	}
	heldResult := make(chan result, 1)
	heldCtx := callContext(t)
	go func() {
		batch, err := client.CancelFileBatch(heldCtx, cancelRequest(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress))
		heldResult <- result{batch, err}
	}()
	waitCtx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := up.WaitRequests(waitCtx, 1); err != nil {
		up.openGate()
		t.Fatalf("WaitRequests(1) for the held call = %v", err)
	}

	t.Run("grpc", func(t *testing.T) {
		_, err := client.CancelFileBatch(callContext(t), cancelRequest(fakeupstream.OtherVectorStoreID, fakeupstream.OtherBatchInProgress))
		st := status.Convert(err)
		if st.Code() != codes.ResourceExhausted {
			t.Errorf("CancelFileBatch() code = %v (%v), want ResourceExhausted", st.Code(), err)
		}
		details := rpcErrorDetailsOf(st)
		if got := details.info.GetReason(); got != "concurrency_limit" {
			t.Errorf("ErrorInfo.Reason = %q, want concurrency_limit", got)
		}
		if details.retry == nil {
			t.Errorf("CancelFileBatch() details = %v, want a RetryInfo", st.Details())
		} else if delay := details.retry.GetRetryDelay().AsDuration(); delay <= 0 {
			t.Errorf("RetryInfo.RetryDelay = %v, want a positive delay", delay)
		}
	})
	t.Run("facade", func(t *testing.T) {
		resp := postFacade(t, http.DefaultClient, srv.apiRoot, "", fakeupstream.OtherVectorStoreID, fakeupstream.OtherBatchInProgress)
		// The service sets http_status 503 on its concurrency-limit error,
		// so the façade returns 503 rather than the 429 that
		// ResourceExhausted maps to without it.
		if resp.status != http.StatusServiceUnavailable {
			t.Errorf("POST cancel status = %d, want 503; body %s", resp.status, resp.body)
		}
		if got := resp.header.Get("Content-Type"); got != "application/json" {
			t.Errorf("POST cancel Content-Type = %q, want application/json", got)
		}
		got := decodeErrorEnvelope(t, resp.body)
		if got.Type != "server_error" {
			t.Errorf("error.type = %q, want server_error", got.Type)
		}
		if !strings.Contains(got.Message, "too many concurrent calls") {
			t.Errorf("error.message = %q, want it to contain %q", got.Message, "too many concurrent calls")
		}
		if got := resp.header.Get("Retry-After"); got != "1" {
			t.Errorf("Retry-After = %q, want 1", got)
		}
	})

	if n := len(up.Requests()); n != 1 {
		t.Errorf("upstream received %d requests, want only the held call's", n)
	}
	up.openGate()
	select {
	case r := <-heldResult:
		if r.err != nil {
			t.Errorf("held CancelFileBatch() = %v, want success", r.err)
		} else if r.batch.GetStatusRaw() != fakeupstream.StatusCancelled {
			t.Errorf("held CancelFileBatch() status = %q, want %q", r.batch.GetStatusRaw(), fakeupstream.StatusCancelled)
		}
	case <-waitCtx.Done():
		t.Fatalf("held CancelFileBatch() did not return within 10s of opening the gate")
	}
}

// TestServerUntrustedUpstreamCertificate points the server at an https
// upstream whose certificate comes from httptest's own CA, which the server
// does not trust.
func TestServerUntrustedUpstreamCertificate(t *testing.T) {
	const key = "sk-untrusted-cert-Jq4mZ8wV2pLs"
	fake := fakeupstream.New(fakeupstream.Options{APIKey: key})
	upstreamServer := httptest.NewUnstartedServer(fake)
	// The failed handshakes would otherwise be logged to the test output.
	upstreamServer.Config.ErrorLog = log.New(io.Discard, "", 0)
	upstreamServer.StartTLS()
	t.Cleanup(func() {
		if err := fake.Close(); err != nil {
			t.Errorf("close fake upstream: %v", err)
		}
		upstreamServer.Close()
	})
	srv := startServer(t, []string{"-upstream-url", upstreamServer.URL + "/v1", "-max-retries", "0"}, "OPENAI_API_KEY", key)
	client, _ := dialServer(t, srv.grpcAddr)
	const wantMessage = "upstream connection failed: the upstream's TLS certificate is not trusted"

	t.Run("grpc", func(t *testing.T) {
		var header, trailer metadata.MD
		_, err := client.CancelFileBatch(callContext(t), cancelRequest(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress),
			grpc.Header(&header), grpc.Trailer(&trailer))
		st := status.Convert(err)
		if st.Code() != codes.Unavailable {
			t.Errorf("CancelFileBatch() code = %v (%v), want Unavailable", st.Code(), err)
		}
		if st.Message() != wantMessage {
			t.Errorf("CancelFileBatch() message = %q, want %q", st.Message(), wantMessage)
		}
		if got := rpcErrorDetailsOf(st).info.GetReason(); got != "upstream_unreachable" {
			t.Errorf("ErrorInfo.Reason = %q, want upstream_unreachable", got)
		}
		checkStatusHasNoKey(t, err, header, trailer, key)
	})
	t.Run("facade", func(t *testing.T) {
		resp := postFacade(t, http.DefaultClient, srv.apiRoot, "", fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
		if resp.status != http.StatusBadGateway {
			t.Errorf("POST cancel status = %d, want 502; body %s", resp.status, resp.body)
		}
		got := decodeErrorEnvelope(t, resp.body)
		if got.Message != wantMessage {
			t.Errorf("error.message = %q, want %q", got.Message, wantMessage)
		}
		if got.Type != "server_error" {
			t.Errorf("error.type = %q, want server_error", got.Type)
		}
		checkNoKey(t, "façade body", string(resp.body), key)
	})
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("upstream received %d requests, want none: the handshake should fail first", n)
	}
	checkNoKey(t, "server log", srv.logs.String(), key)
}

// TestServerRejectsOversizedHeader sends the façade a 16 KiB header. The
// limit is -max-request-bytes plus the 4096 bytes that net/http (Go 1.26)
// reads beyond MaxHeaderBytes, so 8 KiB here.
func TestServerRejectsOversizedHeader(t *testing.T) {
	fake := fakeupstream.NewTest(t, fakeupstream.Options{})
	srv := startServer(t, []string{"-upstream-url", fake.URL(), "-max-request-bytes", "4096"},
		"OPENAI_API_KEY", fakeupstream.DefaultAPIKey)

	target := srv.apiRoot + "/vector_stores/" + fakeupstream.VectorStoreID + "/file_batches/" + fakeupstream.BatchInProgress + "/cancel"
	req, err := http.NewRequestWithContext(callContext(t), http.MethodPost, target, nil)
	if err != nil {
		t.Fatalf("http.NewRequest(POST %s) = %v", target, err)
	}
	req.Header.Set("X-Padding", strings.Repeat("a", 16<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST cancel with a 16 KiB header = %v, want a 431 response", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("read 431 body: %v", err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("POST cancel with a 16 KiB header status = %d, want 431; body %s", resp.StatusCode, body)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("upstream received %d requests, want none", n)
	}

	ok := postFacade(t, http.DefaultClient, srv.apiRoot, "", fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	if ok.status != http.StatusOK {
		t.Errorf("POST cancel after the oversized header status = %d, want 200; body %s", ok.status, ok.body)
	}
}
