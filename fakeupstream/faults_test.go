package fakeupstream_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"example.com/filebatch/fakeupstream"
)

func TestFaultResponses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fault     fakeupstream.Fault
		status    int
		header    map[string]string // expected values; "" means absent
		wantType  string            // when set, the body is an error envelope of this type
		wantCode  string            // the envelope's code; "" means null
		checkBody func(t *testing.T, body []byte)
	}{
		{
			name:     "rate limited",
			fault:    fakeupstream.RateLimited(1500 * time.Millisecond),
			status:   429,
			header:   map[string]string{"Retry-After": "2", "Retry-After-Ms": "1500", "Content-Type": "application/json"},
			wantType: "requests",
			wantCode: "rate_limit_exceeded",
		},
		{
			name:     "quota exceeded",
			fault:    fakeupstream.QuotaExceeded(),
			status:   429,
			wantType: "insufficient_quota",
			wantCode: "insufficient_quota",
		},
		{
			name:     "server error with headers",
			fault:    fakeupstream.ServerError(503).WithHeader("x-should-retry", "false"),
			status:   503,
			header:   map[string]string{"X-Should-Retry": "false"},
			wantType: "server_error",
		},
		{
			name:     "custom API error",
			fault:    fakeupstream.APIError(409, "invalid_request_error", "conflict", "Busy."),
			status:   409,
			wantType: "invalid_request_error",
			wantCode: "conflict",
		},
		{
			name:   "HTML page",
			fault:  fakeupstream.HTMLPage(502),
			status: 502,
			header: map[string]string{"Content-Type": "text/html", "X-Request-Id": "", "Openai-Processing-Ms": ""},
			checkBody: func(t *testing.T, body []byte) {
				if !bytes.Contains(body, []byte("<html>")) || !bytes.Contains(body, []byte("502 Bad Gateway")) {
					t.Errorf("body = %q, want an HTML page naming 502 Bad Gateway", body)
				}
			},
		},
		{
			name:   "malformed JSON",
			fault:  fakeupstream.MalformedJSON(),
			status: 200,
			header: map[string]string{"Content-Type": "application/json"},
			checkBody: func(t *testing.T, body []byte) {
				if len(body) == 0 || json.Valid(body) {
					t.Errorf("body = %q, want broken JSON", body)
				}
			},
		},
		{
			name:   "empty body",
			fault:  fakeupstream.EmptyBody(),
			status: 200,
			header: map[string]string{"Content-Type": "application/json", "Content-Length": "0"},
			checkBody: func(t *testing.T, body []byte) {
				if len(body) != 0 {
					t.Errorf("body = %q, want none", body)
				}
			},
		},
		{
			name:      "object that is not a batch",
			fault:     fakeupstream.JSON(200, `{"foo":1}`),
			status:    200,
			checkBody: wantBody(`{"foo":1}`),
		},
		{
			name:      "array",
			fault:     fakeupstream.JSON(200, `[]`),
			status:    200,
			checkBody: wantBody(`[]`),
		},
		{
			name:     "error object with 200",
			fault:    fakeupstream.JSON(200, `{"error":{"message":"m","type":"server_error","param":null,"code":null}}`),
			status:   200,
			wantType: "server_error",
		},
		{
			name:   "wrong content type",
			fault:  fakeupstream.ContentType("text/plain"),
			status: 200,
			header: map[string]string{"Content-Type": "text/plain"},
			checkBody: func(t *testing.T, body []byte) {
				if b := decodeBatch(t, body); b.Status != "cancelled" {
					t.Errorf("status = %q, want cancelled from the normal response", b.Status)
				}
			},
		},
		{
			name:   "oversized",
			fault:  fakeupstream.Oversized(2 << 20),
			status: 200,
			checkBody: func(t *testing.T, body []byte) {
				if len(body) != 2<<20 {
					t.Errorf("body has %d bytes, want %d", len(body), 2<<20)
				}
				if b := decodeBatch(t, body); b.ID != fakeupstream.BatchInProgress {
					t.Errorf("id = %q, want %q", b.ID, fakeupstream.BatchInProgress)
				}
			},
		},
		{
			name:      "delayed normal response",
			fault:     fakeupstream.Delayed(time.Millisecond),
			status:    200,
			checkBody: func(t *testing.T, body []byte) { decodeBatch(t, body) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := fakeupstream.NewTest(t, fakeupstream.Options{})
			s.Inject(tt.fault)
			resp, body := cancel(t, newClient(t), s, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			for name, want := range tt.header {
				if got := resp.Header.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if tt.wantType != "" {
				checkEnvelope(t, body, tt.wantType, tt.wantCode)
			}
			if tt.checkBody != nil {
				tt.checkBody(t, body)
			}
		})
	}
}

func wantBody(want string) func(t *testing.T, body []byte) {
	return func(t *testing.T, body []byte) {
		if string(body) != want {
			t.Errorf("body = %q, want %q", body, want)
		}
	}
}

func TestFaultStandardHeaders(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{})
	s.Inject(fakeupstream.RateLimited(time.Second).WithHeader("X-Request-Id", "req_custom"), fakeupstream.QuotaExceeded())
	client := newClient(t)

	resp, _ := cancel(t, client, s, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	if got := resp.Header.Get("X-Request-Id"); got != "req_custom" {
		t.Errorf("overridden x-request-id = %q, want req_custom", got)
	}
	resp, _ = cancel(t, client, s, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	if got := resp.Header.Get("X-Request-Id"); !requestIDPattern.MatchString(got) {
		t.Errorf("x-request-id = %q, want a generated one", got)
	}
	if got := resp.Header.Get("X-Ratelimit-Limit-Requests"); got == "" {
		t.Error("x-ratelimit-limit-requests is missing from a fault response")
	}
}

func TestFaultTruncated(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{})
	s.Inject(fakeupstream.Truncated())
	target := s.URL() + cancelPath(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	resp, body, err := trySend(t.Context(), newClient(t), "POST", target, fakeupstream.DefaultAPIKey)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("error = %v, want %v", err, io.ErrUnexpectedEOF)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}
	if len(body) == 0 || json.Valid(body) {
		t.Errorf("body = %q, want the start of a batch", body)
	}
}

func TestFaultReset(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fault fakeupstream.Fault
	}{
		{"mid body", fakeupstream.ResetMidBody()},
		{"no response", fakeupstream.ResetNoResponse()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := fakeupstream.NewTest(t, fakeupstream.Options{})
			s.Inject(tt.fault)
			target := s.URL() + cancelPath(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
			_, _, err := trySend(t.Context(), newClient(t), "POST", target, fakeupstream.DefaultAPIKey)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("error = %v, want a connection reset", err)
			}
		})
	}
}

func TestFaultHangObservesCancel(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{})
	s.Inject(fakeupstream.Hang())
	ctx, stop := context.WithCancel(t.Context())
	errc := sendAsync(ctx, newClient(t), s.URL()+cancelPath(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress))

	reqs := waitRequests(t, s, 1)
	stop()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("client error = %v, want %v", err, context.Canceled)
	}
	waitDone(t, reqs[0])
	if !reqs[0].Canceled() {
		t.Error("Canceled() = false after the client gave up, want true")
	}
	if b, _ := s.Batch(fakeupstream.BatchInProgress); b.Status != "in_progress" {
		t.Errorf("status = %q, want in_progress: a hung request must not change state", b.Status)
	}
}

func TestDelayObservesCancel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  fakeupstream.Options
		fault *fakeupstream.Fault
	}{
		{"options delay", fakeupstream.Options{Delay: time.Hour}, nil},
		{"fault delay", fakeupstream.Options{}, ptr(fakeupstream.ServerError(500).WithDelay(time.Hour))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := fakeupstream.NewTest(t, tt.opts)
			if tt.fault != nil {
				s.Inject(*tt.fault)
			}
			ctx, stop := context.WithCancel(t.Context())
			errc := sendAsync(ctx, newClient(t), s.URL()+cancelPath(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress))
			reqs := waitRequests(t, s, 1)
			stop()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Errorf("client error = %v, want %v", err, context.Canceled)
			}
			waitDone(t, reqs[0])
			if !reqs[0].Canceled() {
				t.Error("Canceled() = false, want true")
			}
		})
	}
}

func TestCloseEndsHang(t *testing.T) {
	t.Parallel()
	s := fakeupstream.New(fakeupstream.Options{})
	if err := s.Start(""); err != nil {
		t.Fatal(err)
	}
	s.Inject(fakeupstream.Hang())
	errc := sendAsync(t.Context(), newClient(t), s.URL()+cancelPath(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress))
	reqs := waitRequests(t, s, 1)

	if err := s.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	select {
	case <-reqs[0].Done():
	default:
		t.Error("request still running after Close returned")
	}
	if err := <-errc; err == nil {
		t.Error("client error = nil after Close, want a failed exchange")
	}
}

func TestFaultQueueOrder(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{})
	s.Inject(fakeupstream.ServerError(500), fakeupstream.ServerError(502))
	s.InjectN(2, fakeupstream.ServerError(503))
	client := newClient(t)
	for i, want := range []int{500, 502, 503, 503, 200, 400} {
		resp, _ := cancel(t, client, s, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
		if resp.StatusCode != want {
			t.Errorf("request %d: status = %d, want %d", i+1, resp.StatusCode, want)
		}
	}
}

func TestInjectAlways(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{})
	s.Inject(fakeupstream.ServerError(502))
	s.InjectAlways(fakeupstream.ServerError(503))
	client := newClient(t)
	for i, want := range []int{502, 503, 503, 503} {
		resp, _ := cancel(t, client, s, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
		if resp.StatusCode != want {
			t.Errorf("request %d: status = %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	s.ClearFaults()
	if resp, _ := cancel(t, client, s, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress); resp.StatusCode != 200 {
		t.Errorf("after ClearFaults: status = %d, want 200", resp.StatusCode)
	}
}

func TestFaultBeforeAuth(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{})
	s.Inject(fakeupstream.ServerError(500))
	target := s.URL() + cancelPath(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	resp, _ := send(t, newClient(t), "POST", target, "")
	if resp.StatusCode != 500 {
		t.Errorf("status = %d, want the fault's 500 before the key check", resp.StatusCode)
	}
}

// sendAsync sends a cancel request in the background and delivers the
// error of the exchange.
func sendAsync(ctx context.Context, client *http.Client, target string) <-chan error {
	errc := make(chan error, 1)
	go func() {
		_, _, err := trySend(ctx, client, "POST", target, fakeupstream.DefaultAPIKey)
		errc <- err
	}()
	return errc
}

func ptr[T any](v T) *T { return &v }
