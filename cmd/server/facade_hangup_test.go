package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"example.com/filebatch/fakeupstream"
)

// checkUpstreamCanceled waits until the fake's handler for r has returned,
// and fails t unless r ended because the server gave up on it.
func checkUpstreamCanceled(t *testing.T, r fakeupstream.Request) {
	t.Helper()
	select {
	case <-r.Done():
	case <-callContext(t).Done():
		t.Fatal("the upstream request did not end")
	}
	if !r.Canceled() {
		t.Error("Request.Canceled() = false, want the server to have abandoned the upstream request")
	}
}

// TestFacadeHangUpCancelsUpstream sends a façade request that the fake
// upstream holds, hangs up, and checks that the server abandons the
// upstream request, logs status 499 and goes on serving.
func TestFacadeHangUpCancelsUpstream(t *testing.T) {
	fake := fakeupstream.NewTest(t, fakeupstream.Options{})
	// Only the first request is delayed, far longer than the test waits.
	fake.Inject(fakeupstream.Delayed(time.Minute))
	var logs *syncBuffer

	// The server stops when this subtest ends, and the HTTP server's
	// shutdown waits for every handler, so every request line is logged
	// before the checks below read the log.
	t.Run("hang up then call again", func(t *testing.T) {
		srv := startServer(t, []string{"-upstream-url", fake.URL()}, "OPENAI_API_KEY", fakeupstream.DefaultAPIKey)
		logs = srv.logs

		ctx, hangUp := context.WithCancel(callContext(t))
		defer hangUp()
		clientErr := make(chan error, 1)
		go func() {
			_, err := tryPostFacade(ctx, http.DefaultClient, srv.apiRoot, "", fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
			clientErr <- err
		}()
		requests, err := fake.WaitRequests(callContext(t), 1)
		if err != nil {
			t.Fatalf("wait for the upstream request: %v", err)
		}
		hangUp()
		if err := <-clientErr; !errors.Is(err, context.Canceled) {
			t.Errorf("POST to the façade after hang-up = %v, want context.Canceled", err)
		}
		checkUpstreamCanceled(t, requests[0])

		resp := postFacade(t, http.DefaultClient, srv.apiRoot, "", fakeupstream.OtherVectorStoreID, fakeupstream.OtherBatchInProgress)
		if resp.status != http.StatusOK {
			t.Errorf("next POST to the façade status = %d (%s), want 200", resp.status, resp.body)
		}
		// No retry follows the hang-up, so the fake saw the two calls only.
		if n := len(fake.Requests()); n != 2 {
			t.Errorf("upstream received %d requests, want 2", n)
		}
	})
	if logs == nil {
		t.FailNow()
	}

	var hungUp []map[string]any
	for _, line := range logLines(t, logs, "http request") {
		if path, _ := line["http.path"].(string); strings.Contains(path, fakeupstream.BatchInProgress) {
			hungUp = append(hungUp, line)
		}
	}
	if len(hungUp) != 1 {
		t.Fatalf("logged %d request lines for the hung-up request, want 1:\n%s", len(hungUp), logs.String())
	}
	if hungUp[0]["http.status"] != float64(499) {
		t.Errorf("hung-up request line http.status = %v, want 499", hungUp[0]["http.status"])
	}
	if hungUp[0]["code"] != "Canceled" {
		t.Errorf("hung-up request line code = %v, want Canceled", hungUp[0]["code"])
	}
	if hungUp[0]["level"] != "INFO" {
		t.Errorf("hung-up request line level = %v, want INFO", hungUp[0]["level"])
	}
}
