package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"example.com/filebatch/service"
	"example.com/filebatch/upstream"
)

// config is the server's configuration, read from flags and environment
// variables by parseConfig.
type config struct {
	grpcAddr              string
	httpAddr              string
	upstreamURL           string
	allowInsecureUpstream bool
	apiKey                string
	organization          string
	project               string
	credentialMode        service.CredentialMode
	serviceTokensFile     string
	maxRetries            int
	maxRetryAfter         time.Duration
	upstreamTimeout       time.Duration
	maxConcurrent         int
	queueTimeout          time.Duration
	maxResponseBytes      int64
	maxRequestBytes       int
	tlsCert               string
	tlsKey                string
	tlsClientCA           string
	shutdownGrace         time.Duration
	logLevel              string
	logFormat             string
}

// flagSet registers flags whose defaults come from environment variables
// when those are set, and collects the errors of invalid variables.
type flagSet struct {
	*flag.FlagSet
	getenv func(string) string
	errs   []error
}

func (fs *flagSet) stringVar(p *string, name, envName, value, usage string) {
	if v := fs.getenv(envName); v != "" {
		value = v
	}
	fs.StringVar(p, name, value, usage+" (env "+envName+")")
}

func (fs *flagSet) boolVar(p *bool, name, envName string, value bool, usage string) {
	if v := fs.getenv(envName); v != "" {
		parsed, err := strconv.ParseBool(v)
		if err != nil {
			fs.errs = append(fs.errs, fmt.Errorf("invalid %s %q: want true or false", envName, v))
		}
		value = parsed
	}
	fs.BoolVar(p, name, value, usage+" (env "+envName+")")
}

func (fs *flagSet) intVar(p *int, name, envName string, value int, usage string) {
	if v := fs.getenv(envName); v != "" {
		parsed, err := strconv.Atoi(v)
		if err != nil {
			fs.errs = append(fs.errs, fmt.Errorf("invalid %s %q: want an integer", envName, v))
		}
		value = parsed
	}
	fs.IntVar(p, name, value, usage+" (env "+envName+")")
}

func (fs *flagSet) int64Var(p *int64, name, envName string, value int64, usage string) {
	if v := fs.getenv(envName); v != "" {
		parsed, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			fs.errs = append(fs.errs, fmt.Errorf("invalid %s %q: want an integer", envName, v))
		}
		value = parsed
	}
	fs.Int64Var(p, name, value, usage+" (env "+envName+")")
}

func (fs *flagSet) durationVar(p *time.Duration, name, envName string, value time.Duration, usage string) {
	if v := fs.getenv(envName); v != "" {
		parsed, err := time.ParseDuration(v)
		if err != nil {
			fs.errs = append(fs.errs, fmt.Errorf("invalid %s %q: want a duration such as 10s", envName, v))
		}
		value = parsed
	}
	fs.DurationVar(p, name, value, usage+" (env "+envName+")")
}

// parseConfig reads the configuration from args and the environment. The
// API key is read only from OPENAI_API_KEY, so it never shows in a process
// listing.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	var cfg config
	fs := &flagSet{FlagSet: flag.NewFlagSet("server", flag.ContinueOnError), getenv: getenv}
	fs.stringVar(&cfg.grpcAddr, "grpc-addr", "FILEBATCH_GRPC_ADDR", ":50051", "address of the gRPC listener")
	fs.stringVar(&cfg.httpAddr, "http-addr", "FILEBATCH_HTTP_ADDR", ":8080", "address of the REST façade listener")
	fs.stringVar(&cfg.upstreamURL, "upstream-url", "OPENAI_BASE_URL", "https://api.openai.com/v1", "root URL of the OpenAI API")
	// The usage text shows a default taken from OPENAI_BASE_URL, which may
	// hold a password that the start-up check then rejects.
	if f := fs.Lookup("upstream-url"); f != nil {
		f.DefValue = redactURL(f.DefValue)
	}
	fs.boolVar(&cfg.allowInsecureUpstream, "allow-insecure-upstream", "FILEBATCH_ALLOW_INSECURE_UPSTREAM", false,
		"allow a plain http upstream URL on a host that is not loopback")
	fs.stringVar(&cfg.organization, "organization", "OPENAI_ORG_ID", "", "OpenAI organization ID sent with the server's key")
	fs.stringVar(&cfg.project, "project", "OPENAI_PROJECT_ID", "", "OpenAI project ID sent with the server's key")
	mode := "server-key"
	fs.stringVar(&mode, "credentials", "FILEBATCH_CREDENTIALS", mode,
		"whose API key calls use: server-key, pass-through or caller-first")
	fs.stringVar(&cfg.serviceTokensFile, "service-tokens-file", "FILEBATCH_SERVICE_TOKENS_FILE", "",
		"file of bearer tokens, one per line, that callers must present to use the server's key")
	fs.intVar(&cfg.maxRetries, "max-retries", "FILEBATCH_MAX_RETRIES", 2, "retries after a failed upstream attempt")
	fs.durationVar(&cfg.maxRetryAfter, "max-retry-after", "FILEBATCH_MAX_RETRY_AFTER", upstream.DefaultRetryPolicy().MaxRetryAfter,
		"longest upstream-requested retry wait to honour; a longer Retry-After ends the call at once")
	fs.durationVar(&cfg.upstreamTimeout, "upstream-timeout", "FILEBATCH_UPSTREAM_TIMEOUT", service.DefaultTimeout,
		"time budget of a call without a deadline, retries included")
	fs.intVar(&cfg.maxConcurrent, "max-concurrent-upstream", "FILEBATCH_MAX_CONCURRENT_UPSTREAM", 1024,
		"maximum number of upstream calls in flight; 0 means no limit")
	fs.durationVar(&cfg.queueTimeout, "queue-timeout", "FILEBATCH_QUEUE_TIMEOUT", time.Second,
		"maximum wait for an upstream slot before a call fails with ResourceExhausted")
	fs.int64Var(&cfg.maxResponseBytes, "max-response-bytes", "FILEBATCH_MAX_RESPONSE_BYTES", upstream.DefaultMaxResponseBytes,
		"maximum size of an upstream response body, in bytes")
	fs.intVar(&cfg.maxRequestBytes, "max-request-bytes", "FILEBATCH_MAX_REQUEST_BYTES", 64<<10,
		"maximum size of an inbound gRPC message, gRPC metadata, HTTP header block or HTTP body, in bytes")
	fs.stringVar(&cfg.tlsCert, "tls-cert", "FILEBATCH_TLS_CERT", "", "PEM certificate file; enables TLS on both listeners")
	fs.stringVar(&cfg.tlsKey, "tls-key", "FILEBATCH_TLS_KEY", "", "PEM private key file for -tls-cert")
	fs.stringVar(&cfg.tlsClientCA, "tls-client-ca", "FILEBATCH_TLS_CLIENT_CA", "",
		"PEM CA file; when set, both listeners require client certificates signed by it (mTLS)")
	fs.durationVar(&cfg.shutdownGrace, "shutdown-grace", "FILEBATCH_SHUTDOWN_GRACE", 10*time.Second,
		"maximum time to drain in-flight calls on SIGINT or SIGTERM")
	fs.stringVar(&cfg.logLevel, "log-level", "FILEBATCH_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	fs.stringVar(&cfg.logFormat, "log-format", "FILEBATCH_LOG_FORMAT", "json", "log format: json or text")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if len(fs.errs) > 0 {
		return cfg, errors.Join(fs.errs...)
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg.apiKey = getenv("OPENAI_API_KEY")

	var err error
	if cfg.credentialMode, err = service.ParseCredentialMode(mode); err != nil {
		return cfg, err
	}
	return cfg, cfg.validate()
}

func (cfg config) validate() error {
	if err := checkUpstreamURL(cfg.upstreamURL, cfg.allowInsecureUpstream); err != nil {
		return err
	}
	if (cfg.tlsCert == "") != (cfg.tlsKey == "") {
		return errors.New("invalid TLS configuration: set both -tls-cert and -tls-key, or neither")
	}
	if cfg.tlsClientCA != "" && cfg.tlsCert == "" {
		return errors.New("invalid TLS configuration: -tls-client-ca needs -tls-cert and -tls-key")
	}
	switch {
	case cfg.maxRetries < 0:
		return fmt.Errorf("invalid -max-retries %d: must not be negative", cfg.maxRetries)
	case cfg.maxRetryAfter < 0:
		return fmt.Errorf("invalid -max-retry-after %s: must not be negative", cfg.maxRetryAfter)
	case cfg.upstreamTimeout <= 0:
		return fmt.Errorf("invalid -upstream-timeout %s: must be positive", cfg.upstreamTimeout)
	case cfg.maxConcurrent < 0:
		return fmt.Errorf("invalid -max-concurrent-upstream %d: must not be negative", cfg.maxConcurrent)
	case cfg.maxResponseBytes <= 0:
		return fmt.Errorf("invalid -max-response-bytes %d: must be positive", cfg.maxResponseBytes)
	case cfg.maxRequestBytes <= 0:
		return fmt.Errorf("invalid -max-request-bytes %d: must be positive", cfg.maxRequestBytes)
	case cfg.shutdownGrace <= 0:
		return fmt.Errorf("invalid -shutdown-grace %s: must be positive", cfg.shutdownGrace)
	}
	return nil
}

// checkUpstreamURL rejects an upstream URL with userinfo, and a plain http
// upstream on a host that is not loopback, so the API key never crosses a
// network in clear text by accident. Its errors never show a password.
func checkUpstreamURL(raw string, allowInsecure bool) error {
	u, err := url.Parse(raw)
	if err == nil && u.User != nil {
		withoutUserinfo := *u
		withoutUserinfo.User = nil
		return fmt.Errorf("invalid -upstream-url: it contains a user name or password, which the server never sends, "+
			"because every upstream request carries the API key as \"Authorization: Bearer\"; remove them, as in %q",
			withoutUserinfo.String())
	}
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("invalid -upstream-url %q: want an absolute https URL such as https://api.openai.com/v1", redactURL(raw))
	}
	if u.Scheme == "https" || allowInsecure || isLoopbackHost(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("insecure -upstream-url %q: the API key would be sent unencrypted; "+
		"use https, or set -allow-insecure-upstream (env FILEBATCH_ALLOW_INSECURE_UPSTREAM=true) to allow it", raw)
}

// redactURL returns raw with the password of its userinfo replaced by
// "xxxxx", as [url.URL.Redacted] does. Only a URL with a host has its
// userinfo parsed: another value is returned only when it has no '@',
// because it may still hold a password, as "user:secret@host/v1" does.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err == nil && u.Host != "":
		return u.Redacted()
	case strings.Contains(raw, "@"):
		return "(not shown because it may contain a password)"
	default:
		return raw
	}
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readTokens reads one service token per line, skipping blank lines and
// lines that start with '#'.
func readTokens(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read service tokens: %w", err)
	}
	var tokens []string
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		tokens = append(tokens, line)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("read service tokens: %s contains no token", path)
	}
	return tokens, nil
}
