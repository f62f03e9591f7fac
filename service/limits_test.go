package service_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"example.com/filebatch/fakeupstream"
	"example.com/filebatch/service"
)

func TestResponseOverCap(t *testing.T) {
	const maxBytes = 4 << 10
	env := newEnv(t, envOptions{maxResponseBytes: maxBytes, retry: fastRetry(2)})
	env.upstream.Inject(fakeupstream.Oversized(2 * maxBytes))

	_, header, err := env.cancel(testContext(t), fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	st, d := detailsOf(t, err)
	if st.Code() != codes.Unavailable {
		t.Errorf("code = %v, want Unavailable", st.Code())
	}
	requestID := env.upstream.lastRequestID(t)
	for _, want := range []string{"HTTP 200", requestID, "4096-byte limit"} {
		if !strings.Contains(st.Message(), want) {
			t.Errorf("message %q does not contain %q", st.Message(), want)
		}
	}
	if d.info.GetReason() != service.ReasonInvalidResponse {
		t.Errorf("ErrorInfo.Reason = %q, want %q", d.info.GetReason(), service.ReasonInvalidResponse)
	}
	if got := d.info.GetMetadata()["upstream_status"]; got != "200" {
		t.Errorf("ErrorInfo.Metadata[upstream_status] = %q, want 200", got)
	}
	if d.request.GetRequestId() != requestID {
		t.Errorf("RequestInfo.RequestId = %q, want %q", d.request.GetRequestId(), requestID)
	}
	checkHeaderRequestID(t, header, requestID)
	// An invalid 2xx answer would be invalid again, so it is not retried.
	env.upstream.checkRequestCount(t, 1)
	env.checkCancelSucceeds(t)
}

func TestRequestMessageOverCap(t *testing.T) {
	env := newEnv(t, envOptions{serverOptions: []grpc.ServerOption{grpc.MaxRecvMsgSize(64 << 10)}})
	_, _, err := env.cancel(testContext(t), fakeupstream.VectorStoreID, strings.Repeat("b", 100<<10))
	if code := status.Code(err); code != codes.ResourceExhausted {
		t.Errorf("code = %v (%v), want ResourceExhausted", code, err)
	}
	env.upstream.checkRequestCount(t, 0)
	env.checkCancelSucceeds(t)
}

// startHeldCall starts a call whose upstream request hangs, waits until
// the upstream has it, and returns the channel of its result and the
// function that cancels it.
func startHeldCall(t *testing.T, env *testEnv) (<-chan error, context.CancelFunc) {
	t.Helper()
	env.upstream.Inject(fakeupstream.Hang())
	ctx, cancel := context.WithCancel(testContext(t))
	errc := make(chan error, 1)
	go func() {
		_, _, err := env.cancel(ctx, fakeupstream.OtherVectorStoreID, fakeupstream.OtherBatchInProgress)
		errc <- err
	}()
	waitUpstreamRequest(t, env.upstream)
	return errc, cancel
}

func TestConcurrencyLimitRejects(t *testing.T) {
	const queueTimeout = 50 * time.Millisecond
	env := newEnv(t, envOptions{config: service.Config{MaxConcurrent: 1, QueueTimeout: queueTimeout}})
	held, cancelHeld := startHeldCall(t, env)

	_, _, err := env.cancel(testContext(t), fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	st, d := detailsOf(t, err)
	if st.Code() != codes.ResourceExhausted {
		t.Errorf("code = %v (%v), want ResourceExhausted", st.Code(), err)
	}
	if d.info.GetReason() != service.ReasonConcurrencyLimit || d.info.GetDomain() != service.Domain {
		t.Errorf("ErrorInfo = %v, want reason %q in domain %q", d.info, service.ReasonConcurrencyLimit, service.Domain)
	}
	if got := d.info.GetMetadata()["http_status"]; got != "503" {
		t.Errorf("ErrorInfo.Metadata[http_status] = %q, want 503", got)
	}
	if d.retry == nil {
		t.Error("no RetryInfo, want a retry delay")
	}
	env.upstream.checkRequestCount(t, 1)

	cancelHeld()
	if code := status.Code(<-held); code != codes.Canceled {
		t.Errorf("held call code = %v, want Canceled", code)
	}
	// The released slot serves the next call.
	env.checkCancelSucceeds(t)
}

func TestConcurrencyLimitQueues(t *testing.T) {
	env := newEnv(t, envOptions{config: service.Config{MaxConcurrent: 1, QueueTimeout: 20 * time.Second}})
	// The first call holds the only slot until its delayed answer arrives.
	env.upstream.Inject(fakeupstream.Delayed(300 * time.Millisecond))
	ctx := testContext(t)
	first := make(chan error, 1)
	go func() {
		_, _, err := env.cancel(ctx, fakeupstream.OtherVectorStoreID, fakeupstream.OtherBatchInProgress)
		first <- err
	}()
	waitUpstreamRequest(t, env.upstream)

	if _, _, err := env.cancel(ctx, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress); err != nil {
		t.Errorf("queued call: %v, want success", err)
	}
	if err := <-first; err != nil {
		t.Errorf("first call: %v, want success", err)
	}
	env.upstream.checkRequestCount(t, 2)
	if got := env.upstream.maxConcurrentRequests(); got != 1 {
		t.Errorf("upstream handled %d requests at once, want 1", got)
	}
}
