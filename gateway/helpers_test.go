package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	filebatchv1 "example.com/filebatch/gen/filebatch/v1"
)

// cancelPath is the façade path of a cancel call for the given IDs.
func cancelPath(vectorStoreID, batchID string) string {
	return "/v1/vector_stores/" + vectorStoreID + "/file_batches/" + batchID + "/cancel"
}

// stubServer is a FileBatchServiceServer whose CancelFileBatch runs the
// test's function.
type stubServer struct {
	filebatchv1.UnimplementedFileBatchServiceServer
	cancel func(context.Context, *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error)
}

func (s *stubServer) CancelFileBatch(ctx context.Context, req *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error) {
	return s.cancel(ctx, req)
}

// logCapture collects the JSON log lines of a handler and signals each one
// on lines, so that a test can wait for a line without polling.
type logCapture struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan map[string]any
}

func newLogCapture() *logCapture {
	return &logCapture{lines: make(chan map[string]any, 64)}
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.buf.Write(p)
	c.mu.Unlock()
	var line map[string]any
	if err := json.Unmarshal(p, &line); err == nil {
		c.lines <- line
	}
	return len(p), nil
}

func (c *logCapture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// next returns the next log line whose msg is msg, failing the test when
// none arrives within a generous bound.
func (c *logCapture) next(t *testing.T, msg string) map[string]any {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case line := <-c.lines:
			if line["msg"] == msg {
				return line
			}
		case <-timeout.C:
			t.Fatalf("no log line %q arrived; log so far:\n%s", msg, c.String())
			return nil
		}
	}
}

// facade is a façade over a stub server, served by httptest on loopback.
type facade struct {
	url  string
	logs *logCapture
}

// startFacade serves New(stub, opts) with a JSON logger that records every
// line, and closes the server when the test ends.
func startFacade(t *testing.T, stub *stubServer, opts Options) *facade {
	t.Helper()
	logs := newLogCapture()
	opts.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := New(stub, opts)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &facade{url: srv.URL, logs: logs}
}

// answer is a received HTTP response with its body read.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// post sends a POST of path to the façade with the given headers.
func (f *facade) post(t *testing.T, path string, header http.Header) answer {
	t.Helper()
	return f.do(t, http.MethodPost, path, header, nil)
}

func (f *facade) do(t *testing.T, method, path string, header http.Header, body io.Reader) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, f.url+path, body)
	if err != nil {
		t.Fatalf("build request: %v", err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body of %s %s: %v", method, path, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: data}
}

// decodeJSON decodes data into a map, with numbers as json.Number so that
// a test can tell a number from a string.
func decodeJSON(t *testing.T, data []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode JSON %q: %v", data, err)
	}
	return m
}

// grpcMetadataHeaders returns the names of the headers that carry
// grpc-gateway's metadata prefixes.
func grpcMetadataHeaders(h http.Header) []string {
	var names []string
	for name := range h {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "grpc-metadata-") || strings.HasPrefix(lower, "grpc-trailer-") {
			names = append(names, name)
		}
	}
	return names
}
