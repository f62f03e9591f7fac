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
