package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"example.com/filebatch/fakeupstream"
)

// grpcurl runs the grpcurl version pinned in tools/go.mod with args and
// returns its standard output.
func grpcurl(t *testing.T, args ...string) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute) // the first run builds grpcurl
	defer cancel()
	argv := append([]string{"tool", "-modfile=" + filepath.Join(root, "tools", "go.mod"), "grpcurl"}, args...)
	cmd := exec.CommandContext(ctx, "go", argv...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if exitErr, ok := err.(*exec.ExitError); ok {
			stderr = string(exitErr.Stderr)
		}
		t.Fatalf("grpcurl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

// TestGrpcurlReflection shows that a client without the proto files can
// list the service through server reflection and call it.
func TestGrpcurlReflection(t *testing.T) {
	if testing.Short() {
		t.Skip("builds grpcurl")
	}
	upstream := fakeupstream.NewTest(t, fakeupstream.Options{APIKey: "sk-grpcurl"})
	srv := startServer(t, []string{"-upstream-url", upstream.URL()}, "OPENAI_API_KEY", "sk-grpcurl")

	services := strings.Fields(grpcurl(t, "-plaintext", srv.grpcAddr, "list"))
	for _, want := range []string{"filebatch.v1.FileBatchService", "grpc.health.v1.Health"} {
		if !slices.Contains(services, want) {
			t.Errorf("grpcurl list = %q, want it to contain %q", services, want)
		}
	}

	out := grpcurl(t, "-plaintext", "-d", `{"vector_store_id":"vs_abc123","batch_id":"vsfb_abc123"}`,
		srv.grpcAddr, "filebatch.v1.FileBatchService/CancelFileBatch")
	var batch struct {
		ID         string `json:"id"`
		Status     string `json:"status"`
		StatusRaw  string `json:"statusRaw"`
		FileCounts struct {
			Cancelled string `json:"cancelled"`
		} `json:"fileCounts"`
	}
	if err := json.Unmarshal([]byte(out), &batch); err != nil {
		t.Fatalf("decode grpcurl output %q: %v", out, err)
	}
	if batch.ID != fakeupstream.BatchInProgress {
		t.Errorf("id = %q, want %q", batch.ID, fakeupstream.BatchInProgress)
	}
	if batch.Status != "FILE_BATCH_STATUS_CANCELLED" || batch.StatusRaw != "cancelled" {
		t.Errorf("status = %q, status_raw = %q, want FILE_BATCH_STATUS_CANCELLED and cancelled", batch.Status, batch.StatusRaw)
	}
	if batch.FileCounts.Cancelled != "3" {
		t.Errorf("file_counts.cancelled = %q, want 3", batch.FileCounts.Cancelled)
	}
}
