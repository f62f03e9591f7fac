package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"example.com/filebatch/upstream"
)

// fastRetry returns a policy with millisecond waits, so that tests of
// retries run quickly.
func fastRetry(maxRetries int) upstream.RetryPolicy {
	return upstream.RetryPolicy{
		MaxRetries:     maxRetries,
		InitialBackoff: time.Millisecond,
		MaxBackoff:     2 * time.Millisecond,
		MaxRetryAfter:  time.Second,
	}
}

// eventRecorder collects the retry events of a client.
type eventRecorder struct {
	mu     sync.Mutex
	events []upstream.RetryEvent
}

func (r *eventRecorder) record(e upstream.RetryEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *eventRecorder) get() []upstream.RetryEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]upstream.RetryEvent(nil), r.events...)
}

func TestCancelFileBatchRetriesStatus(t *testing.T) {
	const envelope = `{"error":{"message":"m","type":"t","param":null,"code":null}}`
	tests := []struct {
		name         string
		status       int
		header       map[string]string
		body         string
		wantAttempts int
	}{
		{name: "408", status: 408, body: envelope, wantAttempts: 3},
		{name: "409", status: 409, body: envelope, wantAttempts: 3},
		{name: "429", status: 429, body: envelope, wantAttempts: 3},
		{name: "500", status: 500, body: envelope, wantAttempts: 3},
		{name: "502", status: 502, body: "<html>bad gateway</html>", wantAttempts: 3},
		{name: "503", status: 503, body: envelope, wantAttempts: 3},
		{name: "504", status: 504, body: "", wantAttempts: 3},
		{name: "599", status: 599, body: envelope, wantAttempts: 3},
		{name: "400", status: 400, body: envelope, wantAttempts: 1},
		{name: "401", status: 401, body: envelope, wantAttempts: 1},
		{name: "403", status: 403, body: envelope, wantAttempts: 1},
		{name: "404", status: 404, body: envelope, wantAttempts: 1},
		{name: "422", status: 422, body: envelope, wantAttempts: 1},
		{name: "400 with x-should-retry true", status: 400, header: map[string]string{"X-Should-Retry": "true"}, body: envelope, wantAttempts: 3},
		{name: "503 with x-should-retry false", status: 503, header: map[string]string{"X-Should-Retry": "false"}, body: envelope, wantAttempts: 1},
		{name: "503 with unknown x-should-retry", status: 503, header: map[string]string{"X-Should-Retry": "maybe"}, body: envelope, wantAttempts: 3},
		{
			name:         "429 insufficient_quota",
			status:       429,
			body:         `{"error":{"message":"quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`,
			wantAttempts: 1,
		},
		{
			name:         "429 rate_limit_exceeded",
			status:       429,
			body:         `{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}`,
			wantAttempts: 3,
		},
		{
			name:         "429 insufficient_quota with x-should-retry true",
			status:       429,
			header:       map[string]string{"X-Should-Retry": "true"},
			body:         `{"error":{"message":"quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`,
			wantAttempts: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var attempts atomic.Int32
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				attempts.Add(1)
				for name, value := range tt.header {
					w.Header().Set(name, value)
				}
				writeJSON(w, tt.status, tt.body)
			})
			client := newClient(t, srv.URL+"/v1", upstream.Config{Retry: fastRetry(2)})

			_, meta, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds)
			var statusErr *upstream.Error
			if !errors.As(err, &statusErr) {
				t.Fatalf("CancelFileBatch() error = %v, want an *upstream.Error", err)
			}
			if statusErr.StatusCode != tt.status {
				t.Errorf("StatusCode = %d, want %d", statusErr.StatusCode, tt.status)
			}
			if got := int(attempts.Load()); got != tt.wantAttempts {
				t.Errorf("server received %d requests, want %d", got, tt.wantAttempts)
			}
			if meta.Attempts != tt.wantAttempts {
				t.Errorf("Meta.Attempts = %d, want %d", meta.Attempts, tt.wantAttempts)
			}
			if statusErr.Meta.Attempts != tt.wantAttempts {
				t.Errorf("Error.Meta.Attempts = %d, want %d", statusErr.Meta.Attempts, tt.wantAttempts)
			}
		})
	}
}

func TestCancelFileBatchMaxRetries(t *testing.T) {
	for _, maxRetries := range []int{-1, 0, 1, 2, 5} {
		t.Run(strconv.Itoa(maxRetries), func(t *testing.T) {
			var attempts atomic.Int32
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				attempts.Add(1)
				writeJSON(w, http.StatusServiceUnavailable, `{"error":{"message":"busy","type":"server_error"}}`)
			})
			var recorder eventRecorder
			client := newClient(t, srv.URL+"/v1", upstream.Config{Retry: fastRetry(maxRetries), OnRetry: recorder.record})

			_, meta, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds)
			if err == nil {
				t.Fatal("CancelFileBatch() succeeded, want an error")
			}
			want := max(maxRetries, 0) + 1
			if got := int(attempts.Load()); got != want {
				t.Errorf("server received %d requests, want %d", got, want)
			}
			if meta.Attempts != want {
				t.Errorf("Meta.Attempts = %d, want %d", meta.Attempts, want)
			}
			if got := len(recorder.get()); got != want-1 {
				t.Errorf("OnRetry called %d times, want %d", got, want-1)
			}
		})
	}
}

func TestCancelFileBatchRetrySucceeds(t *testing.T) {
	var attempts atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		n := attempts.Add(1)
		w.Header().Set("X-Request-Id", fmt.Sprintf("req_%d", n))
		if n < 3 {
			writeJSON(w, http.StatusInternalServerError, `{"error":{"message":"oops","type":"server_error"}}`)
			return
		}
		writeJSON(w, http.StatusOK, batchJSON)
	})
	client := newClient(t, srv.URL+"/v1", upstream.Config{Retry: fastRetry(2)})

	batch, meta, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds)
	if err != nil {
		t.Fatalf("CancelFileBatch() failed: %v", err)
	}
	if *batch != wantBatch {
		t.Errorf("CancelFileBatch() = %+v, want %+v", *batch, wantBatch)
	}
	if meta.Attempts != 3 {
		t.Errorf("Meta.Attempts = %d, want 3", meta.Attempts)
	}
	if meta.RequestID != "req_3" {
		t.Errorf("Meta.RequestID = %q, want the last answer's %q", meta.RequestID, "req_3")
	}
}

func TestCancelFileBatchOnRetry(t *testing.T) {
	tests := []struct {
		name       string
		header     map[string]string
		wantDelays []time.Duration // nil: any backoff wait within the policy
	}{
		{
			name:       "retry-after-ms",
			header:     map[string]string{"Retry-After-Ms": "1"},
			wantDelays: []time.Duration{time.Millisecond, time.Millisecond},
		},
		{
			name:       "fractional retry-after-ms",
			header:     map[string]string{"Retry-After-Ms": "0.5"},
			wantDelays: []time.Duration{500 * time.Microsecond, 500 * time.Microsecond},
		},
		{
			name:       "retry-after-ms before Retry-After",
			header:     map[string]string{"Retry-After-Ms": "2", "Retry-After": "1"},
			wantDelays: []time.Duration{2 * time.Millisecond, 2 * time.Millisecond},
		},
		{
			name:       "fractional Retry-After seconds",
			header:     map[string]string{"Retry-After": "0.003"},
			wantDelays: []time.Duration{3 * time.Millisecond, 3 * time.Millisecond},
		},
		{
			name:   "backoff",
			header: nil,
		},
		{
			name:   "Retry-After zero means backoff",
			header: map[string]string{"Retry-After": "0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var attempts atomic.Int32
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				n := attempts.Add(1)
				w.Header().Set("X-Request-Id", fmt.Sprintf("req_%d", n))
				for name, value := range tt.header {
					w.Header().Set(name, value)
				}
				writeJSON(w, http.StatusTooManyRequests, `{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}`)
			})
			var recorder eventRecorder
			policy := fastRetry(2)
			client := newClient(t, srv.URL+"/v1", upstream.Config{Retry: policy, OnRetry: recorder.record})

			if _, _, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds); err == nil {
				t.Fatal("CancelFileBatch() succeeded, want an error")
			}
			events := recorder.get()
			if len(events) != 2 {
				t.Fatalf("OnRetry events = %+v, want 2", events)
			}
			for i, e := range events {
				if e.Attempt != i+2 {
					t.Errorf("event %d Attempt = %d, want %d", i, e.Attempt, i+2)
				}
				if e.Reason != "HTTP 429" {
					t.Errorf("event %d Reason = %q, want %q", i, e.Reason, "HTTP 429")
				}
				if want := fmt.Sprintf("req_%d", i+1); e.RequestID != want {
					t.Errorf("event %d RequestID = %q, want %q", i, e.RequestID, want)
				}
				switch {
				case tt.wantDelays != nil && e.Delay != tt.wantDelays[i]:
					t.Errorf("event %d Delay = %v, want %v", i, e.Delay, tt.wantDelays[i])
				case tt.wantDelays == nil && (e.Delay <= 0 || e.Delay > policy.MaxBackoff):
					t.Errorf("event %d Delay = %v, want a backoff in (0, %v]", i, e.Delay, policy.MaxBackoff)
				}
			}
		})
	}
}

func TestCancelFileBatchRetryAfterTooLong(t *testing.T) {
	tests := []struct {
		name   string
		header string
		value  string
		want   time.Duration
	}{
		{name: "Retry-After seconds", header: "Retry-After", value: "120", want: 120 * time.Second},
		{name: "retry-after-ms", header: "Retry-After-Ms", value: "60001", want: 60001 * time.Millisecond},
		{name: "huge Retry-After", header: "Retry-After", value: "1e300", want: time.Duration(1<<63 - 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var attempts atomic.Int32
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				attempts.Add(1)
				w.Header().Set(tt.header, tt.value)
				writeJSON(w, http.StatusServiceUnavailable, `{"error":{"message":"busy","type":"server_error"}}`)
			})
			policy := fastRetry(2)
			policy.MaxRetryAfter = time.Minute
			var recorder eventRecorder
			client := newClient(t, srv.URL+"/v1", upstream.Config{Retry: policy, OnRetry: recorder.record})

			_, meta, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds)
			var statusErr *upstream.Error
			if !errors.As(err, &statusErr) {
				t.Fatalf("CancelFileBatch() error = %v, want an *upstream.Error", err)
			}
			if statusErr.RetryAfter != tt.want {
				t.Errorf("RetryAfter = %v, want %v", statusErr.RetryAfter, tt.want)
			}
			if got := attempts.Load(); got != 1 {
				t.Errorf("server received %d requests, want 1", got)
			}
			if meta.Attempts != 1 {
				t.Errorf("Meta.Attempts = %d, want 1", meta.Attempts)
			}
			if events := recorder.get(); len(events) != 0 {
				t.Errorf("OnRetry events = %+v, want none", events)
			}
		})
	}
}

func TestCancelFileBatchRetryPastDeadline(t *testing.T) {
	t.Run("upstream wait", func(t *testing.T) {
		var attempts atomic.Int32
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			attempts.Add(1)
			w.Header().Set("Retry-After", "600")
			writeJSON(w, http.StatusTooManyRequests, `{"error":{"message":"slow down","type":"requests"}}`)
		})
		policy := fastRetry(2)
		policy.MaxRetryAfter = time.Hour
		client := newClient(t, srv.URL+"/v1", upstream.Config{Retry: policy})
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()

		_, meta, err := client.CancelFileBatch(ctx, "vs_1", "vsfb_1", testCreds)
		var statusErr *upstream.Error
		if !errors.As(err, &statusErr) {
			t.Fatalf("CancelFileBatch() error = %v, want the last *upstream.Error", err)
		}
		if statusErr.StatusCode != http.StatusTooManyRequests {
			t.Errorf("StatusCode = %d, want 429", statusErr.StatusCode)
		}
		if statusErr.RetryAfter != 600*time.Second {
			t.Errorf("RetryAfter = %v, want 10m0s", statusErr.RetryAfter)
		}
		if got := attempts.Load(); got != 1 {
			t.Errorf("server received %d requests, want 1", got)
		}
		if meta.Attempts != 1 {
			t.Errorf("Meta.Attempts = %d, want 1", meta.Attempts)
		}
	})

	t.Run("backoff", func(t *testing.T) {
		var attempts atomic.Int32
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			attempts.Add(1)
			writeJSON(w, http.StatusBadGateway, `{"error":{"message":"bad gateway","type":"server_error"}}`)
		})
		policy := upstream.RetryPolicy{MaxRetries: 2, InitialBackoff: time.Hour, MaxBackoff: time.Hour}
		client := newClient(t, srv.URL+"/v1", upstream.Config{Retry: policy})
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()

		_, _, err := client.CancelFileBatch(ctx, "vs_1", "vsfb_1", testCreds)
		var statusErr *upstream.Error
		if !errors.As(err, &statusErr) {
			t.Fatalf("CancelFileBatch() error = %v, want the last *upstream.Error", err)
		}
		// The backoff is jittered down by at most a quarter.
		if statusErr.RetryAfter < 45*time.Minute || statusErr.RetryAfter > time.Hour {
			t.Errorf("RetryAfter = %v, want the backoff, in [45m, 1h]", statusErr.RetryAfter)
		}
		if got := attempts.Load(); got != 1 {
			t.Errorf("server received %d requests, want 1", got)
		}
	})

	t.Run("connection refused", func(t *testing.T) {
		srv := newServer(t, nil)
		baseURL := srv.URL + "/v1"
		srv.Close()
		policy := upstream.RetryPolicy{MaxRetries: 2, InitialBackoff: time.Hour, MaxBackoff: time.Hour}
		client := newClient(t, baseURL, upstream.Config{Retry: policy})
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()

		_, meta, err := client.CancelFileBatch(ctx, "vs_1", "vsfb_1", testCreds)
		var connErr *upstream.ConnError
		if !errors.As(err, &connErr) {
			t.Fatalf("CancelFileBatch() error = %v, want an *upstream.ConnError", err)
		}
		if connErr.RetryAfter < 45*time.Minute || connErr.RetryAfter > time.Hour {
			t.Errorf("RetryAfter = %v, want the backoff, in [45m, 1h]", connErr.RetryAfter)
		}
		if meta.Attempts != 1 {
			t.Errorf("Meta.Attempts = %d, want 1", meta.Attempts)
		}
	})
}

func TestCancelFileBatchRetriesConnectionErrors(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		srv := newServer(t, nil)
		baseURL := srv.URL + "/v1"
		srv.Close() // later dials to the port are refused
		var recorder eventRecorder
		client := newClient(t, baseURL, upstream.Config{Retry: fastRetry(2), OnRetry: recorder.record})

		_, meta, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds)
		var connErr *upstream.ConnError
		if !errors.As(err, &connErr) {
			t.Fatalf("CancelFileBatch() error = %v, want an *upstream.ConnError", err)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("CancelFileBatch() error = %v, want %v", err, syscall.ECONNREFUSED)
		}
		if connErr.RetryAfter != 0 {
			t.Errorf("RetryAfter = %v, want 0 once the retries ran out", connErr.RetryAfter)
		}
		if meta.Attempts != 3 {
			t.Errorf("Meta.Attempts = %d, want 3", meta.Attempts)
		}
		events := recorder.get()
		if len(events) != 2 {
			t.Fatalf("OnRetry events = %+v, want 2", events)
		}
		for i, e := range events {
			if e.Attempt != i+2 {
				t.Errorf("event %d Attempt = %d, want %d", i, e.Attempt, i+2)
			}
			if e.Reason != "connection failed" {
				t.Errorf("event %d Reason = %q, want %q", i, e.Reason, "connection failed")
			}
			if e.RequestID != "" {
				t.Errorf("event %d RequestID = %q, want none", i, e.RequestID)
			}
		}
	})

	t.Run("connection closed before answer", func(t *testing.T) {
		var attempts atomic.Int32
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			attempts.Add(1)
			if conn := hijack(t, w); conn != nil {
				conn.Close()
			}
		})
		client := newClient(t, srv.URL+"/v1", upstream.Config{Retry: fastRetry(2)})

		_, meta, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds)
		var connErr *upstream.ConnError
		if !errors.As(err, &connErr) {
			t.Fatalf("CancelFileBatch() error = %v, want an *upstream.ConnError", err)
		}
		if got := attempts.Load(); got != 3 {
			t.Errorf("server received %d requests, want 3", got)
		}
		if meta.Attempts != 3 {
			t.Errorf("Meta.Attempts = %d, want 3", meta.Attempts)
		}
	})

	t.Run("recovers after a closed connection", func(t *testing.T) {
		var attempts atomic.Int32
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			if attempts.Add(1) == 1 {
				if conn := hijack(t, w); conn != nil {
					conn.Close()
				}
				return
			}
			writeJSON(w, http.StatusOK, batchJSON)
		})
		client := newClient(t, srv.URL+"/v1", upstream.Config{Retry: fastRetry(2)})

		batch, meta, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds)
		if err != nil {
			t.Fatalf("CancelFileBatch() failed: %v", err)
		}
		if *batch != wantBatch {
			t.Errorf("CancelFileBatch() = %+v, want %+v", *batch, wantBatch)
		}
		if meta.Attempts != 2 {
			t.Errorf("Meta.Attempts = %d, want 2", meta.Attempts)
		}
	})
}

func TestCancelFileBatchCanceledDuringRetryWait(t *testing.T) {
	var attempts atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		w.Header().Set("Retry-After", "3600")
		writeJSON(w, http.StatusServiceUnavailable, `{"error":{"message":"busy","type":"server_error"}}`)
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	policy := fastRetry(2)
	policy.MaxRetryAfter = 2 * time.Hour
	// OnRetry runs just before the hour-long wait starts.
	client := newClient(t, srv.URL+"/v1", upstream.Config{
		Retry:   policy,
		OnRetry: func(upstream.RetryEvent) { cancel() },
	})

	errs := make(chan error, 1)
	go func() {
		_, _, err := client.CancelFileBatch(ctx, "vs_1", "vsfb_1", testCreds)
		errs <- err
	}()
	select {
	case err := <-errs:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("CancelFileBatch() error = %v, want %v", err, context.Canceled)
		}
	case <-time.After(time.Minute):
		t.Fatal("CancelFileBatch() still waiting a minute after its context was canceled")
	}
	if got := attempts.Load(); got != 1 {
		t.Errorf("server received %d requests, want 1", got)
	}
}

func TestCancelFileBatchContextEndsInFlight(t *testing.T) {
	tests := []struct {
		name    string
		wantErr error
	}{
		{name: "canceled", wantErr: context.Canceled},
		{name: "deadline exceeded", wantErr: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arrived := make(chan struct{}, 1)
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				arrived <- struct{}{}
				<-r.Context().Done() // respond only after the client gives up
			})
			client := newClient(t, srv.URL+"/v1", upstream.Config{Retry: fastRetry(2)})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.wantErr == context.DeadlineExceeded {
				ctx, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
				defer cancel()
			}

			errs := make(chan error, 1)
			go func() {
				_, _, err := client.CancelFileBatch(ctx, "vs_1", "vsfb_1", testCreds)
				errs <- err
			}()
			<-arrived
			if tt.wantErr == context.Canceled {
				cancel()
			}
			err := <-errs
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("CancelFileBatch() error = %v, want %v", err, tt.wantErr)
			}
			var connErr *upstream.ConnError
			if errors.As(err, &connErr) {
				t.Errorf("CancelFileBatch() error = %v is a *ConnError, want the context's error as it is", err)
			}
		})
	}
}
