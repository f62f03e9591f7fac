package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"example.com/filebatch/fakeupstream"
	filebatchv1 "example.com/filebatch/gen/filebatch/v1"
	"example.com/filebatch/service"
	"example.com/filebatch/upstream"
)

const cancelMethod = "/filebatch.v1.FileBatchService/CancelFileBatch"

// checkLogLine compares the fields of a request log line with want. JSON
// numbers decode as float64.
func checkLogLine(t *testing.T, line map[string]any, want map[string]any) {
	t.Helper()
	for key, value := range want {
		if line[key] != value {
			t.Errorf("log %s = %#v, want %#v; line %v", key, line[key], value, line)
		}
	}
	for _, key := range []string{"rpc.method", "http.method", "http.path", "http.status", "code", "duration", "request_id", "upstream.status", "attempts"} {
		if _, ok := line[key]; !ok {
			t.Errorf("log line has no %s: %v", key, line)
		}
	}
}

func TestRequestLog(t *testing.T) {
	tests := []struct {
		name   string
		method string
		path   string
		result func(context.Context) (*filebatchv1.VectorStoreFileBatch, error)
		want   map[string]any
	}{
		{
			name: "success", method: http.MethodPost, path: cancelPath("vs_1", "vsfb_1"),
			result: func(ctx context.Context) (*filebatchv1.VectorStoreFileBatch, error) {
				_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", "req_ok"))
				return cancelledBatch(), nil
			},
			want: map[string]any{
				"level": "INFO", "rpc.method": cancelMethod, "http.method": "POST",
				"http.path": cancelPath("vs_1", "vsfb_1"), "http.status": float64(200), "code": "OK",
				"request_id": "req_ok",
			},
		},
		{
			name: "client error", method: http.MethodPost, path: cancelPath("vs_1", "vsfb_x"),
			result: func(context.Context) (*filebatchv1.VectorStoreFileBatch, error) {
				return nil, status.Error(codes.NotFound, "no such batch")
			},
			want: map[string]any{"level": "INFO", "rpc.method": cancelMethod, "http.status": float64(404), "code": "NotFound"},
		},
		{
			name: "server error", method: http.MethodPost, path: cancelPath("vs_1", "vsfb_1"),
			result: func(context.Context) (*filebatchv1.VectorStoreFileBatch, error) {
				return nil, status.Error(codes.Unavailable, "upstream unreachable")
			},
			want: map[string]any{"level": "ERROR", "rpc.method": cancelMethod, "http.status": float64(503), "code": "Unavailable"},
		},
		{
			name: "internal error", method: http.MethodPost, path: cancelPath("vs_1", "vsfb_1"),
			result: func(context.Context) (*filebatchv1.VectorStoreFileBatch, error) {
				return nil, errors.New("boom")
			},
			want: map[string]any{"level": "ERROR", "http.status": float64(500), "code": "Unknown"},
		},
		{
			name: "unknown path", method: http.MethodGet, path: "/v1/models",
			want: map[string]any{
				"level": "INFO", "rpc.method": "GET /v1/models", "http.method": "GET",
				"http.path": "/v1/models", "http.status": float64(404), "code": "",
			},
		},
		{
			name: "wrong method", method: http.MethodPut, path: cancelPath("vs_1", "vsfb_1"),
			want: map[string]any{"level": "INFO", "http.status": float64(405), "code": ""},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stub := &stubServer{cancel: func(ctx context.Context, _ *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error) {
				if tc.result == nil {
					t.Error("service called for a request that matches no route")
					return nil, status.Error(codes.Internal, "unreachable")
				}
				return tc.result(ctx)
			}}
			f := startFacade(t, stub, Options{})
			f.do(t, tc.method, tc.path, http.Header{
				"Authorization":       {"Bearer sk-secret-key"},
				"Openai-Organization": {"org_secret"},
			}, nil)
			line := f.logs.next(t, logMessage)
			checkLogLine(t, line, tc.want)
			for _, secret := range []string{"sk-secret-key", "org_secret"} {
				if strings.Contains(f.logs.String(), secret) {
					t.Errorf("log contains %q:\n%s", secret, f.logs.String())
				}
			}
		})
	}
}

func TestRequestLogClientHangUp(t *testing.T) {
	started := make(chan struct{})
	stub := &stubServer{cancel: func(ctx context.Context, _ *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error) {
		close(started)
		<-ctx.Done() // the façade must pass the client's hang-up on
		return nil, status.FromContextError(ctx.Err()).Err()
	}}
	f := startFacade(t, stub, Options{})

	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url+cancelPath("vs_1", "vsfb_1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("client error = %v, want context.Canceled", err)
	}

	line := f.logs.next(t, logMessage)
	checkLogLine(t, line, map[string]any{"level": "INFO", "http.status": float64(statusClientClosedRequest), "code": "Canceled"})
}

func TestRequestLogHangUpAfterSuccess(t *testing.T) {
	// A service that ignores the hang-up and returns a batch. The response
	// never reaches the client, so the line still has status 499.
	started := make(chan struct{})
	stub := &stubServer{cancel: func(ctx context.Context, _ *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error) {
		close(started)
		<-ctx.Done()
		return cancelledBatch(), nil
	}}
	f := startFacade(t, stub, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url+cancelPath("vs_1", "vsfb_1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	cancel()
	line := f.logs.next(t, logMessage)
	checkLogLine(t, line, map[string]any{"level": "INFO", "http.status": float64(statusClientClosedRequest), "code": "OK"})
}

// TestRequestLogWithService runs the real service against the fake
// upstream, which fills in the service.CallInfo fields of the line.
func TestRequestLogWithService(t *testing.T) {
	fake := fakeupstream.NewTest(t, fakeupstream.Options{})
	client, err := upstream.New(upstream.Config{BaseURL: fake.URL()})
	if err != nil {
		t.Fatalf("upstream.New() error = %v", err)
	}
	svc, err := service.New(service.Config{Upstream: client, Mode: service.PassThrough})
	if err != nil {
		t.Fatalf("service.New() error = %v", err)
	}
	logs := newLogCapture()
	h, err := New(svc, Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	f := &facade{url: srv.URL, logs: logs}

	tests := []struct {
		name       string
		batchID    string
		wantStatus int
		wantCode   string
	}{
		{"cancelled batch", fakeupstream.BatchInProgress, http.StatusOK, "OK"},
		{"unknown batch", "vsfb_unknown", http.StatusNotFound, "NotFound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := f.post(t, cancelPath(fakeupstream.VectorStoreID, tc.batchID), http.Header{
				"Authorization": {"Bearer " + fakeupstream.DefaultAPIKey},
			})
			if got.status != tc.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", got.status, tc.wantStatus, got.body)
			}
			requestID := got.header.Get("X-Request-Id")
			if requestID == "" {
				t.Errorf("response has no X-Request-Id; headers %v", got.header)
			}
			line := f.logs.next(t, logMessage)
			checkLogLine(t, line, map[string]any{
				"http.status": float64(tc.wantStatus), "code": tc.wantCode, "request_id": requestID,
				"upstream.status": float64(tc.wantStatus), "attempts": float64(1),
			})
			if strings.Contains(logs.String(), fakeupstream.DefaultAPIKey) {
				t.Errorf("log contains the API key:\n%s", logs.String())
			}
		})
	}
}
