// Package service implements filebatch.v1.FileBatchService on top of the
// OpenAI REST API.
//
// Everything that must hold for both the gRPC surface and the REST façade
// happens in the handler itself: credential checks, ID validation, the
// concurrency limit, the default upstream timeout and the response header
// metadata. The façade calls the handler in-process, where gRPC
// interceptors do not run.
package service

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	filebatchv1 "example.com/filebatch/gen/filebatch/v1"
	"example.com/filebatch/upstream"
)

// DefaultTimeout is the upstream time budget of a call that has no
// deadline of its own. It covers every attempt and retry wait.
const DefaultTimeout = 60 * time.Second

// Config configures a [Server].
type Config struct {
	// Upstream sends the REST requests. It is required.
	Upstream *upstream.Client
	// APIKey, Organization and Project are the server's own OpenAI
	// credentials. APIKey may be empty when Mode is PassThrough.
	APIKey       string
	Organization string
	Project      string
	// Mode selects whose key each call uses.
	Mode CredentialMode
	// ServiceTokens, when not empty, are the bearer tokens callers must
	// present to use the server's key. See [CredentialMode].
	ServiceTokens []string
	// MaxConcurrent caps the number of upstream calls in flight. Zero
	// means no cap.
	MaxConcurrent int
	// QueueTimeout is how long a call past the cap waits for a slot
	// before it fails with ResourceExhausted.
	QueueTimeout time.Duration
	// DefaultTimeout bounds a call whose context has no deadline. Zero
	// means [DefaultTimeout].
	DefaultTimeout time.Duration
}

// Server implements [filebatchv1.FileBatchServiceServer].
type Server struct {
	filebatchv1.UnimplementedFileBatchServiceServer

	upstream       *upstream.Client
	upstreamHost   string
	serverKey      upstream.Credentials
	mode           CredentialMode
	tokens         tokenSet
	limit          *limiter
	maxConcurrent  int
	queueTimeout   time.Duration
	defaultTimeout time.Duration
}

var _ filebatchv1.FileBatchServiceServer = (*Server)(nil)

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Upstream == nil {
		return nil, errors.New("service: missing upstream client")
	}
	s := &Server{
		upstream:       cfg.Upstream,
		upstreamHost:   cfg.Upstream.Host(),
		serverKey:      upstream.Credentials{APIKey: cfg.APIKey, Organization: cfg.Organization, Project: cfg.Project},
		mode:           cfg.Mode,
		limit:          newLimiter(cfg.MaxConcurrent, cfg.QueueTimeout),
		maxConcurrent:  cfg.MaxConcurrent,
		queueTimeout:   cfg.QueueTimeout,
		defaultTimeout: cfg.DefaultTimeout,
	}
	if len(cfg.ServiceTokens) > 0 {
		s.tokens = newTokenSet(cfg.ServiceTokens)
	}
	if s.defaultTimeout <= 0 {
		s.defaultTimeout = DefaultTimeout
	}
	return s, nil
}

// CancelFileBatch cancels a file batch upstream and returns the batch as
// the upstream reports it.
func (s *Server) CancelFileBatch(ctx context.Context, req *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	caller, fieldErr := readCallerCredentials(md)
	if fieldErr != nil {
		return nil, invalidFieldStatus(fieldErr)
	}
	creds, reason := s.chooseCredentials(caller)
	if reason != "" {
		return nil, unauthenticatedStatus(reason)
	}
	if problem := validateID(req.GetVectorStoreId()); problem != "" {
		return nil, invalidFieldStatus(&fieldError{field: "vector_store_id", description: problem})
	}
	if problem := validateID(req.GetBatchId()); problem != "" {
		return nil, invalidFieldStatus(&fieldError{field: "batch_id", description: problem})
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.defaultTimeout)
		defer cancel()
	}
	admitted, err := s.limit.acquire(ctx)
	if err != nil {
		return nil, contextStatus(err)
	}
	if !admitted {
		return nil, concurrencyLimitStatus(s.maxConcurrent, s.queueTimeout)
	}
	batch, meta, err := s.upstream.CancelFileBatch(ctx, req.GetVectorStoreId(), req.GetBatchId(), creds)
	s.limit.release()

	info := callInfoFrom(ctx)
	info.RequestID = meta.RequestID
	info.Attempts = meta.Attempts
	info.UpstreamStatus = upstreamHTTPStatus(batch, err)
	setResponseHeaders(ctx, meta.Header)
	if err != nil {
		info.UpstreamError = redact(err.Error(), creds.APIKey)
		return nil, s.upstreamStatus(err, creds.APIKey)
	}
	return toProto(batch), nil
}

func upstreamHTTPStatus(batch *upstream.FileBatch, err error) int {
	var statusErr *upstream.Error
	switch {
	case err == nil && batch != nil:
		return http.StatusOK
	case errors.As(err, &statusErr):
		return statusErr.StatusCode
	default:
		return 0
	}
}

// setResponseHeaders sends the forwarded upstream headers as response
// header metadata with lower-case names, as gRPC requires. It does nothing
// outside a gRPC call or the REST façade, such as in a direct call of the
// handler, where no stream can receive them.
func setResponseHeaders(ctx context.Context, h http.Header) {
	if len(h) == 0 || grpc.ServerTransportStreamFromContext(ctx) == nil {
		return
	}
	md := make(metadata.MD, len(h))
	for name, values := range h {
		md[metadataKey(name)] = values
	}
	// SetHeader fails only when the call has already sent its headers,
	// which the handler never does before this point.
	_ = grpc.SetHeader(ctx, md)
}

// metadataKeys maps the canonical names of the headers that the OpenAI API
// sends with every response to their lower-case metadata keys, which saves
// converting them on each call.
var metadataKeys = func() map[string]string {
	keys := make(map[string]string)
	for _, name := range []string{
		"x-request-id", "openai-processing-ms", "openai-version",
		"x-ratelimit-limit-requests", "x-ratelimit-limit-tokens",
		"x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens",
		"x-ratelimit-reset-requests", "x-ratelimit-reset-tokens",
	} {
		keys[http.CanonicalHeaderKey(name)] = name
	}
	return keys
}()

// metadataKey returns the gRPC metadata key of an HTTP header name.
func metadataKey(name string) string {
	if key, ok := metadataKeys[name]; ok {
		return key
	}
	return strings.ToLower(name)
}

var statusByName = map[string]filebatchv1.FileBatchStatus{
	"in_progress": filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_IN_PROGRESS,
	"completed":   filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_COMPLETED,
	"cancelled":   filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_CANCELLED,
	"failed":      filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_FAILED,
}

// toProto converts the upstream batch. A status string the enum does not
// define becomes FILE_BATCH_STATUS_UNSPECIFIED, and status_raw always holds
// the string as received.
func toProto(b *upstream.FileBatch) *filebatchv1.VectorStoreFileBatch {
	return &filebatchv1.VectorStoreFileBatch{
		Id:            b.ID,
		Object:        b.Object,
		CreatedAt:     b.CreatedAt,
		VectorStoreId: b.VectorStoreID,
		Status:        statusByName[b.Status],
		StatusRaw:     b.Status,
		FileCounts: &filebatchv1.FileCounts{
			InProgress: b.FileCounts.InProgress,
			Completed:  b.FileCounts.Completed,
			Failed:     b.FileCounts.Failed,
			Cancelled:  b.FileCounts.Cancelled,
			Total:      b.FileCounts.Total,
		},
	}
}
