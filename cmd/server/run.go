package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"example.com/filebatch/gateway"
	filebatchv1 "example.com/filebatch/gen/filebatch/v1"
	"example.com/filebatch/service"
	"example.com/filebatch/upstream"
)

// run serves gRPC on grpcListener and the REST façade on httpListener until
// ctx ends, then shuts down gracefully: health turns NOT_SERVING, new calls
// are refused, and in-flight calls get cfg.shutdownGrace to finish. Calls
// still running after that are cut off with a warning, and run still
// returns nil, because the shutdown was requested. It returns an error when
// the server cannot start or a listener fails. It closes both listeners.
func run(ctx context.Context, cfg config, logger *slog.Logger, grpcListener, httpListener net.Listener) error {
	defer grpcListener.Close()
	defer httpListener.Close()

	svc, err := newService(cfg, logger)
	if err != nil {
		return err
	}
	tlsConfig, err := loadTLS(cfg)
	if err != nil {
		return err
	}

	grpcOptions := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unaryInterceptor(logger)),
		grpc.MaxRecvMsgSize(cfg.maxRequestBytes),
		grpc.MaxHeaderListSize(uint32(min(cfg.maxRequestBytes, math.MaxUint32))),
	}
	if tlsConfig != nil {
		grpcOptions = append(grpcOptions, grpc.Creds(credentials.NewTLS(tlsConfig)))
	}
	grpcServer := grpc.NewServer(grpcOptions...)
	filebatchv1.RegisterFileBatchServiceServer(grpcServer, svc)
	healthServer := newHealthService()
	healthServer.SetServingStatus(filebatchv1.FileBatchService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(grpcServer, healthServer)
	reflection.Register(grpcServer)

	facade, err := gateway.New(svc, gateway.Options{Logger: logger, MaxRequestBytes: int64(cfg.maxRequestBytes)})
	if err != nil {
		return fmt.Errorf("build REST façade: %w", err)
	}
	httpServer := &http.Server{
		Handler:           facade,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    cfg.maxRequestBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if tlsConfig != nil {
		httpServer.TLSConfig = tlsConfig
		httpListener = tls.NewListener(httpListener, tlsConfig)
	}

	if cfg.apiKey == "" && cfg.credentialMode != service.PassThrough {
		logger.Warn("OPENAI_API_KEY is not set: calls that need the server's key will fail with Unauthenticated",
			"credentials", cfg.credentialMode.String())
	}
	logger.Info("server started",
		"grpc.addr", grpcListener.Addr().String(),
		"http.addr", httpListener.Addr().String(),
		"upstream", redactURL(cfg.upstreamURL),
		"credentials", cfg.credentialMode.String(),
		"tls", tlsConfig != nil,
		"version", version,
	)

	errc := make(chan error, 2)
	go func() { errc <- serveGRPC(grpcServer, grpcListener) }()
	go func() { errc <- serveHTTP(httpServer, httpListener) }()

	select {
	case <-ctx.Done():
		logger.Info("shutting down", "grace", cfg.shutdownGrace)
	case err = <-errc:
		logger.Error("listener failed, shutting down", "error", err)
	}
	shutdownErr := shutdown(cfg.shutdownGrace, logger, healthServer, grpcServer, httpServer)
	if err == nil {
		err = shutdownErr
	}
	logger.Info("server stopped")
	return err
}

func newService(cfg config, logger *slog.Logger) (*service.Server, error) {
	retry := upstream.DefaultRetryPolicy()
	retry.MaxRetries = cfg.maxRetries
	retry.MaxRetryAfter = cfg.maxRetryAfter
	client, err := upstream.New(upstream.Config{
		BaseURL:          cfg.upstreamURL,
		UserAgent:        "filebatch/" + version,
		MaxResponseBytes: cfg.maxResponseBytes,
		Retry:            retry,
		OnRetry:          logRetry(logger),
	})
	if err != nil {
		return nil, err
	}
	var tokens []string
	if cfg.serviceTokensFile != "" {
		if tokens, err = readTokens(cfg.serviceTokensFile); err != nil {
			return nil, err
		}
	}
	return service.New(service.Config{
		Upstream:       client,
		APIKey:         cfg.apiKey,
		Organization:   cfg.organization,
		Project:        cfg.project,
		Mode:           cfg.credentialMode,
		ServiceTokens:  tokens,
		MaxConcurrent:  cfg.maxConcurrent,
		QueueTimeout:   cfg.queueTimeout,
		DefaultTimeout: cfg.upstreamTimeout,
	})
}

func serveGRPC(server *grpc.Server, listener net.Listener) error {
	if err := server.Serve(listener); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve gRPC: %w", err)
	}
	return nil
}

func serveHTTP(server *http.Server, listener net.Listener) error {
	if err := server.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve HTTP: %w", err)
	}
	return nil
}

// shutdown stops both servers within grace. Health reports NOT_SERVING
// first, so load balancers stop sending calls, then both servers stop
// accepting and drain. Calls still running when grace ends are cut off and
// a warning is logged, but that is no error, because the shutdown was
// requested. Health.Watch streams end with the NOT_SERVING status, so that
// watchers do not hold up the drain. shutdown returns an error only when
// the HTTP server fails to close.
func shutdown(grace time.Duration, logger *slog.Logger, healthServer *healthService, grpcServer *grpc.Server, httpServer *http.Server) error {
	healthServer.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()

	httpDone := make(chan error, 1)
	go func() { httpDone <- httpServer.Shutdown(ctx) }()

	grpcDone := make(chan struct{})
	go func() {
		grpcServer.GracefulStop()
		close(grpcDone)
	}()
	cutOff := false
	select {
	case <-grpcDone:
	case <-ctx.Done():
		grpcServer.Stop()
		cutOff = true
	}

	httpErr := <-httpDone
	if errors.Is(httpErr, context.DeadlineExceeded) {
		// Shutdown leaves the connections of unfinished requests open, and
		// Close ends them.
		cutOff = true
		httpErr = httpServer.Close()
	}
	if cutOff {
		logger.Warn("shutdown grace period ended, cutting off calls in flight", "grace", grace)
	}
	if httpErr != nil {
		return fmt.Errorf("shut down HTTP server: %w", httpErr)
	}
	return nil
}

// loadTLS returns the listeners' TLS configuration, or nil when TLS is off.
func loadTLS(cfg config) (*tls.Config, error) {
	if cfg.tlsCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("load TLS key pair: %w", err)
	}
	tlsConfig := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if cfg.tlsClientCA != "" {
		pem, err := os.ReadFile(cfg.tlsClientCA)
		if err != nil {
			return nil, fmt.Errorf("read TLS client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read TLS client CA: %s contains no PEM certificate", cfg.tlsClientCA)
		}
		tlsConfig.ClientCAs = pool
		tlsConfig.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tlsConfig, nil
}
