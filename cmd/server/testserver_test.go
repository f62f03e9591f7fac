package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
)

// testServer is a server started by startServer.
type testServer struct {
	grpcAddr string
	httpAddr string
	// apiRoot is the façade's API root, such as "http://127.0.0.1:PORT/v1".
	apiRoot string
	// logs holds everything the server logged, as JSON lines.
	logs *syncBuffer
}

// startServer runs the server with the given flags on 127.0.0.1:0 listeners
// until the test ends. The environment is empty except for env, given as
// name, value pairs. Its logs go to the returned buffer and, at warning
// level and above, to the test output.
func startServer(t *testing.T, args []string, env ...string) testServer {
	t.Helper()
	vars := make(map[string]string, len(env)/2)
	for i := 0; i+1 < len(env); i += 2 {
		vars[env[i]] = env[i+1]
	}
	cfg, err := parseConfig(args, func(name string) string { return vars[name] })
	if err != nil {
		t.Fatalf("parse config %q: %v", args, err)
	}
	return startServerConfig(t, cfg)
}

// startServerConfig runs the server with cfg as startServer does, without
// the checks of parseConfig.
func startServerConfig(t *testing.T, cfg config) testServer {
	t.Helper()
	grpcListener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for gRPC: %v", err)
	}
	httpListener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		grpcListener.Close()
		t.Fatalf("listen for HTTP: %v", err)
	}
	logs := new(syncBuffer)
	logger := slog.New(teeHandler{
		slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
		slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}),
	})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, logger, grpcListener, httpListener) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	// The listeners are open, so clients can connect before Serve starts.
	return testServer{
		grpcAddr: grpcListener.Addr().String(),
		httpAddr: httpListener.Addr().String(),
		apiRoot:  "http://" + httpListener.Addr().String() + "/v1",
		logs:     logs,
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// teeHandler sends each record to two handlers.
type teeHandler [2]slog.Handler

func (h teeHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h[0].Enabled(ctx, level) || h[1].Enabled(ctx, level)
}

func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	for _, handler := range h {
		if handler.Enabled(ctx, r.Level) {
			if err := handler.Handle(ctx, r.Clone()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (h teeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return teeHandler{h[0].WithAttrs(attrs), h[1].WithAttrs(attrs)}
}

func (h teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{h[0].WithGroup(name), h[1].WithGroup(name)}
}
