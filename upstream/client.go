// Package upstream is a client for the OpenAI REST API calls that the
// service wraps. It sends the requests, retries the failures that the OpenAI
// SDKs retry, and decodes the answers into Go values or an [*Error].
//
// The package returns errors and never logs. Retries are reported through
// [Config.OnRetry].
package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// DefaultMaxResponseBytes is the response body cap used when
// [Config.MaxResponseBytes] is zero. A file batch is about 300 bytes, so
// 1 MiB leaves room for any error page while bounding memory per call.
const DefaultMaxResponseBytes = 1 << 20

// bodyExcerptBytes is the maximum length in bytes of [Error.Body].
const bodyExcerptBytes = 512

// Config configures a [Client]. Only BaseURL is required.
type Config struct {
	// BaseURL is the API root that paths are appended to, such as
	// "https://api.openai.com/v1".
	BaseURL string
	// HTTPClient sends the requests. When nil, the client uses an
	// http.Client with [NewTransport], which keeps connections alive
	// under concurrent load, and which does not follow redirects.
	HTTPClient *http.Client
	// UserAgent is sent as the User-Agent header, such as "filebatch/1.0.0".
	UserAgent string
	// MaxResponseBytes caps the size of a response body. Larger answers
	// fail with an invalid-response [*Error]. Zero means
	// [DefaultMaxResponseBytes].
	MaxResponseBytes int64
	// Retry sets which failures are retried and how long the client waits.
	// The zero value retries nothing.
	Retry RetryPolicy
	// OnRetry, when set, is called before each retry wait.
	OnRetry func(RetryEvent)
}

// Credentials are the per-call values of the authentication headers.
// Empty fields send no header.
type Credentials struct {
	APIKey       string // sent as "Authorization: Bearer <APIKey>"
	Organization string // sent as OpenAI-Organization
	Project      string // sent as OpenAI-Project
}

// Meta describes an upstream answer.
type Meta struct {
	// RequestID is the x-request-id header of the last answer.
	RequestID string
	// Header holds the response headers that callers of the service receive
	// too (see [IsForwardedHeader]), with canonical names.
	Header http.Header
	// Attempts is the number of requests sent, one more than the retries.
	Attempts int
}

// ConnError is a failure to exchange a request with the upstream: the
// connection could not be made, broke, or the body could not be read in
// full. Context errors are returned as they are, not as ConnError.
type ConnError struct {
	Err error
	// StatusCode and RequestID describe an answer whose body could not be
	// read in full. They are empty when no answer arrived.
	StatusCode int
	RequestID  string
	// RetryAfter is the backoff delay the client would have waited before
	// the next attempt, when it gave up because of the caller's deadline.
	RetryAfter time.Duration
}

func (e *ConnError) Error() string { return "upstream: connection failed: " + e.Err.Error() }

func (e *ConnError) Unwrap() error { return e.Err }

// Client sends requests to one OpenAI-compatible API. It is safe for
// concurrent use.
type Client struct {
	host      string
	baseURL   string
	http      *http.Client
	userAgent string
	maxBody   int64
	retry     RetryPolicy
	onRetry   func(RetryEvent)
}

// New returns a client for cfg. It fails when BaseURL is not an absolute
// http or https URL.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("upstream: invalid base URL %q: %w", cfg.BaseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("upstream: invalid base URL %q: want an absolute http or https URL", cfg.BaseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("upstream: invalid base URL %q: it must not have a query or fragment", cfg.BaseURL)
	}
	c := &Client{
		host:      u.Host,
		baseURL:   strings.TrimRight(u.String(), "/"),
		http:      cfg.HTTPClient,
		userAgent: cfg.UserAgent,
		maxBody:   cfg.MaxResponseBytes,
		retry:     cfg.Retry,
		onRetry:   cfg.OnRetry,
	}
	if c.http == nil {
		c.http = &http.Client{Transport: NewTransport(), CheckRedirect: noRedirects}
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxResponseBytes
	}
	return c, nil
}

// Host returns the host, with its port if any, of the API root.
func (c *Client) Host() string { return c.host }

// noRedirects makes the client return 3xx answers instead of following
// them, so a redirect cannot send the API key to another URL.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// NewTransport returns an http.Transport for one upstream host under
// concurrent load. Go's default transport keeps only 2 idle connections per
// host, so a burst of concurrent calls closes and reopens connections. This
// one keeps up to 1024 idle connections to the host.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 1024
	t.IdleConnTimeout = 90 * time.Second
	// Each HTTP/1.1 connection keeps a read and a write buffer for its
	// whole life, 4 KiB each by default. A request is about 300 bytes and
	// an answer's head and batch about 1 KiB, so smaller buffers cost no
	// extra system calls for this API and save memory when many calls are
	// in flight. Longer answers are still read whole, in more reads.
	t.WriteBufferSize = 1 << 10
	t.ReadBufferSize = 2 << 10
	return t
}

// CancelFileBatch sends POST /vector_stores/{vectorStoreID}/file_batches/{batchID}/cancel
// and returns the batch as the upstream reports it. The IDs are
// path-escaped, but callers should validate them first, since an escaped
// "..", for example, still reaches the upstream.
//
// The error is an [*Error] for an answer that is not a batch, a [*ConnError]
// when no answer arrived, or the context's error. The returned Meta
// describes the last answer, also on error.
func (c *Client) CancelFileBatch(ctx context.Context, vectorStoreID, batchID string, creds Credentials) (*FileBatch, Meta, error) {
	target := c.baseURL + "/vector_stores/" + url.PathEscape(vectorStoreID) +
		"/file_batches/" + url.PathEscape(batchID) + "/cancel"
	var batch FileBatch
	meta, err := c.doWithRetry(ctx, http.MethodPost, target, creds, &batch)
	if err != nil {
		return nil, meta, err
	}
	return &batch, meta, nil
}

// doWithRetry sends the request until it succeeds, fails for good, or the
// retry policy or the context ends it.
func (c *Client) doWithRetry(ctx context.Context, method, target string, creds Credentials, out *FileBatch) (Meta, error) {
	for attempt := 1; ; attempt++ {
		meta, err := c.do(ctx, method, target, creds, out)
		meta.Attempts = attempt
		if err == nil {
			return meta, nil
		}
		var statusErr *Error
		if errors.As(err, &statusErr) {
			statusErr.Meta.Attempts = attempt
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return meta, ctxErr
		}
		wait, ok := c.retry.next(ctx, err, attempt)
		if !ok {
			return meta, err
		}
		if c.onRetry != nil {
			c.onRetry(RetryEvent{Attempt: attempt + 1, Reason: retryReason(err), Delay: wait, RequestID: meta.RequestID})
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return meta, ctx.Err()
		case <-timer.C:
		}
	}
}

// do sends one request and decodes its answer into out.
func (c *Client) do(ctx context.Context, method, target string, creds Credentials, out *FileBatch) (Meta, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return Meta{}, fmt.Errorf("upstream: build request: %w", err)
	}
	setRequestHeaders(req.Header, c.userAgent, creds)

	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return Meta{}, ctxErr
		}
		return Meta{}, &ConnError{Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	redactHeader(resp.Header, creds.APIKey)

	meta := Meta{RequestID: resp.Header.Get("X-Request-Id"), Header: forwardedHeaders(resp.Header)}
	body, tooLarge, err := readBody(resp.Body, c.maxBody)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return meta, ctxErr
		}
		return meta, &ConnError{Err: fmt.Errorf("read body of HTTP %d answer: %w", resp.StatusCode, err), StatusCode: resp.StatusCode, RequestID: meta.RequestID}
	}
	defer putBuffer(body)

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		redactBody(body, creds.APIKey, tooLarge)
		return meta, newStatusError(resp, meta, body.Bytes(), tooLarge)
	}
	if err := decodeBatch(resp.Header.Get("Content-Type"), body.Bytes(), tooLarge, c.maxBody, out); err != nil {
		return meta, &Error{StatusCode: resp.StatusCode, Meta: meta, Err: err}
	}
	return meta, nil
}

var (
	headerAccept        = []string{"application/json"}
	headerOpenAIBeta    = []string{"assistants=v2"}
	headerContentLength = []string{"0"}
)

func setRequestHeaders(h http.Header, userAgent string, creds Credentials) {
	h["Accept"] = headerAccept
	h["Openai-Beta"] = headerOpenAIBeta
	h["Content-Length"] = headerContentLength
	if userAgent != "" {
		h["User-Agent"] = []string{userAgent}
	}
	if creds.APIKey != "" {
		h["Authorization"] = []string{"Bearer " + creds.APIKey}
	}
	if creds.Organization != "" {
		h["Openai-Organization"] = []string{creds.Organization}
	}
	if creds.Project != "" {
		h["Openai-Project"] = []string{creds.Project}
	}
}

// IsForwardedHeader reports whether the upstream response header name is
// passed on to the service's callers: x-request-id, openai-processing-ms,
// openai-version, retry-after, retry-after-ms, x-should-retry and every
// x-ratelimit-* header. The name is matched case-insensitively. The OpenAI
// SDKs read x-should-retry and the retry-after headers to decide on their
// own retries.
func IsForwardedHeader(name string) bool {
	switch {
	case strings.EqualFold(name, "X-Request-Id"),
		strings.EqualFold(name, "Openai-Processing-Ms"),
		strings.EqualFold(name, "Openai-Version"),
		strings.EqualFold(name, "Retry-After"),
		strings.EqualFold(name, "Retry-After-Ms"),
		strings.EqualFold(name, "X-Should-Retry"):
		return true
	}
	return len(name) > len("x-ratelimit-") && strings.EqualFold(name[:len("x-ratelimit-")], "x-ratelimit-")
}

func forwardedHeaders(h http.Header) http.Header {
	var out http.Header
	for name, values := range h {
		if !IsForwardedHeader(name) {
			continue
		}
		if out == nil {
			out = make(http.Header, 4)
		}
		out[name] = values
	}
	return out
}

var bufferPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putBuffer(b *bytes.Buffer) {
	if b.Cap() > 64<<10 {
		return // let large buffers go, so one big answer does not pin memory
	}
	b.Reset()
	bufferPool.Put(b)
}

// readBody reads at most limit bytes of r. tooLarge reports that r had more.
func readBody(r io.Reader, limit int64) (body *bytes.Buffer, tooLarge bool, err error) {
	body = bufferPool.Get().(*bytes.Buffer)
	// One byte past the limit tells a body of exactly limit bytes from a
	// longer one. At math.MaxInt64 no body can be longer, and limit+1
	// would overflow.
	readLimit := limit
	if readLimit < math.MaxInt64 {
		readLimit++
	}
	n, err := body.ReadFrom(io.LimitReader(r, readLimit))
	if err != nil {
		putBuffer(body)
		return nil, false, err
	}
	if n > limit {
		body.Truncate(int(limit))
		return body, true, nil
	}
	return body, false, nil
}

// errorEnvelope is the OpenAI error body {"error":{...}}.
type errorEnvelope struct {
	Error *struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func newStatusError(resp *http.Response, meta Meta, body []byte, tooLarge bool) *Error {
	e := &Error{StatusCode: resp.StatusCode, Meta: meta}
	e.RetryAfter, _ = parseRetryAfter(resp.Header, time.Now())
	e.shouldRetry = resp.Header.Get("X-Should-Retry")
	var env errorEnvelope
	if !tooLarge && json.Unmarshal(body, &env) == nil && env.Error != nil {
		e.Message = env.Error.Message
		e.Type = env.Error.Type
		e.Param = env.Error.Param
		e.Code = env.Error.Code
		return e
	}
	e.Body = excerpt(body)
	return e
}

// excerpt returns the start of body as printable text of at most
// bodyExcerptBytes bytes. Runs of white space become one space, and invalid
// UTF-8 and characters that do not print, such as control and bidi
// characters, become U+FFFD.
func excerpt(body []byte) string {
	if len(body) > bodyExcerptBytes {
		body = trimPartialRune(body[:bodyExcerptBytes])
	}
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(string(body), "\uFFFD") {
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if !unicode.IsPrint(r) {
			r = utf8.RuneError
		}
		// Each U+FFFD takes 3 bytes, so the text can outgrow the input.
		size := utf8.RuneLen(r)
		space = space && b.Len() > 0
		if space {
			size++
		}
		if b.Len()+size > bodyExcerptBytes {
			break
		}
		if space {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// trimPartialRune drops an incomplete UTF-8 sequence from the end of b, such
// as one left by cutting b at a byte count.
func trimPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

// batchBody is a file batch, or an error object sent with a 2xx status.
type batchBody struct {
	*FileBatch
	Error json.RawMessage `json:"error"`
}

func decodeBatch(contentType string, body []byte, tooLarge bool, limit int64, out *FileBatch) error {
	if tooLarge {
		return fmt.Errorf("body is larger than the %d-byte limit", limit)
	}
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil || mediaType != "application/json" {
		return fmt.Errorf("content type is %q, want application/json", contentType)
	}
	return DecodeFileBatch(body, out)
}

// DecodeFileBatch decodes a file batch object from its JSON text. Unknown
// fields are ignored. It fails when the text is not a JSON object, is an
// OpenAI error object, or lacks the batch's id or status.
func DecodeFileBatch(data []byte, out *FileBatch) error {
	*out = FileBatch{}
	wrapper := batchBody{FileBatch: out}
	if err := json.Unmarshal(data, &wrapper); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field == "" {
			return errors.New("body is not a JSON object")
		}
		return fmt.Errorf("decode file batch: %w", err)
	}
	if len(wrapper.Error) > 0 && string(wrapper.Error) != "null" {
		return errors.New("body is an error object, not a file batch")
	}
	if out.ID == "" {
		return errors.New("body is not a file batch: id is missing")
	}
	if out.Status == "" {
		return errors.New("body is not a file batch: status is missing")
	}
	return nil
}

// unwrapURLError drops the *url.Error wrapper, whose text repeats the
// request URL.
func unwrapURLError(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err
	}
	return err
}
