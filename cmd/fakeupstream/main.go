// Command fakeupstream serves a fake of the OpenAI call
// POST /v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel
// on a loopback address, for the demo and the benchmarks. Package
// example.com/filebatch/fakeupstream describes its responses and its
// seeded batches.
//
// Usage:
//
//	fakeupstream [-addr 127.0.0.1:8081] [-api-key KEY] [-fast] [-delay 0s] [-stats-addr ADDR]
//
// The accepted API key comes from -api-key, else from OPENAI_API_KEY, else
// it is "sk-fake-key". The program stops on SIGINT or SIGTERM.
//
// With -stats-addr, a second loopback listener serves GET /stats, whose
// JSON body {"connections_opened": N} counts the TCP connections that the
// API listener accepted. The benchmarks read it to count the connections
// that the server opens to its upstream.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"example.com/filebatch/fakeupstream"
)

// shutdownTimeout bounds the wait for running requests on stop.
const shutdownTimeout = 5 * time.Second

type config struct {
	addr      string
	apiKey    string
	keySource string // "flag", "env" or "default", logged in place of the key
	fast      bool
	delay     time.Duration
	statsAddr string // empty means no stats listener
}

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakeupstream:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, logger); err != nil {
		logger.Error("fake upstream failed", "err", err)
		stop()
		os.Exit(1)
	}
}

func parseConfig(args []string, getenv func(string) string, output io.Writer) (config, error) {
	fs := flag.NewFlagSet("fakeupstream", flag.ContinueOnError)
	fs.SetOutput(output)
	cfg := config{}
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8081",
		"`address` to listen on; the host must be a loopback IP address or localhost")
	fs.StringVar(&cfg.apiKey, "api-key", "",
		"the only API `key` accepted (default $OPENAI_API_KEY, else "+fakeupstream.DefaultAPIKey+")")
	fs.BoolVar(&cfg.fast, "fast", false,
		"benchmark mode: no state, no key check beyond its presence, one fixed batch for every request")
	fs.DurationVar(&cfg.delay, "delay", 0,
		"`duration` to wait before every response, such as 200ms")
	fs.StringVar(&cfg.statsAddr, "stats-addr", "",
		"loopback `address` of a listener that serves GET /stats with the connection count; empty means none")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q: the program takes flags only", fs.Arg(0))
	}
	if cfg.delay < 0 {
		return config{}, fmt.Errorf("invalid -delay %s: want zero or more", cfg.delay)
	}
	switch {
	case cfg.apiKey != "":
		cfg.keySource = "flag"
	case getenv("OPENAI_API_KEY") != "":
		cfg.apiKey, cfg.keySource = getenv("OPENAI_API_KEY"), "env"
	default:
		cfg.apiKey, cfg.keySource = fakeupstream.DefaultAPIKey, "default"
	}
	return cfg, nil
}

// run serves until ctx is done, then stops the server.
func run(ctx context.Context, cfg config, logger *slog.Logger) error {
	srv, err := start(cfg)
	if err != nil {
		return err
	}
	logger.Info("fake upstream listening",
		"addr", srv.Addr(), "url", srv.URL(), "api_key_source", cfg.keySource,
		"fast", cfg.fast, "delay", cfg.delay)
	if cfg.statsAddr != "" {
		if _, err := startStats(ctx, cfg.statsAddr, srv, logger); err != nil {
			_ = srv.Close()
			return err
		}
	}
	return stopOnDone(ctx, srv, logger)
}

func start(cfg config) (*fakeupstream.Server, error) {
	srv := fakeupstream.New(fakeupstream.Options{APIKey: cfg.apiKey, Fast: cfg.fast, Delay: cfg.delay})
	if err := srv.Start(cfg.addr); err != nil {
		return nil, err
	}
	return srv, nil
}

// stopOnDone waits for ctx, then shuts srv down, closing it when running
// requests outlast shutdownTimeout.
func stopOnDone(ctx context.Context, srv *fakeupstream.Server, logger *slog.Logger) error {
	<-ctx.Done()
	logger.Info("fake upstream stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shut down: %w", err)
	}
	logger.Info("fake upstream stopped")
	return nil
}
