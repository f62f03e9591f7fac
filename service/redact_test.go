package service_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"example.com/filebatch/fakeupstream"
	"example.com/filebatch/service"
)

// callInfoRecorder is a unary interceptor that gives each call a
// [service.CallInfo], as the server's logging interceptor does, and keeps
// the last one.
type callInfoRecorder struct {
	last chan service.CallInfo
}

func newCallInfoRecorder() *callInfoRecorder {
	return &callInfoRecorder{last: make(chan service.CallInfo, 1)}
}

func (r *callInfoRecorder) intercept(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, info := service.NewCallInfo(ctx)
	resp, err := handler(ctx, req)
	r.last <- *info
	return resp, err
}

func TestUpstreamHeadersEchoingKey(t *testing.T) {
	const redactedID = "req_[redacted]"
	tests := []struct {
		name  string
		fault fakeupstream.Fault
		// wantCode is the call's code, and codes.OK for a success.
		wantCode codes.Code
		// wantHeader is the response header metadata that must be sent,
		// besides x-request-id.
		wantHeader map[string]string
	}{
		{
			name: "x-request-id on 500",
			fault: fakeupstream.ServerError(http.StatusInternalServerError).
				WithHeader("X-Request-Id", "req_"+serverKey),
			wantCode: codes.Internal,
		},
		{
			name: "forwarded headers on success",
			fault: fakeupstream.Fault{Kind: fakeupstream.FaultPass}.
				WithHeader("X-Request-Id", "req_"+serverKey).
				WithHeader("X-Ratelimit-Remaining-Requests", "99 "+serverKey).
				WithHeader("Openai-Processing-Ms", serverKey),
			wantCode: codes.OK,
			wantHeader: map[string]string{
				"x-ratelimit-remaining-requests": "99 [redacted]",
				"openai-processing-ms":           "[redacted]",
			},
		},
		{
			name: "header name on success",
			fault: fakeupstream.Fault{Kind: fakeupstream.FaultPass}.
				WithHeader("X-Request-Id", "req_"+serverKey).
				WithHeader("X-Ratelimit-"+serverKey, "1"),
			wantCode: codes.OK,
		},
		{
			name:     "x-request-id on a cut-off body",
			fault:    fakeupstream.ResetMidBody().WithHeader("X-Request-Id", "req_"+serverKey),
			wantCode: codes.Unavailable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recorder := newCallInfoRecorder()
			env := newEnv(t, envOptions{serverOptions: []grpc.ServerOption{grpc.UnaryInterceptor(recorder.intercept)}})
			env.upstream.Inject(tt.fault)

			batchID := fakeupstream.BatchInProgress
			_, header, err := env.cancel(testContext(t), fakeupstream.VectorStoreID, batchID)
			if code := status.Code(err); code != tt.wantCode {
				t.Fatalf("CancelFileBatch(%s) = %v, want code %v", batchID, err, tt.wantCode)
			}
			checkNoKeyInMetadata(t, header, serverKey)
			checkHeaderRequestID(t, header, redactedID)
			for key, want := range tt.wantHeader {
				if got := header.Get(key); len(got) != 1 || got[0] != want {
					t.Errorf("response header %s = %q, want [%q]", key, got, want)
				}
			}
			if err != nil {
				st, details := detailsOf(t, err)
				if strings.Contains(st.Message(), serverKey) {
					t.Errorf("status message %q contains the API key", st.Message())
				}
				if got := details.request.GetRequestId(); got != redactedID {
					t.Errorf("RequestInfo.RequestId = %q, want %q", got, redactedID)
				}
			}

			info := <-recorder.last
			if info.RequestID != redactedID {
				t.Errorf("CallInfo.RequestID = %q, want %q", info.RequestID, redactedID)
			}
			if strings.Contains(info.UpstreamError, serverKey) {
				t.Errorf("CallInfo.UpstreamError = %q contains the API key", info.UpstreamError)
			}
		})
	}
}

// checkNoKeyInMetadata fails t when a key or a value of md contains key.
// Keys are compared in lower case, because metadata keys are.
func checkNoKeyInMetadata(t *testing.T, md metadata.MD, key string) {
	t.Helper()
	for name, values := range md {
		if strings.Contains(name, strings.ToLower(key)) {
			t.Errorf("response header name %q contains the API key", name)
		}
		for _, v := range values {
			if strings.Contains(v, key) {
				t.Errorf("response header %s = %q contains the API key", name, v)
			}
		}
	}
}
