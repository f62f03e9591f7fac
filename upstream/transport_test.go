package upstream_test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"example.com/filebatch/upstream"
)

// roundTimeout bounds how long the server of
// TestNewTransportKeepsConnectionsAlive holds a request while it waits for
// the other calls of the same round.
const roundTimeout = 10 * time.Second

// newRoundServer starts a loopback server that responds with batchJSON and
// counts the connections clients open to it. It holds each request until
// callsPerRound requests of the same round have arrived, so that every call
// of a round is in flight at once and needs a connection of its own.
//
// Without that hold, a call that has started a dial can take the connection
// of a call that has just finished. Its dial still completes, and the new
// connection joins the idle pool after the round has ended. A call of the
// next round may then find no idle connection and dial again, so the count
// would depend on goroutine scheduling.
func newRoundServer(t *testing.T, callsPerRound, rounds int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var newConns, arrivals atomic.Int32
	released := make([]chan struct{}, rounds)
	for i := range released {
		released[i] = make(chan struct{})
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(arrivals.Add(1))
		round := (n - 1) / callsPerRound
		if round >= rounds {
			http.Error(w, fmt.Sprintf("request %d exceeds the %d rounds of %d calls", n, rounds, callsPerRound), http.StatusInternalServerError)
			return
		}
		if n%callsPerRound == 0 {
			close(released[round])
		}
		timer := time.NewTimer(roundTimeout)
		defer timer.Stop()
		select {
		case <-released[round]:
			writeJSON(w, http.StatusOK, batchJSON)
		case <-timer.C:
			http.Error(w, fmt.Sprintf("round %d: not all %d calls arrived within %v", round, callsPerRound, roundTimeout), http.StatusInternalServerError)
		case <-r.Context().Done():
		}
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
		name       string
		httpClient *http.Client
		// minConns and maxConns bound the connections that the server accepts.
		minConns, maxConns int
	}{
		{
			// Go's default transport keeps http.DefaultMaxIdleConnsPerHost
			// (2) idle connections per host and closes the others, so every
			// later round opens all but 2 of its connections anew.
			name:       "http.DefaultTransport clone",
			httpClient: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
			minConns:   concurrency + (rounds-1)*(concurrency-http.DefaultMaxIdleConnsPerHost),
			maxConns:   rounds * concurrency,
		},
		{
			// The first round opens one connection per call, and later
			// rounds reuse them all.
			name:       "NewTransport",
			httpClient: &http.Client{Transport: upstream.NewTransport()},
			minConns:   concurrency,
			maxConns:   concurrency,
		},
		{
			// A nil Config.HTTPClient makes New use NewTransport.
			name:       "nil Config.HTTPClient",
			httpClient: nil,
			minConns:   concurrency,
			maxConns:   concurrency,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, newConns := newRoundServer(t, concurrency, rounds)
			client := newClient(t, srv.URL+"/v1", upstream.Config{HTTPClient: tt.httpClient})

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
			got := newConns.Load()
			if got < int32(tt.minConns) {
				t.Errorf("server saw %d new connections for %d rounds of %d concurrent calls, want at least %d",
					got, rounds, concurrency, tt.minConns)
			}
			if got > int32(tt.maxConns) {
				t.Errorf("server saw %d new connections for %d rounds of %d concurrent calls, want at most %d",
					got, rounds, concurrency, tt.maxConns)
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

// TestNewTransportReadsLongAnswers checks that NewTransport's small
// connection buffers still read answers whose header lines and bodies are
// longer than the buffers.
func TestNewTransportReadsLongAnswers(t *testing.T) {
	longValue := strings.Repeat("r", 16<<10)
	longMessage := strings.Repeat("m", 64<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", longValue)
		writeJSON(w, http.StatusNotFound, `{"error":{"message":"`+longMessage+`","type":"invalid_request_error"}}`)
	}))
	t.Cleanup(srv.Close)
	client := newClient(t, srv.URL+"/v1", upstream.Config{})

	_, meta, err := client.CancelFileBatch(t.Context(), "vs_1", "vsfb_1", upstream.Credentials{})
	var statusErr *upstream.Error
	if !errors.As(err, &statusErr) {
		t.Fatalf("CancelFileBatch() error = %v, want an *upstream.Error", err)
	}
	if statusErr.StatusCode != http.StatusNotFound {
		t.Errorf("StatusCode = %d, want %d", statusErr.StatusCode, http.StatusNotFound)
	}
	if statusErr.Message != longMessage {
		t.Errorf("Message has %d bytes, want the %d bytes sent", len(statusErr.Message), len(longMessage))
	}
	if meta.RequestID != longValue {
		t.Errorf("RequestID has %d bytes, want the %d bytes sent", len(meta.RequestID), len(longValue))
	}
}
