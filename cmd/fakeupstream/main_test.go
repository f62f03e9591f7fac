package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"example.com/filebatch/fakeupstream"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantKey    string
		wantSource string
		wantAddr   string
		wantDelay  time.Duration
		wantErr    bool
	}{
		{name: "defaults", wantKey: fakeupstream.DefaultAPIKey, wantSource: "default", wantAddr: "127.0.0.1:8081"},
		{name: "key from env", env: map[string]string{"OPENAI_API_KEY": "sk-env"}, wantKey: "sk-env", wantSource: "env", wantAddr: "127.0.0.1:8081"},
		{
			name:       "flag beats env",
			args:       []string{"-api-key", "sk-flag", "-addr", "127.0.0.1:0", "-delay", "250ms"},
			env:        map[string]string{"OPENAI_API_KEY": "sk-env"},
			wantKey:    "sk-flag",
			wantSource: "flag",
			wantAddr:   "127.0.0.1:0",
			wantDelay:  250 * time.Millisecond,
		},
		{name: "negative delay", args: []string{"-delay", "-1s"}, wantErr: true},
		{name: "positional argument", args: []string{"extra"}, wantErr: true},
		{name: "unknown flag", args: []string{"-port", "1"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr {
				if err == nil {
					t.Errorf("parseConfig(%q) = nil error, want one", tt.args)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConfig(%q) = %v", tt.args, err)
			}
			if cfg.apiKey != tt.wantKey || cfg.keySource != tt.wantSource {
				t.Errorf("key = %q from %q, want %q from %q", cfg.apiKey, cfg.keySource, tt.wantKey, tt.wantSource)
			}
			if cfg.addr != tt.wantAddr {
				t.Errorf("addr = %q, want %q", cfg.addr, tt.wantAddr)
			}
			if cfg.delay != tt.wantDelay {
				t.Errorf("delay = %s, want %s", cfg.delay, tt.wantDelay)
			}
		})
	}
}

func TestServeAndStop(t *testing.T) {
	t.Parallel()
	cfg := config{addr: "127.0.0.1:0", apiKey: "sk-secret-test", keySource: "flag"}
	srv, err := start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
		srv.URL()+"/vector_stores/vs_abc123/file_batches/vsfb_abc123/cancel", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer sk-secret-test")
	client := &http.Client{Transport: &http.Transport{}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}

	var logs bytes.Buffer
	ctx, stop := context.WithCancel(t.Context())
	stop()
	if err := stopOnDone(ctx, srv, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Errorf("stopOnDone() = %v", err)
	}
	if !strings.Contains(logs.String(), "fake upstream stopped") {
		t.Errorf("logs = %q, want a stop line", logs.String())
	}
	if _, err := client.Do(req.Clone(t.Context())); err == nil {
		t.Error("request after stop succeeded, want a refused connection")
	}
}

func TestRunLogsNoKey(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	ctx, stop := context.WithCancel(t.Context())
	stop()
	cfg := config{addr: "127.0.0.1:0", apiKey: "sk-secret-test", keySource: "flag"}
	if err := run(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatalf("run() = %v", err)
	}
	if !strings.Contains(logs.String(), `msg="fake upstream listening"`) || !strings.Contains(logs.String(), "url=http://127.0.0.1:") {
		t.Errorf("logs = %q, want a start line with the URL", logs.String())
	}
	if strings.Contains(logs.String(), "sk-secret") {
		t.Errorf("logs = %q, contain the API key", logs.String())
	}
}
