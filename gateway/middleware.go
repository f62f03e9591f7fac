package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"

	"example.com/filebatch/service"
)

// statusClientClosedRequest is the status logged for a client that hung up
// before the response. The number is nginx's "client closed request".
const statusClientClosedRequest = 499

// maxLoggedPathBytes caps the http.path value of a log line, since the path
// of an unknown route is whatever the client sent.
const maxLoggedPathBytes = 256

// logMessage is the message of the line logged per request.
const logMessage = "http request"

// handler is the façade's http.Handler: the mux behind the body cap, panic
// recovery and the per-request log line.
type handler struct {
	mux             *runtime.ServeMux
	logger          *slog.Logger
	maxRequestBytes int64
	bodyReadTimeout time.Duration
}

// call is the state of one request: the response writer that records the
// status, and what the mux reports about the RPC. It is one allocation per
// request, and the mux's handlers find it in the request context.
type call struct {
	http.ResponseWriter
	status      int
	wroteHeader bool

	// rpcMethod is the full gRPC method name, empty when no route matched.
	rpcMethod string
	code      codes.Code
	hasCode   bool
}

type callKey struct{}

// callRecordFrom returns the call of the request context, or nil outside
// the handler.
func callRecordFrom(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	return c
}

// noteRPC records the RPC method of ctx and the status code of its result.
func (c *call) noteRPC(ctx context.Context, code codes.Code) {
	if method, ok := runtime.RPCMethod(ctx); ok {
		c.rpcMethod = method
	}
	c.code, c.hasCode = code, true
}

// WriteHeader records the status and sends it.
func (c *call) WriteHeader(status int) {
	if !c.wroteHeader {
		c.status, c.wroteHeader = status, true
	}
	c.ResponseWriter.WriteHeader(status)
}

// Write sends b, with status 200 if no status was sent.
func (c *call) Write(b []byte) (int, error) {
	if !c.wroteHeader {
		c.status, c.wroteHeader = http.StatusOK, true
	}
	return c.ResponseWriter.Write(b)
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (c *call) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// ServeHTTP serves r through the mux and logs one line when it is done. It
// creates the service.CallInfo that the service fills in, responds 413 to
// a body over the cap, and responds 500 when a handler panics.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx, info := service.NewCallInfo(r.Context())
	c := &call{ResponseWriter: w}
	ctx = context.WithValue(ctx, callKey{}, c)
	req := r.WithContext(ctx)
	req.Header = cleanRequestHeader(r.Header)

	defer func() {
		var repanic any
		if p := recover(); p != nil {
			repanic = h.recoverPanic(ctx, c, req, p)
		}
		h.logRequest(req, c, info, time.Since(start))
		if repanic != nil {
			panic(repanic)
		}
	}()

	if !h.discardBody(w, c, req) {
		return
	}
	h.mux.ServeHTTP(c, req)
}

// cleanRequestHeader returns h without the headers that the mux would act
// on but the OpenAI API ignores. Grpc-Timeout would set a deadline, or fail
// the call with 400 when malformed. TE: trailers would make the mux send the
// response chunked with no Content-Length. The header is copied only when one
// of them is present, since handlers must not change the request.
func cleanRequestHeader(h http.Header) http.Header {
	_, timeout := h["Grpc-Timeout"]
	_, te := h["Te"]
	if !timeout && !te {
		return h
	}
	h = h.Clone()
	delete(h, "Grpc-Timeout")
	delete(h, "Te")
	return h
}

// discardBody reads and drops the request body, which no route of the
// service uses, so that the connection can be reused. It responds 413 and
// returns false for a body over the cap, and 400 for a body that could not
// be read.
func (h *handler) discardBody(w http.ResponseWriter, c *call, r *http.Request) bool {
	if r.ContentLength > h.maxRequestBytes {
		writeAPIError(c, h.tooLarge(), nil)
		return false
	}
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	// The deadline is lifted once the whole body is read, because the
	// server's background read, which notices a client that hangs up during
	// the upstream call, would otherwise end the request when it passes.
	// After a failed read it stays, so that the server's own attempt to
	// drain the rest of the body before it closes the connection is bounded
	// too.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(h.bodyReadTimeout))
	// w rather than c, because http.MaxBytesReader signals the server through
	// the original writer to close the connection after an oversized body.
	_, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, h.maxRequestBytes))
	if err == nil {
		_ = rc.SetReadDeadline(time.Time{})
		return true
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		writeAPIError(c, h.tooLarge(), nil)
		return false
	}
	// Usually the client hung up while sending, and the log shows 499, or
	// the body did not arrive within bodyReadTimeout.
	writeAPIError(c, apiError{
		status:  http.StatusBadRequest,
		message: "The request body could not be read.",
		typ:     typeInvalidRequest,
	}, nil)
	return false
}

func (h *handler) tooLarge() apiError {
	return apiError{
		status:  http.StatusRequestEntityTooLarge,
		message: "The request body is larger than the limit of " + strconv.FormatInt(h.maxRequestBytes, 10) + " bytes.",
		typ:     typeInvalidRequest,
	}
}

// recoverPanic handles the panic p of a handler. It logs p and responds
// 500 when nothing was sent yet, and returns nil. After a partial response it
// returns http.ErrAbortHandler, for the caller to panic with, so that the
// server aborts the connection and the client sees a broken response rather
// than a short one. http.ErrAbortHandler itself, which a handler panics
// with to abort on purpose, is returned unlogged.
func (h *handler) recoverPanic(ctx context.Context, c *call, r *http.Request, p any) any {
	if p == http.ErrAbortHandler {
		return p
	}
	h.logger.LogAttrs(ctx, slog.LevelError, "panic in http handler",
		slog.String("rpc.method", rpcMethodOf(c, r)),
		slog.String("panic", fmt.Sprint(p)),
		slog.String("stack", string(debug.Stack())),
	)
	if c.wroteHeader {
		c.status = http.StatusInternalServerError // for the log line
		return http.ErrAbortHandler
	}
	header := c.Header()
	for key := range header {
		delete(header, key)
	}
	writeAPIError(c, apiError{status: http.StatusInternalServerError, message: internalErrorMessage, typ: typeServer}, nil)
	return nil
}

// logRequest writes the request's log line.
func (h *handler) logRequest(r *http.Request, c *call, info *service.CallInfo, d time.Duration) {
	ctx := r.Context()
	status := c.status
	if !c.wroteHeader {
		status = http.StatusOK // what net/http sends for a handler that wrote nothing
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		// The server cancels the request context when the client hangs up,
		// and the response has not left the server yet.
		status = statusClientClosedRequest
	}

	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	if !h.logger.Enabled(ctx, level) {
		return
	}

	var code string
	if c.hasCode {
		code = c.code.String()
	}
	requestID := info.RequestID
	if requestID == "" {
		requestID = c.Header().Get("X-Request-Id")
	}
	h.logger.LogAttrs(ctx, level, logMessage,
		slog.String("rpc.method", rpcMethodOf(c, r)),
		slog.String("http.method", r.Method),
		slog.String("http.path", truncate(r.URL.Path, maxLoggedPathBytes)),
		slog.Int("http.status", status),
		slog.String("code", code),
		slog.Duration("duration", d),
		slog.String("request_id", requestID),
		slog.Int("upstream.status", info.UpstreamStatus),
		slog.Int("attempts", info.Attempts),
		slog.String("upstream.error", info.UpstreamError),
	)
}

// rpcMethodOf returns the gRPC method of the call, or the HTTP method and
// path when no RPC ran, as for an unknown path or a body over the cap.
func rpcMethodOf(c *call, r *http.Request) string {
	if c.rpcMethod != "" {
		return c.rpcMethod
	}
	return r.Method + " " + truncate(r.URL.Path, maxLoggedPathBytes)
}

// truncate returns s cut to at most n bytes.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
