package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"example.com/filebatch/fakeupstream"
	filebatchv1 "example.com/filebatch/gen/filebatch/v1"
)

// exitMargin is added to -shutdown-grace to bound the wait for the server
// process to exit after SIGTERM. It is generous because the machine running
// the tests may be loaded.
const exitMargin = 10 * time.Second

// cutOffMessage is the warning that the server logs when the grace period
// ends with calls in flight.
const cutOffMessage = "shutdown grace period ended, cutting off calls in flight"

// buildServer builds the server binary into a temporary directory and
// returns its path.
func buildServer(t *testing.T) string {
	t.Helper()
	binary := filepath.Join(t.TempDir(), "server")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", binary, ".")
	if output, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -o %s .: %v\n%s", binary, err, output)
	}
	return binary
}

// serverProcess is a server binary started by startServerProcess.
type serverProcess struct {
	cmd      *exec.Cmd
	grpcAddr string
	httpAddr string
	apiRoot  string // such as "http://127.0.0.1:PORT/v1"
	// logs contains the JSON lines of standard error, for logLines.
	logs *syncBuffer
	// stderr contains all of standard error, for failure messages.
	stderr *syncBuffer

	exited  chan struct{} // closed once the process has exited
	waitErr error         // the result of cmd.Wait, set before exited closes
}

// startServerProcess runs binary with args and the fake upstream's default
// key on 127.0.0.1:0 listeners, and waits for its "server started" line to
// read the bound addresses. The process is killed if it still runs when the
// test ends.
func startServerProcess(t *testing.T, binary string, args ...string) *serverProcess {
	t.Helper()
	args = append([]string{"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0"}, args...)
	cmd := exec.Command(binary, args...)
	// Only the key, so that no FILEBATCH_ variable of the test's
	// environment changes the configuration.
	cmd.Env = []string{"OPENAI_API_KEY=" + fakeupstream.DefaultAPIKey}
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatalf("standard error pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", binary, err)
	}
	p := &serverProcess{
		cmd:    cmd,
		logs:   new(syncBuffer),
		stderr: new(syncBuffer),
		exited: make(chan struct{}),
	}
	started := make(chan map[string]any, 1)
	go func() {
		p.readStderr(stderrPipe, started)
		// Wait closes the pipe, so it must come after the last read.
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	select {
	case line := <-started:
		p.grpcAddr, _ = line["grpc.addr"].(string)
		p.httpAddr, _ = line["http.addr"].(string)
	case <-p.exited:
		t.Fatalf("server exited before it started: %v\nstderr:\n%s", p.waitErr, p.stderr.String())
	case <-ctx.Done():
		t.Fatalf("no \"server started\" line: %v\nstderr:\n%s", ctx.Err(), p.stderr.String())
	}
	if p.grpcAddr == "" || p.httpAddr == "" {
		t.Fatalf("\"server started\" line lacks grpc.addr or http.addr:\n%s", p.stderr.String())
	}
	p.apiRoot = "http://" + p.httpAddr + "/v1"
	return p
}

// readStderr copies r to p.stderr, and its JSON lines to p.logs, until EOF.
// It sends the first "server started" line on started.
func (p *serverProcess) readStderr(r io.Reader, started chan<- map[string]any) {
	scanner := bufio.NewScanner(r)
	scanner.Buffer(nil, 1<<20)
	sent := false
	for scanner.Scan() {
		// A copy, because appending to scanner.Bytes() would overwrite the
		// scanner's buffer.
		text := append([]byte(scanner.Text()), '\n')
		_, _ = p.stderr.Write(text)
		var line map[string]any
		if json.Unmarshal(text, &line) != nil {
			continue
		}
		_, _ = p.logs.Write(text)
		if !sent && line["msg"] == "server started" {
			started <- line
			sent = true
		}
	}
	// After a line too long for the scanner, drain the pipe so that the
	// process never blocks on a write.
	_, _ = io.Copy(p.stderr, r)
}

// signal sends sig to the process and returns a context that ends when the
// process should have exited: after grace, its -shutdown-grace, plus
// exitMargin.
func (p *serverProcess) signal(t *testing.T, sig syscall.Signal, grace time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), grace+exitMargin)
	t.Cleanup(cancel)
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("send %v to the server: %v", sig, err)
	}
	return ctx
}

// checkExitStatus waits until the process exits or ctx ends, and fails t
// unless the exit status is 0.
func (p *serverProcess) checkExitStatus(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-p.exited:
	case <-ctx.Done():
		t.Fatalf("server still running after SIGTERM: %v\nstderr:\n%s", ctx.Err(), p.stderr.String())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("server exit status = %d (%v), want 0\nstderr:\n%s", code, p.waitErr, p.stderr.String())
	}
}

// openIdleConn sends one request to the façade at addr on a new HTTP/1.1
// connection, reads the response, and returns the connection, kept alive
// and idle, with the reader that has consumed the response.
func openIdleConn(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial the façade: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/models", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := req.Write(conn); err != nil {
		t.Fatalf("write request: %v", err)
	}
	reader := bufio.NewReader(conn)
	resp, err := http.ReadResponse(reader, req)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("read response body: %v", err)
	}
	if resp.Close {
		t.Fatal("the façade closed the connection after one request, want keep-alive")
	}
	return conn, reader
}

// waitConnClosed waits until the peer closes conn, and fails t when ctx
// ends first or the peer sends anything.
func waitConnClosed(t *testing.T, ctx context.Context, conn net.Conn, reader *bufio.Reader) {
	t.Helper()
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetReadDeadline(deadline); err != nil {
			t.Fatalf("set read deadline: %v", err)
		}
	}
	n, err := reader.Read(make([]byte, 1))
	if n > 0 || err == nil {
		t.Fatal("the façade sent data on an idle connection, want it closed")
	}
	if netErr, ok := errors.AsType[net.Error](err); ok && netErr.Timeout() {
		t.Fatal("the façade kept its idle connection open after SIGTERM")
	}
}

// grpcResult is the outcome of a CancelFileBatch call made in a goroutine.
type grpcResult struct {
	batch *filebatchv1.VectorStoreFileBatch
	err   error
}

// httpOutcome is the outcome of a façade request made in a goroutine.
type httpOutcome struct {
	resp facadeResponse
	err  error
}

// checkCancelledBatch fails t unless batch is batchID with status
// cancelled.
func checkCancelledBatch(t *testing.T, batch *filebatchv1.VectorStoreFileBatch, batchID string) {
	t.Helper()
	if batch.GetId() != batchID {
		t.Errorf("batch id = %q, want %q", batch.GetId(), batchID)
	}
	if batch.GetStatus() != filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_CANCELLED {
		t.Errorf("batch %s status = %v, want FILE_BATCH_STATUS_CANCELLED", batchID, batch.GetStatus())
	}
}

// TestServerShutdownOnSIGTERM runs the server binary and sends it SIGTERM
// while calls wait for the fake upstream.
func TestServerShutdownOnSIGTERM(t *testing.T) {
	binary := buildServer(t)

	t.Run("drains calls in flight", func(t *testing.T) {
		const grace = 10 * time.Second
		// The gate delays every upstream response until the test has
		// checked the server's state during the drain.
		upstream := startRecordingUpstream(t, fakeupstream.Options{}, true)
		const httpBatch = "vsfb_shutdown_http"
		upstream.AddBatch(fakeupstream.Batch{ID: httpBatch, VectorStoreID: fakeupstream.VectorStoreID, Status: fakeupstream.StatusInProgress})
		proc := startServerProcess(t, binary, "-upstream-url", upstream.url, "-shutdown-grace", grace.String())
		client, conn := dialServer(t, proc.grpcAddr)

		watchCtx, stopWatch := context.WithCancel(callContext(t))
		defer stopWatch()
		watch, err := healthpb.NewHealthClient(conn).Watch(watchCtx,
			&healthpb.HealthCheckRequest{Service: filebatchv1.FileBatchService_ServiceDesc.ServiceName})
		if err != nil {
			t.Fatalf("Health.Watch: %v", err)
		}
		if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("first Health.Watch status = %v (%v), want SERVING", resp.GetStatus(), err)
		}
		idleConn, idleReader := openIdleConn(t, proc.httpAddr)

		grpcCalls := []struct{ vectorStoreID, batchID string }{
			{fakeupstream.VectorStoreID, fakeupstream.BatchInProgress},
			{fakeupstream.OtherVectorStoreID, fakeupstream.OtherBatchInProgress},
		}
		grpcResults := make([]chan grpcResult, len(grpcCalls))
		for i, call := range grpcCalls {
			grpcResults[i] = make(chan grpcResult, 1)
			ctx := callContext(t)
			go func() {
				batch, err := client.CancelFileBatch(ctx, cancelRequest(call.vectorStoreID, call.batchID))
				grpcResults[i] <- grpcResult{batch: batch, err: err}
			}()
		}
		httpResult := make(chan httpOutcome, 1)
		httpCtx := callContext(t)
		go func() {
			resp, err := tryPostFacade(httpCtx, http.DefaultClient, proc.apiRoot, "", fakeupstream.VectorStoreID, httpBatch)
			httpResult <- httpOutcome{resp: resp, err: err}
		}()
		if _, err := upstream.WaitRequests(callContext(t), len(grpcCalls)+1); err != nil {
			t.Fatalf("wait for the calls to reach the upstream: %v", err)
		}
		if state := conn.GetState(); state != connectivity.Ready {
			t.Fatalf("gRPC connection state = %v with calls in flight, want READY", state)
		}

		exitCtx := proc.signal(t, syscall.SIGTERM, grace)

		t.Run("health reports NOT_SERVING", func(t *testing.T) {
			resp, err := watch.Recv()
			if err != nil {
				t.Fatalf("Health.Watch after SIGTERM: %v", err)
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
				t.Errorf("Health.Watch status = %v, want NOT_SERVING", resp.GetStatus())
			}
		})
		// The watch stream is a call in flight too, and the server must end
		// it, or GracefulStop would wait for it until the grace period ends.
		t.Run("health watch ends", func(t *testing.T) {
			for {
				resp, err := watch.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("Health.Watch after NOT_SERVING: %v, want the stream to end with OK", err)
				}
				if resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
					t.Fatalf("Health.Watch status = %v after NOT_SERVING, want NOT_SERVING or the end of the stream", resp.GetStatus())
				}
			}
		})

		// The servers close their listeners before they send GOAWAY to
		// gRPC clients and before they close idle HTTP connections, so
		// after these two waits every new connection is refused.
		if !conn.WaitForStateChange(exitCtx, connectivity.Ready) {
			t.Fatal("gRPC connection still READY after SIGTERM, want GOAWAY from the server")
		}
		waitConnClosed(t, exitCtx, idleConn, idleReader)

		t.Run("new gRPC call refused", func(t *testing.T) {
			newClient, _ := dialServer(t, proc.grpcAddr)
			_, err := newClient.CancelFileBatch(callContext(t), cancelRequest(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress))
			if code := status.Code(err); code != codes.Unavailable {
				t.Errorf("CancelFileBatch after SIGTERM code = %v (%v), want Unavailable", code, err)
			}
		})
		t.Run("new HTTP request refused", func(t *testing.T) {
			transport := &http.Transport{DisableKeepAlives: true}
			defer transport.CloseIdleConnections()
			_, err := tryPostFacade(callContext(t), &http.Client{Transport: transport}, proc.apiRoot, "",
				fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("POST to the façade after SIGTERM = %v, want connection refused", err)
			}
		})
		if n := len(upstream.Requests()); n != len(grpcCalls)+1 {
			t.Errorf("upstream received %d requests, want %d, from the calls in flight only", n, len(grpcCalls)+1)
		}

		upstream.openGate()
		t.Run("gRPC calls in flight complete", func(t *testing.T) {
			for i, call := range grpcCalls {
				result := <-grpcResults[i]
				if result.err != nil {
					t.Errorf("CancelFileBatch(%s) in flight at SIGTERM: %v, want the batch", call.batchID, result.err)
					continue
				}
				checkCancelledBatch(t, result.batch, call.batchID)
			}
		})
		t.Run("HTTP request in flight completes", func(t *testing.T) {
			result := <-httpResult
			if result.err != nil {
				t.Fatalf("POST to the façade in flight at SIGTERM: %v, want the batch", result.err)
			}
			if result.resp.status != http.StatusOK {
				t.Fatalf("HTTP status = %d (%s), want 200", result.resp.status, result.resp.body)
			}
			var batch struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			}
			if err := json.Unmarshal(result.resp.body, &batch); err != nil {
				t.Fatalf("decode body %q: %v", result.resp.body, err)
			}
			if batch.ID != httpBatch || batch.Status != fakeupstream.StatusCancelled {
				t.Errorf("batch = %+v, want %s cancelled", batch, httpBatch)
			}
		})

		proc.checkExitStatus(t, exitCtx)
		if lines := logLines(t, proc.logs, cutOffMessage); len(lines) != 0 {
			t.Errorf("logged %q %d times, want never, since every call finished", cutOffMessage, len(lines))
		}
	})

	t.Run("grace period ends", func(t *testing.T) {
		const grace = 300 * time.Millisecond
		// The fake delays each response far longer than the grace period.
		upstream := fakeupstream.NewTest(t, fakeupstream.Options{Delay: time.Minute})
		proc := startServerProcess(t, binary, "-upstream-url", upstream.URL(), "-shutdown-grace", grace.String())
		client, _ := dialServer(t, proc.grpcAddr)

		grpcErr := make(chan error, 1)
		grpcCtx := callContext(t)
		go func() {
			_, err := client.CancelFileBatch(grpcCtx, cancelRequest(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress))
			grpcErr <- err
		}()
		httpErr := make(chan error, 1)
		httpCtx := callContext(t)
		go func() {
			_, err := tryPostFacade(httpCtx, http.DefaultClient, proc.apiRoot, "",
				fakeupstream.OtherVectorStoreID, fakeupstream.OtherBatchInProgress)
			httpErr <- err
		}()
		if _, err := upstream.WaitRequests(callContext(t), 2); err != nil {
			t.Fatalf("wait for the calls to reach the upstream: %v", err)
		}

		exitCtx := proc.signal(t, syscall.SIGTERM, grace)
		proc.checkExitStatus(t, exitCtx)

		if code := status.Code(<-grpcErr); code != codes.Unavailable {
			t.Errorf("CancelFileBatch cut off by shutdown code = %v, want Unavailable", code)
		}
		if err := <-httpErr; err == nil {
			t.Error("POST to the façade cut off by shutdown succeeded, want a broken connection")
		}
		lines := logLines(t, proc.logs, cutOffMessage)
		if len(lines) != 1 {
			t.Fatalf("logged %q %d times, want once\nstderr:\n%s", cutOffMessage, len(lines), proc.stderr.String())
		}
		if lines[0]["level"] != "WARN" {
			t.Errorf("cut-off line level = %v, want WARN", lines[0]["level"])
		}
		// slog's JSON handler writes a duration in nanoseconds.
		if lines[0]["grace"] != float64(grace) {
			t.Errorf("cut-off line grace = %v, want %d nanoseconds", lines[0]["grace"], grace)
		}
	})
}
