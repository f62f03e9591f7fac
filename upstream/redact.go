package upstream

import (
	"bytes"
	"net/http"
	"strings"
)

// redactedKey replaces the API key where an upstream echoes it.
const redactedKey = "[redacted]"

// redactHeader removes key from h in place: it replaces key in every value
// and deletes each header whose name contains it, compared without regard
// to case because names are canonicalized. An upstream or a proxy can echo
// the request's Authorization header in any response header, and the
// request id and the forwarded headers reach callers, logs and the retry
// hook. An empty key changes nothing.
func redactHeader(h http.Header, key string) {
	if key == "" {
		return
	}
	lowerKey := strings.ToLower(key)
	for name, values := range h {
		if strings.Contains(strings.ToLower(name), lowerKey) {
			delete(h, name)
			continue
		}
		for i, v := range values {
			if strings.Contains(v, key) {
				values[i] = strings.ReplaceAll(v, key, redactedKey)
			}
		}
	}
}

// redactBody removes key from an error answer's body in place. It must run
// before the body is decoded, cut to an excerpt or quoted, because each of
// those can split or escape the key so that a later search misses it.
func redactBody(body *bytes.Buffer, key string) {
	if key == "" || !bytes.Contains(body.Bytes(), []byte(key)) {
		return
	}
	redacted := bytes.ReplaceAll(body.Bytes(), []byte(key), []byte(redactedKey))
	body.Reset()
	body.Write(redacted)
}
