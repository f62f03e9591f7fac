package service_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"example.com/filebatch/fakeupstream"
	"example.com/filebatch/upstream"
)

func TestRetryAttempts(t *testing.T) {
	badRequest := fakeupstream.APIError(http.StatusBadRequest, fakeupstream.TypeInvalidRequest, "", "Temporary rejection.")
	tests := []struct {
		name         string
		faults       []fakeupstream.Fault
		wantCode     codes.Code
		wantAttempts int
	}{
		{
			name:         "503 503 200 succeeds on the third attempt",
			faults:       []fakeupstream.Fault{fakeupstream.ServerError(503), fakeupstream.ServerError(503)},
			wantCode:     codes.OK,
			wantAttempts: 3,
		},
		{
			name: "503 three times gives up after three attempts",
			faults: []fakeupstream.Fault{fakeupstream.ServerError(503), fakeupstream.ServerError(503),
				fakeupstream.ServerError(503)},
			wantCode:     codes.Unavailable,
			wantAttempts: 3,
		},
		{
			name:         "500 is retried",
			faults:       []fakeupstream.Fault{fakeupstream.ServerError(500)},
			wantCode:     codes.OK,
			wantAttempts: 2,
		},
		{
			name:         "429 rate limit is retried",
			faults:       []fakeupstream.Fault{fakeupstream.RateLimited(time.Millisecond)},
			wantCode:     codes.OK,
			wantAttempts: 2,
		},
		{
			name:         "429 insufficient quota is not retried",
			faults:       []fakeupstream.Fault{fakeupstream.QuotaExceeded()},
			wantCode:     codes.ResourceExhausted,
			wantAttempts: 1,
		},
		{
			name:         "x-should-retry false on 503 is not retried",
			faults:       []fakeupstream.Fault{fakeupstream.ServerError(503).WithHeader("X-Should-Retry", "false")},
			wantCode:     codes.Unavailable,
			wantAttempts: 1,
		},
		{
			name:         "x-should-retry true on 400 is retried",
			faults:       []fakeupstream.Fault{badRequest.WithHeader("X-Should-Retry", "true")},
			wantCode:     codes.OK,
			wantAttempts: 2,
		},
		{
			name:         "400 is not retried",
			faults:       []fakeupstream.Fault{badRequest},
			wantCode:     codes.InvalidArgument,
			wantAttempts: 1,
		},
		{
			name:         "connection reset before the response is retried",
			faults:       []fakeupstream.Fault{fakeupstream.ResetNoResponse()},
			wantCode:     codes.OK,
			wantAttempts: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, envOptions{retry: fastRetry(2)})
			env.upstream.Inject(tt.faults...)
			_, header, err := env.cancel(testContext(t), fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
			if code := status.Code(err); code != tt.wantCode {
				t.Errorf("code = %v (%v), want %v", code, err, tt.wantCode)
			}
			env.upstream.checkRequestCount(t, tt.wantAttempts)
			// The header metadata comes from the last answer.
			if ids := env.upstream.sentRequestIDs(); len(ids) > 0 {
				checkHeaderRequestID(t, header, ids[len(ids)-1])
			}
		})
	}
}

func TestRetryAfterBeyondMax(t *testing.T) {
	policy := fastRetry(2)
	policy.MaxRetryAfter = time.Second
	env := newEnv(t, envOptions{retry: policy})
	env.upstream.Inject(fakeupstream.RateLimited(30 * time.Second))

	_, header, err := env.cancel(testContext(t), fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	st, d := detailsOf(t, err)
	if st.Code() != codes.ResourceExhausted {
		t.Errorf("code = %v, want ResourceExhausted", st.Code())
	}
	env.upstream.checkRequestCount(t, 1)
	if got := d.retry.GetRetryDelay().AsDuration(); got != 30*time.Second {
		t.Errorf("RetryInfo.RetryDelay = %v, want the upstream's 30s", got)
	}
	if d.info.GetReason() != fakeupstream.CodeRateLimitExceeded {
		t.Errorf("ErrorInfo.Reason = %q, want %q", d.info.GetReason(), fakeupstream.CodeRateLimitExceeded)
	}
	if got := d.info.GetMetadata()["http_status"]; got != "429" {
		t.Errorf("ErrorInfo.Metadata[http_status] = %q, want 429", got)
	}
	// The upstream's retry headers reach the caller too.
	if got := header.Get("retry-after-ms"); len(got) != 1 || got[0] != "30000" {
		t.Errorf("response header retry-after-ms = %q, want [30000]", got)
	}
	if got := header.Get("retry-after"); len(got) != 1 || got[0] != "30" {
		t.Errorf("response header retry-after = %q, want [30]", got)
	}
}

// TestRetryStopsAtCallerDeadline shows that a retry whose backoff would
// outlast the caller's deadline is not waited for: the call ends with the
// last upstream error, not DeadlineExceeded, and RetryInfo carries the
// backoff that was skipped.
func TestRetryStopsAtCallerDeadline(t *testing.T) {
	const backoff = time.Minute
	tests := []struct {
		name     string
		fault    fakeupstream.Fault
		wantCode codes.Code
	}{
		{name: "HTTP 503", fault: fakeupstream.ServerError(503), wantCode: codes.Unavailable},
		{name: "connection reset", fault: fakeupstream.ResetNoResponse(), wantCode: codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			policy := upstream.RetryPolicy{MaxRetries: 2, InitialBackoff: backoff, MaxBackoff: backoff, MaxRetryAfter: backoff}
			env := newEnv(t, envOptions{retry: policy})
			env.upstream.Inject(tt.fault)

			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			_, _, err := env.cancel(ctx, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
			st, d := detailsOf(t, err)
			if st.Code() != tt.wantCode {
				t.Errorf("code = %v (%v), want %v", st.Code(), err, tt.wantCode)
			}
			env.upstream.checkRequestCount(t, 1)
			// The backoff is jittered by up to a quarter.
			delay := d.retry.GetRetryDelay().AsDuration()
			if delay < backoff*3/4 || delay > backoff {
				t.Errorf("RetryInfo.RetryDelay = %v, want the skipped backoff, between %v and %v", delay, backoff*3/4, backoff)
			}
		})
	}
}
