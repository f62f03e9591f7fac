package service_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"example.com/filebatch/fakeupstream"
	filebatchv1 "example.com/filebatch/gen/filebatch/v1"
	"example.com/filebatch/service"
	"example.com/filebatch/upstream"
)

// The benchmarks run the fake upstream, and for the gRPC benchmarks the
// gRPC client too, in a helper process: this test binary started again
// with benchHelperEnv set. The figures of -benchmem then count only what
// the service side allocates, as a server process would: the gRPC server
// transport, the handler and the upstream HTTP client.
//
// The helper reads one command per line on stdin and writes one line of
// reply on stdout:
//
//	(at start)        -> "fake URL"       the fast fake upstream's API root
//	"dial ADDR"       -> "ok"             connect a gRPC client to ADDR
//	"call N CALLERS"  -> "done ERRORS"    make N calls over CALLERS goroutines
//	                     "done ERRORS first error text"
//
// It exits when stdin closes.
const benchHelperEnv = "FILEBATCH_BENCH_HELPER"

// benchRequest is the request of every benchmark call. The fast fake
// upstream answers any IDs with the same cancelled batch.
func benchRequest() *filebatchv1.CancelFileBatchRequest {
	return &filebatchv1.CancelFileBatchRequest{VectorStoreId: fakeupstream.VectorStoreID, BatchId: fakeupstream.BatchInProgress}
}

// benchHelper is the running helper process.
type benchHelper struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stdout  *bufio.Reader
	fakeURL string
}

// startBenchHelper starts the helper process and stops it when b ends.
func startBenchHelper(b *testing.B) *benchHelper {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), benchHelperEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start benchmark helper: %v", err)
	}
	h := &benchHelper{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout)}
	b.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Errorf("benchmark helper: %v", err)
		}
	})
	reply := h.readReply(b)
	url, ok := strings.CutPrefix(reply, "fake ")
	if !ok {
		b.Fatalf("benchmark helper replied %q, want the fake upstream URL", reply)
	}
	h.fakeURL = url
	return h
}

// command sends line to the helper and returns its reply.
func (h *benchHelper) command(b *testing.B, line string) string {
	b.Helper()
	if _, err := io.WriteString(h.stdin, line+"\n"); err != nil {
		b.Fatalf("send %q to benchmark helper: %v", line, err)
	}
	return h.readReply(b)
}

// readReply returns the next line from the helper that is not output of
// the test framework.
func (h *benchHelper) readReply(b *testing.B) string {
	b.Helper()
	for {
		line, err := h.stdout.ReadString('\n')
		if err != nil {
			b.Fatalf("read from benchmark helper: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, "fake ") || line == "ok" || strings.HasPrefix(line, "done ") {
			return line
		}
	}
}

// TestBenchHelperProcess is the helper process of the benchmarks. It does
// nothing unless benchHelperEnv is set.
func TestBenchHelperProcess(t *testing.T) {
	if os.Getenv(benchHelperEnv) != "1" {
		return
	}
	fake := fakeupstream.New(fakeupstream.Options{Fast: true})
	if err := fake.Start(""); err != nil {
		fmt.Fprintln(os.Stderr, "benchmark helper:", err)
		os.Exit(1)
	}
	fmt.Println("fake " + fake.URL())
	var client filebatchv1.FileBatchServiceClient
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fields := strings.Fields(in.Text())
		switch {
		case len(fields) == 2 && fields[0] == "dial":
			cc, err := grpc.NewClient("passthrough:///"+fields[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				fmt.Fprintln(os.Stderr, "benchmark helper:", err)
				os.Exit(1)
			}
			client = filebatchv1.NewFileBatchServiceClient(cc)
			fmt.Println("ok")
		case len(fields) == 3 && fields[0] == "call" && client != nil:
			n, errN := strconv.Atoi(fields[1])
			callers, errC := strconv.Atoi(fields[2])
			if errN != nil || errC != nil || callers <= 0 {
				fmt.Fprintf(os.Stderr, "benchmark helper: invalid command %q\n", in.Text())
				os.Exit(1)
			}
			failed, first := benchCallGRPC(client, n, callers)
			if first != nil {
				fmt.Printf("done %d %v\n", failed, first)
			} else {
				fmt.Printf("done %d\n", failed)
			}
		default:
			fmt.Fprintf(os.Stderr, "benchmark helper: invalid command %q\n", in.Text())
			os.Exit(1)
		}
	}
	_ = fake.Close()
	os.Exit(0)
}

// benchCallGRPC makes n calls over callers goroutines and returns the
// number that failed and the first error.
func benchCallGRPC(client filebatchv1.FileBatchServiceClient, n, callers int) (int, error) {
	var (
		mu     sync.Mutex
		failed int
		first  error
		wg     sync.WaitGroup
	)
	for i := range callers {
		count := n / callers
		if i < n%callers {
			count++
		}
		wg.Go(func() {
			req := benchRequest()
			for range count {
				_, err := client.CancelFileBatch(context.Background(), req)
				if err != nil {
					mu.Lock()
					failed++
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return failed, first
}

// newBenchServer returns the service configured as cmd/server configures
// it by default, with the fake upstream's key as the server's key.
func newBenchServer(b *testing.B, upstreamURL string) *service.Server {
	b.Helper()
	client := newBenchUpstream(b, upstreamURL)
	svc, err := service.New(service.Config{
		Upstream:      client,
		APIKey:        fakeupstream.DefaultAPIKey,
		MaxConcurrent: 1024,
		QueueTimeout:  time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	return svc
}

func newBenchUpstream(b *testing.B, upstreamURL string) *upstream.Client {
	b.Helper()
	client, err := upstream.New(upstream.Config{
		BaseURL:   upstreamURL,
		UserAgent: "filebatch/bench",
		Retry:     upstream.DefaultRetryPolicy(),
	})
	if err != nil {
		b.Fatal(err)
	}
	return client
}

// startBenchGRPC serves svc over gRPC on a loopback port until b ends, with
// the options that cmd/server sets, and returns the address.
func startBenchGRPC(b *testing.B, svc *service.Server) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	server := grpc.NewServer(grpc.MaxRecvMsgSize(64 << 10))
	filebatchv1.RegisterFileBatchServiceServer(server, svc)
	go func() { _ = server.Serve(l) }()
	b.Cleanup(server.Stop)
	return l.Addr().String()
}

// BenchmarkCancelFileBatch measures one cancel call on the service side,
// with the upstream round trip over HTTP to the fast fake upstream in the
// helper process:
//
//   - handler: the handler method called directly, as the REST façade
//     calls it, so only the service and its upstream client count;
//   - grpc: a call from the helper's gRPC client, one at a time, so the
//     gRPC server transport counts too;
//   - grpc-16: the same with 16 calls in flight, for throughput.
func BenchmarkCancelFileBatch(b *testing.B) {
	b.Run("handler", func(b *testing.B) {
		helper := startBenchHelper(b)
		svc := newBenchServer(b, helper.fakeURL)
		// The REST façade gives the handler a transport stream in the
		// context, so the response header metadata is built as in a call.
		ctx := grpc.NewContextWithServerTransportStream(context.Background(), discardStream{})
		req := benchRequest()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := svc.CancelFileBatch(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, callers := range []int{1, 16} {
		name := "grpc"
		if callers > 1 {
			name += "-" + strconv.Itoa(callers)
		}
		b.Run(name, func(b *testing.B) {
			helper := startBenchHelper(b)
			addr := startBenchGRPC(b, newBenchServer(b, helper.fakeURL))
			if reply := helper.command(b, "dial "+addr); reply != "ok" {
				b.Fatalf("dial: helper replied %q", reply)
			}
			// Warm up the connections, so that dialling does not count.
			if reply := helper.command(b, fmt.Sprintf("call %d %d", 4*callers, callers)); reply != "done 0" {
				b.Fatalf("warm-up: helper replied %q", reply)
			}
			b.ReportAllocs()
			b.ResetTimer()
			reply := helper.command(b, fmt.Sprintf("call %d %d", b.N, callers))
			b.StopTimer()
			if reply != "done 0" {
				b.Fatalf("calls failed: helper replied %q", reply)
			}
		})
	}
}

// discardStream is a grpc.ServerTransportStream that drops the metadata it
// is given, as a stand-in for a call's stream.
type discardStream struct{}

func (discardStream) Method() string               { return "/filebatch.v1.FileBatchService/CancelFileBatch" }
func (discardStream) SetHeader(metadata.MD) error  { return nil }
func (discardStream) SendHeader(metadata.MD) error { return nil }
func (discardStream) SetTrailer(metadata.MD) error { return nil }

// BenchmarkUpstreamCancelFileBatch measures the upstream client alone: one
// REST round trip to the fast fake upstream and the decoding of its batch.
func BenchmarkUpstreamCancelFileBatch(b *testing.B) {
	helper := startBenchHelper(b)
	client := newBenchUpstream(b, helper.fakeURL)
	ctx := context.Background()
	creds := upstream.Credentials{APIKey: fakeupstream.DefaultAPIKey}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := client.CancelFileBatch(ctx, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress, creds); err != nil {
			b.Fatal(err)
		}
	}
}

// benchBatchBody is a file batch as the OpenAI API sends it, with the
// fields in the documented order.
const benchBatchBody = `{"id":"vsfb_abc123","object":"vector_store.files_batch","created_at":1699061776,` +
	`"vector_store_id":"vs_abc123","status":"cancelled",` +
	`"file_counts":{"in_progress":0,"completed":5,"failed":1,"cancelled":3,"total":9}}`

// BenchmarkDecodeFileBatch measures the decoding of one batch body, the
// part of the upstream call that does not depend on the network.
func BenchmarkDecodeFileBatch(b *testing.B) {
	data := []byte(benchBatchBody)
	var batch upstream.FileBatch
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := upstream.DecodeFileBatch(data, &batch); err != nil {
			b.Fatal(err)
		}
	}
}
