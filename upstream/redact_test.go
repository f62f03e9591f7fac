package upstream_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"example.com/filebatch/upstream"
)

// echoKey is the API key that the server of TestClientRedactsEchoedKey
// echoes in its response headers.
const echoKey = "sk-echo-4Fh9Qz"

// TestClientRedactsEchoedKey answers a 503 and then a 200, each echoing the
// request's key in x-request-id, in a forwarded header's value and in a
// header name, and checks that the key reaches neither the retry event,
// the error's Meta nor the success's Meta.
func TestClientRedactsEchoedKey(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("X-Request-Id", "req_"+key)
		w.Header().Set("X-Ratelimit-Remaining-Requests", key)
		w.Header().Set("X-Ratelimit-"+key, "1")
		if calls.Add(1) == 1 {
			writeJSON(w, http.StatusServiceUnavailable, `{"error":{"message":"Overloaded.","type":"server_error"}}`)
			return
		}
		writeJSON(w, http.StatusOK, batchJSON)
	}))
	t.Cleanup(srv.Close)
	recorder := &eventRecorder{}
	client := newClient(t, srv.URL+"/v1", upstream.Config{Retry: fastRetry(1), OnRetry: recorder.record})

	_, meta, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", upstream.Credentials{APIKey: echoKey})
	if err != nil {
		t.Fatalf("CancelFileBatch() error = %v, want success after one retry", err)
	}
	checkMetaRedacted(t, "success", meta)
	events := recorder.get()
	if len(events) != 1 {
		t.Fatalf("retry events = %d, want 1", len(events))
	}
	if got, want := events[0].RequestID, "req_[redacted]"; got != want {
		t.Errorf("RetryEvent.RequestID = %q, want %q", got, want)
	}

	// Without retries, the 503 itself is returned.
	calls.Store(0)
	client = newClient(t, srv.URL+"/v1", upstream.Config{})
	_, _, err = client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", upstream.Credentials{APIKey: echoKey})
	var statusErr *upstream.Error
	if !errors.As(err, &statusErr) {
		t.Fatalf("CancelFileBatch() error = %v, want an *upstream.Error", err)
	}
	checkMetaRedacted(t, "error", statusErr.Meta)
}

func checkMetaRedacted(t *testing.T, what string, meta upstream.Meta) {
	t.Helper()
	if got, want := meta.RequestID, "req_[redacted]"; got != want {
		t.Errorf("%s: RequestID = %q, want %q", what, got, want)
	}
	if got, want := meta.Header.Get("X-Ratelimit-Remaining-Requests"), "[redacted]"; got != want {
		t.Errorf("%s: x-ratelimit-remaining-requests = %q, want %q", what, got, want)
	}
	for name, values := range meta.Header {
		if strings.Contains(strings.ToLower(name), strings.ToLower(echoKey)) {
			t.Errorf("%s: header name %q contains the key", what, name)
		}
		for _, v := range values {
			if strings.Contains(v, echoKey) {
				t.Errorf("%s: header %s = %q contains the key", what, name, v)
			}
		}
	}
}

// TestClientRedactsKeyInErrorBody answers error pages that echo the key
// where the body excerpt cuts it, and in an OpenAI message, with keys that
// quoting would escape, and checks that no part of the key remains in the
// error's body excerpt or message.
func TestClientRedactsKeyInErrorBody(t *testing.T) {
	tests := []struct {
		name     string
		key      string
		body     func(key string) string
		html     bool
		status   int   // when not 0, the body is sent as JSON with this status
		maxBytes int64 // Config.MaxResponseBytes
	}{
		{
			name: "HTML page cut inside the key",
			key:  "sk-cut-" + strings.Repeat("K", 40),
			body: func(key string) string { return "<pre>" + strings.Repeat("x", 490) + key + "</pre>" },
			html: true,
		},
		{
			name: "HTML page with a key that quoting escapes",
			key:  `sk-ab\cd"ef`,
			body: func(key string) string { return "<pre>Authorization: Bearer " + key + "</pre>" },
			html: true,
		},
		{
			name: "JSON body that escapes the key",
			key:  `sk-te"st\UNIQUE456xyz`,
			body: func(key string) string {
				encoded, _ := json.Marshal(key)
				return `{"detail":` + string(encoded) + `}`
			},
			status: http.StatusUnauthorized,
		},
		{
			name:     "body cut by the response cap inside the key",
			key:      "sk-cap-" + strings.Repeat("C", 30),
			body:     func(key string) string { return strings.Repeat("a", 90) + key },
			html:     true,
			maxBytes: 100,
		},
		{
			name: "OpenAI message",
			key:  "sk-msg-" + strings.Repeat("M", 20),
			body: func(key string) string {
				return `{"error":{"message":"Bad key ` + key + `.","type":"invalid_request_error"}}`
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.status != 0 {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(tt.status)
					_, _ = w.Write([]byte(tt.body(tt.key)))
					return
				}
				if tt.html {
					w.Header().Set("Content-Type", "text/html")
					w.WriteHeader(http.StatusBadGateway)
					_, _ = w.Write([]byte(tt.body(tt.key)))
					return
				}
				writeJSON(w, http.StatusBadRequest, tt.body(tt.key))
			}))
			t.Cleanup(srv.Close)
			client := newClient(t, srv.URL+"/v1", upstream.Config{MaxResponseBytes: tt.maxBytes})

			_, _, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", upstream.Credentials{APIKey: tt.key})
			var statusErr *upstream.Error
			if !errors.As(err, &statusErr) {
				t.Fatalf("CancelFileBatch() error = %v, want an *upstream.Error", err)
			}
			for _, keyStart := range keyStarts(tt.key) {
				if strings.Contains(statusErr.Body, keyStart) {
					t.Errorf("Body = %q, contains the start of the key %q", statusErr.Body, keyStart)
				}
				if strings.Contains(statusErr.Message, keyStart) {
					t.Errorf("Message = %q, contains the start of the key %q", statusErr.Message, keyStart)
				}
			}
		})
	}
}

// keyStarts returns the first 6 bytes of key as written, as Go's %q
// escapes it and as JSON escapes it.
func keyStarts(key string) []string {
	quoted := strconv.Quote(key)
	encoded, _ := json.Marshal(key)
	return []string{key[:6], quoted[1:7], string(encoded[1:7])}
}

func TestRedactKey(t *testing.T) {
	const key = `sk-a"b\c`
	tests := []struct {
		name string
		s    string
		key  string
		want string
	}{
		{name: "as written", s: "Bearer " + key + ".", key: key, want: "Bearer [redacted]."},
		{name: "quoted by %q", s: strconv.Quote("Bearer " + key), key: key, want: `"Bearer [redacted]"`},
		{name: "escaped by JSON", s: `{"k":"sk-a\"b\\c"}`, key: key, want: `{"k":"[redacted]"}`},
		{name: "absent", s: "no key here", key: key, want: "no key here"},
		{name: "empty key", s: "Bearer ", key: "", want: "Bearer "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := upstream.RedactKey(tt.s, tt.key); got != tt.want {
				t.Errorf("RedactKey(%q, %q) = %q, want %q", tt.s, tt.key, got, tt.want)
			}
		})
	}
}
