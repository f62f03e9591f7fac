package fakeupstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
)

// Request is a request that the server received, as the client sent it.
type Request struct {
	Method string
	// Path is the escaped path as sent, such as
	// "/v1/vector_stores/vs_abc123/file_batches/vsfb_abc123/cancel".
	Path     string
	RawQuery string
	Host     string
	Header   http.Header
	// Body is the request body. A body that failed to read is kept up to
	// the failure.
	Body []byte

	end *requestEnd
}

// requestEnd is shared by every copy of one Request.
type requestEnd struct {
	done     chan struct{}
	canceled atomic.Bool
}

// Done returns a channel that is closed when the server's handler for the
// request has returned.
func (r Request) Done() <-chan struct{} { return r.end.done }

// Canceled reports whether the request's context was done when the handler
// returned, because the client closed the connection or gave up before the
// response was complete. It is false until [Request.Done] is closed. For a
// request cut short by [Server.Close] or [Server.Shutdown] it may be either.
func (r Request) Canceled() bool { return r.end.canceled.Load() }

// clone returns a copy that shares no map or slice with r, except the end
// state.
func (r Request) clone() Request {
	r.Header = r.Header.Clone()
	r.Body = append([]byte(nil), r.Body...)
	return r
}

// recorder keeps the received requests in order of arrival.
type recorder struct {
	mu       sync.Mutex
	requests []Request
	arrived  chan struct{} // closed and replaced on each arrival
}

func newRecorder() *recorder {
	return &recorder{arrived: make(chan struct{})}
}

// add records r, reading its body, and returns the function that marks the
// request as ended. Call it when the handler returns.
func (rec *recorder) add(r *http.Request) (finish func()) {
	body, _ := io.ReadAll(r.Body)
	req := Request{
		Method:   r.Method,
		Path:     requestPath(r),
		RawQuery: r.URL.RawQuery,
		Host:     r.Host,
		Header:   r.Header.Clone(),
		Body:     body,
		end:      &requestEnd{done: make(chan struct{})},
	}
	rec.mu.Lock()
	rec.requests = append(rec.requests, req)
	close(rec.arrived)
	rec.arrived = make(chan struct{})
	rec.mu.Unlock()

	ctx := r.Context()
	return func() {
		req.end.canceled.Store(ctx.Err() != nil)
		close(req.end.done)
	}
}

func (rec *recorder) snapshot() []Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := make([]Request, len(rec.requests))
	for i, r := range rec.requests {
		out[i] = r.clone()
	}
	return out
}

func (rec *recorder) reset() {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.requests = nil
}

// wait blocks until at least n requests were recorded.
func (rec *recorder) wait(ctx context.Context, n int) ([]Request, error) {
	for {
		rec.mu.Lock()
		count, arrived := len(rec.requests), rec.arrived
		rec.mu.Unlock()
		if count >= n {
			return rec.snapshot(), nil
		}
		select {
		case <-arrived:
		case <-ctx.Done():
			return nil, fmt.Errorf("fakeupstream: wait for %d requests (%d arrived): %w", n, count, ctx.Err())
		}
	}
}

// Requests returns a copy of the requests received so far, in order of
// arrival. A request is recorded when it arrives, before any delay or
// fault. A server in fast mode records nothing.
func (s *Server) Requests() []Request { return s.recorder.snapshot() }

// WaitRequests blocks until at least n requests have arrived and returns
// them as [Server.Requests] does, or returns the context's error. Use
// [Request.Done] to wait for a request to end.
func (s *Server) WaitRequests(ctx context.Context, n int) ([]Request, error) {
	return s.recorder.wait(ctx, n)
}
