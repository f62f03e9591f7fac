package upstream_test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"example.com/filebatch/upstream"
)

// newCountingServer starts a loopback server that responds with batchJSON
// and counts the connections clients open to it.
func newCountingServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var newConns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, batchJSON)
	}))
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			newConns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &newConns
}

func TestNewTransportKeepsConnectionsAlive(t *testing.T) {
	const (
		concurrency = 32
		rounds      = 4
	)
	tests := []struct {
		name   string
		client func() *http.Client
	}{
		{name: "default HTTP client", client: func() *http.Client { return nil }},
		{name: "NewTransport", client: func() *http.Client { return &http.Client{Transport: upstream.NewTransport()} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, newConns := newCountingServer(t)
			client := newClient(t, srv.URL+"/v1", upstream.Config{HTTPClient: tt.client()})

			for round := range rounds {
				var wg sync.WaitGroup
				errs := make(chan error, concurrency)
				for range concurrency {
					wg.Go(func() {
						batch, _, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", testCreds)
						switch {
						case err != nil:
							errs <- err
						case *batch != wantBatch:
							errs <- fmt.Errorf("CancelFileBatch() = %+v, want %+v", *batch, wantBatch)
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Errorf("round %d: %v", round, err)
				}
			}
			// Each call opens at most one connection, and calls of later
			// rounds reuse the idle ones.
			if got := newConns.Load(); got > concurrency {
				t.Errorf("server saw %d new connections for %d rounds of %d concurrent calls, want at most %d",
					got, rounds, concurrency, concurrency)
			}
		})
	}
}

// TestClientConcurrentMixedResponses runs calls with different outcomes on
// one client at once, so that the race detector can see shared state.
func TestClientConcurrentMixedResponses(t *testing.T) {
	var attempts atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/vector_stores/{vs}/file_batches/{batch}/cancel", func(w http.ResponseWriter, r *http.Request) {
		n := attempts.Add(1)
		w.Header().Set("X-Request-Id", fmt.Sprintf("req_%d", n))
		w.Header().Set("Retry-After-Ms", "1")
		switch r.PathValue("batch") {
		case "ok":
			writeJSON(w, http.StatusOK, batchJSON)
		case "busy":
			writeJSON(w, http.StatusServiceUnavailable, `{"error":{"message":"busy","type":"server_error"}}`)
		case "missing":
			writeJSON(w, http.StatusNotFound, `{"error":{"message":"no such batch","type":"invalid_request_error","param":"batch_id","code":null}}`)
		case "html":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte("<html>\n\x00bad gateway\n</html>"))
		default:
			writeJSON(w, http.StatusOK, `{"foo":1}`)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	var retries atomic.Int32
	client := newClient(t, srv.URL+"/v1", upstream.Config{
		Retry:   fastRetry(1),
		OnRetry: func(upstream.RetryEvent) { retries.Add(1) },
	})
	batches := []string{"ok", "busy", "missing", "html", "invalid"}
	var wg sync.WaitGroup
	for i := range 40 {
		batchID := batches[i%len(batches)]
		wg.Go(func() {
			batch, meta, err := client.CancelFileBatch(t.Context(), "vs_1", batchID, testCreds)
			var statusErr *upstream.Error
			switch {
			case batchID == "ok" && (err != nil || *batch != wantBatch):
				t.Errorf("CancelFileBatch(%q) = %+v, %v, want %+v", batchID, batch, err, wantBatch)
			case batchID != "ok" && !errors.As(err, &statusErr):
				t.Errorf("CancelFileBatch(%q) error = %v, want an *upstream.Error", batchID, err)
			case meta.RequestID == "":
				t.Errorf("CancelFileBatch(%q) Meta.RequestID is empty", batchID)
			}
		})
	}
	wg.Wait()
	// The 8 calls to "busy" and the 8 to "html" are retried once each.
	if got := retries.Load(); got != 16 {
		t.Errorf("OnRetry called %d times, want 16", got)
	}
}
