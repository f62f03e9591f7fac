package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	filebatchv1 "example.com/filebatch/gen/filebatch/v1"
)

// The batch that every call cancels. The fake upstream in fast mode
// answers any ID with the same cancelled batch.
const (
	benchVectorStore = "vs_abc123"
	benchBatch       = "vsfb_abc123"
	cancelPath       = "/v1/vector_stores/" + benchVectorStore + "/file_batches/" + benchBatch + "/cancel"
)

// path is one way of making the cancel call, measured as a column of the
// report.
type path struct {
	name        string
	description string
	// newCall returns the function that one caller invokes in a loop.
	// Each call returns nil only for a successful cancel.
	newCall func(ctx context.Context) func() error
	close   func()
}

// newHTTPTransport returns the client transport of every HTTP path: a
// transport that keeps an idle connection per caller, so that no path pays
// for new connections, and sends no Accept-Encoding header.
func newHTTPTransport(maxCallers int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = maxCallers
	t.MaxIdleConnsPerHost = maxCallers
	t.DisableCompression = true
	t.IdleConnTimeout = 90 * time.Second
	return t
}

// newHTTPPath returns a path that POSTs the cancel request to baseURL. Each
// caller reuses one request, sent by the transport's RoundTrip, and reads
// each response body to the end so that its connection is reused.
// authorization, when not empty, is sent as the Authorization header.
func newHTTPPath(name, description, baseURL, authorization string, maxCallers int) *path {
	transport := newHTTPTransport(maxCallers)
	return &path{
		name:        name,
		description: description,
		newCall: func(ctx context.Context) func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+cancelPath, nil)
			if err != nil {
				panic(err) // the URL is built from a logged address and a constant
			}
			if authorization != "" {
				req.Header.Set("Authorization", authorization)
			}
			return func() error { return roundTrip(transport, req) }
		},
		close: transport.CloseIdleConnections,
	}
}

var errShortBody = errors.New("response body is empty")

func roundTrip(transport *http.Transport, req *http.Request) error {
	resp, err := transport.RoundTrip(req)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if n == 0 {
		return errShortBody
	}
	return nil
}

// newGRPCPath returns a path that calls CancelFileBatch on the server at
// addr over conns client connections, each an HTTP/2 connection shared by
// its callers, with the default grpc-go client options.
func newGRPCPath(addr string, conns int) (*path, error) {
	clients := make([]filebatchv1.FileBatchServiceClient, 0, conns)
	var closers []*grpc.ClientConn
	for range conns {
		cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, fmt.Errorf("dial gRPC server: %w", err)
		}
		closers = append(closers, cc)
		clients = append(clients, filebatchv1.NewFileBatchServiceClient(cc))
	}
	next := 0
	return &path{
		name:        "grpc",
		description: "gRPC client → server (gRPC) → service → fake upstream",
		newCall: func(ctx context.Context) func() error {
			client := clients[next%len(clients)]
			next++
			req := &filebatchv1.CancelFileBatchRequest{VectorStoreId: benchVectorStore, BatchId: benchBatch}
			return func() error {
				batch, err := client.CancelFileBatch(ctx, req)
				if err != nil {
					return err
				}
				if batch.GetId() == "" {
					return errors.New("response has no batch id")
				}
				return nil
			}
		},
		close: func() {
			for _, cc := range closers {
				cc.Close()
			}
		},
	}, nil
}
