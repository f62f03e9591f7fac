package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"example.com/filebatch/fakeupstream"
	"example.com/filebatch/service"
	"example.com/filebatch/upstream"
)

// envOf returns a getenv function over the name, value pairs of vars.
func envOf(vars ...string) func(string) string {
	m := make(map[string]string, len(vars)/2)
	for i := 0; i+1 < len(vars); i += 2 {
		m[vars[i]] = vars[i+1]
	}
	return func(name string) string { return m[name] }
}

func TestParseConfigUpstreamURL(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     []string
		wantErr string // empty when the URL is accepted
	}{
		{name: "plain http on another host", args: []string{"-upstream-url", "http://example.com/v1"},
			wantErr: "-allow-insecure-upstream"},
		{name: "plain http on a private address", args: []string{"-upstream-url", "http://10.0.0.1/v1"},
			wantErr: "-allow-insecure-upstream"},
		{name: "plain http on IPv4 loopback", args: []string{"-upstream-url", "http://127.0.0.1:1/v1"}},
		{name: "plain http on another IPv4 loopback address", args: []string{"-upstream-url", "http://127.0.0.2:1/v1"}},
		{name: "plain http on IPv6 loopback", args: []string{"-upstream-url", "http://[::1]:1/v1"}},
		{name: "plain http on localhost", args: []string{"-upstream-url", "http://localhost:1/v1"}},
		{name: "plain http allowed by flag", args: []string{"-upstream-url", "http://example.com/v1", "-allow-insecure-upstream"}},
		{name: "plain http allowed by environment", args: []string{"-upstream-url", "http://example.com/v1"},
			env: []string{"FILEBATCH_ALLOW_INSECURE_UPSTREAM", "true"}},
		{name: "https", args: []string{"-upstream-url", "https://example.com/v1"}},
		{name: "default", args: nil},
		{name: "relative URL", args: []string{"-upstream-url", "/v1"}, wantErr: "invalid -upstream-url"},
		{name: "other scheme", args: []string{"-upstream-url", "ftp://example.com/v1"}, wantErr: "invalid -upstream-url"},
		{name: "no host", args: []string{"-upstream-url", "https:///v1"}, wantErr: "invalid -upstream-url"},
		{name: "unparsable", args: []string{"-upstream-url", "http://[::1/v1"}, wantErr: "invalid -upstream-url"},
		{name: "user name and password", args: []string{"-upstream-url", "http://user:secret@127.0.0.1:8081/v1"},
			wantErr: `contains a user name or password, which the server never sends`},
		{name: "user name only", args: []string{"-upstream-url", "https://user@example.com/v1"},
			wantErr: `remove them, as in "https://example.com/v1"`},
		{name: "empty userinfo", args: []string{"-upstream-url", "https://@example.com/v1"},
			wantErr: "contains a user name or password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// parseConfig only parses, so no request goes to these hosts.
			_, err := parseConfig(tt.args, envOf(tt.env...))
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("parseConfig(%q) = %v, want no error", tt.args, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseConfig(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestParseConfigHidesUpstreamPassword(t *testing.T) {
	const password = "pw-Zq8Rt3"
	tests := []struct {
		name string
		url  string
	}{
		{name: "loopback", url: "http://user:" + password + "@127.0.0.1:8081/v1"},
		{name: "insecure host", url: "http://user:" + password + "@example.com/v1"},
		{name: "other scheme", url: "ftp://user:" + password + "@example.com/v1"},
		{name: "no scheme", url: "user:" + password + "@example.com/v1"},
		{name: "unparsable", url: "http://user:" + password + "@[::1/v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig([]string{"-upstream-url", tt.url}, envOf())
			if err == nil {
				t.Fatalf("parseConfig(-upstream-url %s) = nil, want an error", tt.url)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("parseConfig(-upstream-url %s) = %v, want an error without the password", tt.url, err)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct {
		raw  string
		want string
	}{
		{raw: "https://api.openai.com/v1", want: "https://api.openai.com/v1"},
		{raw: "http://user:secret@127.0.0.1:8081/v1", want: "http://user:xxxxx@127.0.0.1:8081/v1"},
		{raw: "https://user@example.com/v1", want: "https://user@example.com/v1"},
		{raw: "/v1", want: "/v1"},
		{raw: "user:secret@example.com/v1", want: "(not shown because it may contain a password)"},
		{raw: "http://user:secret@[::1/v1", want: "(not shown because it may contain a password)"},
		{raw: "http://[::1/v1", want: "http://[::1/v1"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.raw); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

// userinfoURL returns the API root of fake with a user name and password.
func userinfoURL(fake *fakeupstream.Server, password string) string {
	return "http://user:" + password + "@" + fake.Addr() + "/v1"
}

// TestServerLogsUpstreamWithoutPassword runs a configuration that
// parseConfig rejects, to check that the start line would not show the
// password either.
func TestServerLogsUpstreamWithoutPassword(t *testing.T) {
	const password = "pw-Zq8Rt3"
	fake := fakeupstream.NewTest(t, fakeupstream.Options{})
	cfg, err := parseConfig([]string{"-upstream-url", fake.URL()}, envOf("OPENAI_API_KEY", fakeupstream.DefaultAPIKey))
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	cfg.upstreamURL = userinfoURL(fake, password)
	srv := startServerConfig(t, cfg)

	// The call returns after the server started serving, so after it
	// logged its start.
	client, _ := dialServer(t, srv.grpcAddr)
	if _, err := client.CancelFileBatch(callContext(t), cancelRequest(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)); err != nil {
		t.Errorf("CancelFileBatch: %v, want success", err)
	}
	starts := logLines(t, srv.logs, "server started")
	if len(starts) != 1 {
		t.Fatalf("logged %d start lines, want 1", len(starts))
	}
	want := "http://user:xxxxx@" + fake.Addr() + "/v1"
	if got := starts[0]["upstream"]; got != want {
		t.Errorf("start line upstream = %v, want %q", got, want)
	}
	if strings.Contains(srv.logs.String(), password) {
		t.Errorf("server log contains the password:\n%s", srv.logs.String())
	}
}

// configSetting is one setting read by parseConfig: its flag, its
// environment variable, two valid values and how to read it back.
type configSetting struct {
	flag, env           string
	envValue, flagValue string
	get                 func(config) string
}

var configSettings = []configSetting{
	{"grpc-addr", "FILEBATCH_GRPC_ADDR", "127.0.0.1:7001", "127.0.0.1:7002", func(c config) string { return c.grpcAddr }},
	{"http-addr", "FILEBATCH_HTTP_ADDR", "127.0.0.1:7003", "127.0.0.1:7004", func(c config) string { return c.httpAddr }},
	{"upstream-url", "OPENAI_BASE_URL", "https://env.example/v1", "https://flag.example/v1", func(c config) string { return c.upstreamURL }},
	{"organization", "OPENAI_ORG_ID", "org-env", "org-flag", func(c config) string { return c.organization }},
	{"project", "OPENAI_PROJECT_ID", "proj_env", "proj_flag", func(c config) string { return c.project }},
	{"credentials", "FILEBATCH_CREDENTIALS", "pass-through", "caller-first", func(c config) string { return c.credentialMode.String() }},
	{"service-tokens-file", "FILEBATCH_SERVICE_TOKENS_FILE", "/env/tokens", "/flag/tokens", func(c config) string { return c.serviceTokensFile }},
	{"max-retries", "FILEBATCH_MAX_RETRIES", "5", "0", func(c config) string { return strconv.Itoa(c.maxRetries) }},
	{"max-retry-after", "FILEBATCH_MAX_RETRY_AFTER", "5s", "7s", func(c config) string { return c.maxRetryAfter.String() }},
	{"upstream-timeout", "FILEBATCH_UPSTREAM_TIMEOUT", "5s", "7s", func(c config) string { return c.upstreamTimeout.String() }},
	{"max-concurrent-upstream", "FILEBATCH_MAX_CONCURRENT_UPSTREAM", "5", "0", func(c config) string { return strconv.Itoa(c.maxConcurrent) }},
	{"queue-timeout", "FILEBATCH_QUEUE_TIMEOUT", "5s", "7s", func(c config) string { return c.queueTimeout.String() }},
	{"max-response-bytes", "FILEBATCH_MAX_RESPONSE_BYTES", "5000", "7000", func(c config) string { return strconv.FormatInt(c.maxResponseBytes, 10) }},
	{"max-request-bytes", "FILEBATCH_MAX_REQUEST_BYTES", "5000", "7000", func(c config) string { return strconv.Itoa(c.maxRequestBytes) }},
	{"tls-cert", "FILEBATCH_TLS_CERT", "/env/cert.pem", "/flag/cert.pem", func(c config) string { return c.tlsCert }},
	{"tls-key", "FILEBATCH_TLS_KEY", "/env/key.pem", "/flag/key.pem", func(c config) string { return c.tlsKey }},
	{"tls-client-ca", "FILEBATCH_TLS_CLIENT_CA", "/env/ca.pem", "/flag/ca.pem", func(c config) string { return c.tlsClientCA }},
	{"shutdown-grace", "FILEBATCH_SHUTDOWN_GRACE", "5s", "7s", func(c config) string { return c.shutdownGrace.String() }},
	{"log-level", "FILEBATCH_LOG_LEVEL", "debug", "error", func(c config) string { return c.logLevel }},
	{"log-format", "FILEBATCH_LOG_FORMAT", "text", "json", func(c config) string { return c.logFormat }},
	{"allow-insecure-upstream", "FILEBATCH_ALLOW_INSECURE_UPSTREAM", "true", "false",
		func(c config) string { return strconv.FormatBool(c.allowInsecureUpstream) }},
}

func TestParseConfigEnvironment(t *testing.T) {
	var env, args []string
	for _, s := range configSettings {
		env = append(env, s.env, s.envValue)
		args = append(args, "-"+s.flag+"="+s.flagValue)
	}

	fromEnv, err := parseConfig(nil, envOf(env...))
	if err != nil {
		t.Fatalf("parseConfig with every variable set: %v", err)
	}
	fromFlags, err := parseConfig(args, envOf(env...))
	if err != nil {
		t.Fatalf("parseConfig with every flag and variable set: %v", err)
	}
	for _, s := range configSettings {
		if got := s.get(fromEnv); got != s.envValue {
			t.Errorf("with %s=%q, -%s = %q, want %q", s.env, s.envValue, s.flag, got, s.envValue)
		}
		if got := s.get(fromFlags); got != s.flagValue {
			t.Errorf("with %s=%q and -%s=%q, the value is %q, want the flag's", s.env, s.envValue, s.flag, s.flagValue, got)
		}
	}
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, envOf())
	if err != nil {
		t.Fatalf("parseConfig with no flags: %v", err)
	}
	want := map[string]string{
		"grpc-addr":               ":50051",
		"http-addr":               ":8080",
		"upstream-url":            "https://api.openai.com/v1",
		"credentials":             "server-key",
		"max-retries":             "2",
		"max-retry-after":         upstream.DefaultRetryPolicy().MaxRetryAfter.String(),
		"upstream-timeout":        service.DefaultTimeout.String(),
		"max-concurrent-upstream": "1024",
		"queue-timeout":           "1s",
		"max-response-bytes":      strconv.Itoa(upstream.DefaultMaxResponseBytes),
		"max-request-bytes":       "65536",
		"shutdown-grace":          "10s",
		"log-level":               "info",
		"log-format":              "json",
		"allow-insecure-upstream": "false",
		"organization":            "",
		"project":                 "",
		"service-tokens-file":     "",
		"tls-cert":                "",
		"tls-key":                 "",
		"tls-client-ca":           "",
	}
	for _, s := range configSettings {
		if got := s.get(cfg); got != want[s.flag] {
			t.Errorf("default -%s = %q, want %q", s.flag, got, want[s.flag])
		}
	}
	if cfg.apiKey != "" {
		t.Errorf("apiKey = %q with OPENAI_API_KEY unset, want empty", cfg.apiKey)
	}
}

func TestParseConfigAPIKeyFromEnvironmentOnly(t *testing.T) {
	cfg, err := parseConfig(nil, envOf("OPENAI_API_KEY", "sk-from-env"))
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	if cfg.apiKey != "sk-from-env" {
		t.Errorf("apiKey = %q, want the value of OPENAI_API_KEY", cfg.apiKey)
	}
	for _, name := range []string{"api-key", "openai-api-key", "key"} {
		_, err := parseConfig([]string{"-" + name, "sk-from-flag"}, envOf())
		if err == nil || !strings.Contains(err.Error(), "flag provided but not defined") {
			t.Errorf("parseConfig(-%s) = %v, want an undefined flag error", name, err)
		}
	}
}

func TestParseConfigInvalid(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     []string
		wantErr string
	}{
		{name: "integer variable", env: []string{"FILEBATCH_MAX_RETRIES", "two"},
			wantErr: `invalid FILEBATCH_MAX_RETRIES "two": want an integer`},
		{name: "64-bit integer variable", env: []string{"FILEBATCH_MAX_RESPONSE_BYTES", "1MB"},
			wantErr: `invalid FILEBATCH_MAX_RESPONSE_BYTES "1MB": want an integer`},
		{name: "duration variable", env: []string{"FILEBATCH_SHUTDOWN_GRACE", "10"},
			wantErr: `invalid FILEBATCH_SHUTDOWN_GRACE "10": want a duration such as 10s`},
		{name: "boolean variable", env: []string{"FILEBATCH_ALLOW_INSECURE_UPSTREAM", "yes please"},
			wantErr: `invalid FILEBATCH_ALLOW_INSECURE_UPSTREAM "yes please": want true or false`},
		{name: "two invalid variables", env: []string{"FILEBATCH_MAX_RETRIES", "x", "FILEBATCH_QUEUE_TIMEOUT", "y"},
			wantErr: `invalid FILEBATCH_QUEUE_TIMEOUT "y"`},
		{name: "integer flag", args: []string{"-max-retries", "two"}, wantErr: `invalid value "two" for flag -max-retries`},
		{name: "credential mode", args: []string{"-credentials", "anyone"},
			wantErr: `invalid credential mode "anyone": want server-key, pass-through or caller-first`},
		{name: "credential mode variable", env: []string{"FILEBATCH_CREDENTIALS", "Server-Key"},
			wantErr: `invalid credential mode "Server-Key"`},
		{name: "negative retries", args: []string{"-max-retries", "-1"}, wantErr: "invalid -max-retries -1: must not be negative"},
		{name: "negative retry after", args: []string{"-max-retry-after", "-1s"}, wantErr: "invalid -max-retry-after -1s"},
		{name: "zero upstream timeout", args: []string{"-upstream-timeout", "0s"}, wantErr: "invalid -upstream-timeout 0s: must be positive"},
		{name: "negative concurrency", args: []string{"-max-concurrent-upstream", "-1"}, wantErr: "invalid -max-concurrent-upstream -1"},
		{name: "zero response cap", args: []string{"-max-response-bytes", "0"}, wantErr: "invalid -max-response-bytes 0: must be positive"},
		{name: "zero request cap", args: []string{"-max-request-bytes", "0"}, wantErr: "invalid -max-request-bytes 0: must be positive"},
		{name: "zero shutdown grace", args: []string{"-shutdown-grace", "0s"}, wantErr: "invalid -shutdown-grace 0s: must be positive"},
		{name: "certificate without key", args: []string{"-tls-cert", "cert.pem"}, wantErr: "set both -tls-cert and -tls-key"},
		{name: "key without certificate", args: []string{"-tls-key", "key.pem"}, wantErr: "set both -tls-cert and -tls-key"},
		{name: "client CA without certificate", args: []string{"-tls-client-ca", "ca.pem"},
			wantErr: "-tls-client-ca needs -tls-cert and -tls-key"},
		{name: "positional argument", args: []string{"serve"}, wantErr: `unexpected argument "serve"`},
		{name: "unknown flag", args: []string{"-port", "1"}, wantErr: "flag provided but not defined: -port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, envOf(tt.env...))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseConfig(%q, %q) = %v, want an error containing %q", tt.args, tt.env, err, tt.wantErr)
			}
		})
	}
}

func TestMainErrRejectsInvalidLogging(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "log level", args: []string{"-log-level", "verbose"}, wantErr: `invalid -log-level "verbose"`},
		{name: "log format", args: []string{"-log-format", "xml"}, wantErr: `invalid -log-format "xml": want json or text`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The logger is built before anything listens, so the default
			// addresses are never bound.
			var stderr bytes.Buffer
			err := mainErr(tt.args, envOf(), &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("mainErr(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestMissingAPIKey(t *testing.T) {
	const warning = "OPENAI_API_KEY is not set"
	tests := []struct {
		name        string
		args        []string
		wantWarning bool
		wantCode    codes.Code
	}{
		{name: "server key", wantWarning: true, wantCode: codes.Unauthenticated},
		{name: "caller first", args: []string{"-credentials", "caller-first"}, wantWarning: true, wantCode: codes.Unauthenticated},
		{name: "pass-through", args: []string{"-credentials", "pass-through"}, wantWarning: false, wantCode: codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := fakeupstream.NewTest(t, fakeupstream.Options{})
			srv := startServer(t, append([]string{"-upstream-url", fake.URL()}, tt.args...))

			// The server runs and rejects calls that need a key. The call
			// returns after the server started serving, so after it
			// logged its start.
			client, _ := dialServer(t, srv.grpcAddr)
			_, err := client.CancelFileBatch(callContext(t), cancelRequest(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress))
			if code := status.Code(err); code != tt.wantCode {
				t.Errorf("code = %v (%v), want %v", code, err, tt.wantCode)
			}
			if n := len(fake.Requests()); n != 0 {
				t.Errorf("upstream received %d requests, want none", n)
			}

			if n := len(logLines(t, srv.logs, "server started")); n != 1 {
				t.Errorf("logged %d start lines, want 1", n)
			}
			warnings := 0
			for _, line := range parseLogs(t, srv.logs) {
				if msg, _ := line["msg"].(string); strings.Contains(msg, warning) {
					warnings++
					if line["level"] != "WARN" {
						t.Errorf("missing key line level = %v, want WARN", line["level"])
					}
				}
			}
			if got := warnings == 1; got != tt.wantWarning {
				t.Errorf("logged %d warnings containing %q, want warning %v:\n%s", warnings, warning, tt.wantWarning, srv.logs.String())
			}

		})
	}
}

// TestUsageHidesUpstreamPassword runs the binary with -h and with an
// invalid flag while OPENAI_BASE_URL holds a password, since the usage text
// shows each flag's default, which comes from that variable.
func TestUsageHidesUpstreamPassword(t *testing.T) {
	const password = "pw-Usage7Kd"
	binary := buildServer(t)
	for _, arg := range []string{"-h", "-no-such-flag"} {
		t.Run(arg, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, arg)
			cmd.Env = append(os.Environ(), "OPENAI_BASE_URL=https://user:"+password+"@127.0.0.1/v1")
			output, _ := cmd.CombinedOutput()
			if !strings.Contains(string(output), "-upstream-url") {
				t.Fatalf("%s output has no usage text:\n%s", arg, output)
			}
			if strings.Contains(string(output), password) {
				t.Errorf("%s output contains the password:\n%s", arg, output)
			}
		})
	}
}
