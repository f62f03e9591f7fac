package service

import (
	"context"
	"time"
)

// limiter caps the number of concurrent upstream calls. A call past the cap
// waits up to the queue timeout for a slot.
type limiter struct {
	slots   chan struct{}
	timeout time.Duration
}

func newLimiter(size int, timeout time.Duration) *limiter {
	if size <= 0 {
		return nil
	}
	return &limiter{slots: make(chan struct{}, size), timeout: timeout}
}

// acquire takes a slot. It returns false when none freed up within the
// timeout, and the context's error when the context ended first. A nil
// limiter admits every call.
func (l *limiter) acquire(ctx context.Context) (bool, error) {
	if l == nil {
		return true, nil
	}
	select {
	case l.slots <- struct{}{}:
		return true, nil
	default:
	}
	if l.timeout <= 0 {
		return false, nil
	}
	timer := time.NewTimer(l.timeout)
	defer timer.Stop()
	select {
	case l.slots <- struct{}{}:
		return true, nil
	case <-timer.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func (l *limiter) release() {
	if l != nil {
		<-l.slots
	}
}
