package service

import (
	"fmt"
	"strconv"
)

// MaxIDLength is the longest vector store or batch ID the service accepts.
// OpenAI IDs are a short prefix and about 30 characters, such as
// "vsfb_abc123", so 128 leaves room while bounding the upstream path.
const MaxIDLength = 128

// validateID returns a description of what is wrong with id, or "" when
// it is valid. Only ASCII letters, digits, '_' and '-' are valid, so no ID
// can add a path segment, a query, a fragment or an escape to the upstream
// URL.
func validateID(id string) string {
	if id == "" {
		return "must not be empty"
	}
	if len(id) > MaxIDLength {
		return "must be at most " + strconv.Itoa(MaxIDLength) + " characters, got " + strconv.Itoa(len(id))
	}
	for i := 0; i < len(id); i++ {
		if !isIDByte(id[i]) {
			return fmt.Sprintf("contains %s at byte %d; only letters, digits, '_' and '-' are allowed",
				describeByte(id[i]), i)
		}
	}
	return ""
}

func isIDByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// describeByte names c for an error message without echoing raw control
// or non-ASCII bytes.
func describeByte(c byte) string {
	if c >= 0x21 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}
