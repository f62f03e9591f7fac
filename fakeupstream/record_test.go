package fakeupstream_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"example.com/filebatch/fakeupstream"
)

func TestRequestsRecordWhatWasSent(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{})
	path := "/v1/vector_stores/vs_abc123/file_batches/vsfb%5Fabc123/cancel"
	target := strings.TrimSuffix(s.URL(), "/v1") + path + "?a=1&b=%20"
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, target, strings.NewReader(`{"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+fakeupstream.DefaultAPIKey)
	req.Header.Set("OpenAI-Organization", "org_1")
	resp, err := newClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200 for an escaped but valid ID", resp.StatusCode)
	}

	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("recorded %d requests, want 1", len(reqs))
	}
	got := reqs[0]
	if got.Method != http.MethodPost {
		t.Errorf("Method = %q, want POST", got.Method)
	}
	if got.Path != path {
		t.Errorf("Path = %q, want %q as sent", got.Path, path)
	}
	if got.RawQuery != "a=1&b=%20" {
		t.Errorf("RawQuery = %q, want %q", got.RawQuery, "a=1&b=%20")
	}
	if got.Host != s.Addr() {
		t.Errorf("Host = %q, want %q", got.Host, s.Addr())
	}
	if v := got.Header.Get("Openai-Organization"); v != "org_1" {
		t.Errorf("OpenAI-Organization = %q, want org_1", v)
	}
	if string(got.Body) != `{"x":1}` {
		t.Errorf("Body = %q, want %q", got.Body, `{"x":1}`)
	}
	waitDone(t, got)
	if got.Canceled() {
		t.Error("Canceled() = true for a request that got a response")
	}
}

func TestRequestsReturnsCopies(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{})
	cancel(t, newClient(t), s, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)

	first := s.Requests()
	first[0].Header.Set("Authorization", "changed")
	first[0].Path = "changed"
	second := s.Requests()
	if got := second[0].Header.Get("Authorization"); got != "Bearer "+fakeupstream.DefaultAPIKey {
		t.Errorf("Authorization after changing a copy = %q, want the recorded value", got)
	}
	if second[0].Path == "changed" {
		t.Error("Path changed through a copy")
	}
}

func TestWaitRequests(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{})
	client := newClient(t)
	for range 3 {
		cancel(t, client, s, fakeupstream.VectorStoreID, fakeupstream.BatchCompleted)
	}
	reqs := waitRequests(t, s, 3)
	if len(reqs) != 3 {
		t.Errorf("WaitRequests returned %d requests, want 3", len(reqs))
	}

	ctx, stop := context.WithCancel(t.Context())
	stop()
	_, err := s.WaitRequests(ctx, 4)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("WaitRequests with a done context = %v, want %v", err, context.Canceled)
	}
}

func TestWaitRequestsWakesOnArrival(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{})
	result := make(chan []fakeupstream.Request, 1)
	go func() {
		reqs, _ := s.WaitRequests(t.Context(), 1)
		result <- reqs
	}()
	cancel(t, newClient(t), s, fakeupstream.VectorStoreID, fakeupstream.BatchCompleted)
	if reqs := <-result; len(reqs) != 1 {
		t.Errorf("WaitRequests returned %d requests, want 1", len(reqs))
	}
}
