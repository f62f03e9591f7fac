package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"example.com/filebatch/service"
	"example.com/filebatch/upstream"
)

// unaryInterceptor recovers from panics and logs one line per call with the
// upstream request id. It never logs metadata or payloads, which can hold
// keys.
func unaryInterceptor(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		ctx, call := service.NewCallInfo(ctx)
		defer func() {
			if p := recover(); p != nil {
				logger.Error("panic in gRPC handler", "rpc.method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
			code := status.Code(err)
			level := slog.LevelInfo
			if isServerError(code) {
				level = slog.LevelError
			}
			logger.LogAttrs(ctx, level, "grpc call",
				slog.String("rpc.method", info.FullMethod),
				slog.String("code", code.String()),
				slog.Duration("duration", time.Since(start)),
				slog.String("request_id", call.RequestID),
				slog.Int("upstream.status", call.UpstreamStatus),
				slog.Int("attempts", call.Attempts),
				slog.String("upstream.error", call.UpstreamError),
			)
		}()
		return handler(ctx, req)
	}
}

// isServerError reports whether code means the service or the upstream
// failed, rather than the caller.
func isServerError(code codes.Code) bool {
	switch code {
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unavailable, codes.Unimplemented:
		return true
	}
	return false
}

// logRetry returns the upstream client's retry hook.
func logRetry(logger *slog.Logger) func(upstream.RetryEvent) {
	return func(event upstream.RetryEvent) {
		logger.Warn("retrying upstream call",
			"attempt", event.Attempt,
			"reason", event.Reason,
			"delay", event.Delay,
			"request_id", event.RequestID,
		)
	}
}
