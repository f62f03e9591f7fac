package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"example.com/filebatch/fakeupstream"
)

// statsResponse is the body of GET /stats on the -stats-addr listener.
type statsResponse struct {
	// ConnectionsOpened is the number of TCP connections that the fake
	// upstream accepted since it started.
	ConnectionsOpened int64 `json:"connections_opened"`
}

// startStats serves GET /stats, the counters of srv as a JSON
// [statsResponse], on a listener of its own, so that the API listener keeps
// answering every path as the fake API does. The host of addr must be a
// loopback IP address or localhost. The listener closes when ctx is done.
// startStats returns the address that it listens on.
func startStats(ctx context.Context, addr string, srv *fakeupstream.Server, logger *slog.Logger) (string, error) {
	if err := fakeupstream.CheckLoopback(addr); err != nil {
		return "", fmt.Errorf("listen for stats on %q: %w", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("listen for stats on %q: %w", addr, err)
	}
	if tcp, ok := l.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		l.Close()
		return "", fmt.Errorf("listen for stats on %q: bound address %s is not a loopback address", addr, l.Addr())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(statsResponse{ConnectionsOpened: srv.ConnectionsOpened()})
	})
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := server.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("stats listener failed", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		server.Close()
	}()
	logger.Info("fake upstream stats listening", "stats_addr", l.Addr().String())
	return l.Addr().String(), nil
}
