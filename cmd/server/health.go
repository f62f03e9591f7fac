package main

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthService is grpc.health.v1.Health with Watch streams that end when
// the server shuts down. grpc-go's health.Server keeps a Watch stream open
// until its client closes it, and GracefulStop waits for every open
// stream. Without this, each watching client, such as a channel with
// client-side health checks, would hold up the shutdown for the whole
// grace period.
type healthService struct {
	*health.Server

	stopOnce sync.Once
	stopping chan struct{}
}

func newHealthService() *healthService {
	return &healthService{Server: health.NewServer(), stopping: make(chan struct{})}
}

// Shutdown sets every service to NOT_SERVING, sends that status to the
// watchers, and ends their Watch streams.
func (h *healthService) Shutdown() {
	h.Server.Shutdown()
	h.stopOnce.Do(func() { close(h.stopping) })
}

// Watch serves health.Server's Watch until the client leaves or the server
// shuts down. On shutdown it sends NOT_SERVING, which the health.Server may
// not have sent yet, and ends the stream with status OK.
func (h *healthService) Watch(req *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-h.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := h.Server.Watch(req, watchStream{ServerStreamingServer: stream, ctx: ctx})
	select {
	case <-h.stopping:
		return stream.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING})
	default:
		return err
	}
}

// watchStream is a Watch stream whose context also ends on shutdown.
type watchStream struct {
	grpc.ServerStreamingServer[healthpb.HealthCheckResponse]
	ctx context.Context
}

func (s watchStream) Context() context.Context { return s.ctx }
