package upstream_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"example.com/filebatch/upstream"
)

// batchJSON is a file batch as the OpenAI API returns it from the cancel call.
const batchJSON = `{"id":"vsfb_1","object":"vector_store.file_batch","created_at":1699061776,` +
	`"vector_store_id":"vs_1","status":"cancelling",` +
	`"file_counts":{"in_progress":12,"completed":3,"failed":1,"cancelled":0,"total":16}}`

// wantBatch is batchJSON decoded.
var wantBatch = upstream.FileBatch{
	ID:            "vsfb_1",
	Object:        "vector_store.file_batch",
	CreatedAt:     1699061776,
	VectorStoreID: "vs_1",
	Status:        "cancelling",
	FileCounts:    upstream.FileCounts{InProgress: 12, Completed: 3, Failed: 1, Total: 16},
}

var testCreds = upstream.Credentials{APIKey: "sk-test-key"}

// newServer starts a loopback HTTP server that calls handler, and closes it
// when the test ends.
func newServer(t *testing.T, handler http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv
}

// newClient returns a client for baseURL with the other settings of cfg.
func newClient(t *testing.T, baseURL string, cfg upstream.Config) *upstream.Client {
	t.Helper()
	cfg.BaseURL = baseURL
	client, err := upstream.New(cfg)
	if err != nil {
		t.Fatalf("New(%q) failed: %v", baseURL, err)
	}
	return client
}

// writeJSON sends body with the given status as application/json.
func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// receivedRequest is what the server saw of one request.
type receivedRequest struct {
	method        string
	escapedPath   string
	rawQuery      string
	header        http.Header
	contentLength int64
	chunked       bool
	body          string
}

func TestCancelFileBatchRequest(t *testing.T) {
	tests := []struct {
		name     string
		basePath string
		vsID     string
		batchID  string
		creds    upstream.Credentials
		wantPath string
		// wantHeader maps a header name to its only expected value, or to ""
		// when the header must be absent.
		wantHeader map[string]string
	}{
		{
			name:     "key only",
			basePath: "/v1",
			vsID:     "vs_1",
			batchID:  "vsfb_1",
			creds:    upstream.Credentials{APIKey: "sk-test-key"},
			wantPath: "/v1/vector_stores/vs_1/file_batches/vsfb_1/cancel",
			wantHeader: map[string]string{
				"Authorization":       "Bearer sk-test-key",
				"OpenAI-Beta":         "assistants=v2",
				"Accept":              "application/json",
				"User-Agent":          "filebatch-test/1.0",
				"OpenAI-Organization": "",
				"OpenAI-Project":      "",
				"Content-Type":        "",
				"Transfer-Encoding":   "",
			},
		},
		{
			name:     "organization and project",
			basePath: "/v1",
			vsID:     "vs_1",
			batchID:  "vsfb_1",
			creds:    upstream.Credentials{APIKey: "sk-test-key", Organization: "org-1", Project: "proj_1"},
			wantPath: "/v1/vector_stores/vs_1/file_batches/vsfb_1/cancel",
			wantHeader: map[string]string{
				"Authorization":       "Bearer sk-test-key",
				"OpenAI-Organization": "org-1",
				"OpenAI-Project":      "proj_1",
			},
		},
		{
			name:       "no key",
			basePath:   "/v1",
			vsID:       "vs_1",
			batchID:    "vsfb_1",
			wantPath:   "/v1/vector_stores/vs_1/file_batches/vsfb_1/cancel",
			wantHeader: map[string]string{"Authorization": "", "OpenAI-Beta": "assistants=v2"},
		},
		{
			name:       "base URL with trailing slash",
			basePath:   "/v1/",
			vsID:       "vs_1",
			batchID:    "vsfb_1",
			creds:      testCreds,
			wantPath:   "/v1/vector_stores/vs_1/file_batches/vsfb_1/cancel",
			wantHeader: map[string]string{"Authorization": "Bearer sk-test-key"},
		},
		{
			name:       "base URL with longer path",
			basePath:   "/proxy/openai/v1",
			vsID:       "vs_1",
			batchID:    "vsfb_1",
			creds:      testCreds,
			wantPath:   "/proxy/openai/v1/vector_stores/vs_1/file_batches/vsfb_1/cancel",
			wantHeader: map[string]string{"Authorization": "Bearer sk-test-key"},
		},
		{
			name:       "IDs that need escaping",
			basePath:   "/v1",
			vsID:       "vs 1/../x",
			batchID:    "b?q=1#f%",
			creds:      testCreds,
			wantPath:   "/v1/vector_stores/vs%201%2F..%2Fx/file_batches/b%3Fq=1%23f%25/cancel",
			wantHeader: map[string]string{"Authorization": "Bearer sk-test-key"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			received := make(chan receivedRequest, 1)
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				received <- receivedRequest{
					method:        r.Method,
					escapedPath:   r.URL.EscapedPath(),
					rawQuery:      r.URL.RawQuery,
					header:        r.Header.Clone(),
					contentLength: r.ContentLength,
					chunked:       len(r.TransferEncoding) > 0,
					body:          string(body),
				}
				writeJSON(w, http.StatusOK, batchJSON)
			})
			client := newClient(t, srv.URL+tt.basePath, upstream.Config{UserAgent: "filebatch-test/1.0"})

			batch, _, err := client.CancelFileBatch(t.Context(), tt.vsID, tt.batchID, tt.creds)
			if err != nil {
				t.Fatalf("CancelFileBatch() failed: %v", err)
			}
			if *batch != wantBatch {
				t.Errorf("CancelFileBatch() = %+v, want %+v", *batch, wantBatch)
			}

			got := <-received
			if got.method != http.MethodPost {
				t.Errorf("method = %q, want POST", got.method)
			}
			if got.escapedPath != tt.wantPath {
				t.Errorf("escaped path = %q, want %q", got.escapedPath, tt.wantPath)
			}
			if got.rawQuery != "" {
				t.Errorf("query = %q, want none", got.rawQuery)
			}
			for name, want := range tt.wantHeader {
				values := got.header.Values(name)
				switch {
				case want == "" && len(values) > 0:
					t.Errorf("header %s = %q, want it absent", name, values)
				case want != "" && (len(values) != 1 || values[0] != want):
					t.Errorf("header %s = %q, want [%q]", name, values, want)
				}
			}
			if got.contentLength != 0 {
				t.Errorf("request Content-Length = %d, want 0", got.contentLength)
			}
			if values := got.header.Values("Content-Length"); len(values) != 1 || values[0] != "0" {
				t.Errorf("header Content-Length = %q, want [\"0\"]", values)
			}
			if got.chunked {
				t.Error("request body is chunked, want Content-Length 0")
			}
			if got.body != "" {
				t.Errorf("request body = %q, want empty", got.body)
			}
		})
	}
}

func TestCancelFileBatchDefaultUserAgent(t *testing.T) {
	userAgents := make(chan string, 1)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		userAgents <- r.UserAgent()
		writeJSON(w, http.StatusOK, batchJSON)
	})
	client := newClient(t, srv.URL+"/v1", upstream.Config{})
	if _, _, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds); err != nil {
		t.Fatalf("CancelFileBatch() failed: %v", err)
	}
	// With no UserAgent configured, net/http's default is sent.
	if got := <-userAgents; !strings.HasPrefix(got, "Go-http-client/") {
		t.Errorf("User-Agent = %q, want Go's default", got)
	}
}

func TestNewRejectsBaseURL(t *testing.T) {
	tests := []struct {
		name    string
		baseURL string
	}{
		{name: "empty", baseURL: ""},
		{name: "relative", baseURL: "/v1"},
		{name: "no scheme", baseURL: "api.openai.com/v1"},
		{name: "other scheme", baseURL: "ftp://127.0.0.1/v1"},
		{name: "no host", baseURL: "http:///v1"},
		{name: "query", baseURL: "http://127.0.0.1/v1?x=1"},
		{name: "fragment", baseURL: "http://127.0.0.1/v1#x"},
		{name: "bad escape", baseURL: "http://127.0.0.1/%zz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, err := upstream.New(upstream.Config{BaseURL: tt.baseURL})
			if err == nil {
				t.Fatalf("New(%q) = %v, want an error", tt.baseURL, client)
			}
			if !strings.HasPrefix(err.Error(), "upstream: invalid base URL") {
				t.Errorf("New(%q) error = %q, want it to start with %q", tt.baseURL, err, "upstream: invalid base URL")
			}
		})
	}
}

func TestClientHost(t *testing.T) {
	tests := []struct {
		baseURL string
		want    string
	}{
		{baseURL: "https://api.openai.com/v1", want: "api.openai.com"},
		{baseURL: "http://127.0.0.1:8080/v1/", want: "127.0.0.1:8080"},
		{baseURL: "http://[::1]:9000", want: "[::1]:9000"},
	}
	for _, tt := range tests {
		t.Run(tt.baseURL, func(t *testing.T) {
			client := newClient(t, tt.baseURL, upstream.Config{})
			if got := client.Host(); got != tt.want {
				t.Errorf("Host() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCancelFileBatchDoesNotFollowRedirects(t *testing.T) {
	for _, status := range []int{
		http.StatusMovedPermanently,
		http.StatusFound,
		http.StatusSeeOther,
		http.StatusTemporaryRedirect,
		http.StatusPermanentRedirect,
	} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			other := make(chan string, 1)
			target := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				other <- r.Header.Get("Authorization")
				writeJSON(w, http.StatusOK, batchJSON)
			})
			var attempts atomic.Int32
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				attempts.Add(1)
				http.Redirect(w, r, target.URL+r.URL.Path, status)
			})
			client := newClient(t, srv.URL+"/v1", upstream.Config{
				Retry: upstream.RetryPolicy{MaxRetries: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond},
			})

			batch, meta, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds)
			var statusErr *upstream.Error
			if !errors.As(err, &statusErr) {
				t.Fatalf("CancelFileBatch() = %v, %v, want an *upstream.Error", batch, err)
			}
			if statusErr.StatusCode != status {
				t.Errorf("StatusCode = %d, want %d", statusErr.StatusCode, status)
			}
			if statusErr.Invalid() {
				t.Error("Invalid() = true, want false for a non-2xx answer")
			}
			if meta.Attempts != 1 {
				t.Errorf("Meta.Attempts = %d, want 1", meta.Attempts)
			}
			if got := attempts.Load(); got != 1 {
				t.Errorf("server received %d requests, want 1", got)
			}
			select {
			case auth := <-other:
				t.Errorf("redirect target received a request with Authorization %q", auth)
			default:
			}
		})
	}
}

func TestIsForwardedHeader(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{name: "x-request-id", want: true},
		{name: "X-Request-Id", want: true},
		{name: "openai-processing-ms", want: true},
		{name: "Openai-Processing-Ms", want: true},
		{name: "retry-after", want: true},
		{name: "Retry-After-Ms", want: true},
		{name: "x-ratelimit-limit-requests", want: true},
		{name: "X-Ratelimit-Reset-Tokens", want: true},
		{name: "X-RATELIMIT-REMAINING-TOKENS", want: true},
		{name: "x-ratelimit-", want: false},
		{name: "x-ratelimit", want: false},
		{name: "x-request-ids", want: false},
		{name: "openai-organization", want: false},
		{name: "openai-version", want: true},
		{name: "set-cookie", want: false},
		{name: "content-type", want: false},
		{name: "x-should-retry", want: true},
		{name: "", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := upstream.IsForwardedHeader(tt.name); got != tt.want {
				t.Errorf("IsForwardedHeader(%q) = %t, want %t", tt.name, got, tt.want)
			}
		})
	}
}
