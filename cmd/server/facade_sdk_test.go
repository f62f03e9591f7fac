package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/filebatch/fakeupstream"
	"example.com/filebatch/upstream"
)

// sdkKey is the fake upstream's only accepted key. The server runs in
// pass-through mode, so the façade forwards the caller's key to the fake.
const sdkKey = "sk-facade-sdk"

// sdkVectorStore is the vector store of the batches that these tests add.
const sdkVectorStore = "vs_facade"

// facadeUpstream serves a fake upstream and records the headers of each of
// its responses.
type facadeUpstream struct {
	fake *fakeupstream.Server
	url  string // API root, such as http://127.0.0.1:8081/v1

	mu        sync.Mutex
	responses []http.Header
}

func startFacadeUpstream(t *testing.T) *facadeUpstream {
	t.Helper()
	u := &facadeUpstream{fake: fakeupstream.New(fakeupstream.Options{APIKey: sdkKey})}
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.fake.ServeHTTP(w, r)
		u.mu.Lock()
		defer u.mu.Unlock()
		u.responses = append(u.responses, w.Header().Clone())
	}))
	t.Cleanup(func() {
		if err := u.fake.Close(); err != nil {
			t.Errorf("close fake upstream: %v", err)
		}
		server.Close()
	})
	u.url = server.URL + "/v1"
	return u
}

func (u *facadeUpstream) responseCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.responses)
}

// onlyResponseSince returns the headers of the one response after the
// first n, and fails the test when there is not exactly one.
func (u *facadeUpstream) onlyResponseSince(t *testing.T, n int) http.Header {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if got := len(u.responses) - n; got != 1 {
		t.Fatalf("the upstream sent %d responses for one façade call, want 1", got)
	}
	return u.responses[n]
}

// startFacadeServer runs the server in pass-through mode, with no upstream
// retries, in front of upstreamURL, and returns the façade's API root.
func startFacadeServer(t *testing.T, upstreamURL string) string {
	t.Helper()
	return startServer(t, []string{"-upstream-url", upstreamURL, "-credentials", "pass-through", "-max-retries", "0"}).apiRoot
}

// httpResult is an HTTP response with its body read.
type httpResult struct {
	status int
	header http.Header
	body   []byte
}

// postCancel sends the cancel request for batchID to the API root base,
// with key as the bearer key when it is not empty.
func postCancel(t *testing.T, base, key, batchID string) httpResult {
	t.Helper()
	target := base + "/vector_stores/" + sdkVectorStore + "/file_batches/" + batchID + "/cancel"
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, target, nil)
	if err != nil {
		t.Fatalf("build request: %v", err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("OpenAI-Beta", "assistants=v2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body of POST %s: %v", target, err)
	}
	return httpResult{status: resp.StatusCode, header: resp.Header, body: body}
}

// inProgressBatch returns a batch of sdkVectorStore that a cancel moves to
// cancelled.
func inProgressBatch(id string) fakeupstream.Batch {
	return fakeupstream.Batch{
		ID:            id,
		Object:        fakeupstream.ObjectFileBatch,
		CreatedAt:     1712345678,
		VectorStoreID: sdkVectorStore,
		Status:        fakeupstream.StatusInProgress,
		FileCounts:    fakeupstream.FileCounts{InProgress: 4, Completed: 3, Failed: 2, Cancelled: 1, Total: 10},
	}
}

// TestFacadeOpenAINodeSDK runs tests/openai-node/cancel.test.mjs, which
// uses the official OpenAI Node SDK with only its base URL set to the
// façade. It skips when node or the SDK is not installed, unless CI is
// true, where it fails instead.
func TestFacadeOpenAINodeSDK(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "tests", "openai-node"))
	if err != nil {
		t.Fatalf("find tests/openai-node: %v", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		requireNodeSDK(t, "node not found in PATH: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai", "package.json")); err != nil {
		requireNodeSDK(t, "the openai package is missing, so npm ci has not run in %s: %v", dir, err)
	}

	up := startFacadeUpstream(t)
	base := startFacadeServer(t, up.url)
	batch := inProgressBatch("vsfb_node_sdk")
	up.fake.AddBatch(batch)
	want := batch
	want.Status = fakeupstream.StatusCancelled
	want.FileCounts.Cancelled += want.FileCounts.InProgress
	want.FileCounts.InProgress = 0
	wantJSON, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}

	// The fake's message for an unknown batch, read from the fake itself.
	const unknownBatch = "vsfb_node_sdk_unknown"
	direct := postCancel(t, up.url, sdkKey, unknownBatch)
	var envelope struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(direct.body, &envelope); err != nil || envelope.Error.Message == "" {
		t.Fatalf("the fake's body for an unknown batch = %s, want an error envelope (decode error: %v)", direct.body, err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "cancel.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"FILEBATCH_BASE_URL="+base,
		"FILEBATCH_API_KEY="+sdkKey,
		"FILEBATCH_VECTOR_STORE_ID="+sdkVectorStore,
		"FILEBATCH_BATCH_ID="+batch.ID,
		"FILEBATCH_EXPECTED_BATCH="+string(wantJSON),
		"FILEBATCH_UNKNOWN_BATCH_ID="+unknownBatch,
		"FILEBATCH_NOT_FOUND_MESSAGE="+envelope.Error.Message,
	)
	output, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test cancel.test.mjs: %v\n%s", err, output)
	}
	t.Logf("node --test cancel.test.mjs:\n%s", output)
}

// requireNodeSDK skips the test for a missing Node runtime or SDK, or
// fails it when CI is true.
func requireNodeSDK(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("%s; CI=true requires the OpenAI Node SDK test to run (install with make deps)", msg)
	}
	t.Skipf("skip: %s; install with make deps (with CI=true this is a failure)", msg)
}

// TestFacadeBodyMatchesUpstream sends the same request to the fake upstream
// and through the façade, and requires the same status and the same JSON
// body, field by field and type by type.
func TestFacadeBodyMatchesUpstream(t *testing.T) {
	up := startFacadeUpstream(t)
	base := startFacadeServer(t, up.url)

	cancelled := inProgressBatch("vsfb_cmp_cancel")
	zeroCounts := inProgressBatch("vsfb_cmp_zero")
	zeroCounts.CreatedAt = 0
	zeroCounts.FileCounts = fakeupstream.FileCounts{}
	undocumented := inProgressBatch("vsfb_cmp_undocumented")
	undocumented.Status = "cancelling" // returned unchanged by the fake
	completed := inProgressBatch("vsfb_cmp_completed")
	completed.Status = fakeupstream.StatusCompleted

	tests := []struct {
		name    string
		batch   *fakeupstream.Batch // added before each of the two requests
		batchID string
		key     string
		status  int
	}{
		{name: "cancelled batch", batch: &cancelled, key: sdkKey, status: http.StatusOK},
		{name: "zero counts", batch: &zeroCounts, key: sdkKey, status: http.StatusOK},
		{name: "undocumented status", batch: &undocumented, key: sdkKey, status: http.StatusOK},
		{name: "unknown batch", batchID: "vsfb_cmp_unknown", key: sdkKey, status: http.StatusNotFound},
		{name: "wrong key", batchID: "vsfb_cmp_unknown", key: "sk-wrong", status: http.StatusUnauthorized},
		{name: "finished batch", batch: &completed, key: sdkKey, status: http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			batchID := tc.batchID
			if tc.batch != nil {
				batchID = tc.batch.ID
				up.fake.AddBatch(*tc.batch)
			}
			direct := postCancel(t, up.url, tc.key, batchID)
			if tc.batch != nil {
				up.fake.AddBatch(*tc.batch) // undo the cancel
			}
			got := postCancel(t, base, tc.key, batchID)

			if direct.status != tc.status {
				t.Fatalf("the fake's status = %d, want %d; body %s", direct.status, tc.status, direct.body)
			}
			if got.status != direct.status {
				t.Errorf("façade status = %d, want the upstream's %d", got.status, direct.status)
			}
			if ct := got.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("façade Content-Type = %q, want application/json", ct)
			}
			for _, problem := range compareJSON(t, got.body, direct.body) {
				t.Errorf("façade body differs from the upstream's: %s\nfaçade:   %s\nupstream: %s", problem, got.body, direct.body)
			}
		})
	}
}

// TestFacadeForwardsUpstreamHeaders requires the façade's responses to carry
// the upstream's x-request-id and the other forwarded headers with their
// values, on success and on error, and no grpc-gateway header.
func TestFacadeForwardsUpstreamHeaders(t *testing.T) {
	up := startFacadeUpstream(t)
	base := startFacadeServer(t, up.url)
	up.fake.AddBatch(inProgressBatch("vsfb_headers"))

	tests := []struct {
		name    string
		batchID string
		key     string
		status  int
	}{
		{"success", "vsfb_headers", sdkKey, http.StatusOK},
		{"unknown batch", "vsfb_headers_unknown", sdkKey, http.StatusNotFound},
		{"wrong key", "vsfb_headers", "sk-wrong", http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := up.responseCount()
			got := postCancel(t, base, tc.key, tc.batchID)
			if got.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", got.status, tc.status, got.body)
			}
			upstreamHeader := up.onlyResponseSince(t, before)

			requestID := upstreamHeader.Get("X-Request-Id")
			if requestID == "" {
				t.Fatalf("the upstream response has no x-request-id: %v", upstreamHeader)
			}
			if v := got.header.Get("X-Request-Id"); v != requestID {
				t.Errorf("façade x-request-id = %q, want the upstream's %q", v, requestID)
			}
			for name, values := range upstreamHeader {
				if !upstream.IsForwardedHeader(name) {
					continue
				}
				if v := got.header.Values(name); !slices.Equal(v, values) {
					t.Errorf("façade header %s = %q, want the upstream's %q", name, v, values)
				}
			}
			for name := range got.header {
				lower := strings.ToLower(name)
				if strings.HasPrefix(lower, "grpc-metadata-") || strings.HasPrefix(lower, "grpc-trailer-") {
					t.Errorf("façade response has header %s: %q", name, got.header.Values(name))
				}
			}
		})
	}
}

// compareJSON decodes two JSON objects, with numbers kept as json.Number,
// and returns one line per difference: a field missing on either side, a
// different JSON type, or a different value.
func compareJSON(t *testing.T, got, want []byte) []string {
	t.Helper()
	decode := func(data []byte) any {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("decode JSON %q: %v", data, err)
		}
		return v
	}
	var problems []string
	compareValues("", decode(got), decode(want), &problems)
	return problems
}

func compareValues(path string, got, want any, problems *[]string) {
	gotObject, gotIsObject := got.(map[string]any)
	wantObject, wantIsObject := want.(map[string]any)
	if gotIsObject && wantIsObject {
		keys := make(map[string]bool)
		for k := range gotObject {
			keys[k] = true
		}
		for k := range wantObject {
			keys[k] = true
		}
		names := make([]string, 0, len(keys))
		for k := range keys {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			g, inGot := gotObject[k]
			w, inWant := wantObject[k]
			switch {
			case !inGot:
				*problems = append(*problems, fmt.Sprintf("%s%s is missing", path, k))
			case !inWant:
				*problems = append(*problems, fmt.Sprintf("%s%s is extra", path, k))
			default:
				compareValues(path+k+".", g, w, problems)
			}
		}
		return
	}
	field := strings.TrimSuffix(path, ".")
	if reflect.TypeOf(got) != reflect.TypeOf(want) {
		*problems = append(*problems, fmt.Sprintf("%s has JSON type %s, want %s", field, jsonType(got), jsonType(want)))
		return
	}
	if !reflect.DeepEqual(got, want) {
		*problems = append(*problems, fmt.Sprintf("%s = %#v, want %#v", field, got, want))
	}
}

// jsonType names the JSON type of a value decoded with UseNumber.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	default:
		return fmt.Sprintf("%T", v)
	}
}
