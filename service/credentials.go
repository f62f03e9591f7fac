package service

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"

	"google.golang.org/grpc/metadata"

	"example.com/filebatch/upstream"
)

// CredentialMode selects whose OpenAI API key an upstream call uses.
type CredentialMode int

const (
	// ServerKey uses the server's key for every call. A caller's
	// authorization metadata is never forwarded. When service tokens are
	// configured, it must hold one of them.
	ServerKey CredentialMode = iota
	// PassThrough forwards the caller's "authorization: Bearer <key>"
	// metadata, with its openai-organization and openai-project. A call
	// without a key is rejected with Unauthenticated.
	PassThrough
	// CallerFirst forwards the caller's key when the call carries one and
	// uses the server's key otherwise. When service tokens are configured,
	// a bearer that matches a token selects the server's key, and a call
	// without a bearer is rejected.
	CallerFirst
)

var credentialModeNames = [...]string{ServerKey: "server-key", PassThrough: "pass-through", CallerFirst: "caller-first"}

func (m CredentialMode) String() string {
	if int(m) < len(credentialModeNames) {
		return credentialModeNames[m]
	}
	return fmt.Sprintf("CredentialMode(%d)", int(m))
}

// ParseCredentialMode parses "server-key", "pass-through" or "caller-first".
func ParseCredentialMode(s string) (CredentialMode, error) {
	for mode, name := range credentialModeNames {
		if s == name {
			return CredentialMode(mode), nil
		}
	}
	return 0, fmt.Errorf("invalid credential mode %q: want server-key, pass-through or caller-first", s)
}

// Metadata keys read from each call. grpc-go lower-cases them, and the REST
// façade maps the HTTP headers Authorization, OpenAI-Organization and
// OpenAI-Project to them.
const (
	metadataAuthorization = "authorization"
	metadataOrganization  = "openai-organization"
	metadataProject       = "openai-project"
)

// tokenSet holds the SHA-256 digests of the service tokens, so that a check
// compares fixed-length values in constant time and leaks no token length.
type tokenSet [][sha256.Size]byte

func newTokenSet(tokens []string) tokenSet {
	set := make(tokenSet, 0, len(tokens))
	for _, token := range tokens {
		set = append(set, sha256.Sum256([]byte(token)))
	}
	return set
}

// contains reports whether token is in the set. It compares against every
// entry, so its timing does not reveal which one matched.
func (s tokenSet) contains(token string) bool {
	digest := sha256.Sum256([]byte(token))
	found := 0
	for i := range s {
		found |= subtle.ConstantTimeCompare(digest[:], s[i][:])
	}
	return found == 1
}

// callerCredentials are the credential values a call carried.
type callerCredentials struct {
	bearer       string
	organization string
	project      string
}

// readCallerCredentials extracts the call's credentials from its incoming
// metadata. It rejects values that are not visible ASCII, since a CR, LF or
// other control character could corrupt the upstream request's headers.
func readCallerCredentials(md metadata.MD) (callerCredentials, *fieldError) {
	var creds callerCredentials
	if values := md.Get(metadataAuthorization); len(values) > 0 {
		value := values[0]
		scheme, token, ok := strings.Cut(value, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return creds, &fieldError{field: metadataAuthorization, description: `must have the form "Bearer <key>"`}
		}
		if !isHeaderToken(token) {
			return creds, &fieldError{field: metadataAuthorization, description: "must contain only visible ASCII characters"}
		}
		creds.bearer = token
	}
	for _, field := range [...]struct {
		key string
		dst *string
	}{{metadataOrganization, &creds.organization}, {metadataProject, &creds.project}} {
		values := md.Get(field.key)
		if len(values) == 0 {
			continue
		}
		if !isHeaderToken(values[0]) {
			return creds, &fieldError{field: field.key, description: "must contain only visible ASCII characters"}
		}
		*field.dst = values[0]
	}
	return creds, nil
}

// isHeaderToken reports whether s is non-empty visible ASCII with no spaces.
func isHeaderToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// errNoKey, errNoServerKey and errBadToken describe why a call was not
// authenticated. None of them echoes the value the caller sent.
const (
	errNoKey       = "missing API key: send \"authorization: Bearer <key>\""
	errNoServerKey = "the service has no OpenAI API key configured and the call carried none"
	errBadToken    = "invalid service token: send \"authorization: Bearer <token>\" with a token the service accepts"
)

// chooseCredentials applies the credential mode to the caller's values and
// returns the credentials for the upstream call, or the reason the call is
// not authenticated.
func (s *Server) chooseCredentials(caller callerCredentials) (upstream.Credentials, string) {
	callerKey := upstream.Credentials{APIKey: caller.bearer, Organization: caller.organization, Project: caller.project}
	switch s.mode {
	case PassThrough:
		if caller.bearer == "" {
			return upstream.Credentials{}, errNoKey
		}
		return callerKey, ""
	case CallerFirst:
		if caller.bearer != "" && !(len(s.tokens) > 0 && s.tokens.contains(caller.bearer)) {
			return callerKey, ""
		}
		if caller.bearer == "" && len(s.tokens) > 0 {
			return upstream.Credentials{}, errBadToken
		}
		return s.serverCredentials()
	default:
		if len(s.tokens) > 0 && !s.tokens.contains(caller.bearer) {
			return upstream.Credentials{}, errBadToken
		}
		return s.serverCredentials()
	}
}

func (s *Server) serverCredentials() (upstream.Credentials, string) {
	if s.serverKey.APIKey == "" {
		return upstream.Credentials{}, errNoServerKey
	}
	return s.serverKey, ""
}
