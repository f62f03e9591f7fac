package fakeupstream

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Values of the rate limit headers. Remaining counts down by one per
// response and starts again at rateLimit-1 after reaching zero.
const (
	rateLimit        = 10000
	rateLimitReset   = "6ms"
	openAIAPIVersion = "2020-10-01"
)

var (
	headerJSON         = []string{"application/json"}
	headerVersion      = []string{openAIAPIVersion}
	headerLimit        = []string{strconv.Itoa(rateLimit)}
	headerLimitReset   = []string{rateLimitReset}
	headerAllowPOST    = []string{http.MethodPost}
	headerProcessingMs = []string{"1"}
)

// responseCounter numbers the responses of one server. It makes request IDs
// unique and drives the remaining-requests header.
type responseCounter struct {
	prefix [8]byte // random, so that two servers are unlikely to share IDs
	count  atomic.Uint64
}

func newResponseCounter() *responseCounter {
	c := &responseCounter{}
	_, _ = rand.Read(c.prefix[:]) // since Go 1.24, Read crashes the program in place of failing
	return c
}

// next returns the request ID of a new response, "req_" and 32 hex
// digits, and the number of responses before it.
func (c *responseCounter) next() (requestID string, n uint64) {
	n = c.count.Add(1) - 1
	var raw [16]byte
	copy(raw[:8], c.prefix[:])
	// Multiplying by an odd constant and x ^= x>>29 are both bijections on
	// uint64, so the IDs stay unique while their digits look random, as
	// OpenAI's do.
	x := (n + 1) * 0x9e3779b97f4a7c15
	x ^= x >> 29
	binary.BigEndian.PutUint64(raw[8:], x)
	var text [4 + 32]byte
	copy(text[:], "req_")
	hex.Encode(text[4:], raw[:])
	return string(text[:]), n
}

// setStandardHeaders sets the headers that every OpenAI response carries,
// including the JSON content type.
func (c *responseCounter) setStandardHeaders(h http.Header, start time.Time) {
	requestID, n := c.next()
	h["Content-Type"] = headerJSON
	h["X-Request-Id"] = []string{requestID}
	h["Openai-Version"] = headerVersion
	h["Openai-Processing-Ms"] = processingMs(start)
	h["X-Ratelimit-Limit-Requests"] = headerLimit
	h["X-Ratelimit-Remaining-Requests"] = []string{strconv.FormatUint(rateLimit-1-n%rateLimit, 10)}
	h["X-Ratelimit-Reset-Requests"] = headerLimitReset
}

// processingMs returns the time since start in whole milliseconds, at
// least 1.
func processingMs(start time.Time) []string {
	ms := time.Since(start).Milliseconds()
	if ms < 1 {
		return headerProcessingMs
	}
	return []string{strconv.FormatInt(ms, 10)}
}

// encodeJSON returns v as JSON indented by two spaces, as OpenAI lays out
// its responses, without escaping <, > and &.
func encodeJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		panic("fakeupstream: encode JSON: " + err.Error()) // only fixed types are encoded
	}
	return buf.Bytes()
}
