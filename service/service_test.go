package service_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"example.com/filebatch/fakeupstream"
	filebatchv1 "example.com/filebatch/gen/filebatch/v1"
	"example.com/filebatch/service"
	"example.com/filebatch/upstream"
)

// serverKey is the server's own API key in these tests, the key that the
// fake upstream accepts by default.
const serverKey = fakeupstream.DefaultAPIKey

// testUserAgent is the User-Agent that the tests' upstream client sends.
const testUserAgent = "filebatch/test"

// testUpstream is a fake upstream behind an httptest server that also
// records the x-request-id of every response the fake completed, because
// the fake's own records hold only the requests.
type testUpstream struct {
	*fakeupstream.Server
	url  string // API root, such as http://127.0.0.1:8081/v1
	host string // host:port, the ErrorInfo domain of upstream errors

	mu          sync.Mutex
	requestIDs  []string
	inFlight    int
	maxInFlight int
}

func startUpstream(t *testing.T, opts fakeupstream.Options) *testUpstream {
	t.Helper()
	u := &testUpstream{Server: fakeupstream.New(opts)}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(u.serveHTTP))
	srv.Config.ConnState = u.Server.ConnState
	srv.Start()
	t.Cleanup(func() {
		// Closing the fake first ends its hangs, so that srv.Close, which
		// waits for every handler, does not block.
		if err := u.Server.Close(); err != nil {
			t.Errorf("close fake upstream: %v", err)
		}
		srv.Close()
	})
	parsed, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatalf("parse fake upstream URL %q: %v", srv.URL, err)
	}
	u.url = srv.URL + "/v1"
	u.host = parsed.Host
	return u
}

func (u *testUpstream) serveHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.inFlight++
	u.maxInFlight = max(u.maxInFlight, u.inFlight)
	u.mu.Unlock()
	// The fake panics to abort a response, so the count drops in a defer.
	// It drops before net/http flushes the response, so a client never
	// sees an answer from a handler that still counts as in flight.
	defer func() {
		u.mu.Lock()
		u.inFlight--
		u.mu.Unlock()
	}()

	u.Server.ServeHTTP(w, r)
	if id := w.Header().Get("X-Request-Id"); id != "" {
		u.mu.Lock()
		u.requestIDs = append(u.requestIDs, id)
		u.mu.Unlock()
	}
}

// sentRequestIDs returns the x-request-id of each completed response, in
// order of completion.
func (u *testUpstream) sentRequestIDs() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.requestIDs...)
}

// maxConcurrentRequests returns the largest number of requests that the
// fake upstream handled at the same time.
func (u *testUpstream) maxConcurrentRequests() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.maxInFlight
}

// lastRequestID returns the x-request-id of the last completed response.
func (u *testUpstream) lastRequestID(t *testing.T) string {
	t.Helper()
	ids := u.sentRequestIDs()
	if len(ids) == 0 {
		t.Fatal("the fake upstream sent no response with an x-request-id")
	}
	return ids[len(ids)-1]
}

// checkRequestCount fails t unless the fake upstream received exactly want
// requests.
func (u *testUpstream) checkRequestCount(t *testing.T, want int) {
	t.Helper()
	if got := len(u.Requests()); got != want {
		t.Errorf("upstream received %d requests, want %d", got, want)
	}
}

// envOptions configures newEnv. The zero value gives a server in
// server-key mode with no retries.
type envOptions struct {
	fake fakeupstream.Options
	// retry is the upstream retry policy. The zero value retries nothing.
	retry            upstream.RetryPolicy
	maxResponseBytes int64
	// config is the service configuration. Upstream is filled in, and an
	// empty APIKey in server-key mode becomes serverKey unless noServerKey
	// is set.
	config        service.Config
	noServerKey   bool
	serverOptions []grpc.ServerOption
}

// testEnv is the service on a real gRPC server on loopback, in front of a
// fake upstream, with a client connected to it.
type testEnv struct {
	upstream *testUpstream
	service  *service.Server
	client   filebatchv1.FileBatchServiceClient
}

func newEnv(t *testing.T, opts envOptions) *testEnv {
	t.Helper()
	fake := startUpstream(t, opts.fake)
	client, err := upstream.New(upstream.Config{
		BaseURL:          fake.url,
		UserAgent:        testUserAgent,
		MaxResponseBytes: opts.maxResponseBytes,
		Retry:            opts.retry,
	})
	if err != nil {
		t.Fatalf("upstream.New: %v", err)
	}
	cfg := opts.config
	cfg.Upstream = client
	if cfg.Mode == service.ServerKey && cfg.APIKey == "" && !opts.noServerKey {
		cfg.APIKey = serverKey
	}
	svc, err := service.New(cfg)
	if err != nil {
		t.Fatalf("service.New: %v", err)
	}

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	grpcServer := grpc.NewServer(opts.serverOptions...)
	filebatchv1.RegisterFileBatchServiceServer(grpcServer, svc)
	served := make(chan error, 1)
	go func() { served <- grpcServer.Serve(listener) }()

	conn, err := grpc.NewClient(listener.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() {
		conn.Close()
		grpcServer.Stop()
		if err := <-served; err != nil {
			t.Errorf("serve gRPC: %v", err)
		}
	})
	return &testEnv{upstream: fake, service: svc, client: filebatchv1.NewFileBatchServiceClient(conn)}
}

// cancel calls CancelFileBatch and returns the response header metadata
// with the result.
func (e *testEnv) cancel(ctx context.Context, vectorStoreID, batchID string) (*filebatchv1.VectorStoreFileBatch, metadata.MD, error) {
	var header metadata.MD
	batch, err := e.client.CancelFileBatch(ctx,
		&filebatchv1.CancelFileBatchRequest{VectorStoreId: vectorStoreID, BatchId: batchID},
		grpc.Header(&header))
	return batch, header, err
}

// checkCancelSucceeds cancels a batch added for the purpose and fails t
// unless that works, to show that the server still serves normal calls.
func (e *testEnv) checkCancelSucceeds(t *testing.T) {
	t.Helper()
	id := "vsfb_followup_" + strconv.FormatInt(followUpBatches.Add(1), 10)
	e.upstream.AddBatch(fakeupstream.Batch{
		ID:            id,
		VectorStoreID: fakeupstream.VectorStoreID,
		Status:        fakeupstream.StatusInProgress,
		FileCounts:    fakeupstream.FileCounts{InProgress: 1, Total: 1},
	})
	batch, _, err := e.cancel(testContext(t), fakeupstream.VectorStoreID, id)
	if err != nil {
		t.Fatalf("CancelFileBatch after the failure: %v, want success", err)
	}
	if batch.GetStatus() != filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_CANCELLED {
		t.Errorf("status after the failure = %v, want FILE_BATCH_STATUS_CANCELLED", batch.GetStatus())
	}
}

// followUpBatches numbers the batches of checkCancelSucceeds.
var followUpBatches atomic.Int64

// testContext returns a context that ends with the test or after 30
// seconds, so that a broken call fails the test instead of hanging it.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fastRetry returns a retry policy with millisecond backoff.
func fastRetry(maxRetries int) upstream.RetryPolicy {
	return upstream.RetryPolicy{
		MaxRetries:     maxRetries,
		InitialBackoff: time.Millisecond,
		MaxBackoff:     4 * time.Millisecond,
		MaxRetryAfter:  time.Second,
	}
}

// statusDetails are the error details of a status error.
type statusDetails struct {
	info       *errdetails.ErrorInfo
	request    *errdetails.RequestInfo
	retry      *errdetails.RetryInfo
	badRequest *errdetails.BadRequest
}

// detailsOf returns the status of err and its details. It fails t when
// err is not a status error.
func detailsOf(t *testing.T, err error) (*status.Status, statusDetails) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("error %v is not a gRPC status error", err)
	}
	var d statusDetails
	for _, detail := range st.Details() {
		switch detail := detail.(type) {
		case *errdetails.ErrorInfo:
			d.info = detail
		case *errdetails.RequestInfo:
			d.request = detail
		case *errdetails.RetryInfo:
			d.retry = detail
		case *errdetails.BadRequest:
			d.badRequest = detail
		case error:
			t.Errorf("undecodable status detail: %v", detail)
		}
	}
	return st, d
}

// checkMetadata fails t unless md has exactly the keys and values of want.
func checkMetadata(t *testing.T, md, want map[string]string) {
	t.Helper()
	for key, value := range want {
		got, ok := md[key]
		if !ok {
			t.Errorf("ErrorInfo.Metadata has no %q, want %q", key, value)
			continue
		}
		if got != value {
			t.Errorf("ErrorInfo.Metadata[%q] = %q, want %q", key, got, value)
		}
	}
	for key, value := range md {
		if _, ok := want[key]; !ok {
			t.Errorf("ErrorInfo.Metadata[%q] = %q, want no such key", key, value)
		}
	}
}

// checkHeaderRequestID fails t unless the response header metadata carries
// the x-request-id want.
func checkHeaderRequestID(t *testing.T, header metadata.MD, want string) {
	t.Helper()
	got := header.Get("x-request-id")
	if len(got) != 1 || got[0] != want {
		t.Errorf("response header x-request-id = %q, want [%q]", got, want)
	}
}

func TestCancelFileBatchReturnsEveryField(t *testing.T) {
	env := newEnv(t, envOptions{})
	batch, header, err := env.cancel(testContext(t), fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	if err != nil {
		t.Fatalf("CancelFileBatch: %v", err)
	}
	want := &filebatchv1.VectorStoreFileBatch{
		Id:            fakeupstream.BatchInProgress,
		Object:        fakeupstream.ObjectFileBatch,
		CreatedAt:     fakeupstream.SeedCreatedAt,
		VectorStoreId: fakeupstream.VectorStoreID,
		Status:        filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_CANCELLED,
		StatusRaw:     fakeupstream.StatusCancelled,
		// The fake moves the 3 in-progress files to cancelled.
		FileCounts: &filebatchv1.FileCounts{InProgress: 0, Completed: 5, Failed: 1, Cancelled: 3, Total: 9},
	}
	if !proto.Equal(batch, want) {
		t.Errorf("CancelFileBatch() = %v, want %v", batch, want)
	}

	env.upstream.checkRequestCount(t, 1)
	checkHeaderRequestID(t, header, env.upstream.lastRequestID(t))
	// The fake sends these headers with every answer. The forwarded ones
	// reach the caller, and the others do not.
	for _, name := range []string{"openai-processing-ms", "openai-version", "x-ratelimit-limit-requests",
		"x-ratelimit-remaining-requests", "x-ratelimit-reset-requests", "content-length"} {
		got := header.Get(name)
		switch {
		case upstream.IsForwardedHeader(name) && len(got) != 1:
			t.Errorf("response header %s = %q, want one value forwarded from the upstream", name, got)
		case !upstream.IsForwardedHeader(name) && len(got) != 0:
			t.Errorf("response header %s = %q, want it not forwarded", name, got)
		}
	}
}

func TestCancelFileBatchUndocumentedStatus(t *testing.T) {
	env := newEnv(t, envOptions{})
	env.upstream.AddBatch(fakeupstream.Batch{
		ID:            "vsfb_cancelling",
		CreatedAt:     1700000000,
		VectorStoreID: fakeupstream.VectorStoreID,
		Status:        "cancelling",
		FileCounts:    fakeupstream.FileCounts{InProgress: 1, Total: 1},
	})
	batch, _, err := env.cancel(testContext(t), fakeupstream.VectorStoreID, "vsfb_cancelling")
	if err != nil {
		t.Fatalf("CancelFileBatch: %v", err)
	}
	if batch.GetStatus() != filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_UNSPECIFIED {
		t.Errorf("status = %v, want FILE_BATCH_STATUS_UNSPECIFIED", batch.GetStatus())
	}
	if batch.GetStatusRaw() != "cancelling" {
		t.Errorf("status_raw = %q, want %q", batch.GetStatusRaw(), "cancelling")
	}
}

func TestUpstreamRequest(t *testing.T) {
	tests := []struct {
		name         string
		organization string
		project      string
	}{
		{name: "without organization and project"},
		{name: "with organization and project", organization: "org-test", project: "proj_test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, envOptions{config: service.Config{Organization: tt.organization, Project: tt.project}})
			if _, _, err := env.cancel(testContext(t), fakeupstream.VectorStoreID, fakeupstream.BatchInProgress); err != nil {
				t.Fatalf("CancelFileBatch: %v", err)
			}
			requests := env.upstream.Requests()
			if len(requests) != 1 {
				t.Fatalf("upstream received %d requests, want 1", len(requests))
			}
			r := requests[0]
			if r.Method != http.MethodPost {
				t.Errorf("method = %q, want POST", r.Method)
			}
			const wantPath = "/v1/vector_stores/vs_abc123/file_batches/vsfb_abc123/cancel"
			if r.Path != wantPath {
				t.Errorf("path = %q, want %q", r.Path, wantPath)
			}
			if r.RawQuery != "" {
				t.Errorf("query = %q, want none", r.RawQuery)
			}
			if len(r.Body) != 0 {
				t.Errorf("body = %q, want none", r.Body)
			}
			wantHeader := map[string]string{
				"Authorization": "Bearer " + serverKey,
				"Openai-Beta":   "assistants=v2",
				"Accept":        "application/json",
				"User-Agent":    testUserAgent,
			}
			for name, want := range wantHeader {
				if got := r.Header.Values(name); len(got) != 1 || got[0] != want {
					t.Errorf("header %s = %q, want [%q]", name, got, want)
				}
			}
			checkOptionalHeader(t, r.Header, "OpenAI-Organization", tt.organization)
			checkOptionalHeader(t, r.Header, "OpenAI-Project", tt.project)
		})
	}
}

// checkOptionalHeader fails t unless h has name with the value want, or
// has no name at all when want is empty.
func checkOptionalHeader(t *testing.T, h http.Header, name, want string) {
	t.Helper()
	got := h.Values(name)
	if want == "" {
		if len(got) != 0 {
			t.Errorf("header %s = %q, want none", name, got)
		}
		return
	}
	if len(got) != 1 || got[0] != want {
		t.Errorf("header %s = %q, want [%q]", name, got, want)
	}
}

func TestCancelFileBatchUpstreamErrors(t *testing.T) {
	tests := []struct {
		name          string
		apiKey        string
		vectorStoreID string
		batchID       string
		wantCode      codes.Code
		wantReason    string
		wantMetadata  map[string]string
		wantMessage   string
	}{
		{
			name:          "unknown batch",
			vectorStoreID: fakeupstream.VectorStoreID,
			batchID:       "vsfb_missing",
			wantCode:      codes.NotFound,
			wantReason:    fakeupstream.TypeInvalidRequest,
			wantMetadata:  map[string]string{"http_status": "404", "type": fakeupstream.TypeInvalidRequest},
			wantMessage:   "File batch 'vsfb_missing' does not exist in vector store 'vs_abc123'.",
		},
		{
			name:          "unknown vector store",
			vectorStoreID: "vs_missing",
			batchID:       fakeupstream.BatchInProgress,
			wantCode:      codes.NotFound,
			wantReason:    fakeupstream.TypeInvalidRequest,
			wantMetadata:  map[string]string{"http_status": "404", "type": fakeupstream.TypeInvalidRequest},
			wantMessage:   "Vector store 'vs_missing' does not exist.",
		},
		{
			name:          "finished batch",
			vectorStoreID: fakeupstream.VectorStoreID,
			batchID:       fakeupstream.BatchCompleted,
			wantCode:      codes.InvalidArgument,
			wantReason:    fakeupstream.TypeInvalidRequest,
			wantMetadata:  map[string]string{"http_status": "400", "type": fakeupstream.TypeInvalidRequest},
			wantMessage:   "File batch 'vsfb_completed' cannot be cancelled because its status is 'completed'.",
		},
		{
			name:          "wrong key",
			apiKey:        "sk-wrong-key",
			vectorStoreID: fakeupstream.VectorStoreID,
			batchID:       fakeupstream.BatchInProgress,
			wantCode:      codes.Unauthenticated,
			wantReason:    fakeupstream.CodeInvalidAPIKey,
			wantMetadata: map[string]string{
				"http_status": "401",
				"type":        fakeupstream.TypeInvalidRequest,
				"code":        fakeupstream.CodeInvalidAPIKey,
			},
			wantMessage: "The API key in the Authorization header is not valid. Check the key and try again.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, envOptions{config: service.Config{APIKey: tt.apiKey}})
			_, header, err := env.cancel(testContext(t), tt.vectorStoreID, tt.batchID)
			if err == nil {
				t.Fatal("CancelFileBatch succeeded, want an error")
			}
			st, d := detailsOf(t, err)
			if st.Code() != tt.wantCode {
				t.Errorf("code = %v, want %v", st.Code(), tt.wantCode)
			}
			if st.Message() != tt.wantMessage {
				t.Errorf("message = %q, want the upstream's %q", st.Message(), tt.wantMessage)
			}
			if d.info == nil {
				t.Fatal("no ErrorInfo detail")
			}
			if d.info.GetReason() != tt.wantReason {
				t.Errorf("ErrorInfo.Reason = %q, want %q", d.info.GetReason(), tt.wantReason)
			}
			if d.info.GetDomain() != env.upstream.host {
				t.Errorf("ErrorInfo.Domain = %q, want the upstream host %q", d.info.GetDomain(), env.upstream.host)
			}
			checkMetadata(t, d.info.GetMetadata(), tt.wantMetadata)

			requestID := env.upstream.lastRequestID(t)
			if d.request.GetRequestId() != requestID {
				t.Errorf("RequestInfo.RequestId = %q, want the upstream's %q", d.request.GetRequestId(), requestID)
			}
			checkHeaderRequestID(t, header, requestID)
			if d.retry != nil {
				t.Errorf("RetryInfo = %v, want none", d.retry)
			}
			env.upstream.checkRequestCount(t, 1)
		})
	}
}

// TestCancelFileBatchSecondCancel shows that the upstream's state change
// reaches the caller: the first cancel succeeds, the second is rejected.
func TestCancelFileBatchSecondCancel(t *testing.T) {
	env := newEnv(t, envOptions{})
	ctx := testContext(t)
	if _, _, err := env.cancel(ctx, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress); err != nil {
		t.Fatalf("first CancelFileBatch: %v", err)
	}
	_, _, err := env.cancel(ctx, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	if code := status.Code(err); code != codes.InvalidArgument {
		t.Errorf("second CancelFileBatch code = %v (%v), want InvalidArgument", code, err)
	}
	if err != nil && !strings.Contains(status.Convert(err).Message(), "'cancelled'") {
		t.Errorf("second CancelFileBatch message = %q, want it to name the status 'cancelled'", status.Convert(err).Message())
	}
}
