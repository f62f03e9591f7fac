package upstream

import (
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
