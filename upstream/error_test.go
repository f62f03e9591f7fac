package upstream_test

import (
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"example.com/filebatch/upstream"
)

// ptr returns a pointer to s.
func ptr(s string) *string { return &s }

// equalPtr reports whether a and b are both nil or point to equal strings.
func equalPtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// show prints a *string for a failure message.
func show(p *string) string {
	if p == nil {
		return "nil"
	}
	return `"` + *p + `"`
}

func TestCancelFileBatchErrorEnvelope(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        string
		wantMessage string
		wantType    string
		wantParam   *string
		wantCode    *string
	}{
		{
			name:        "all fields",
			status:      http.StatusNotFound,
			body:        `{"error":{"message":"No batch found with id 'vsfb_1'.","type":"invalid_request_error","param":"batch_id","code":"not_found"}}`,
			wantMessage: "No batch found with id 'vsfb_1'.",
			wantType:    "invalid_request_error",
			wantParam:   ptr("batch_id"),
			wantCode:    ptr("not_found"),
		},
		{
			name:        "null param and code",
			status:      http.StatusUnauthorized,
			body:        `{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":null}}`,
			wantMessage: "Incorrect API key provided.",
			wantType:    "invalid_request_error",
		},
		{
			name:        "missing param and code",
			status:      http.StatusBadRequest,
			body:        `{"error":{"message":"bad","type":"invalid_request_error"}}`,
			wantMessage: "bad",
			wantType:    "invalid_request_error",
		},
		{
			name:        "empty code",
			status:      http.StatusBadRequest,
			body:        `{"error":{"message":"bad","type":"invalid_request_error","param":"","code":""}}`,
			wantMessage: "bad",
			wantType:    "invalid_request_error",
			wantParam:   ptr(""),
			wantCode:    ptr(""),
		},
		{
			name:        "unknown fields",
			status:      http.StatusConflict,
			body:        `{"error":{"message":"busy","type":"conflict","extra":[1,2]},"request_id":"x"}`,
			wantMessage: "busy",
			wantType:    "conflict",
		},
		{
			name:        "message with control characters kept verbatim",
			status:      http.StatusBadRequest,
			body:        `{"error":{"message":"line 1\nline 2","type":"invalid_request_error"}}`,
			wantMessage: "line 1\nline 2",
			wantType:    "invalid_request_error",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Request-Id", "req_123")
				writeJSON(w, tt.status, tt.body)
			})
			client := newClient(t, srv.URL+"/v1", upstream.Config{})

			batch, meta, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds)
			var statusErr *upstream.Error
			if !errors.As(err, &statusErr) {
				t.Fatalf("CancelFileBatch() = %+v, %v, want an *upstream.Error", batch, err)
			}
			if statusErr.StatusCode != tt.status {
				t.Errorf("StatusCode = %d, want %d", statusErr.StatusCode, tt.status)
			}
			if statusErr.Message != tt.wantMessage {
				t.Errorf("Message = %q, want %q", statusErr.Message, tt.wantMessage)
			}
			if statusErr.Type != tt.wantType {
				t.Errorf("Type = %q, want %q", statusErr.Type, tt.wantType)
			}
			if !equalPtr(statusErr.Param, tt.wantParam) {
				t.Errorf("Param = %s, want %s", show(statusErr.Param), show(tt.wantParam))
			}
			if !equalPtr(statusErr.Code, tt.wantCode) {
				t.Errorf("Code = %s, want %s", show(statusErr.Code), show(tt.wantCode))
			}
			if statusErr.Body != "" {
				t.Errorf("Body = %q, want empty for an error envelope", statusErr.Body)
			}
			if statusErr.Invalid() {
				t.Error("Invalid() = true, want false")
			}
			if statusErr.Err != nil {
				t.Errorf("Err = %v, want nil", statusErr.Err)
			}
			if meta.RequestID != "req_123" {
				t.Errorf("Meta.RequestID = %q, want %q", meta.RequestID, "req_123")
			}
			if statusErr.Meta.RequestID != "req_123" {
				t.Errorf("Error.Meta.RequestID = %q, want %q", statusErr.Meta.RequestID, "req_123")
			}
			msg := err.Error()
			for _, want := range []string{"upstream: HTTP ", "request id req_123", tt.wantMessage} {
				if !strings.Contains(msg, want) {
					t.Errorf("Error() = %q, want it to contain %q", msg, want)
				}
			}
		})
	}
}

func TestCancelFileBatchErrorBody(t *testing.T) {
	longPage := "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\n" +
		strings.Repeat("<p>\tupstream\x00connect\x1b[31m error\x7f</p>\n", 400) + "</body></html>"
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		maxBytes    int64
		wantPrefix  string
		wantInError string
	}{
		{
			name:        "HTML page from a proxy",
			status:      http.StatusBadGateway,
			contentType: "text/html",
			body:        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>nginx</body>\r\n</html>\r\n",
			wantPrefix:  "<html> <head><title>502 Bad Gateway</title></head> <body>nginx</body> </html>",
			wantInError: "502 Bad Gateway",
		},
		{
			name:        "long page with control characters",
			status:      http.StatusBadGateway,
			contentType: "text/html",
			body:        longPage,
			wantPrefix:  "<html> <head><title>502 Bad Gateway</title></head> <body> <p> upstream\uFFFDconnect\uFFFD[31m error\uFFFD</p>",
		},
		{
			name:        "plain text",
			status:      http.StatusServiceUnavailable,
			contentType: "text/plain",
			body:        "upstream connect error or disconnect/reset before headers",
			wantPrefix:  "upstream connect error or disconnect/reset before headers",
		},
		{
			name:        "JSON that is not an envelope",
			status:      http.StatusInternalServerError,
			contentType: "application/json",
			body:        `{"detail":"Internal error"}`,
			wantPrefix:  `{"detail":"Internal error"}`,
		},
		{
			name:        "error string instead of object",
			status:      http.StatusBadRequest,
			contentType: "application/json",
			body:        `{"error":"bad request"}`,
			wantPrefix:  `{"error":"bad request"}`,
		},
		{
			name:        "null error",
			status:      http.StatusBadRequest,
			contentType: "application/json",
			body:        `{"error":null}`,
			wantPrefix:  `{"error":null}`,
		},
		{
			name:        "envelope over the size limit",
			status:      http.StatusBadRequest,
			contentType: "application/json",
			body:        `{"error":{"message":"` + strings.Repeat("x", 200) + `","type":"invalid_request_error"}}`,
			maxBytes:    100,
			wantPrefix:  `{"error":{"message":"xxx`,
		},
		{
			name:        "invalid UTF-8",
			status:      http.StatusBadGateway,
			contentType: "text/plain",
			body:        "bad \xff\xfe gateway",
			wantPrefix:  "bad \uFFFD gateway",
		},
		{
			name:        "empty body",
			status:      http.StatusInternalServerError,
			contentType: "text/plain",
			body:        "",
			wantPrefix:  "",
			wantInError: "Internal Server Error",
		},
		{
			name:        "only white space",
			status:      http.StatusInternalServerError,
			contentType: "text/plain",
			body:        " \r\n\t ",
			wantPrefix:  "",
			wantInError: "Internal Server Error",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				w.Header().Set("X-Request-Id", "req_html")
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			})
			client := newClient(t, srv.URL+"/v1", upstream.Config{MaxResponseBytes: tt.maxBytes})

			_, _, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds)
			var statusErr *upstream.Error
			if !errors.As(err, &statusErr) {
				t.Fatalf("CancelFileBatch() error = %v, want an *upstream.Error", err)
			}
			if statusErr.StatusCode != tt.status {
				t.Errorf("StatusCode = %d, want %d", statusErr.StatusCode, tt.status)
			}
			if statusErr.Message != "" || statusErr.Type != "" || statusErr.Param != nil || statusErr.Code != nil {
				t.Errorf("envelope fields = %q, %q, %s, %s, want none", statusErr.Message, statusErr.Type, show(statusErr.Param), show(statusErr.Code))
			}
			if statusErr.Invalid() {
				t.Error("Invalid() = true, want false")
			}
			body := statusErr.Body
			if !strings.HasPrefix(body, tt.wantPrefix) {
				t.Errorf("Body = %q, want it to start with %q", body, tt.wantPrefix)
			}
			if tt.wantPrefix == "" && body != "" {
				t.Errorf("Body = %q, want empty", body)
			}
			if len(body) > 512 {
				t.Errorf("len(Body) = %d, want at most 512", len(body))
			}
			if !utf8.ValidString(body) {
				t.Errorf("Body = %q, want valid UTF-8", body)
			}
			if i := strings.IndexFunc(body, unicode.IsControl); i >= 0 {
				t.Errorf("Body = %q has a control character at byte %d", body, i)
			}
			if strings.HasPrefix(body, " ") || strings.HasSuffix(body, " ") || strings.Contains(body, "  ") {
				t.Errorf("Body = %q, want white space collapsed and trimmed", body)
			}
			msg := err.Error()
			if !strings.Contains(msg, "request id req_html") {
				t.Errorf("Error() = %q, want it to contain the request id", msg)
			}
			if tt.wantInError != "" && !strings.Contains(msg, tt.wantInError) {
				t.Errorf("Error() = %q, want it to contain %q", msg, tt.wantInError)
			}
		})
	}
}

func TestCancelFileBatchRetryAfterHeader(t *testing.T) {
	tests := []struct {
		name    string
		header  map[string]string
		wantMin time.Duration
		wantMax time.Duration
	}{
		{name: "none", wantMin: 0, wantMax: 0},
		{name: "seconds", header: map[string]string{"Retry-After": "7"}, wantMin: 7 * time.Second, wantMax: 7 * time.Second},
		{name: "milliseconds", header: map[string]string{"Retry-After-Ms": "250"}, wantMin: 250 * time.Millisecond, wantMax: 250 * time.Millisecond},
		{name: "milliseconds first", header: map[string]string{"Retry-After-Ms": "250", "Retry-After": "7"}, wantMin: 250 * time.Millisecond, wantMax: 250 * time.Millisecond},
		{name: "invalid milliseconds", header: map[string]string{"Retry-After-Ms": "soon", "Retry-After": "7"}, wantMin: 7 * time.Second, wantMax: 7 * time.Second},
		{
			name:   "HTTP date",
			header: map[string]string{"Retry-After": time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat)},
			// The date has whole seconds, and the test takes some time.
			wantMin: time.Minute,
			wantMax: 2 * time.Minute,
		},
		{name: "HTTP date in the past", header: map[string]string{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, wantMin: 0, wantMax: 0},
		{name: "garbage", header: map[string]string{"Retry-After": "later"}, wantMin: 0, wantMax: 0},
		{name: "negative", header: map[string]string{"Retry-After": "-5"}, wantMin: 0, wantMax: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				for name, value := range tt.header {
					w.Header().Set(name, value)
				}
				writeJSON(w, http.StatusTooManyRequests, `{"error":{"message":"slow down","type":"requests"}}`)
			})
			client := newClient(t, srv.URL+"/v1", upstream.Config{})

			_, _, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds)
			var statusErr *upstream.Error
			if !errors.As(err, &statusErr) {
				t.Fatalf("CancelFileBatch() error = %v, want an *upstream.Error", err)
			}
			if got := statusErr.RetryAfter; got < tt.wantMin || got > tt.wantMax {
				t.Errorf("RetryAfter = %v, want it in [%v, %v]", got, tt.wantMin, tt.wantMax)
			}
		})
	}
}

func TestCancelFileBatchForwardedHeaders(t *testing.T) {
	sent := map[string]string{
		"X-Request-Id":                   "req_fwd",
		"Openai-Processing-Ms":           "42",
		"X-Ratelimit-Limit-Requests":     "5000",
		"X-Ratelimit-Remaining-Requests": "4999",
		"X-Ratelimit-Reset-Tokens":       "6ms",
		"Retry-After":                    "1",
		"Retry-After-Ms":                 "900",
		"Openai-Organization":            "org-secret",
		"Openai-Version":                 "2020-10-01",
		"Set-Cookie":                     "__cf_bm=abc; path=/",
		"Server":                         "cloudflare",
		"X-Should-Retry":                 "false",
		"Strict-Transport-Security":      "max-age=31536000",
	}
	want := []string{
		"Openai-Processing-Ms",
		"Openai-Version",
		"Retry-After",
		"Retry-After-Ms",
		"X-Ratelimit-Limit-Requests",
		"X-Ratelimit-Remaining-Requests",
		"X-Ratelimit-Reset-Tokens",
		"X-Request-Id",
		"X-Should-Retry",
	}
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{name: "success", status: http.StatusOK, body: batchJSON},
		{name: "error envelope", status: http.StatusTooManyRequests, body: `{"error":{"message":"slow down","type":"requests"}}`},
		{name: "invalid answer", status: http.StatusOK, body: `{"foo":1}`},
		{name: "HTML error", status: http.StatusBadGateway, body: `<html>bad gateway</html>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				for name, value := range sent {
					w.Header().Set(name, value)
				}
				writeJSON(w, tt.status, tt.body)
			})
			client := newClient(t, srv.URL+"/v1", upstream.Config{})

			_, meta, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds)
			if (err != nil) != (tt.status != http.StatusOK || tt.body != batchJSON) {
				t.Fatalf("CancelFileBatch() error = %v, unexpected for status %d", err, tt.status)
			}
			got := slices.Sorted(maps.Keys(meta.Header))
			if !slices.Equal(got, want) {
				t.Errorf("Meta.Header names = %q, want %q", got, want)
			}
			for _, name := range want {
				if v := meta.Header.Get(name); v != sent[name] {
					t.Errorf("Meta.Header %s = %q, want %q", name, v, sent[name])
				}
			}
			if meta.RequestID != "req_fwd" {
				t.Errorf("Meta.RequestID = %q, want %q", meta.RequestID, "req_fwd")
			}
			var statusErr *upstream.Error
			if errors.As(err, &statusErr) && statusErr.Meta.Header.Get("X-Request-Id") != "req_fwd" {
				t.Errorf("Error.Meta.Header = %v, want the forwarded headers", statusErr.Meta.Header)
			}
		})
	}
}
