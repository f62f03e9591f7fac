// Command proxy is the baseline of the benchmarks: a bare
// net/http/httputil.ReverseProxy hop in front of the fake upstream, which
// forwards every request unchanged. The load test compares the service's
// gRPC and REST paths with it, to show what the service costs beyond one
// plain HTTP hop.
//
// Usage:
//
//	proxy -upstream http://127.0.0.1:8081 [-addr 127.0.0.1:0] [-max-idle-conns-per-host 256]
//
// It logs "proxy listening" with the bound address on stderr and stops on
// SIGINT or SIGTERM. Both addresses must be on loopback.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"example.com/filebatch/fakeupstream"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(os.Args[1:], logger); err != nil {
		fmt.Fprintln(os.Stderr, "proxy:", err)
		os.Exit(1)
	}
}

func run(args []string, logger *slog.Logger) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "loopback `address` to listen on")
	upstreamURL := fs.String("upstream", "", "loopback `URL` of the upstream, such as http://127.0.0.1:8081")
	idlePerHost := fs.Int("max-idle-conns-per-host", 256,
		"idle upstream connections kept open; size it at least to the number of concurrent callers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	target, err := url.Parse(*upstreamURL)
	if err != nil || target.Scheme != "http" || target.Host == "" {
		return fmt.Errorf("invalid -upstream %q: want an http URL such as http://127.0.0.1:8081", *upstreamURL)
	}
	if err := fakeupstream.CheckLoopback(target.Host); err != nil {
		return fmt.Errorf("invalid -upstream %q: %w", *upstreamURL, err)
	}
	if err := fakeupstream.CheckLoopback(*addr); err != nil {
		return fmt.Errorf("invalid -addr %q: %w", *addr, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	server := &http.Server{
		Handler:           newProxy(target, *idlePerHost, logger),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("proxy listening", "addr", l.Addr().String(), "upstream", target.String())
	errc := make(chan error, 1)
	go func() { errc <- server.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// newProxy returns a ReverseProxy configured as a careful operator would
// for one upstream under load: a pooled transport that keeps idlePerHost
// connections, and a buffer pool so that copying a body does not allocate
// 32 KiB per request.
func newProxy(target *url.URL, idlePerHost int, logger *slog.Logger) *httputil.ReverseProxy {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = idlePerHost
	transport.MaxIdleConnsPerHost = idlePerHost
	transport.IdleConnTimeout = 90 * time.Second
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
		},
		Transport:  transport,
		BufferPool: newBufferPool(),
		ErrorLog:   slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// bufferPool is an httputil.BufferPool of 32 KiB buffers.
type bufferPool struct{ pool sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any {
		b := make([]byte, 32<<10)
		return &b
	}}}
}

func (p *bufferPool) Get() []byte { return *p.pool.Get().(*[]byte) }

func (p *bufferPool) Put(b []byte) { p.pool.Put(&b) }
