// Package gateway serves FileBatchService over HTTP in the OpenAI API's own
// format, so that an OpenAI SDK whose base URL points at the server works
// unchanged.
//
// [New] builds a grpc-gateway runtime.ServeMux that calls the service
// implementation in-process, with no second gRPC hop, and configures it to
// respond as the OpenAI API does:
//
//   - a batch is written as the upstream's JSON object, not as protojson
//     (see [jsonMarshaler]);
//   - errors use the OpenAI envelope {"error":{"message","type","param",
//     "code"}} with the HTTP status that the service's ErrorInfo sets, or
//     one mapped from the gRPC code (see [resolveError]);
//   - the Authorization, OpenAI-Organization and OpenAI-Project request
//     headers reach the service as the gRPC metadata "authorization",
//     "openai-organization" and "openai-project", and no other header does;
//   - the upstream headers that the service forwards as response header
//     metadata (x-request-id, openai-processing-ms, x-ratelimit-*,
//     retry-after, retry-after-ms) are sent under their own names, without
//     grpc-gateway's Grpc-Metadata- prefix, and no trailers are sent.
//
// In-process registration skips gRPC interceptors, so the service handler
// does validation, credentials, limits and header metadata itself. The
// handler that New returns adds what is specific to HTTP: the request body
// cap, panic recovery, and one log line per request.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	filebatchv1 "example.com/filebatch/gen/filebatch/v1"
	"example.com/filebatch/upstream"
)

// DefaultMaxRequestBytes is the request body cap used when
// [Options.MaxRequestBytes] is zero. The cancel call takes no body, and
// OpenAI SDKs send none, so 64 KiB only bounds what a client can make the
// server read.
const DefaultMaxRequestBytes = 64 << 10

// DefaultBodyReadTimeout is the request body read timeout used when
// [Options.BodyReadTimeout] is zero.
const DefaultBodyReadTimeout = 10 * time.Second

// Options configures the handler that [New] returns.
type Options struct {
	// Logger receives one line per request, at level Error when the status
	// is 5xx and Info otherwise, with the keys "rpc.method", "http.method",
	// "http.path", "http.status", "code", "duration", "request_id",
	// "upstream.status" and "attempts". A client that hung up before the
	// response is logged with status 499. Headers, query strings and bodies
	// are never logged. Nil means slog.Default().
	Logger *slog.Logger
	// MaxRequestBytes caps the request body. A request whose body is longer
	// gets a 413 response before the service is called. Zero means
	// [DefaultMaxRequestBytes]. It must not be negative.
	MaxRequestBytes int64
	// BodyReadTimeout bounds the time to read a request body, so that a
	// client cannot hold a connection open by sending its body slowly. A
	// body not read in time gets a 400 response. Zero means
	// [DefaultBodyReadTimeout].
	BodyReadTimeout time.Duration
}

// New returns the HTTP handler of the façade for server, which serves
// every route of FileBatchService, such as
// POST /v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel.
// Any other path gets a 404 response, and another method on a known path 405,
// both in the OpenAI error envelope.
//
// It fails when server is nil or opts.MaxRequestBytes is negative.
func New(server filebatchv1.FileBatchServiceServer, opts Options) (http.Handler, error) {
	if server == nil {
		return nil, errors.New("gateway: invalid server: it must not be nil")
	}
	if opts.MaxRequestBytes < 0 {
		return nil, fmt.Errorf("gateway: invalid MaxRequestBytes %d: it must not be negative", opts.MaxRequestBytes)
	}
	mux := newServeMux()
	if err := filebatchv1.RegisterFileBatchServiceHandlerServer(context.Background(), mux, server); err != nil {
		return nil, fmt.Errorf("gateway: register FileBatchService: %w", err)
	}
	h := &handler{mux: mux, logger: opts.Logger, maxRequestBytes: opts.MaxRequestBytes, bodyReadTimeout: opts.BodyReadTimeout}
	if h.logger == nil {
		h.logger = slog.Default()
	}
	if h.maxRequestBytes == 0 {
		h.maxRequestBytes = DefaultMaxRequestBytes
	}
	if h.bodyReadTimeout <= 0 {
		h.bodyReadTimeout = DefaultBodyReadTimeout
	}
	return h, nil
}

// newServeMux returns a mux configured to respond like the OpenAI API.
func newServeMux() *runtime.ServeMux {
	m := jsonMarshaler{}
	return runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, m),
		runtime.WithMarshalerOption(contentTypeJSON, m),
		runtime.WithErrorHandler(handleError),
		runtime.WithRoutingErrorHandler(handleRoutingError),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithOutgoingTrailerMatcher(noTrailer),
		runtime.WithForwardResponseOption(noteSuccess),
		runtime.WithWriteContentLength(),
		// A POST with a form body would otherwise be routed to a GET route
		// of the same path, and X-HTTP-Method-Override would be honoured,
		// neither of which the OpenAI API does.
		runtime.WithDisablePathLengthFallback(),
		runtime.WithDisableHTTPMethodOverride(),
	)
}

// incomingHeader is the mux's incoming header matcher. It forwards the
// OpenAI project headers as lower-case gRPC metadata and drops every other
// header, including Grpc-Metadata-*, so that no client can set other
// metadata keys.
//
// Authorization is not matched here because runtime.AnnotateIncomingContext
// always copies it to the "authorization" key itself. Matching it too would
// put the value in the metadata twice.
func incomingHeader(key string) (string, bool) {
	switch textproto.CanonicalMIMEHeaderKey(key) {
	case "Openai-Organization":
		return "openai-organization", true
	case "Openai-Project":
		return "openai-project", true
	default:
		return "", false
	}
}

// outgoingHeader is the mux's outgoing header matcher. It sends the
// upstream headers that the service forwards, under their own names, and
// drops any other response header metadata.
func outgoingHeader(key string) (string, bool) {
	if upstream.IsForwardedHeader(key) {
		return key, true
	}
	return "", false
}

// noTrailer is the mux's outgoing trailer matcher: no trailer metadata
// becomes an HTTP trailer, since the OpenAI API sends none.
func noTrailer(string) (string, bool) { return "", false }

// noteSuccess is a forward-response option that records, for the log line,
// that the call returned a message.
func noteSuccess(ctx context.Context, _ http.ResponseWriter, _ proto.Message) error {
	if rec := callRecordFrom(ctx); rec != nil {
		rec.noteRPC(ctx, codes.OK)
	}
	return nil
}
