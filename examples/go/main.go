// Command example cancels a vector store file batch through FileBatchService
// and prints the batch, or the error and its details, as JSON on stdout.
//
// Usage:
//
//	go run ./examples/go [-addr host:port] [-timeout 10s] -vector-store ID -batch ID
//
// The connection is plaintext. When FILEBATCH_TOKEN is set, the call carries
// "authorization: Bearer $FILEBATCH_TOKEN". Depending on the server's
// credential mode, the token is a service token or an OpenAI API key.
//
// The exit status is 0 when the call succeeds, 1 when it fails and 2 for
// invalid arguments. The TypeScript and Python examples beside this one
// print the same JSON document.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	filebatchv1 "example.com/filebatch/gen/filebatch/v1"
)

// output is the JSON document printed on stdout. Exactly one of Batch and
// Error is set.
type output struct {
	Batch *batchOutput `json:"batch,omitempty"`
	Error *errorOutput `json:"error,omitempty"`
	// XRequestID is the upstream's request id from the "x-request-id"
	// response metadata, or "" when the server sent none.
	XRequestID string `json:"x_request_id"`
}

type batchOutput struct {
	ID            string           `json:"id"`
	Object        string           `json:"object"`
	CreatedAt     int64            `json:"created_at"`
	VectorStoreID string           `json:"vector_store_id"`
	Status        string           `json:"status"`
	StatusRaw     string           `json:"status_raw"`
	FileCounts    fileCountsOutput `json:"file_counts"`
}

type fileCountsOutput struct {
	InProgress int64 `json:"in_progress"`
	Completed  int64 `json:"completed"`
	Failed     int64 `json:"failed"`
	Cancelled  int64 `json:"cancelled"`
	Total      int64 `json:"total"`
}

// errorOutput holds the status code and message, the google.rpc.ErrorInfo
// fields, and the request id of google.rpc.RequestInfo. Fields of a detail
// that the status lacks are empty.
type errorOutput struct {
	Code      string            `json:"code"`
	Message   string            `json:"message"`
	Reason    string            `json:"reason"`
	Domain    string            `json:"domain"`
	Metadata  map[string]string `json:"metadata"`
	RequestID string            `json:"request_id"`
}

func main() {
	addr := flag.String("addr", envOr("FILEBATCH_ADDR", "127.0.0.1:50051"),
		"server `address` as host:port, without TLS (env FILEBATCH_ADDR)")
	timeout := flag.Duration("timeout", 10*time.Second, "deadline of the call")
	vectorStoreID := flag.String("vector-store", "", "`ID` of the vector store, such as vs_abc123 (required)")
	batchID := flag.String("batch", "", "`ID` of the file batch to cancel, such as vsfb_abc123 (required)")
	flag.Parse()
	if *vectorStoreID == "" || *batchID == "" || flag.NArg() > 0 {
		fmt.Fprintln(flag.CommandLine.Output(), "example: -vector-store and -batch are required, and no other argument is accepted")
		flag.Usage()
		os.Exit(2)
	}

	out, err := cancel(*addr, *timeout, *vectorStoreID, *batchID, os.Getenv("FILEBATCH_TOKEN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "example: write output:", err)
		os.Exit(1)
	}
	if out.Error != nil {
		os.Exit(1)
	}
}

// cancel calls CancelFileBatch and converts the batch or the status error
// into an output. Its error is for failures before the call, such as an
// invalid address.
func cancel(addr string, timeout time.Duration, vectorStoreID, batchID, token string) (*output, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("create client for %q: %w", addr, err)
	}
	defer conn.Close()

	ctx, cancelCtx := context.WithTimeout(context.Background(), timeout)
	defer cancelCtx()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}

	var header, trailer metadata.MD
	client := filebatchv1.NewFileBatchServiceClient(conn)
	batch, err := client.CancelFileBatch(ctx,
		&filebatchv1.CancelFileBatchRequest{VectorStoreId: vectorStoreID, BatchId: batchID},
		grpc.Header(&header), grpc.Trailer(&trailer))

	// The trailer is the fallback for a server that sends x-request-id as
	// a trailer rather than as a header.
	out := &output{XRequestID: firstValue(header, "x-request-id")}
	if out.XRequestID == "" {
		out.XRequestID = firstValue(trailer, "x-request-id")
	}
	if err != nil {
		out.Error = describeError(err)
		return out, nil
	}
	out.Batch = describeBatch(batch)
	return out, nil
}

func describeBatch(b *filebatchv1.VectorStoreFileBatch) *batchOutput {
	counts := b.GetFileCounts()
	return &batchOutput{
		ID:            b.GetId(),
		Object:        b.GetObject(),
		CreatedAt:     b.GetCreatedAt(),
		VectorStoreID: b.GetVectorStoreId(),
		// String returns the enum value's name, or its number when this
		// build does not define it.
		Status:    b.GetStatus().String(),
		StatusRaw: b.GetStatusRaw(),
		FileCounts: fileCountsOutput{
			InProgress: counts.GetInProgress(),
			Completed:  counts.GetCompleted(),
			Failed:     counts.GetFailed(),
			Cancelled:  counts.GetCancelled(),
			Total:      counts.GetTotal(),
		},
	}
}

func describeError(err error) *errorOutput {
	st, ok := status.FromError(err)
	if !ok {
		// Client-side failures also arrive as status errors, so this only
		// guards against an error from elsewhere.
		return &errorOutput{Code: code.Code_UNKNOWN.String(), Message: err.Error(), Metadata: map[string]string{}}
	}
	out := &errorOutput{
		// google.rpc.Code spells the names as in the gRPC specification,
		// such as NOT_FOUND, while codes.Code.String returns "NotFound".
		Code:     code.Code(st.Code()).String(),
		Message:  st.Message(),
		Metadata: map[string]string{},
	}
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			out.Reason = d.GetReason()
			out.Domain = d.GetDomain()
			for key, value := range d.GetMetadata() {
				out.Metadata[key] = value
			}
		case *errdetails.RequestInfo:
			out.RequestID = d.GetRequestId()
		case error:
			// Details returns an error in place of a detail whose type
			// is not linked into the binary.
			fmt.Fprintln(os.Stderr, "example: skip status detail:", d)
		}
	}
	return out
}

func firstValue(md metadata.MD, key string) string {
	if values := md.Get(key); len(values) > 0 {
		return values[0]
	}
	return ""
}

func envOr(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}
