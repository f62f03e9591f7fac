package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/filebatch/fakeupstream"
)

// exampleKey is the fake upstream's only accepted key. The server runs in
// pass-through mode, so a call reaches the batch store only when the example
// client sent it as "authorization: Bearer" metadata.
const exampleKey = "sk-example-clients"

// exampleVectorStore is the vector store of the batches that the example
// clients cancel.
const exampleVectorStore = "vs_examples"

// exampleOutput is the JSON document that every example client prints.
type exampleOutput struct {
	Batch      *exampleBatch `json:"batch"`
	Error      *exampleError `json:"error"`
	XRequestID string        `json:"x_request_id"`
}

type exampleBatch struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"`
	CreatedAt     int64             `json:"created_at"`
	VectorStoreID string            `json:"vector_store_id"`
	Status        string            `json:"status"`
	StatusRaw     string            `json:"status_raw"`
	FileCounts    exampleFileCounts `json:"file_counts"`
}

type exampleFileCounts struct {
	InProgress int64 `json:"in_progress"`
	Completed  int64 `json:"completed"`
	Failed     int64 `json:"failed"`
	Cancelled  int64 `json:"cancelled"`
	Total      int64 `json:"total"`
}

type exampleError struct {
	Code      string            `json:"code"`
	Message   string            `json:"message"`
	Reason    string            `json:"reason"`
	Domain    string            `json:"domain"`
	Metadata  map[string]string `json:"metadata"`
	RequestID string            `json:"request_id"`
}

// exampleClient is one of the programs under examples/.
type exampleClient struct {
	name string
	// command returns the argv prefix and extra environment that run the
	// client from the repository root. It skips or fails t when the
	// client's runtime is missing.
	command func(t *testing.T, root string) (argv, env []string)
}

var exampleClients = []exampleClient{
	{name: "go", command: goExampleCommand},
	{name: "typescript", command: typeScriptExampleCommand},
	{name: "python", command: pythonExampleCommand},
}

// TestExampleClients runs each example client against the server in front
// of the fake upstream. Each client must print every field of a cancelled
// batch, and for an unknown batch the NotFound code with the ErrorInfo and
// the upstream's request id.
func TestExampleClients(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatalf("find repository root: %v", err)
	}
	upstream := startExampleUpstream(t)
	addr := startExampleServer(t, upstream.url)

	for i, client := range exampleClients {
		t.Run(client.name, func(t *testing.T) {
			argv, env := client.command(t, root)
			inProgress := fakeupstream.Batch{
				ID:            "vsfb_" + client.name + "_in_progress",
				CreatedAt:     1700000000 + int64(i),
				VectorStoreID: exampleVectorStore,
				Status:        fakeupstream.StatusInProgress,
				FileCounts:    fakeupstream.FileCounts{InProgress: 4, Completed: 3, Failed: 2, Cancelled: 1, Total: 10},
			}
			// The fake returns a batch with an undocumented status
			// unchanged, so its in_progress count stays non-zero.
			undocumented := fakeupstream.Batch{
				ID:            "vsfb_" + client.name + "_undocumented",
				CreatedAt:     1700000100 + int64(i),
				VectorStoreID: exampleVectorStore,
				Status:        "cancelling",
				FileCounts:    fakeupstream.FileCounts{InProgress: 6, Completed: 5, Failed: 4, Cancelled: 3, Total: 18},
			}
			upstream.fake.AddBatch(inProgress)
			upstream.fake.AddBatch(undocumented)

			tests := []struct {
				name      string
				batchID   string
				wantBatch *exampleBatch
				wantError *exampleError // RequestID is the upstream's, filled in by the test
			}{
				{
					name:    "cancel in-progress batch",
					batchID: inProgress.ID,
					wantBatch: &exampleBatch{
						ID:            inProgress.ID,
						Object:        fakeupstream.ObjectFileBatch,
						CreatedAt:     inProgress.CreatedAt,
						VectorStoreID: exampleVectorStore,
						Status:        "FILE_BATCH_STATUS_CANCELLED",
						StatusRaw:     "cancelled",
						FileCounts:    exampleFileCounts{InProgress: 0, Completed: 3, Failed: 2, Cancelled: 5, Total: 10},
					},
				},
				{
					name:    "undocumented status",
					batchID: undocumented.ID,
					wantBatch: &exampleBatch{
						ID:            undocumented.ID,
						Object:        fakeupstream.ObjectFileBatch,
						CreatedAt:     undocumented.CreatedAt,
						VectorStoreID: exampleVectorStore,
						Status:        "FILE_BATCH_STATUS_UNSPECIFIED",
						StatusRaw:     "cancelling",
						FileCounts:    exampleFileCounts{InProgress: 6, Completed: 5, Failed: 4, Cancelled: 3, Total: 18},
					},
				},
				{
					name:    "unknown batch",
					batchID: "vsfb_" + client.name + "_missing",
					wantError: &exampleError{
						Code:   "NOT_FOUND",
						Reason: fakeupstream.TypeInvalidRequest,
						Domain: upstream.host,
						Metadata: map[string]string{
							"http_status": "404",
							"type":        fakeupstream.TypeInvalidRequest,
						},
					},
				},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					before := upstream.responseCount()
					args := append(argv, "--addr", addr, "--vector-store", exampleVectorStore, "--batch", tt.batchID)
					out, exitCode := runExampleClient(t, root, args, env)

					requestIDs := upstream.responsesSince(before)
					if len(requestIDs) != 1 {
						t.Fatalf("upstream sent %d responses, want 1", len(requestIDs))
					}
					if out.XRequestID != requestIDs[0] {
						t.Errorf("x_request_id = %q, want the upstream's %q", out.XRequestID, requestIDs[0])
					}

					if tt.wantBatch != nil {
						if exitCode != 0 {
							t.Errorf("exit code = %d, want 0", exitCode)
						}
						if out.Error != nil {
							t.Fatalf("error = %+v, want none", *out.Error)
						}
						if out.Batch == nil {
							t.Fatal("batch missing from the output")
						}
						if *out.Batch != *tt.wantBatch {
							t.Errorf("batch = %+v, want %+v", *out.Batch, *tt.wantBatch)
						}
						return
					}

					if exitCode != 1 {
						t.Errorf("exit code = %d, want 1", exitCode)
					}
					if out.Batch != nil {
						t.Errorf("batch = %+v, want none", *out.Batch)
					}
					if out.Error == nil {
						t.Fatal("error missing from the output")
					}
					checkExampleError(t, out.Error, tt.wantError, tt.batchID, requestIDs[0])
				})
			}
		})
	}
}

func checkExampleError(t *testing.T, got, want *exampleError, batchID, upstreamRequestID string) {
	t.Helper()
	if got.Code != want.Code {
		t.Errorf("code = %q, want %q", got.Code, want.Code)
	}
	// The message is the upstream's, so only the batch ID in it is checked.
	if !strings.Contains(got.Message, batchID) {
		t.Errorf("message = %q, want it to name %q", got.Message, batchID)
	}
	if got.Reason != want.Reason {
		t.Errorf("ErrorInfo reason = %q, want %q", got.Reason, want.Reason)
	}
	if got.Domain != want.Domain {
		t.Errorf("ErrorInfo domain = %q, want %q", got.Domain, want.Domain)
	}
	if !maps.Equal(got.Metadata, want.Metadata) {
		t.Errorf("ErrorInfo metadata = %v, want %v", got.Metadata, want.Metadata)
	}
	if got.RequestID != upstreamRequestID {
		t.Errorf("RequestInfo request_id = %q, want the upstream's %q", got.RequestID, upstreamRequestID)
	}
}

// exampleUpstream serves a fake upstream and records the x-request-id of
// each of its responses.
type exampleUpstream struct {
	fake *fakeupstream.Server
	url  string // API root, such as http://127.0.0.1:8081/v1
	host string // host:port, the ErrorInfo domain of upstream errors

	mu         sync.Mutex
	requestIDs []string
}

func startExampleUpstream(t *testing.T) *exampleUpstream {
	t.Helper()
	u := &exampleUpstream{fake: fakeupstream.New(fakeupstream.Options{APIKey: exampleKey})}
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.fake.ServeHTTP(w, r)
		u.mu.Lock()
		defer u.mu.Unlock()
		u.requestIDs = append(u.requestIDs, w.Header().Get("X-Request-Id"))
	}))
	t.Cleanup(func() {
		if err := u.fake.Close(); err != nil {
			t.Errorf("close fake upstream: %v", err)
		}
		server.Close()
	})
	parsed, err := url.Parse(server.URL)
	if err != nil {
		t.Fatalf("parse fake upstream URL %q: %v", server.URL, err)
	}
	u.url = server.URL + "/v1"
	u.host = parsed.Host
	return u
}

func (u *exampleUpstream) responseCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.requestIDs)
}

// responsesSince returns the request ids of the responses after the first n.
func (u *exampleUpstream) responsesSince(n int) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.requestIDs[n:]...)
}

// startExampleServer runs the server in pass-through mode in front of
// upstreamURL until the test ends, and returns its gRPC address.
func startExampleServer(t *testing.T, upstreamURL string) string {
	t.Helper()
	return startServer(t, []string{"-upstream-url", upstreamURL, "-credentials", "pass-through"}).grpcAddr
}

// runExampleClient runs argv in root with FILEBATCH_TOKEN set to the
// upstream's key, and decodes the JSON document on its stdout.
func runExampleClient(t *testing.T, root string, argv, env []string) (*exampleOutput, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "FILEBATCH_TOKEN="+exampleKey)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr

	exitCode := 0
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			t.Fatalf("run %q: %v\nstderr:\n%s", argv, err, stderr.String())
		}
		exitCode = exitErr.ExitCode()
	}
	if stderr.Len() > 0 {
		t.Logf("stderr of %q:\n%s", argv, stderr.String())
	}

	var out exampleOutput
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("decode output of %q: %v\nstdout:\n%s\nstderr:\n%s", argv, err, stdout.String(), stderr.String())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("output of %q has data after the JSON document", argv)
	}
	return &out, exitCode
}

// requireRuntime skips the test when a client's runtime is missing, unless
// CI is true, where every client must run and the test fails instead.
func requireRuntime(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("%s; CI=true requires every example client to run (install with make deps)", msg)
	}
	t.Skipf("skip: %s; install with make deps (with CI=true this is a failure)", msg)
}

func goExampleCommand(t *testing.T, root string) (argv, env []string) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		requireRuntime(t, "go not found in PATH: %v", err)
	}
	binary := filepath.Join(t.TempDir(), "example-go")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, goTool, "build", "-o", binary, "./examples/go")
	build.Dir = root
	if output, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build Go example: %v\n%s", err, output)
	}
	return []string{binary}, nil
}

func typeScriptExampleCommand(t *testing.T, root string) (argv, env []string) {
	if _, err := exec.LookPath("node"); err != nil {
		requireRuntime(t, "node not found in PATH: %v", err)
	}
	tsx := filepath.Join(root, "node_modules", ".bin", "tsx")
	if _, err := os.Stat(tsx); err != nil {
		requireRuntime(t, "tsx missing, so npm ci has not run in %s: %v", root, err)
	}
	return []string{tsx, filepath.Join("examples", "ts", "main.ts")}, nil
}

// pythonExampleCommand uses the first interpreter that can import grpc and
// google.protobuf: $PYTHON, python3 in PATH, then /usr/bin/python3, where
// Debian's python3-grpcio and python3-protobuf install.
func pythonExampleCommand(t *testing.T, root string) (argv, env []string) {
	candidates := []string{"python3", "/usr/bin/python3"}
	if python := os.Getenv("PYTHON"); python != "" {
		candidates = append([]string{python}, candidates...)
	}
	var tried []string
	for _, candidate := range candidates {
		path, err := exec.LookPath(candidate)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", candidate, err))
			continue
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		output, err := exec.CommandContext(ctx, path, "-c", "import grpc, google.protobuf").CombinedOutput()
		cancel()
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v: %s", path, err, bytes.TrimSpace(output)))
			continue
		}
		env = []string{
			"PYTHONPATH=" + filepath.Join(root, "gen", "python"),
			"PYTHONDONTWRITEBYTECODE=1", // keep __pycache__ out of gen/python
		}
		return []string{path, filepath.Join("examples", "python", "main.py")}, env
	}
	requireRuntime(t, "no Python interpreter with grpcio and protobuf (tried %s)", strings.Join(tried, "; "))
	return nil, nil
}
