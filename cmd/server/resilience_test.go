package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"example.com/filebatch/fakeupstream"
	filebatchv1 "example.com/filebatch/gen/filebatch/v1"
)

// recordingUpstream is a fake upstream behind an httptest server that also
// records the x-request-id of each response the fake completed. When gate
// is not nil, every response waits for it to close before it is written.
type recordingUpstream struct {
	*fakeupstream.Server
	url string // API root, such as http://127.0.0.1:8081/v1

	gate chan struct{}

	mu         sync.Mutex
	requestIDs []string
}

// startRecordingUpstream starts a fake upstream for the test. With gated
// set, responses wait until openGate is called.
func startRecordingUpstream(t *testing.T, opts fakeupstream.Options, gated bool) *recordingUpstream {
	t.Helper()
	u := &recordingUpstream{Server: fakeupstream.New(opts)}
	if gated {
		u.gate = make(chan struct{})
	}
	srv := httptest.NewServer(http.HandlerFunc(u.serveHTTP))
	t.Cleanup(func() {
		u.openGate()
		if err := u.Server.Close(); err != nil {
			t.Errorf("close fake upstream: %v", err)
		}
		srv.Close()
	})
	u.url = srv.URL + "/v1"
	return u
}

func (u *recordingUpstream) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if u.gate != nil {
		w = &gatedWriter{ResponseWriter: w, gate: u.gate, done: r.Context().Done()}
	}
	u.Server.ServeHTTP(w, r)
	if id := w.Header().Get("X-Request-Id"); id != "" {
		u.mu.Lock()
		u.requestIDs = append(u.requestIDs, id)
		u.mu.Unlock()
	}
}

// openGate lets the held responses through. It is safe to call twice.
func (u *recordingUpstream) openGate() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.gate != nil {
		select {
		case <-u.gate:
		default:
			close(u.gate)
		}
	}
}

// sentRequestIDs returns the x-request-id of each completed response, in
// order of completion.
func (u *recordingUpstream) sentRequestIDs() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.requestIDs...)
}

// gatedWriter holds the response until gate closes. The fake has recorded
// and handled the request by then, so WaitRequests sees it while the
// caller still waits for the answer.
type gatedWriter struct {
	http.ResponseWriter
	gate <-chan struct{}
	done <-chan struct{} // the request's context
}

func (w *gatedWriter) wait() {
	select {
	case <-w.gate:
	case <-w.done:
	}
}

func (w *gatedWriter) WriteHeader(status int) {
	w.wait()
	w.ResponseWriter.WriteHeader(status)
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	w.wait()
	return w.ResponseWriter.Write(p)
}

func (w *gatedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// dialServer returns a client of the server's gRPC listener at addr.
func dialServer(t *testing.T, addr string, opts ...grpc.DialOption) (filebatchv1.FileBatchServiceClient, *grpc.ClientConn) {
	t.Helper()
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatalf("grpc.NewClient(%q): %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return filebatchv1.NewFileBatchServiceClient(conn), conn
}

// callContext returns a context that ends with the test or after 30
// seconds.
func callContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func cancelRequest(vectorStoreID, batchID string) *filebatchv1.CancelFileBatchRequest {
	return &filebatchv1.CancelFileBatchRequest{VectorStoreId: vectorStoreID, BatchId: batchID}
}

// parseLogs decodes every JSON log line of the server.
func parseLogs(t *testing.T, logs *syncBuffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	scanner := bufio.NewScanner(strings.NewReader(logs.String()))
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		var line map[string]any
		if err := json.Unmarshal(scanner.Bytes(), &line); err != nil {
			t.Fatalf("log line %q is not JSON: %v", scanner.Text(), err)
		}
		lines = append(lines, line)
	}
	return lines
}

// logLines returns the server's log lines whose msg is msg.
func logLines(t *testing.T, logs *syncBuffer, msg string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, line := range parseLogs(t, logs) {
		if line["msg"] == msg {
			lines = append(lines, line)
		}
	}
	return lines
}

func TestServerLogsEachRetry(t *testing.T) {
	fake := startRecordingUpstream(t, fakeupstream.Options{}, false)
	// The first retry waits for the default backoff of 0.5 s less jitter,
	// and the second for the 20 ms that the 429 asks for.
	fake.Inject(fakeupstream.ServerError(503), fakeupstream.RateLimited(20*time.Millisecond))
	srv := startServer(t, []string{"-upstream-url", fake.url, "-max-retries", "2"},
		"OPENAI_API_KEY", fakeupstream.DefaultAPIKey)
	client, _ := dialServer(t, srv.grpcAddr)

	if _, err := client.CancelFileBatch(callContext(t), cancelRequest(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)); err != nil {
		t.Fatalf("CancelFileBatch: %v", err)
	}
	ids := fake.sentRequestIDs()
	if len(ids) != 3 {
		t.Fatalf("upstream sent %d responses, want 3", len(ids))
	}

	retries := logLines(t, srv.logs, "retrying upstream call")
	if len(retries) != 2 {
		t.Fatalf("logged %d retries, want 2:\n%s", len(retries), srv.logs.String())
	}
	want := []struct {
		attempt            float64
		reason             string
		minDelay, maxDelay time.Duration
		requestID          string
	}{
		{attempt: 2, reason: "HTTP 503", minDelay: 375 * time.Millisecond, maxDelay: 500 * time.Millisecond, requestID: ids[0]},
		{attempt: 3, reason: "HTTP 429", minDelay: 20 * time.Millisecond, maxDelay: 20 * time.Millisecond, requestID: ids[1]},
	}
	for i, line := range retries {
		if line["level"] != "WARN" {
			t.Errorf("retry %d: level = %v, want WARN", i, line["level"])
		}
		if line["attempt"] != want[i].attempt {
			t.Errorf("retry %d: attempt = %v, want %v", i, line["attempt"], want[i].attempt)
		}
		if line["reason"] != want[i].reason {
			t.Errorf("retry %d: reason = %v, want %q", i, line["reason"], want[i].reason)
		}
		// slog's JSON handler writes a duration in nanoseconds.
		delay, ok := line["delay"].(float64)
		if !ok || time.Duration(delay) < want[i].minDelay || time.Duration(delay) > want[i].maxDelay {
			t.Errorf("retry %d: delay = %v, want %v to %v in nanoseconds", i, line["delay"], want[i].minDelay, want[i].maxDelay)
		}
		if line["request_id"] != want[i].requestID {
			t.Errorf("retry %d: request_id = %v, want the failed answer's %q", i, line["request_id"], want[i].requestID)
		}
	}

	calls := logLines(t, srv.logs, "grpc call")
	if len(calls) != 1 {
		t.Fatalf("logged %d calls, want 1", len(calls))
	}
	if calls[0]["attempts"] != float64(3) || calls[0]["request_id"] != ids[2] || calls[0]["code"] != "OK" {
		t.Errorf("call log line = %v, want attempts 3, request_id %q and code OK", calls[0], ids[2])
	}
}

func TestServerUpstreamRequestHeaders(t *testing.T) {
	tests := []struct {
		name             string
		args             []string
		env              []string
		wantOrganization string
		wantProject      string
	}{
		{name: "without organization and project"},
		{
			name:             "flags",
			args:             []string{"-organization", "org-flag", "-project", "proj_flag"},
			wantOrganization: "org-flag",
			wantProject:      "proj_flag",
		},
		{
			name:             "environment",
			env:              []string{"OPENAI_ORG_ID", "org-env", "OPENAI_PROJECT_ID", "proj_env"},
			wantOrganization: "org-env",
			wantProject:      "proj_env",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := fakeupstream.NewTest(t, fakeupstream.Options{})
			env := append([]string{"OPENAI_API_KEY", fakeupstream.DefaultAPIKey}, tt.env...)
			srv := startServer(t, append([]string{"-upstream-url", fake.URL()}, tt.args...), env...)
			client, _ := dialServer(t, srv.grpcAddr)
			if _, err := client.CancelFileBatch(callContext(t), cancelRequest(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)); err != nil {
				t.Fatalf("CancelFileBatch: %v", err)
			}
			requests := fake.Requests()
			if len(requests) != 1 {
				t.Fatalf("upstream received %d requests, want 1", len(requests))
			}
			h := requests[0].Header
			checkHeader(t, h, "User-Agent", "filebatch/"+version)
			checkHeader(t, h, "Authorization", "Bearer "+fakeupstream.DefaultAPIKey)
			checkHeader(t, h, "OpenAI-Beta", "assistants=v2")
			checkHeader(t, h, "Accept", "application/json")
			checkHeader(t, h, "OpenAI-Organization", tt.wantOrganization)
			checkHeader(t, h, "OpenAI-Project", tt.wantProject)
		})
	}
}

// checkHeader fails t unless h has exactly one name header with the value
// want, or none when want is empty.
func checkHeader(t *testing.T, h http.Header, name, want string) {
	t.Helper()
	got := h.Values(name)
	if want == "" {
		if len(got) != 0 {
			t.Errorf("upstream header %s = %q, want none", name, got)
		}
		return
	}
	if len(got) != 1 || got[0] != want {
		t.Errorf("upstream header %s = %q, want [%q]", name, got, want)
	}
}

func TestServerServiceTokensFile(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("# callers of the batch tool\n#token-disabled\n\ntoken-one\n  token-two  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fake := fakeupstream.NewTest(t, fakeupstream.Options{})
	srv := startServer(t, []string{"-upstream-url", fake.URL(), "-service-tokens-file", tokens},
		"OPENAI_API_KEY", fakeupstream.DefaultAPIKey)
	client, _ := dialServer(t, srv.grpcAddr)

	tests := []struct {
		name          string
		authorization string
		batchID       string
		wantCode      codes.Code
		wantHTTP      int
	}{
		{name: "valid token", authorization: "Bearer token-two", batchID: fakeupstream.BatchInProgress, wantCode: codes.OK, wantHTTP: http.StatusOK},
		{name: "wrong token", authorization: "Bearer token-three", batchID: fakeupstream.BatchInProgress, wantCode: codes.Unauthenticated, wantHTTP: http.StatusUnauthorized},
		{name: "commented-out token", authorization: "Bearer #token-disabled", batchID: fakeupstream.BatchInProgress, wantCode: codes.Unauthenticated, wantHTTP: http.StatusUnauthorized},
		{name: "missing token", batchID: fakeupstream.BatchInProgress, wantCode: codes.Unauthenticated, wantHTTP: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Run("grpc", func(t *testing.T) {
				fake.Reset()
				ctx := callContext(t)
				if tt.authorization != "" {
					ctx = metadata.AppendToOutgoingContext(ctx, "authorization", tt.authorization)
				}
				_, err := client.CancelFileBatch(ctx, cancelRequest(fakeupstream.VectorStoreID, tt.batchID))
				if code := status.Code(err); code != tt.wantCode {
					t.Errorf("code = %v (%v), want %v", code, err, tt.wantCode)
				}
				checkServiceTokenUpstream(t, fake, tt.wantCode == codes.OK)
			})
			t.Run("http", func(t *testing.T) {
				fake.Reset()
				resp := postFacade(t, http.DefaultClient, srv.apiRoot, tt.authorization, fakeupstream.VectorStoreID, tt.batchID)
				if resp.status != tt.wantHTTP {
					t.Errorf("HTTP status = %d (%s), want %d", resp.status, resp.body, tt.wantHTTP)
				}
				checkServiceTokenUpstream(t, fake, tt.wantHTTP == http.StatusOK)
			})
		})
	}
}

// checkServiceTokenUpstream fails t unless the upstream received one
// request with the server's key when sent is true, and none otherwise.
func checkServiceTokenUpstream(t *testing.T, fake *fakeupstream.Server, sent bool) {
	t.Helper()
	requests := fake.Requests()
	if !sent {
		if len(requests) != 0 {
			t.Errorf("upstream received %d requests, want none", len(requests))
		}
		return
	}
	if len(requests) != 1 {
		t.Fatalf("upstream received %d requests, want 1", len(requests))
	}
	checkHeader(t, requests[0].Header, "Authorization", "Bearer "+fakeupstream.DefaultAPIKey)
}

// facadeResponse is a response of the REST façade with its body read.
type facadeResponse struct {
	status int
	header http.Header
	body   []byte
}

// postFacade sends the cancel request to the façade's API root with the
// given Authorization header value, when not empty.
func postFacade(t *testing.T, client *http.Client, apiRoot, authorization, vectorStoreID, batchID string) facadeResponse {
	t.Helper()
	resp, err := tryPostFacade(callContext(t), client, apiRoot, authorization, vectorStoreID, batchID)
	if err != nil {
		t.Fatalf("POST to the façade: %v", err)
	}
	return resp
}

func tryPostFacade(ctx context.Context, client *http.Client, apiRoot, authorization, vectorStoreID, batchID string) (facadeResponse, error) {
	target := apiRoot + "/vector_stores/" + vectorStoreID + "/file_batches/" + batchID + "/cancel"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, nil)
	if err != nil {
		return facadeResponse{}, err
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := client.Do(req)
	if err != nil {
		return facadeResponse{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return facadeResponse{}, err
	}
	return facadeResponse{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

func TestServerMaxRequestBytes(t *testing.T) {
	fake := fakeupstream.NewTest(t, fakeupstream.Options{})
	srv := startServer(t, []string{"-upstream-url", fake.URL(), "-max-request-bytes", "65536"},
		"OPENAI_API_KEY", fakeupstream.DefaultAPIKey)
	client, _ := dialServer(t, srv.grpcAddr)

	_, err := client.CancelFileBatch(callContext(t), cancelRequest(fakeupstream.VectorStoreID, strings.Repeat("b", 100<<10)))
	if code := status.Code(err); code != codes.ResourceExhausted {
		t.Errorf("code = %v (%v), want ResourceExhausted", code, err)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("upstream received %d requests, want none", n)
	}
	if _, err := client.CancelFileBatch(callContext(t), cancelRequest(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)); err != nil {
		t.Errorf("CancelFileBatch after the oversized message: %v, want success", err)
	}

	// The same cap bounds the metadata. grpc-go clients read it from the
	// server's HTTP/2 settings and refuse to send a larger header list.
	ctx := metadata.AppendToOutgoingContext(callContext(t), "x-padding", strings.Repeat("p", 100<<10))
	_, err = client.CancelFileBatch(ctx, cancelRequest(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress))
	if err == nil {
		t.Error("CancelFileBatch with 100 KiB of metadata succeeded, want an error")
	}
	if n := len(fake.Requests()); n != 1 {
		t.Errorf("upstream received %d requests, want only the valid call's", n)
	}
}

// leakKey is a distinctive API key that must appear in nothing the server
// writes or returns.
const leakKey = "sk-leakcheck-Q7vXw3Zb9Nc1Tr5K"

// leakedRequestID is the x-request-id of the leak cases whose upstream
// echoes the key in that header, and redactedRequestID is what the server
// must report in its place.
const (
	leakedRequestID   = "req_" + leakKey
	redactedRequestID = "req_[redacted]"
)

// leakCase is one call of TestServerNeverLeaksKey.
type leakCase struct {
	name    string
	faults  []fakeupstream.Fault
	batchID string
	// deadline, when set, is the call's deadline.
	deadline time.Duration
	// succeeds is set for a call that must succeed, because only the
	// response's headers echo the key. Every other call must fail.
	succeeds bool
}

// cancelledBatchJSON returns the JSON text of [fakeupstream.BatchInProgress]
// after a cancel request. A fault sends it, because the fake rejects the
// key of the leak tests.
func cancelledBatchJSON(t *testing.T) string {
	t.Helper()
	batch := fakeupstream.DefaultBatches()[0]
	batch.Status = fakeupstream.StatusCancelled
	text, err := json.Marshal(batch)
	if err != nil {
		t.Fatalf("encode batch: %v", err)
	}
	return string(text)
}

func leakCases(t *testing.T) []leakCase {
	echoBody := "<html><body><h1>502 Bad Gateway</h1><pre>Authorization: Bearer " + leakKey + "</pre></body></html>"
	echoPage := fakeupstream.Fault{Status: http.StatusBadGateway, Body: []byte(echoBody), OmitStandardHeaders: true}.
		WithHeader("Content-Type", "text/html")
	echoEnvelope := fakeupstream.JSON(http.StatusBadRequest, `{"error":{"message":"Bad key `+leakKey+`.",`+
		`"type":"invalid_request_error","param":"`+leakKey+`","code":"`+leakKey+`"}}`)
	echo503 := fakeupstream.APIError(http.StatusServiceUnavailable, fakeupstream.TypeServerError, "",
		"Overloaded while serving key "+leakKey+".")
	// x-should-retry: false makes the 500 the last response, so its request
	// id is the one reported.
	echoID500 := fakeupstream.ServerError(http.StatusInternalServerError).
		WithHeader("X-Request-Id", leakedRequestID).
		WithHeader("X-Should-Retry", "false")
	echoID503 := fakeupstream.ServerError(http.StatusServiceUnavailable).WithHeader("X-Request-Id", leakedRequestID)
	echoHeaders200 := fakeupstream.JSON(http.StatusOK, cancelledBatchJSON(t)).
		WithHeader("X-Request-Id", leakedRequestID).
		WithHeader("X-Ratelimit-Remaining-Requests", "99 "+leakKey).
		WithHeader("Openai-Processing-Ms", leakKey)
	echoName200 := fakeupstream.JSON(http.StatusOK, cancelledBatchJSON(t)).WithHeader("X-Ratelimit-"+leakKey, "1")
	return []leakCase{
		{name: "upstream rejects the key"},
		{name: "message echoes the key", faults: []fakeupstream.Fault{fakeupstream.APIError(http.StatusUnauthorized,
			fakeupstream.TypeInvalidRequest, fakeupstream.CodeInvalidAPIKey, "Incorrect API key provided: "+leakKey+".")}},
		{name: "param and code echo the key", faults: []fakeupstream.Fault{echoEnvelope}},
		{name: "HTML page echoes the key, retried", faults: []fakeupstream.Fault{echoPage, echoPage}},
		{name: "503 echoes the key, retried", faults: []fakeupstream.Fault{echo503, echo503}},
		{name: "200 body echoes the key", faults: []fakeupstream.Fault{fakeupstream.JSON(http.StatusOK, `{"id":"`+leakKey)}},
		{name: "200 error object echoes the key", faults: []fakeupstream.Fault{fakeupstream.JSON(http.StatusOK,
			`{"error":{"message":"`+leakKey+`","type":"server_error"}}`)}},
		{name: "reset mid-body", faults: []fakeupstream.Fault{fakeupstream.ResetMidBody(), fakeupstream.ResetMidBody()}},
		{name: "timeout", faults: []fakeupstream.Fault{fakeupstream.Hang()}, deadline: 300 * time.Millisecond},
		{name: "invalid batch ID", batchID: "../" + fakeupstream.BatchInProgress},
		{name: "x-request-id echoes the key on 500", faults: []fakeupstream.Fault{echoID500}},
		{name: "x-request-id echoes the key on 503, retried", faults: []fakeupstream.Fault{echoID503, echoID503}},
		{name: "forwarded headers echo the key on 200", faults: []fakeupstream.Fault{echoHeaders200}, succeeds: true},
		{name: "header name echoes the key on 200", faults: []fakeupstream.Fault{echoName200}, succeeds: true},
	}
}

// checkNoKeyInHeader fails t when a name or a value of h contains key.
// Names are compared in lower case, because gRPC metadata keys are lower
// case and HTTP names are canonicalized.
func checkNoKeyInHeader(t *testing.T, where string, h map[string][]string, key string) {
	t.Helper()
	for name, values := range h {
		checkNoKey(t, where+" name", strings.ToLower(name), strings.ToLower(key))
		for _, v := range values {
			checkNoKey(t, where+" "+name, v, key)
		}
	}
}

// checkRedactedRequestIDs fails t unless the log has a retry line and a
// call line whose request_id is redactedRequestID, so that the leak cases
// did log the echoed request ids, with the key removed and the rest kept.
func checkRedactedRequestIDs(t *testing.T, logs *syncBuffer) {
	t.Helper()
	for _, msg := range []string{"retrying upstream call", "grpc call"} {
		found := false
		for _, line := range logLines(t, logs, msg) {
			found = found || line["request_id"] == redactedRequestID
		}
		if !found {
			t.Errorf("no %q log line has request_id %q", msg, redactedRequestID)
		}
	}
}

// checkNoKey fails t when text contains key.
func checkNoKey(t *testing.T, where, text, key string) {
	t.Helper()
	if strings.Contains(text, key) {
		t.Errorf("%s contains the API key: %q", where, text)
	}
}

// checkStatusHasNoKey fails t when the status message, any detail or any
// response metadata of a gRPC call contains key.
func checkStatusHasNoKey(t *testing.T, err error, header, trailer metadata.MD, key string) {
	t.Helper()
	st := status.Convert(err)
	checkNoKey(t, "status message", st.Message(), key)
	detailsJSON, marshalErr := protojson.Marshal(st.Proto())
	if marshalErr != nil {
		t.Fatalf("marshal status: %v", marshalErr)
	}
	checkNoKey(t, "status details", string(detailsJSON), key)
	checkNoKeyInHeader(t, "response header", header, key)
	checkNoKeyInHeader(t, "response trailer", trailer, key)
}

// runLeakCases makes each call over gRPC and over the façade, with
// callerKey as the caller's bearer when it is not empty.
func runLeakCases(t *testing.T, fake *fakeupstream.Server, srv testServer, callerKey, key string) {
	t.Helper()
	client, _ := dialServer(t, srv.grpcAddr)
	for _, tc := range leakCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			batchID := tc.batchID
			if batchID == "" {
				batchID = fakeupstream.BatchInProgress
			}
			ctx := callContext(t)
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}

			fake.Inject(tc.faults...)
			grpcCtx := ctx
			if callerKey != "" {
				grpcCtx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+callerKey)
			}
			var header, trailer metadata.MD
			_, err := client.CancelFileBatch(grpcCtx, cancelRequest(fakeupstream.VectorStoreID, batchID),
				grpc.Header(&header), grpc.Trailer(&trailer))
			switch {
			case tc.succeeds && err != nil:
				t.Fatalf("CancelFileBatch = %v, want success", err)
			case !tc.succeeds && err == nil:
				t.Fatal("CancelFileBatch succeeded, want an error")
			}
			checkStatusHasNoKey(t, err, header, trailer, key)

			fake.ClearFaults()
			fake.Inject(tc.faults...)
			authorization := ""
			if callerKey != "" {
				authorization = "Bearer " + callerKey
			}
			resp, err := tryPostFacade(ctx, http.DefaultClient, srv.apiRoot, authorization, fakeupstream.VectorStoreID, batchID)
			fake.ClearFaults()
			if err != nil {
				if tc.deadline == 0 {
					t.Fatalf("POST to the façade: %v", err)
				}
				return // the client gave up, so there is no response to check
			}
			switch {
			case tc.succeeds && resp.status != http.StatusOK:
				t.Errorf("façade status = %d (%s), want 200", resp.status, resp.body)
			case !tc.succeeds && resp.status == http.StatusOK:
				t.Errorf("façade status = 200, want an error")
			}
			checkNoKey(t, "façade body", string(resp.body), key)
			checkNoKeyInHeader(t, "façade header", resp.header, key)
		})
	}
}

func TestServerNeverLeaksKey(t *testing.T) {
	t.Run("server key", func(t *testing.T) {
		// The fake accepts another key, so every call that reaches it
		// without a fault fails with 401.
		fake := fakeupstream.NewTest(t, fakeupstream.Options{APIKey: "sk-accepted-by-fake"})
		srv := startServer(t, []string{"-upstream-url", fake.URL(), "-max-retries", "1"}, "OPENAI_API_KEY", leakKey)
		runLeakCases(t, fake, srv, "", leakKey)
		checkNoKey(t, "server log", srv.logs.String(), leakKey)
		checkRedactedRequestIDs(t, srv.logs)
		// The key did reach the upstream, so the check above had
		// something to find.
		if requests := fake.Requests(); len(requests) == 0 || requests[0].Header.Get("Authorization") != "Bearer "+leakKey {
			t.Errorf("upstream did not receive the key, so the test proves nothing")
		}
	})
	t.Run("pass-through", func(t *testing.T) {
		fake := fakeupstream.NewTest(t, fakeupstream.Options{APIKey: "sk-accepted-by-fake"})
		srv := startServer(t, []string{"-upstream-url", fake.URL(), "-max-retries", "1", "-credentials", "pass-through"})
		runLeakCases(t, fake, srv, leakKey, leakKey)
		checkNoKey(t, "server log", srv.logs.String(), leakKey)
		checkRedactedRequestIDs(t, srv.logs)
	})
	t.Run("upstream refuses connections", func(t *testing.T) {
		listener, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closedURL := "http://" + listener.Addr().String() + "/v1"
		listener.Close()
		srv := startServer(t, []string{"-upstream-url", closedURL, "-max-retries", "1"}, "OPENAI_API_KEY", leakKey)
		client, _ := dialServer(t, srv.grpcAddr)

		var header, trailer metadata.MD
		_, err = client.CancelFileBatch(callContext(t), cancelRequest(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress),
			grpc.Header(&header), grpc.Trailer(&trailer))
		if code := status.Code(err); code != codes.Unavailable {
			t.Errorf("code = %v (%v), want Unavailable", code, err)
		}
		checkStatusHasNoKey(t, err, header, trailer, leakKey)
		resp := postFacade(t, http.DefaultClient, srv.apiRoot, "", fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
		if resp.status != http.StatusBadGateway {
			t.Errorf("façade status = %d (%s), want 502", resp.status, resp.body)
		}
		checkNoKey(t, "façade body", string(resp.body), leakKey)
		checkNoKey(t, "server log", srv.logs.String(), leakKey)
	})
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files to a temporary directory.
type testPKI struct {
	caFile, serverCertFile, serverKeyFile string
	roots                                 *x509.CertPool
	clientCert                            tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey := newECDSAKey(t)
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "filebatch test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("parse CA certificate: %v", err)
	}

	issue := func(serial int64, name string, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		key := newECDSAKey(t)
		template := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatalf("create %s certificate: %v", name, err)
		}
		return der, key
	}
	serverDER, serverKey := issue(2, "filebatch test server", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	clientDER, clientKey := issue(3, "filebatch test client", x509.ExtKeyUsageClientAuth, nil)

	pki := testPKI{
		caFile:         filepath.Join(dir, "ca.pem"),
		serverCertFile: filepath.Join(dir, "server.pem"),
		serverKeyFile:  filepath.Join(dir, "server-key.pem"),
		roots:          x509.NewCertPool(),
	}
	pki.roots.AddCert(ca)
	writePEM(t, pki.caFile, "CERTIFICATE", caDER)
	writePEM(t, pki.serverCertFile, "CERTIFICATE", serverDER)
	writePEM(t, pki.serverKeyFile, "PRIVATE KEY", marshalKey(t, serverKey))
	pki.clientCert = tls.Certificate{Certificate: [][]byte{clientDER}, PrivateKey: clientKey}
	return pki
}

func newECDSAKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate ECDSA key: %v", err)
	}
	return key
}

func marshalKey(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	return der
}

func writePEM(t *testing.T, path, blockType string, der []byte) {
	t.Helper()
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// tlsClients returns a gRPC dial option and an HTTP client that trust the
// test CA and present certs, if any.
func (p testPKI) tlsClients(certs ...tls.Certificate) (grpc.DialOption, *http.Client) {
	config := &tls.Config{RootCAs: p.roots, Certificates: certs, MinVersion: tls.VersionTLS12}
	httpClient := &http.Client{Transport: &http.Transport{TLSClientConfig: config.Clone()}}
	return grpc.WithTransportCredentials(credentials.NewTLS(config.Clone())), httpClient
}

func TestServerTLS(t *testing.T) {
	pki := newTestPKI(t)
	fake := fakeupstream.NewTest(t, fakeupstream.Options{})
	fake.AddBatch(fakeupstream.Batch{ID: "vsfb_https", VectorStoreID: fakeupstream.VectorStoreID, Status: fakeupstream.StatusInProgress})
	srv := startServer(t, []string{"-upstream-url", fake.URL(), "-tls-cert", pki.serverCertFile, "-tls-key", pki.serverKeyFile},
		"OPENAI_API_KEY", fakeupstream.DefaultAPIKey)
	grpcTLS, httpsClient := pki.tlsClients()

	t.Run("gRPC over TLS", func(t *testing.T) {
		client, _ := dialServer(t, srv.grpcAddr, grpcTLS)
		batch, err := client.CancelFileBatch(callContext(t), cancelRequest(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress))
		if err != nil {
			t.Fatalf("CancelFileBatch over TLS: %v", err)
		}
		if batch.GetId() != fakeupstream.BatchInProgress {
			t.Errorf("batch id = %q, want %q", batch.GetId(), fakeupstream.BatchInProgress)
		}
	})
	t.Run("gRPC plaintext rejected", func(t *testing.T) {
		before := len(fake.Requests())
		client, _ := dialServer(t, srv.grpcAddr)
		_, err := client.CancelFileBatch(callContext(t), cancelRequest(fakeupstream.VectorStoreID, fakeupstream.OtherBatchInProgress))
		if code := status.Code(err); code != codes.Unavailable {
			t.Errorf("plaintext CancelFileBatch code = %v (%v), want Unavailable", code, err)
		}
		if n := len(fake.Requests()) - before; n != 0 {
			t.Errorf("upstream received %d requests, want none", n)
		}
	})
	httpsRoot := "https://" + srv.httpAddr + "/v1"
	t.Run("façade over HTTPS", func(t *testing.T) {
		resp := postFacade(t, httpsClient, httpsRoot, "", fakeupstream.VectorStoreID, "vsfb_https")
		if resp.status != http.StatusOK {
			t.Fatalf("HTTPS status = %d (%s), want 200", resp.status, resp.body)
		}
		var batch struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal(resp.body, &batch); err != nil {
			t.Fatalf("decode body %q: %v", resp.body, err)
		}
		if batch.ID != "vsfb_https" || batch.Status != fakeupstream.StatusCancelled {
			t.Errorf("batch = %+v, want vsfb_https cancelled", batch)
		}
	})
	t.Run("façade plain HTTP rejected", func(t *testing.T) {
		before := len(fake.Requests())
		resp, err := tryPostFacade(callContext(t), http.DefaultClient, srv.apiRoot, "", fakeupstream.VectorStoreID, fakeupstream.OtherBatchInProgress)
		if err == nil && resp.status != http.StatusBadRequest {
			t.Errorf("plain HTTP status = %d (%s), want 400 or a failed exchange", resp.status, resp.body)
		}
		if n := len(fake.Requests()) - before; n != 0 {
			t.Errorf("upstream received %d requests, want none", n)
		}
	})
}

func TestServerMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	fake := fakeupstream.NewTest(t, fakeupstream.Options{})
	fake.AddBatch(fakeupstream.Batch{ID: "vsfb_mtls", VectorStoreID: fakeupstream.VectorStoreID, Status: fakeupstream.StatusInProgress})
	srv := startServer(t, []string{"-upstream-url", fake.URL(),
		"-tls-cert", pki.serverCertFile, "-tls-key", pki.serverKeyFile, "-tls-client-ca", pki.caFile},
		"OPENAI_API_KEY", fakeupstream.DefaultAPIKey)
	httpsRoot := "https://" + srv.httpAddr + "/v1"

	t.Run("without a client certificate", func(t *testing.T) {
		grpcTLS, httpsClient := pki.tlsClients()
		client, _ := dialServer(t, srv.grpcAddr, grpcTLS)
		_, err := client.CancelFileBatch(callContext(t), cancelRequest(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress))
		if code := status.Code(err); code != codes.Unavailable {
			t.Errorf("gRPC code = %v (%v), want Unavailable", code, err)
		}
		if _, err := tryPostFacade(callContext(t), httpsClient, httpsRoot, "", fakeupstream.VectorStoreID, "vsfb_mtls"); err == nil {
			t.Error("HTTPS request without a client certificate succeeded, want a failed handshake")
		}
		if n := len(fake.Requests()); n != 0 {
			t.Errorf("upstream received %d requests, want none", n)
		}
	})
	t.Run("with a client certificate", func(t *testing.T) {
		grpcTLS, httpsClient := pki.tlsClients(pki.clientCert)
		client, _ := dialServer(t, srv.grpcAddr, grpcTLS)
		if _, err := client.CancelFileBatch(callContext(t), cancelRequest(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)); err != nil {
			t.Errorf("gRPC CancelFileBatch with a client certificate: %v", err)
		}
		resp := postFacade(t, httpsClient, httpsRoot, "", fakeupstream.VectorStoreID, "vsfb_mtls")
		if resp.status != http.StatusOK {
			t.Errorf("HTTPS status = %d (%s), want 200", resp.status, resp.body)
		}
	})
	t.Run("with a certificate from another CA", func(t *testing.T) {
		other := newTestPKI(t)
		grpcTLS, httpsClient := pki.tlsClients(other.clientCert)
		client, _ := dialServer(t, srv.grpcAddr, grpcTLS)
		before := len(fake.Requests())
		_, err := client.CancelFileBatch(callContext(t), cancelRequest(fakeupstream.OtherVectorStoreID, fakeupstream.OtherBatchInProgress))
		if code := status.Code(err); code != codes.Unavailable {
			t.Errorf("gRPC code = %v (%v), want Unavailable", code, err)
		}
		if _, err := tryPostFacade(callContext(t), httpsClient, httpsRoot, "", fakeupstream.OtherVectorStoreID, fakeupstream.OtherBatchInProgress); err == nil {
			t.Error("HTTPS request with a certificate from another CA succeeded, want a failed handshake")
		}
		if n := len(fake.Requests()) - before; n != 0 {
			t.Errorf("upstream received %d requests, want none", n)
		}
	})
}
