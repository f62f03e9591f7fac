package fakeupstream_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"example.com/filebatch/fakeupstream"
)

// cancelPath returns the escaped cancel path for the IDs, which must need
// no escaping.
func cancelPath(vectorStoreID, batchID string) string {
	return "/vector_stores/" + vectorStoreID + "/file_batches/" + batchID + "/cancel"
}

// newClient returns a client with a transport of its own, so that no
// connection outlives the test.
func newClient(t *testing.T) *http.Client {
	t.Helper()
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	return &http.Client{Transport: transport}
}

// send sends a request with the given method to the API root plus path,
// with key as the bearer key unless key is empty, and returns the response
// with its body read.
func send(t *testing.T, client *http.Client, method, target, key string) (*http.Response, []byte) {
	t.Helper()
	resp, body, err := trySend(t.Context(), client, method, target, key)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	return resp, body
}

// trySend is send that returns the error of the exchange or of reading the
// body.
func trySend(ctx context.Context, client *http.Client, method, target, key string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return nil, nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// cancel sends a cancel request for the IDs with the default key.
func cancel(t *testing.T, client *http.Client, s *fakeupstream.Server, vectorStoreID, batchID string) (*http.Response, []byte) {
	t.Helper()
	return send(t, client, http.MethodPost, s.URL()+cancelPath(vectorStoreID, batchID), fakeupstream.DefaultAPIKey)
}

func decodeBatch(t *testing.T, body []byte) fakeupstream.Batch {
	t.Helper()
	var b fakeupstream.Batch
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("decode batch %q: %v", body, err)
	}
	return b
}

// decodeEnvelope decodes an error envelope into generic values, so that
// null fields show as nil and missing ones as absent.
func decodeEnvelope(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var envelope struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		t.Fatalf("decode error envelope %q: %v", body, err)
	}
	if envelope.Error == nil {
		t.Fatalf("body %q has no error object", body)
	}
	return envelope.Error
}

// checkEnvelope checks the type, param and code of an error envelope, with
// "" for null, and that its message is not empty.
func checkEnvelope(t *testing.T, body []byte, wantType, wantCode string) {
	t.Helper()
	e := decodeEnvelope(t, body)
	if len(e) != 4 {
		t.Errorf("error object has fields %v, want message, type, param and code", e)
	}
	if msg, _ := e["message"].(string); strings.TrimSpace(msg) == "" {
		t.Errorf("error message = %#v, want a non-empty string", e["message"])
	}
	if e["type"] != wantType {
		t.Errorf("error type = %#v, want %q", e["type"], wantType)
	}
	if p, ok := e["param"]; !ok || p != nil {
		t.Errorf("error param = %#v (present %v), want null", p, ok)
	}
	code, ok := e["code"]
	switch {
	case !ok:
		t.Errorf("error code is missing, want %q", wantCode)
	case wantCode == "" && code != nil:
		t.Errorf("error code = %#v, want null", code)
	case wantCode != "" && code != wantCode:
		t.Errorf("error code = %#v, want %q", code, wantCode)
	}
}

// waitDone waits for the request to end. The timeout only keeps a broken
// server from hanging the test; it asserts nothing about speed.
func waitDone(t *testing.T, r fakeupstream.Request) {
	t.Helper()
	select {
	case <-r.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("request %s %s did not end", r.Method, r.Path)
	}
}

// waitRequests waits for n requests to arrive.
func waitRequests(t *testing.T, s *fakeupstream.Server, n int) []fakeupstream.Request {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	reqs, err := s.WaitRequests(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	return reqs
}
