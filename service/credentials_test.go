package service

import (
	"testing"

	"google.golang.org/grpc/metadata"

	"example.com/filebatch/upstream"
)

func TestChooseCredentials(t *testing.T) {
	t.Parallel()
	server := upstream.Credentials{APIKey: "sk-server", Organization: "org-server", Project: "proj-server"}
	caller := callerCredentials{bearer: "sk-caller", organization: "org-caller", project: "proj-caller"}
	callerKey := upstream.Credentials{APIKey: "sk-caller", Organization: "org-caller", Project: "proj-caller"}
	withToken := callerCredentials{bearer: "token-1"}
	tests := []struct {
		name      string
		mode      CredentialMode
		tokens    []string
		serverKey upstream.Credentials
		caller    callerCredentials
		want      upstream.Credentials
		wantErr   string
	}{
		{name: "server key ignores caller key", mode: ServerKey, serverKey: server, caller: caller, want: server},
		{name: "server key without caller", mode: ServerKey, serverKey: server, want: server},
		{name: "server key missing", mode: ServerKey, caller: caller, wantErr: errNoServerKey},
		{name: "server key with valid token", mode: ServerKey, tokens: []string{"token-0", "token-1"}, serverKey: server, caller: withToken, want: server},
		{name: "server key with wrong token", mode: ServerKey, tokens: []string{"token-0"}, serverKey: server, caller: withToken, wantErr: errBadToken},
		{name: "server key with no token", mode: ServerKey, tokens: []string{"token-0"}, serverKey: server, wantErr: errBadToken},
		{name: "pass-through forwards caller", mode: PassThrough, serverKey: server, caller: caller, want: callerKey},
		{name: "pass-through without key", mode: PassThrough, serverKey: server, wantErr: errNoKey},
		{name: "pass-through ignores tokens", mode: PassThrough, tokens: []string{"sk-caller"}, caller: caller, want: callerKey},
		{name: "caller first with caller key", mode: CallerFirst, serverKey: server, caller: caller, want: callerKey},
		{name: "caller first falls back", mode: CallerFirst, serverKey: server, want: server},
		{name: "caller first with token", mode: CallerFirst, tokens: []string{"token-1"}, serverKey: server, caller: withToken, want: server},
		{name: "caller first key beside tokens", mode: CallerFirst, tokens: []string{"token-1"}, serverKey: server, caller: caller, want: callerKey},
		{name: "caller first requires token", mode: CallerFirst, tokens: []string{"token-1"}, serverKey: server, wantErr: errBadToken},
		{name: "caller first no key anywhere", mode: CallerFirst, wantErr: errNoServerKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{mode: tt.mode, serverKey: tt.serverKey}
			if len(tt.tokens) > 0 {
				s.tokens = newTokenSet(tt.tokens)
			}
			got, reason := s.chooseCredentials(tt.caller)
			if reason != tt.wantErr {
				t.Fatalf("chooseCredentials() reason = %q, want %q", reason, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("chooseCredentials() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReadCallerCredentials(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		md        metadata.MD
		want      callerCredentials
		wantField string
	}{
		{name: "none", md: metadata.MD{}},
		{name: "bearer", md: metadata.Pairs("authorization", "Bearer sk-1"), want: callerCredentials{bearer: "sk-1"}},
		{name: "lower-case scheme", md: metadata.Pairs("authorization", "bearer sk-1"), want: callerCredentials{bearer: "sk-1"}},
		{name: "org and project", md: metadata.Pairs("openai-organization", "org-1", "openai-project", "proj-1"),
			want: callerCredentials{organization: "org-1", project: "proj-1"}},
		{name: "basic scheme", md: metadata.Pairs("authorization", "Basic dXNlcg=="), wantField: "authorization"},
		{name: "empty bearer", md: metadata.Pairs("authorization", "Bearer "), wantField: "authorization"},
		{name: "CR LF in key", md: metadata.Pairs("authorization", "Bearer sk-1\r\nX-Evil: 1"), wantField: "authorization"},
		{name: "LF in project", md: metadata.Pairs("openai-project", "proj\nx"), wantField: "openai-project"},
		{name: "CR in organization", md: metadata.Pairs("openai-organization", "org\r"), wantField: "openai-organization"},
		{name: "NUL in key", md: metadata.Pairs("authorization", "Bearer sk\x00"), wantField: "authorization"},
		{name: "non-ASCII project", md: metadata.Pairs("openai-project", "prój"), wantField: "openai-project"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, fe := readCallerCredentials(tt.md)
			if tt.wantField != "" {
				if fe == nil || fe.field != tt.wantField {
					t.Fatalf("readCallerCredentials() error = %v, want one for field %q", fe, tt.wantField)
				}
				return
			}
			if fe != nil {
				t.Fatalf("readCallerCredentials() error = %+v, want none", fe)
			}
			if got != tt.want {
				t.Errorf("readCallerCredentials() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseCredentialMode(t *testing.T) {
	t.Parallel()
	for _, mode := range []CredentialMode{ServerKey, PassThrough, CallerFirst} {
		got, err := ParseCredentialMode(mode.String())
		if err != nil || got != mode {
			t.Errorf("ParseCredentialMode(%q) = %v, %v, want %v", mode.String(), got, err, mode)
		}
	}
	if _, err := ParseCredentialMode("server"); err == nil {
		t.Error(`ParseCredentialMode("server") succeeded, want an error`)
	}
}
