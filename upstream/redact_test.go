package upstream_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
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
		name string
		key  string
		body func(key string) string
		html bool
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
				if tt.html {
					w.Header().Set("Content-Type", "text/html")
					w.WriteHeader(http.StatusBadGateway)
					_, _ = w.Write([]byte(tt.body(tt.key)))
					return
				}
				writeJSON(w, http.StatusBadRequest, tt.body(tt.key))
			}))
			t.Cleanup(srv.Close)
			client := newClient(t, srv.URL+"/v1", upstream.Config{})

			_, _, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", upstream.Credentials{APIKey: tt.key})
			var statusErr *upstream.Error
			if !errors.As(err, &statusErr) {
				t.Fatalf("CancelFileBatch() error = %v, want an *upstream.Error", err)
			}
			keyStart := tt.key[:8]
			if strings.Contains(statusErr.Body, keyStart) {
				t.Errorf("Body = %q, contains the start of the key %q", statusErr.Body, keyStart)
			}
			if strings.Contains(statusErr.Message, keyStart) {
				t.Errorf("Message = %q, contains the start of the key %q", statusErr.Message, keyStart)
			}
		})
	}
}
