package service

import "context"

// CallInfo records what a call did upstream, for the log line that the
// gRPC interceptor or the HTTP middleware writes when the call ends.
type CallInfo struct {
	// RequestID is the x-request-id of the last upstream answer.
	RequestID string
	// UpstreamStatus is the HTTP status of the last upstream answer, or 0
	// when none arrived.
	UpstreamStatus int
	// Attempts is the number of upstream requests sent.
	Attempts int
	// UpstreamError is the upstream client's error, with the API key
	// removed, or "" when the call succeeded. It can name internal
	// addresses, so it goes to logs, never to callers.
	UpstreamError string
}

type callInfoKey struct{}

// NewCallInfo returns a context carrying a new CallInfo, which the
// service's handler fills in.
func NewCallInfo(ctx context.Context) (context.Context, *CallInfo) {
	info := new(CallInfo)
	return context.WithValue(ctx, callInfoKey{}, info), info
}

// callInfoFrom returns the context's CallInfo, or a throwaway one.
func callInfoFrom(ctx context.Context) *CallInfo {
	if info, ok := ctx.Value(callInfoKey{}).(*CallInfo); ok {
		return info
	}
	return new(CallInfo)
}
