package service_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"example.com/filebatch/fakeupstream"
	"example.com/filebatch/service"
)

// callerKey is the key that callers send. It differs from serverKey, so
// the upstream request shows whose key was used.
const callerKey = "sk-caller-key-0123"

// checkNoHeaderContains fails t when any header of any upstream request
// contains secret.
func checkNoHeaderContains(t *testing.T, requests []fakeupstream.Request, secret string) {
	t.Helper()
	for i, r := range requests {
		for name, values := range r.Header {
			for _, v := range values {
				if strings.Contains(v, secret) {
					t.Errorf("upstream request %d: header %s = %q contains %q", i, name, v, secret)
				}
			}
		}
	}
}

func TestCredentialModes(t *testing.T) {
	callerMD := metadata.Pairs(
		"authorization", "Bearer "+callerKey,
		"openai-organization", "org-caller",
		"openai-project", "proj_caller",
	)
	tests := []struct {
		name string
		// fakeKey is the key that the upstream accepts.
		fakeKey string
		config  service.Config
		md      metadata.MD
		// wantHeader is the upstream request's headers. An empty value
		// means that the header must be absent.
		wantHeader map[string]string
		// wantCode is not OK when the call must fail before it reaches
		// the upstream.
		wantCode codes.Code
	}{
		{
			name:    "server key ignores the caller's credentials",
			fakeKey: serverKey,
			config:  service.Config{Mode: service.ServerKey, APIKey: serverKey},
			md:      callerMD,
			wantHeader: map[string]string{
				"Authorization": "Bearer " + serverKey, "OpenAI-Organization": "", "OpenAI-Project": "",
			},
		},
		{
			name:    "server key sends the server's organization and project",
			fakeKey: serverKey,
			config: service.Config{Mode: service.ServerKey, APIKey: serverKey,
				Organization: "org-server", Project: "proj_server"},
			md: callerMD,
			wantHeader: map[string]string{
				"Authorization": "Bearer " + serverKey, "OpenAI-Organization": "org-server", "OpenAI-Project": "proj_server",
			},
		},
		{
			name:    "pass-through forwards the caller's credentials",
			fakeKey: callerKey,
			config: service.Config{Mode: service.PassThrough, APIKey: serverKey,
				Organization: "org-server", Project: "proj_server"},
			md: callerMD,
			wantHeader: map[string]string{
				"Authorization": "Bearer " + callerKey, "OpenAI-Organization": "org-caller", "OpenAI-Project": "proj_caller",
			},
		},
		{
			name:     "pass-through without a key",
			config:   service.Config{Mode: service.PassThrough, APIKey: serverKey},
			md:       metadata.Pairs("openai-organization", "org-caller"),
			wantCode: codes.Unauthenticated,
		},
		{
			name:    "caller first with the caller's key",
			fakeKey: callerKey,
			config:  service.Config{Mode: service.CallerFirst, APIKey: serverKey},
			md:      callerMD,
			wantHeader: map[string]string{
				"Authorization": "Bearer " + callerKey, "OpenAI-Organization": "org-caller", "OpenAI-Project": "proj_caller",
			},
		},
		{
			name:    "caller first without a key uses the server's",
			fakeKey: serverKey,
			config:  service.Config{Mode: service.CallerFirst, APIKey: serverKey, Organization: "org-server"},
			md:      metadata.MD{},
			wantHeader: map[string]string{
				"Authorization": "Bearer " + serverKey, "OpenAI-Organization": "org-server", "OpenAI-Project": "",
			},
		},
		{
			name:     "server key mode without a configured key",
			config:   service.Config{Mode: service.ServerKey, APIKey: ""},
			md:       callerMD,
			wantCode: codes.Unauthenticated,
		},
		{
			name:     "service token missing",
			config:   service.Config{Mode: service.ServerKey, APIKey: serverKey, ServiceTokens: []string{"token-a"}},
			md:       metadata.MD{},
			wantCode: codes.Unauthenticated,
		},
		{
			name:     "service token wrong",
			config:   service.Config{Mode: service.ServerKey, APIKey: serverKey, ServiceTokens: []string{"token-a"}},
			md:       metadata.Pairs("authorization", "Bearer token-b"),
			wantCode: codes.Unauthenticated,
		},
		{
			name:       "service token valid",
			fakeKey:    serverKey,
			config:     service.Config{Mode: service.ServerKey, APIKey: serverKey, ServiceTokens: []string{"token-a", "token-b"}},
			md:         metadata.Pairs("authorization", "Bearer token-b"),
			wantHeader: map[string]string{"Authorization": "Bearer " + serverKey},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, envOptions{
				fake:        fakeupstream.Options{APIKey: tt.fakeKey},
				config:      tt.config,
				noServerKey: tt.config.APIKey == "",
			})
			ctx := metadata.NewOutgoingContext(testContext(t), tt.md)
			batch, _, err := env.cancel(ctx, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)

			if tt.wantCode != codes.OK {
				st, d := detailsOf(t, err)
				if st.Code() != tt.wantCode {
					t.Errorf("code = %v (%v), want %v", st.Code(), err, tt.wantCode)
				}
				if d.info.GetReason() != service.ReasonUnauthenticated || d.info.GetDomain() != service.Domain {
					t.Errorf("ErrorInfo = %v, want reason %q in domain %q", d.info, service.ReasonUnauthenticated, service.Domain)
				}
				if _, ok := d.info.GetMetadata()["http_status"]; ok {
					t.Errorf("ErrorInfo.Metadata = %v, want no http_status", d.info.GetMetadata())
				}
				if strings.Contains(st.Message(), "token-b") || strings.Contains(st.Message(), callerKey) {
					t.Errorf("message %q echoes the caller's credential", st.Message())
				}
				env.upstream.checkRequestCount(t, 0)
				return
			}

			if err != nil {
				t.Fatalf("CancelFileBatch: %v", err)
			}
			if batch.GetId() != fakeupstream.BatchInProgress {
				t.Errorf("batch id = %q, want %q", batch.GetId(), fakeupstream.BatchInProgress)
			}
			requests := env.upstream.Requests()
			if len(requests) != 1 {
				t.Fatalf("upstream received %d requests, want 1", len(requests))
			}
			for name, want := range tt.wantHeader {
				checkOptionalHeader(t, requests[0].Header, name, want)
			}
			if tt.wantHeader["Authorization"] != "Bearer "+callerKey {
				checkNoHeaderContains(t, requests, callerKey)
			}
			if tt.wantHeader["Authorization"] != "Bearer "+serverKey {
				checkNoHeaderContains(t, requests, serverKey)
			}
		})
	}
}

func TestPassThroughWrongKeyReachesUpstream(t *testing.T) {
	env := newEnv(t, envOptions{config: service.Config{Mode: service.PassThrough}})
	ctx := metadata.NewOutgoingContext(testContext(t), metadata.Pairs("authorization", "Bearer sk-not-accepted"))
	_, _, err := env.cancel(ctx, fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	st, d := detailsOf(t, err)
	if st.Code() != codes.Unauthenticated {
		t.Errorf("code = %v, want Unauthenticated", st.Code())
	}
	if d.info.GetDomain() != env.upstream.host {
		t.Errorf("ErrorInfo.Domain = %q, want the upstream host %q", d.info.GetDomain(), env.upstream.host)
	}
	requests := env.upstream.Requests()
	if len(requests) != 1 {
		t.Fatalf("upstream received %d requests, want 1", len(requests))
	}
	checkOptionalHeader(t, requests[0].Header, "Authorization", "Bearer sk-not-accepted")
}
