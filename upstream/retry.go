package upstream

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// RetryPolicy sets which failures are retried and how long to wait.
//
// A failure is retried when no answer arrived ([*ConnError]), when the
// upstream sent x-should-retry: true, or when the status is 408, 409, 429 or
// 5xx, unless the upstream sent x-should-retry: false. A 429 with the error
// code insufficient_quota is not retried, because waiting does not restore
// the quota, unless the upstream sent x-should-retry: true, which always
// wins, as in the OpenAI Node SDK (openai 6.49.0, shouldRetry).
//
// The wait comes from retry-after-ms, else from Retry-After (seconds or an
// HTTP date), else from exponential backoff with jitter. The client gives up
// at once, returning the last error, when the wait would pass the context's
// deadline or the upstream asks for more than MaxRetryAfter. The error's
// RetryAfter then holds the wait.
type RetryPolicy struct {
	// MaxRetries is the number of retries after the first attempt.
	MaxRetries int
	// InitialBackoff is the first backoff wait. It doubles on each retry.
	InitialBackoff time.Duration
	// MaxBackoff caps the backoff wait.
	MaxBackoff time.Duration
	// MaxRetryAfter is the longest wait honoured when the upstream asks for
	// one. A longer request ends the retries.
	MaxRetryAfter time.Duration
}

// DefaultRetryPolicy returns the policy of the OpenAI SDKs: 2 retries, and
// backoff from 0.5 s doubling up to 8 s. Upstream-requested waits of up to
// 60 s are honoured.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		MaxRetries:     2,
		InitialBackoff: 500 * time.Millisecond,
		MaxBackoff:     8 * time.Second,
		MaxRetryAfter:  60 * time.Second,
	}
}

// RetryEvent describes one retry, for logging.
type RetryEvent struct {
	// Attempt is the number of the attempt about to be sent, 2 for the
	// first retry.
	Attempt int
	// Reason is what failed, such as "HTTP 503" or "connection failed".
	Reason string
	// Delay is the wait before the attempt.
	Delay time.Duration
	// RequestID is the x-request-id of the failed answer, if any.
	RequestID string
}

// next returns the wait before retrying after err, which ended attempt
// number attempt, and false when the call must not be retried.
func (p RetryPolicy) next(ctx context.Context, err error, attempt int) (time.Duration, bool) {
	if attempt > p.MaxRetries {
		return 0, false
	}
	var statusErr *Error
	var connErr *ConnError
	var asked time.Duration
	switch {
	case errors.As(err, &statusErr):
		if !statusErr.retryable() {
			return 0, false
		}
		asked = statusErr.RetryAfter
	case errors.As(err, &connErr):
	default:
		return 0, false
	}

	wait := asked
	if asked > p.MaxRetryAfter {
		return 0, false
	}
	if wait <= 0 {
		wait = p.backoff(attempt)
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
		if statusErr != nil {
			statusErr.RetryAfter = wait
		} else {
			connErr.RetryAfter = wait
		}
		return 0, false
	}
	return wait, true
}

// backoff returns the jittered exponential wait after attempt number
// attempt: the doubled delay, capped, less up to a quarter of it at random.
func (p RetryPolicy) backoff(attempt int) time.Duration {
	wait := p.InitialBackoff
	for i := 1; i < attempt && wait < p.MaxBackoff; i++ {
		if wait > p.MaxBackoff/2 {
			wait = p.MaxBackoff // doubling could overflow a huge MaxBackoff
			break
		}
		wait *= 2
	}
	wait = min(wait, p.MaxBackoff)
	if wait <= 0 {
		return 0
	}
	return wait - time.Duration(rand.Int64N(int64(wait)/4+1))
}

// retryable reports whether the answer is worth sending again.
func (e *Error) retryable() bool {
	if e.Err != nil {
		return false // a 2xx with a broken body would break again
	}
	switch e.shouldRetry {
	case "true":
		return true
	case "false":
		return false
	}
	switch {
	case e.StatusCode == http.StatusTooManyRequests:
		return e.Code == nil || *e.Code != "insufficient_quota"
	case e.StatusCode == http.StatusRequestTimeout, e.StatusCode == http.StatusConflict:
		return true
	default:
		return e.StatusCode >= 500
	}
}

func retryReason(err error) string {
	var statusErr *Error
	if errors.As(err, &statusErr) {
		return "HTTP " + strconv.Itoa(statusErr.StatusCode)
	}
	return "connection failed"
}

// parseRetryAfter reads the wait the upstream asked for: retry-after-ms in
// milliseconds, else Retry-After in seconds or as an HTTP date.
func parseRetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 {
			return durationOf(ms, time.Millisecond), true
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	if seconds, err := strconv.ParseFloat(v, 64); err == nil && seconds >= 0 {
		return durationOf(seconds, time.Second), true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

// durationOf converts n units to a Duration, saturating instead of
// overflowing for huge values and +Inf.
func durationOf(n float64, unit time.Duration) time.Duration {
	const maxDuration = time.Duration(math.MaxInt64)
	if n*float64(unit) >= float64(maxDuration) {
		return maxDuration
	}
	return time.Duration(n * float64(unit))
}
