package fakeupstream_test

import (
	"bytes"
	"net/http"
	"regexp"
	"strconv"
	"testing"

	"example.com/filebatch/fakeupstream"
)

func TestCancelInProgressBatch(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{})
	client := newClient(t)

	resp, body := cancel(t, client, s, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", resp.StatusCode, body)
	}
	want := fakeupstream.Batch{
		ID:            fakeupstream.BatchInProgress,
		Object:        "vector_store.file_batch",
		CreatedAt:     fakeupstream.SeedCreatedAt,
		VectorStoreID: fakeupstream.VectorStoreID,
		Status:        "cancelled",
		FileCounts:    fakeupstream.FileCounts{InProgress: 0, Completed: 5, Failed: 1, Cancelled: 3, Total: 9},
	}
	if got := decodeBatch(t, body); got != want {
		t.Errorf("response batch = %+v, want %+v", got, want)
	}
	if got, ok := s.Batch(fakeupstream.BatchInProgress); !ok || got != want {
		t.Errorf("Batch(%q) = %+v, %v, want %+v, true", fakeupstream.BatchInProgress, got, ok, want)
	}

	resp, body = cancel(t, client, s, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("second cancel: status = %d, want 400; body %s", resp.StatusCode, body)
	}
	checkEnvelope(t, body, "invalid_request_error", "")
}

func TestCancelBatchJSONFields(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{})
	_, body := cancel(t, newClient(t), s, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	for _, field := range []string{
		`"id"`, `"object"`, `"created_at"`, `"vector_store_id"`, `"status"`, `"file_counts"`,
		`"in_progress": 0`, `"completed": 5`, `"failed": 1`, `"cancelled": 3`, `"total": 9`,
	} {
		if !bytes.Contains(body, []byte(field)) {
			t.Errorf("body %s lacks %s", body, field)
		}
	}
}

func TestCancelUndocumentedStatus(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{Batches: []fakeupstream.Batch{}})
	s.AddBatch(fakeupstream.Batch{ID: "vsfb_x", VectorStoreID: "vs_x", Status: "cancelling"})

	resp, body := cancel(t, newClient(t), s, "vs_x", "vsfb_x")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", resp.StatusCode, body)
	}
	got := decodeBatch(t, body)
	if got.Status != "cancelling" {
		t.Errorf("status = %q, want the stored %q", got.Status, "cancelling")
	}
	if got.Object != fakeupstream.ObjectFileBatch {
		t.Errorf("object = %q, want %q", got.Object, fakeupstream.ObjectFileBatch)
	}
}

func TestEmptySeed(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{Batches: []fakeupstream.Batch{}})
	resp, body := cancel(t, newClient(t), s, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("status = %d, want 404; body %s", resp.StatusCode, body)
	}
}

func TestErrorResponses(t *testing.T) {
	t.Parallel()
	const wrongKey = "sk-wrong-key-4711"
	tests := []struct {
		name       string
		method     string
		path       string
		key        string
		wantStatus int
		wantCode   string
	}{
		{"missing key", "POST", cancelPath(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress), "", 401, ""},
		{"wrong key", "POST", cancelPath(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress), wrongKey, 401, "invalid_api_key"},
		{"unknown vector store", "POST", cancelPath("vs_unknown", fakeupstream.BatchInProgress), "", 404, ""},
		{"unknown batch", "POST", cancelPath(fakeupstream.VectorStoreID, "vsfb_unknown"), "", 404, ""},
		{"batch of other store", "POST", cancelPath(fakeupstream.VectorStoreID, fakeupstream.OtherBatchInProgress), "", 404, ""},
		{"completed batch", "POST", cancelPath(fakeupstream.VectorStoreID, fakeupstream.BatchCompleted), "", 400, ""},
		{"failed batch", "POST", cancelPath(fakeupstream.VectorStoreID, fakeupstream.BatchFailed), "", 400, ""},
		{"cancelled batch", "POST", cancelPath(fakeupstream.VectorStoreID, fakeupstream.BatchCancelled), "", 400, ""},
		{"unknown path", "POST", "/files", "", 404, ""},
		{"trailing slash", "POST", cancelPath(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress) + "/", "", 404, ""},
		{"empty id", "POST", cancelPath("", fakeupstream.BatchInProgress), "", 404, ""},
		{"wrong method", "GET", cancelPath(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress), "", 405, ""},
	}
	s := fakeupstream.NewTest(t, fakeupstream.Options{})
	client := newClient(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.key
			if key == "" && tt.wantStatus != 401 {
				key = fakeupstream.DefaultAPIKey
			}
			resp, body := send(t, client, tt.method, s.URL()+tt.path, key)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			checkEnvelope(t, body, "invalid_request_error", tt.wantCode)
			if key == wrongKey {
				for _, part := range []string{wrongKey[:6], wrongKey[len(wrongKey)-4:]} {
					if bytes.Contains(body, []byte(part)) {
						t.Errorf("body %s contains %q, a part of the key", body, part)
					}
				}
			}
		})
	}
	if b, _ := s.Batch(fakeupstream.BatchInProgress); b.Status != "in_progress" {
		t.Errorf("after failed requests, status of %s = %q, want in_progress", b.ID, b.Status)
	}
}

func TestWrongMethodAllowHeader(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{})
	target := s.URL() + cancelPath(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	resp, _ := send(t, newClient(t), http.MethodDelete, target, fakeupstream.DefaultAPIKey)
	if got := resp.Header.Get("Allow"); got != "POST" {
		t.Errorf("Allow = %q, want POST", got)
	}
}

func TestEscapedIDs(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{})
	s.AddBatch(fakeupstream.Batch{ID: "b/1", VectorStoreID: "vs 1", Status: "in_progress"})
	resp, body := send(t, newClient(t), "POST", s.URL()+"/vector_stores/vs%201/file_batches/b%2F1/cancel", fakeupstream.DefaultAPIKey)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", resp.StatusCode, body)
	}
	if got := decodeBatch(t, body).ID; got != "b/1" {
		t.Errorf("id = %q, want %q", got, "b/1")
	}
}

var requestIDPattern = regexp.MustCompile(`^req_[0-9a-f]{32}$`)

func TestStandardHeaders(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{})
	client := newClient(t)
	paths := []string{
		cancelPath(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress),
		cancelPath(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress),
		"/unknown",
	}
	seen := make(map[string]bool)
	for _, path := range paths {
		resp, _ := send(t, client, "POST", s.URL()+path, fakeupstream.DefaultAPIKey)
		h := resp.Header
		if got := h.Get("Content-Type"); got != "application/json" {
			t.Errorf("%s: Content-Type = %q, want application/json", path, got)
		}
		id := h.Get("X-Request-Id")
		if !requestIDPattern.MatchString(id) {
			t.Errorf("%s: x-request-id = %q, want req_ and 32 hex digits", path, id)
		}
		if seen[id] {
			t.Errorf("%s: x-request-id %q was sent before", path, id)
		}
		seen[id] = true
		for _, name := range []string{"Openai-Processing-Ms", "X-Ratelimit-Limit-Requests", "X-Ratelimit-Remaining-Requests"} {
			if _, err := strconv.ParseUint(h.Get(name), 10, 64); err != nil {
				t.Errorf("%s: %s = %q, want a number", path, name, h.Get(name))
			}
		}
		if h.Get("X-Ratelimit-Reset-Requests") == "" {
			t.Errorf("%s: x-ratelimit-reset-requests is missing", path)
		}
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{})
	client := newClient(t)
	cancel(t, client, s, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	s.Inject(fakeupstream.ServerError(500))

	s.Reset()
	if b, _ := s.Batch(fakeupstream.BatchInProgress); b.Status != "in_progress" {
		t.Errorf("after Reset, status = %q, want in_progress", b.Status)
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("after Reset, %d requests recorded, want 0", n)
	}
	resp, body := cancel(t, client, s, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after Reset, status = %d, want 200 with no fault; body %s", resp.StatusCode, body)
	}
}
