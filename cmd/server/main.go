// Command server runs the filebatch service: FileBatchService over gRPC and
// the same call over an OpenAI-shaped REST façade, in front of the OpenAI
// REST API.
//
// Every flag can also be set by the environment variable its help names.
// The API key is read from OPENAI_API_KEY only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
)

// version is reported in the upstream User-Agent header.
var version = "0.1.0"

func main() {
	err := mainErr(os.Args[1:], os.Getenv, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		// The flag package has printed the usage.
	case err != nil:
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func mainErr(args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv)
	if err != nil {
		return err
	}
	logger, err := newLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	grpcListener, err := net.Listen("tcp", cfg.grpcAddr)
	if err != nil {
		return fmt.Errorf("listen for gRPC: %w", err)
	}
	httpListener, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		grpcListener.Close()
		return fmt.Errorf("listen for HTTP: %w", err)
	}
	return run(ctx, cfg, logger, grpcListener, httpListener)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid -log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("invalid -log-format %q: want json or text", format)
	}
}
