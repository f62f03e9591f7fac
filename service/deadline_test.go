package service_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"example.com/filebatch/fakeupstream"
	"example.com/filebatch/service"
)

// waitUpstreamRequest waits until the fake upstream has received its
// first request and returns it.
func waitUpstreamRequest(t *testing.T, u *testUpstream) fakeupstream.Request {
	t.Helper()
	requests, err := u.WaitRequests(testContext(t), 1)
	if err != nil {
		t.Fatalf("wait for the upstream request: %v", err)
	}
	return requests[0]
}

// checkUpstreamCanceled waits until the upstream's handler for r has
// returned and fails t unless r ended because the service gave up on it.
func checkUpstreamCanceled(t *testing.T, r fakeupstream.Request) {
	t.Helper()
	select {
	case <-r.Done():
	case <-testContext(t).Done():
		t.Fatal("the upstream request did not end")
	}
	if !r.Canceled() {
		t.Error("Request.Canceled() = false, want the service to have abandoned the upstream request")
	}
}

func TestCallerDeadlineWithHangingUpstream(t *testing.T) {
	env := newEnv(t, envOptions{retry: fastRetry(2)})
	env.upstream.Inject(fakeupstream.Hang())

	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, _, err := env.cancel(ctx, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	if code := status.Code(err); code != codes.DeadlineExceeded {
		t.Errorf("code = %v (%v), want DeadlineExceeded", code, err)
	}
	checkUpstreamCanceled(t, waitUpstreamRequest(t, env.upstream))
	// The deadline ends the retries too.
	env.upstream.checkRequestCount(t, 1)
}

func TestCallerCancelWithHangingUpstream(t *testing.T) {
	env := newEnv(t, envOptions{retry: fastRetry(2)})
	env.upstream.Inject(fakeupstream.Hang())

	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, _, err := env.cancel(ctx, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
		errc <- err
	}()
	request := waitUpstreamRequest(t, env.upstream)
	cancel()

	if code := status.Code(<-errc); code != codes.Canceled {
		t.Errorf("code = %v, want Canceled", code)
	}
	checkUpstreamCanceled(t, request)
	env.upstream.checkRequestCount(t, 1)
}

// TestDefaultTimeoutWithHangingUpstream calls without a deadline, so the
// status comes from the service, not from the client's own deadline.
func TestDefaultTimeoutWithHangingUpstream(t *testing.T) {
	env := newEnv(t, envOptions{config: service.Config{DefaultTimeout: 200 * time.Millisecond}})
	env.upstream.Inject(fakeupstream.Hang())

	_, _, err := env.cancel(t.Context(), fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	st, d := detailsOf(t, err)
	if st.Code() != codes.DeadlineExceeded {
		t.Errorf("code = %v (%v), want DeadlineExceeded", st.Code(), err)
	}
	if d.info.GetReason() != service.ReasonDeadlineExceeded || d.info.GetDomain() != service.Domain {
		t.Errorf("ErrorInfo = %v, want reason %q in domain %q", d.info, service.ReasonDeadlineExceeded, service.Domain)
	}
	checkUpstreamCanceled(t, waitUpstreamRequest(t, env.upstream))
	env.checkCancelSucceeds(t)
}
