package upstream

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
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
	for name, values := range h {
		if containsFold(name, key) {
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

// containsFold reports whether substr occurs in s without regard to case.
// Unlike lower-casing both, it allocates nothing, because it runs on every
// header of every response.
func containsFold(s, substr string) bool {
	for i := 0; i+len(substr) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(substr)], substr) {
			return true
		}
	}
	return false
}

// RedactKey returns s with key replaced by "[redacted]", both as written
// and in the escaped forms that Go's %q and JSON give a key holding quotes,
// backslashes or control characters, since error texts often quote what
// they report. An empty key changes nothing.
//
// NOTE: other encodings of the key, such as JSON's \u0073 for "s", or a
// key split across fields, are not found.
func RedactKey(s, key string) string {
	if key == "" {
		return s
	}
	for _, form := range keyForms(key) {
		if strings.Contains(s, form) {
			s = strings.ReplaceAll(s, form, redactedKey)
		}
	}
	return s
}

// keyForms returns key and its distinct escaped forms, without quotes.
func keyForms(key string) []string {
	forms := []string{key}
	quoted := strconv.Quote(key)
	forms = appendNew(forms, quoted[1:len(quoted)-1])
	if encoded, err := json.Marshal(key); err == nil {
		forms = appendNew(forms, string(encoded[1:len(encoded)-1]))
	}
	return forms
}

func appendNew(forms []string, form string) []string {
	if slices.Contains(forms, form) {
		return forms
	}
	return append(forms, form)
}

// minCutKeyPrefix is the shortest start of a key at the end of a cut body
// that redactBody removes. A shorter one, such as "sk-", reveals nothing of
// the key.
const minCutKeyPrefix = 4

// redactBody removes key from an error answer's body in place. It must run
// before the body is decoded, cut to an excerpt or quoted, because each of
// those can split or escape the key so that a later search misses it. When
// cut reports that the response cap cut the body short, a start of the key
// at its end is removed too.
func redactBody(body *bytes.Buffer, key string, cut bool) {
	if key == "" {
		return
	}
	text := body.String()
	redacted := RedactKey(text, key)
	if cut {
		for n := len(key) - 1; n >= minCutKeyPrefix; n-- {
			if strings.HasSuffix(redacted, key[:n]) {
				redacted = redacted[:len(redacted)-n] + redactedKey
				break
			}
		}
	}
	if redacted == text {
		return
	}
	body.Reset()
	body.WriteString(redacted)
}
