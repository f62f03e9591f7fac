package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	filebatchv1 "example.com/filebatch/gen/filebatch/v1"
)

func cancelledBatch() *filebatchv1.VectorStoreFileBatch {
	return &filebatchv1.VectorStoreFileBatch{
		Id:            "vsfb_abc123",
		Object:        "vector_store.file_batch",
		CreatedAt:     1699061776,
		VectorStoreId: "vs_abc123",
		Status:        filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_CANCELLED,
		StatusRaw:     "cancelled",
		FileCounts:    &filebatchv1.FileCounts{InProgress: 0, Completed: 5, Failed: 1, Cancelled: 3, Total: 9},
	}
}

// returning returns a stub whose CancelFileBatch returns batch.
func returning(batch *filebatchv1.VectorStoreFileBatch) *stubServer {
	return &stubServer{cancel: func(context.Context, *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error) {
		return batch, nil
	}}
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	tests := []struct {
		name   string
		server filebatchv1.FileBatchServiceServer
		opts   Options
	}{
		{"nil server", nil, Options{}},
		{"negative body cap", returning(nil), Options{MaxRequestBytes: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if h, err := New(tc.server, tc.opts); err == nil {
				t.Errorf("New() = %v, want an error", h)
			}
		})
	}
}

func TestCancelSuccessBody(t *testing.T) {
	var gotReq *filebatchv1.CancelFileBatchRequest
	stub := &stubServer{cancel: func(_ context.Context, req *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error) {
		gotReq = req
		return cancelledBatch(), nil
	}}
	f := startFacade(t, stub, Options{})
	got := f.post(t, cancelPath("vs_abc123", "vsfb_abc123"), nil)

	if got.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", got.status, got.body)
	}
	if gotReq.GetVectorStoreId() != "vs_abc123" || gotReq.GetBatchId() != "vsfb_abc123" {
		t.Errorf("service got %v, want vs_abc123 and vsfb_abc123", gotReq)
	}
	const want = `{"id":"vsfb_abc123","object":"vector_store.file_batch","created_at":1699061776,` +
		`"vector_store_id":"vs_abc123","status":"cancelled",` +
		`"file_counts":{"in_progress":0,"completed":5,"failed":1,"cancelled":3,"total":9}}`
	if string(got.body) != want {
		t.Errorf("body = %s\nwant   %s", got.body, want)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if cl := got.header.Get("Content-Length"); cl != strconv.Itoa(len(want)) {
		t.Errorf("Content-Length = %q, want %d", cl, len(want))
	}
}

func TestCancelSuccessFieldTypes(t *testing.T) {
	tests := []struct {
		name       string
		batch      *filebatchv1.VectorStoreFileBatch
		wantStatus string
	}{
		{"zero values", &filebatchv1.VectorStoreFileBatch{}, ""},
		{"status_raw passthrough", &filebatchv1.VectorStoreFileBatch{StatusRaw: "cancelling"}, "cancelling"},
		{"enum without status_raw", &filebatchv1.VectorStoreFileBatch{Status: filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_FAILED}, "failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startFacade(t, returning(tc.batch), Options{})
			got := f.post(t, cancelPath("vs_1", "vsfb_1"), nil)
			if got.status != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", got.status, got.body)
			}
			m := decodeJSON(t, got.body)
			for _, key := range []string{"id", "object", "vector_store_id"} {
				if v, ok := m[key].(string); !ok || v != "" {
					t.Errorf("%s = %#v, want the empty JSON string", key, m[key])
				}
			}
			if v, ok := m["status"].(string); !ok || v != tc.wantStatus {
				t.Errorf("status = %#v, want %q", m["status"], tc.wantStatus)
			}
			if v, ok := m["created_at"].(json.Number); !ok || v != "0" {
				t.Errorf("created_at = %#v, want the JSON number 0", m["created_at"])
			}
			counts, _ := m["file_counts"].(map[string]any)
			for _, key := range []string{"in_progress", "completed", "failed", "cancelled", "total"} {
				if v, ok := counts[key].(json.Number); !ok || v != "0" {
					t.Errorf("file_counts.%s = %#v, want the JSON number 0", key, counts[key])
				}
			}
			if _, ok := m["status_raw"]; ok {
				t.Errorf("body has status_raw: %s", got.body)
			}
		})
	}
}

func TestIncomingHeaders(t *testing.T) {
	var md metadata.MD
	stub := &stubServer{cancel: func(ctx context.Context, _ *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error) {
		md, _ = metadata.FromIncomingContext(ctx)
		return cancelledBatch(), nil
	}}
	f := startFacade(t, stub, Options{})
	got := f.post(t, cancelPath("vs_1", "vsfb_1"), http.Header{
		"Authorization":            {"Bearer sk-test"},
		"Openai-Organization":      {"org_1"},
		"Openai-Project":           {"proj_1"},
		"Openai-Beta":              {"assistants=v2"},
		"User-Agent":               {"OpenAI/JS 6.49.0"},
		"Grpc-Metadata-Evil":       {"injected"},
		"Grpc-Metadata-X-Internal": {"injected"},
		"Grpc-Timeout":             {"not a timeout"},
		"X-Http-Method-Override":   {"GET"},
	})
	if got.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", got.status, got.body)
	}

	want := map[string][]string{
		"authorization":       {"Bearer sk-test"},
		"openai-organization": {"org_1"},
		"openai-project":      {"proj_1"},
	}
	for key, values := range want {
		if !slices.Equal(md.Get(key), values) {
			t.Errorf("metadata %s = %q, want %q", key, md.Get(key), values)
		}
	}
	// The mux always adds the forwarding keys, which the service ignores.
	allowed := []string{"authorization", "openai-organization", "openai-project", "x-forwarded-host", "x-forwarded-for"}
	for key := range md {
		if !slices.Contains(allowed, key) {
			t.Errorf("metadata has key %q = %q, want only %v", key, md[key], allowed)
		}
	}
}

func TestIncomingHeadersAbsent(t *testing.T) {
	var md metadata.MD
	stub := &stubServer{cancel: func(ctx context.Context, _ *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error) {
		md, _ = metadata.FromIncomingContext(ctx)
		return cancelledBatch(), nil
	}}
	f := startFacade(t, stub, Options{})
	f.post(t, cancelPath("vs_1", "vsfb_1"), nil)
	for _, key := range []string{"authorization", "openai-organization", "openai-project"} {
		if values := md.Get(key); len(values) != 0 {
			t.Errorf("metadata %s = %q, want none", key, values)
		}
	}
}

func TestOutgoingHeaders(t *testing.T) {
	stub := &stubServer{cancel: func(ctx context.Context, _ *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error) {
		header := metadata.Pairs(
			"x-request-id", "req_123",
			"openai-processing-ms", "42",
			"x-ratelimit-limit-requests", "100",
			"x-ratelimit-remaining-requests", "99",
			"x-ratelimit-reset-requests", "600ms",
			"server", "envoy",
			"x-internal", "secret",
		)
		if err := grpc.SetHeader(ctx, header); err != nil {
			t.Errorf("SetHeader() error = %v", err)
		}
		if err := grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "secret")); err != nil {
			t.Errorf("SetTrailer() error = %v", err)
		}
		return cancelledBatch(), nil
	}}
	f := startFacade(t, stub, Options{})
	tests := []struct {
		name   string
		header http.Header
	}{
		{"plain request", nil},
		{"request accepting trailers", http.Header{"Te": {"trailers"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := f.post(t, cancelPath("vs_1", "vsfb_1"), tc.header)
			if got.status != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", got.status, got.body)
			}
			want := map[string]string{
				"X-Request-Id":                   "req_123",
				"Openai-Processing-Ms":           "42",
				"X-Ratelimit-Limit-Requests":     "100",
				"X-Ratelimit-Remaining-Requests": "99",
				"X-Ratelimit-Reset-Requests":     "600ms",
				"Server":                         "",
				"X-Internal":                     "",
				"X-Trailer":                      "",
				"Trailer":                        "",
			}
			for name, value := range want {
				if v := got.header.Get(name); v != value {
					t.Errorf("header %s = %q, want %q", name, v, value)
				}
			}
			if names := grpcMetadataHeaders(got.header); len(names) > 0 {
				t.Errorf("response has grpc-gateway headers %v", names)
			}
			if got.header.Get("Content-Length") == "" {
				t.Errorf("response has no Content-Length; headers %v", got.header)
			}
		})
	}
}

// countingStub returns a stub that counts its calls.
func countingStub(calls *atomic.Int32) *stubServer {
	return &stubServer{cancel: func(context.Context, *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error) {
		calls.Add(1)
		return cancelledBatch(), nil
	}}
}

// unsizedReader hides the length of its contents, so that the client sends
// them chunked, with no Content-Length.
type unsizedReader struct{ r io.Reader }

func (u unsizedReader) Read(p []byte) (int, error) { return u.r.Read(p) }

func TestRequestBodyCap(t *testing.T) {
	const limit = 16
	tests := []struct {
		name       string
		body       func() io.Reader
		wantStatus int
	}{
		{"no body", func() io.Reader { return nil }, http.StatusOK},
		{"body at the cap", func() io.Reader { return strings.NewReader(strings.Repeat("x", limit)) }, http.StatusOK},
		{"Content-Length over the cap", func() io.Reader { return strings.NewReader(strings.Repeat("x", limit+1)) }, http.StatusRequestEntityTooLarge},
		{"chunked body at the cap", func() io.Reader { return unsizedReader{strings.NewReader(strings.Repeat("x", limit))} }, http.StatusOK},
		{"chunked body over the cap", func() io.Reader { return unsizedReader{strings.NewReader(strings.Repeat("x", limit+1))} }, http.StatusRequestEntityTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			f := startFacade(t, countingStub(&calls), Options{MaxRequestBytes: limit})
			got := f.do(t, http.MethodPost, cancelPath("vs_1", "vsfb_1"), nil, tc.body())
			if got.status != tc.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", got.status, tc.wantStatus, got.body)
			}
			wantCalls := int32(1)
			if tc.wantStatus != http.StatusOK {
				wantCalls = 0
				want := envelope("The request body is larger than the limit of 16 bytes.", "invalid_request_error", "", "")
				if body := decodeAny(t, got.body); mustJSON(t, body) != mustJSON(t, want) {
					t.Errorf("body = %s, want %s", got.body, mustJSON(t, want))
				}
			}
			if n := calls.Load(); n != wantCalls {
				t.Errorf("service called %d times, want %d", n, wantCalls)
			}
		})
	}
}

func TestRequestBodyDefaultCap(t *testing.T) {
	var calls atomic.Int32
	f := startFacade(t, countingStub(&calls), Options{})
	over := f.do(t, http.MethodPost, cancelPath("vs_1", "vsfb_1"), nil, bytes.NewReader(make([]byte, DefaultMaxRequestBytes+1)))
	if over.status != http.StatusRequestEntityTooLarge {
		t.Errorf("status for %d bytes = %d, want 413", DefaultMaxRequestBytes+1, over.status)
	}
	at := f.do(t, http.MethodPost, cancelPath("vs_1", "vsfb_1"), nil, bytes.NewReader(make([]byte, DefaultMaxRequestBytes)))
	if at.status != http.StatusOK {
		t.Errorf("status for %d bytes = %d, want 200", DefaultMaxRequestBytes, at.status)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("service called %d times, want 1", n)
	}
}

func TestFormPostIsNotRoutedElsewhere(t *testing.T) {
	stub := &stubServer{cancel: func(context.Context, *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error) {
		return nil, status.Error(codes.Internal, "unreachable")
	}}
	f := startFacade(t, stub, Options{})
	got := f.do(t, http.MethodPost, "/v1/models", http.Header{
		"Content-Type":           {"application/x-www-form-urlencoded"},
		"X-Http-Method-Override": {"GET"},
	}, strings.NewReader("a=b"))
	if got.status != http.StatusNotFound {
		t.Errorf("status = %d, want 404; body %s", got.status, got.body)
	}
}

func TestHandlerPanic(t *testing.T) {
	stub := &stubServer{cancel: func(context.Context, *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error) {
		panic("secret detail of a bug")
	}}
	f := startFacade(t, stub, Options{})
	got := f.post(t, cancelPath("vs_1", "vsfb_1"), nil)
	if got.status != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", got.status)
	}
	want := envelope(internalErrorMessage, "server_error", "", "")
	if body := decodeAny(t, got.body); mustJSON(t, body) != mustJSON(t, want) {
		t.Errorf("body = %s, want %s", got.body, mustJSON(t, want))
	}
	panicLine := f.logs.next(t, "panic in http handler")
	if panicLine["level"] != "ERROR" || panicLine["panic"] != "secret detail of a bug" {
		t.Errorf("panic log line = %v, want level ERROR and the panic value", panicLine)
	}
	line := f.logs.next(t, logMessage)
	if line["level"] != "ERROR" || line["http.status"] != float64(500) {
		t.Errorf("request log line = %v, want level ERROR and status 500", line)
	}
}

// BenchmarkHandlerCancel measures the façade's own cost per call: routing,
// header matching, the service stub, encoding and the log line, with no
// network and a logger that drops every line.
func BenchmarkHandlerCancel(b *testing.B) {
	batch := cancelledBatch()
	stub := &stubServer{cancel: func(ctx context.Context, _ *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error) {
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", "req_123", "openai-processing-ms", "12"))
		return batch, nil
	}}
	h, err := New(stub, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, cancelPath("vs_abc123", "vsfb_abc123"), nil)
	req.Header.Set("Authorization", "Bearer sk-test")
	req.Header.Set("OpenAI-Beta", "assistants=v2")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status = %d, want 200", w.Code)
		}
	}
}
