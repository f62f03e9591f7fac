package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"example.com/filebatch/fakeupstream"
)

func TestStatsCountsConnections(t *testing.T) {
	t.Parallel()
	srv := fakeupstream.NewTest(t, fakeupstream.Options{Fast: true})
	statsAddr, err := startStats(t.Context(), "127.0.0.1:0", srv, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}

	// Two clients with transports of their own open two API connections.
	for range 2 {
		client := &http.Client{Transport: &http.Transport{}}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
			srv.URL()+"/vector_stores/vs_abc123/file_batches/vsfb_abc123/cancel", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+fakeupstream.DefaultAPIKey)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		client.CloseIdleConnections()
	}

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+statsAddr+"/stats", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /stats status = %d, want 200", resp.StatusCode)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
	var stats statsResponse
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatalf("decode stats: %v", err)
	}
	if stats.ConnectionsOpened != 2 {
		t.Errorf("connections_opened = %d, want 2", stats.ConnectionsOpened)
	}
}

func TestStatsRejectsAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		addr string
	}{
		{name: "all interfaces", addr: "0.0.0.0:0"},
		{name: "empty host", addr: ":0"},
		{name: "host name", addr: "example.com:0"},
		{name: "no port", addr: "127.0.0.1"},
	}
	srv := fakeupstream.New(fakeupstream.Options{Fast: true})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if addr, err := startStats(t.Context(), tt.addr, srv, slog.New(slog.DiscardHandler)); err == nil {
				t.Errorf("startStats(%q) listens on %s, want an error", tt.addr, addr)
			}
		})
	}
}

func TestParseConfigStatsAddr(t *testing.T) {
	t.Parallel()
	cfg, err := parseConfig([]string{"-stats-addr", "127.0.0.1:0"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.statsAddr != "127.0.0.1:0" {
		t.Errorf("statsAddr = %q, want 127.0.0.1:0", cfg.statsAddr)
	}
}
