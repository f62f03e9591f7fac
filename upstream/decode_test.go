package upstream_test

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"example.com/filebatch/upstream"
)

func TestCancelFileBatchDecodesBatch(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		want        upstream.FileBatch
	}{
		{
			name:        "documented batch",
			contentType: "application/json",
			body:        batchJSON,
			want:        wantBatch,
		},
		{
			name:        "charset parameter",
			contentType: "application/json; charset=utf-8",
			body:        batchJSON,
			want:        wantBatch,
		},
		{
			name:        "upper-case media type",
			contentType: "Application/JSON",
			body:        batchJSON,
			want:        wantBatch,
		},
		{
			name:        "unknown fields",
			contentType: "application/json",
			body: `{"id":"vsfb_1","status":"cancelled","object":"vector_store.file_batch",` +
				`"metadata":{"k":"v"},"usage_bytes":1234,"tags":["a",1,null],"nested":{"deep":[{}]},` +
				`"file_counts":{"total":2,"cancelled":2,"skipped":7}}`,
			want: upstream.FileBatch{
				ID:         "vsfb_1",
				Object:     "vector_store.file_batch",
				Status:     "cancelled",
				FileCounts: upstream.FileCounts{Cancelled: 2, Total: 2},
			},
		},
		{
			name:        "object of older API versions",
			contentType: "application/json",
			body:        `{"id":"vsfb_1","object":"vector_store.files_batch","status":"cancelled"}`,
			want:        upstream.FileBatch{ID: "vsfb_1", Object: "vector_store.files_batch", Status: "cancelled"},
		},
		{
			name:        "unknown object",
			contentType: "application/json",
			body:        `{"id":"vsfb_1","object":"something.new","status":"cancelled"}`,
			want:        upstream.FileBatch{ID: "vsfb_1", Object: "something.new", Status: "cancelled"},
		},
		{
			name:        "unknown status kept raw",
			contentType: "application/json",
			body:        `{"id":"vsfb_1","status":"Paused by operator"}`,
			want:        upstream.FileBatch{ID: "vsfb_1", Status: "Paused by operator"},
		},
		{
			name:        "every number",
			contentType: "application/json",
			body: `{"id":"vsfb_1","status":"in_progress","created_at":9223372036854775807,` +
				`"file_counts":{"in_progress":1,"completed":2,"failed":3,"cancelled":4,"total":9223372036854775806}}`,
			want: upstream.FileBatch{
				ID:        "vsfb_1",
				Status:    "in_progress",
				CreatedAt: math.MaxInt64,
				FileCounts: upstream.FileCounts{
					InProgress: 1, Completed: 2, Failed: 3, Cancelled: 4, Total: math.MaxInt64 - 1,
				},
			},
		},
		{
			name:        "null fields",
			contentType: "application/json",
			body:        `{"id":"vsfb_1","status":"failed","object":null,"created_at":null,"file_counts":null,"error":null}`,
			want:        upstream.FileBatch{ID: "vsfb_1", Status: "failed"},
		},
		{
			name:        "white space and escapes",
			contentType: "application/json",
			body:        "\n {\n\t\"id\" : \"vsfb_\\u0031\" ,\"status\":\"completed\"\r\n}\n",
			want:        upstream.FileBatch{ID: "vsfb_1", Status: "completed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				w.Header().Set("X-Request-Id", "req_ok")
				io.WriteString(w, tt.body)
			})
			client := newClient(t, srv.URL+"/v1", upstream.Config{})

			batch, meta, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds)
			if err != nil {
				t.Fatalf("CancelFileBatch() failed: %v", err)
			}
			if *batch != tt.want {
				t.Errorf("CancelFileBatch() = %+v, want %+v", *batch, tt.want)
			}
			if meta.RequestID != "req_ok" {
				t.Errorf("Meta.RequestID = %q, want %q", meta.RequestID, "req_ok")
			}
			if meta.Attempts != 1 {
				t.Errorf("Meta.Attempts = %d, want 1", meta.Attempts)
			}
		})
	}
}

func TestCancelFileBatchInvalidAnswer(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string // "none" sends no Content-Type header
		body        string
		maxBytes    int64
		wantErr     string // a part of Err's text
	}{
		{name: "error object", status: 200, body: `{"error":{"message":"boom","type":"server_error","param":null,"code":null}}`, wantErr: "error object"},
		{name: "error object beside a batch", status: 200, body: `{"id":"vsfb_1","status":"cancelled","error":{"message":"boom"}}`, wantErr: "error object"},
		{name: "error string", status: 200, body: `{"id":"vsfb_1","status":"cancelled","error":"boom"}`, wantErr: "error object"},
		{name: "other object", status: 200, body: `{"foo":1}`, wantErr: "id is missing"},
		{name: "empty object", status: 200, body: `{}`, wantErr: "id is missing"},
		{name: "missing id", status: 200, body: `{"object":"vector_store.file_batch","status":"cancelled"}`, wantErr: "id is missing"},
		{name: "empty id", status: 200, body: `{"id":"","status":"cancelled"}`, wantErr: "id is missing"},
		{name: "missing status", status: 200, body: `{"id":"vsfb_1","object":"vector_store.file_batch"}`, wantErr: "status is missing"},
		{name: "array", status: 200, body: `[]`, wantErr: "not a JSON object"},
		{name: "array of batches", status: 200, body: "[" + batchJSON + "]", wantErr: "not a JSON object"},
		{name: "string", status: 200, body: `"x"`, wantErr: "not a JSON object"},
		{name: "number", status: 200, body: `42`, wantErr: "not a JSON object"},
		{name: "null", status: 200, body: `null`, wantErr: "id is missing"},
		{name: "malformed JSON", status: 200, body: `{"id":"vsfb_1","status":`, wantErr: "decode file batch"},
		{name: "trailing data", status: 200, body: batchJSON + `{}`, wantErr: "decode file batch"},
		{name: "id of wrong type", status: 200, body: `{"id":7,"status":"cancelled"}`, wantErr: "decode file batch"},
		{name: "fractional number", status: 200, body: `{"id":"vsfb_1","status":"cancelled","created_at":1.5}`, wantErr: "decode file batch"},
		{name: "number too large", status: 200, body: `{"id":"vsfb_1","status":"cancelled","created_at":9223372036854775808}`, wantErr: "decode file batch"},
		{name: "empty body", status: 200, body: ``, wantErr: "decode file batch"},
		{name: "HTML content type", status: 200, contentType: "text/html", body: batchJSON, wantErr: `content type is "text/html"`},
		{name: "no content type", status: 200, contentType: "none", body: batchJSON, wantErr: `content type is ""`},
		{name: "malformed content type", status: 200, contentType: "application/json; =", body: batchJSON, wantErr: "content type"},
		{name: "body over the limit", status: 200, body: batchJSON, maxBytes: 64, wantErr: "larger than the 64-byte limit"},
		{name: "201 with error object", status: 201, body: `{"error":{"message":"boom"}}`, wantErr: "error object"},
		{name: "204 no content", status: 204, contentType: "none", body: ``, wantErr: "content type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				switch tt.contentType {
				case "":
					w.Header().Set("Content-Type", "application/json")
				case "none":
					w.Header()["Content-Type"] = nil // stop net/http from sniffing one
				default:
					w.Header().Set("Content-Type", tt.contentType)
				}
				w.Header().Set("X-Request-Id", "req_bad")
				w.Header().Set("X-Should-Retry", "true")
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			client := newClient(t, srv.URL+"/v1", upstream.Config{
				MaxResponseBytes: tt.maxBytes,
				Retry:            fastRetry(2),
			})

			batch, meta, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds)
			var statusErr *upstream.Error
			if !errors.As(err, &statusErr) {
				t.Fatalf("CancelFileBatch() = %+v, %v, want an *upstream.Error", batch, err)
			}
			if batch != nil {
				t.Errorf("CancelFileBatch() batch = %+v, want nil", batch)
			}
			if !statusErr.Invalid() {
				t.Errorf("Invalid() = false, want true (error %v)", err)
			}
			if statusErr.StatusCode != tt.status {
				t.Errorf("StatusCode = %d, want %d", statusErr.StatusCode, tt.status)
			}
			if statusErr.Err == nil || !strings.Contains(statusErr.Err.Error(), tt.wantErr) {
				t.Errorf("Err = %v, want it to contain %q", statusErr.Err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "invalid response") {
				t.Errorf("Error() = %q, want it to contain %q", err, "invalid response")
			}
			if statusErr.Meta.RequestID != "req_bad" {
				t.Errorf("Error.Meta.RequestID = %q, want %q", statusErr.Meta.RequestID, "req_bad")
			}
			// A 2xx that is not a batch would be the same on a retry, so
			// x-should-retry: true does not cause one.
			if meta.Attempts != 1 {
				t.Errorf("Meta.Attempts = %d, want 1", meta.Attempts)
			}
		})
	}
}

func TestCancelFileBatchMaxResponseBytes(t *testing.T) {
	tests := []struct {
		name     string
		maxBytes int64
		wantErr  bool
	}{
		{name: "exactly the body length", maxBytes: int64(len(batchJSON))},
		{name: "one byte short", maxBytes: int64(len(batchJSON)) - 1, wantErr: true},
		{name: "default", maxBytes: 0},
		{name: "largest int64", maxBytes: math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, http.StatusOK, batchJSON)
			})
			client := newClient(t, srv.URL+"/v1", upstream.Config{MaxResponseBytes: tt.maxBytes})

			batch, _, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds)
			if tt.wantErr {
				var statusErr *upstream.Error
				if !errors.As(err, &statusErr) || !statusErr.Invalid() {
					t.Fatalf("CancelFileBatch() = %+v, %v, want an invalid-response *upstream.Error", batch, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("CancelFileBatch() failed: %v", err)
			}
			if *batch != wantBatch {
				t.Errorf("CancelFileBatch() = %+v, want %+v", *batch, wantBatch)
			}
		})
	}
}

// hijack takes over the connection of a request, so the test can write a
// broken HTTP response.
func hijack(t *testing.T, w http.ResponseWriter) *net.TCPConn {
	t.Helper()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack connection: %v", err)
		return nil
	}
	return conn.(*net.TCPConn)
}

func TestCancelFileBatchBrokenBody(t *testing.T) {
	const head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Request-Id: req_cut\r\n"
	tests := []struct {
		name    string
		write   func(t *testing.T, conn *net.TCPConn)
		wantErr error
	}{
		{
			name: "truncated body",
			write: func(t *testing.T, conn *net.TCPConn) {
				io.WriteString(conn, head+"Content-Length: 1000\r\n\r\n"+batchJSON[:40])
				conn.Close()
			},
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name: "truncated chunked body",
			write: func(t *testing.T, conn *net.TCPConn) {
				io.WriteString(conn, head+"Transfer-Encoding: chunked\r\n\r\n28\r\n"+batchJSON[:40]+"\r\n")
				conn.Close()
			},
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name: "connection reset mid-body",
			write: func(t *testing.T, conn *net.TCPConn) {
				io.WriteString(conn, head+"Content-Length: 1000\r\n\r\n"+batchJSON[:40])
				// A zero linger time makes Close send a TCP RST.
				if err := conn.SetLinger(0); err != nil {
					t.Errorf("set linger: %v", err)
				}
				conn.Close()
			},
			// The reset can arrive before or after the client reads the
			// status line, so no single cause is certain.
			wantErr: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if conn := hijack(t, w); conn != nil {
					tt.write(t, conn)
				}
			})
			client := newClient(t, srv.URL+"/v1", upstream.Config{})

			batch, _, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds)
			var connErr *upstream.ConnError
			if !errors.As(err, &connErr) {
				t.Fatalf("CancelFileBatch() = %+v, %v, want an *upstream.ConnError", batch, err)
			}
			var statusErr *upstream.Error
			if errors.As(err, &statusErr) {
				t.Errorf("error %v is also an *upstream.Error", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("CancelFileBatch() error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
				t.Errorf("CancelFileBatch() error = %v, want a reset or an unexpected EOF", err)
			}
		})
	}
}

func TestDecodeFileBatchResetsOutput(t *testing.T) {
	batch := wantBatch
	if err := upstream.DecodeFileBatch([]byte(`{"id":"vsfb_2","status":"completed"}`), &batch); err != nil {
		t.Fatalf("DecodeFileBatch() failed: %v", err)
	}
	want := upstream.FileBatch{ID: "vsfb_2", Status: "completed"}
	if batch != want {
		t.Errorf("DecodeFileBatch() = %+v, want %+v with no field left from before", batch, want)
	}
}

func FuzzDecodeFileBatch(f *testing.F) {
	f.Add([]byte(batchJSON))
	f.Add([]byte(`{"id":"vsfb_1","status":"cancelled","error":null}`))
	f.Add([]byte(`{"id":"vsfb_1","status":"cancelled","error":{}}`))
	f.Add([]byte(`{"ID":"a","Status":"b","FILE_COUNTS":{"TOTAL":1}}`))
	f.Add([]byte(`{"id":"a","id":"","status":"b"}`))
	f.Add([]byte(`{"id":"\ud800","status":"\xff"}`))
	f.Add([]byte(`{"id":"a","status":"b","created_at":-9223372036854775808}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[{"id":"a","status":"b"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var batch upstream.FileBatch
		if err := upstream.DecodeFileBatch(data, &batch); err != nil {
			return
		}
		if !json.Valid(data) {
			t.Errorf("DecodeFileBatch(%q) succeeded on invalid JSON", data)
		}
		if batch.ID == "" {
			t.Errorf("DecodeFileBatch(%q) succeeded with an empty ID", data)
		}
		if batch.Status == "" {
			t.Errorf("DecodeFileBatch(%q) succeeded with an empty Status", data)
		}

		encoded, err := json.Marshal(batch)
		if err != nil {
			t.Fatalf("json.Marshal(%+v) failed: %v", batch, err)
		}
		var again upstream.FileBatch
		if err := upstream.DecodeFileBatch(encoded, &again); err != nil {
			t.Fatalf("DecodeFileBatch(%q) of the re-encoded batch failed: %v", encoded, err)
		}
		if again != batch {
			t.Errorf("re-decoded batch = %+v, want %+v", again, batch)
		}
	})
}
