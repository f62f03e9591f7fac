package service

import (
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestValidateID(t *testing.T) {
	tests := []struct {
		name  string
		id    string
		valid bool
	}{
		{name: "vector store ID", id: "vs_abc123", valid: true},
		{name: "batch ID", id: "vsfb_6a1b2c3d4e5f60718293a4b5", valid: true},
		{name: "letters digits underscore hyphen", id: "AZaz09_-", valid: true},
		{name: "one character", id: "x", valid: true},
		{name: "only hyphens", id: "--", valid: true},
		{name: "128 characters", id: strings.Repeat("a", MaxIDLength), valid: true},
		{name: "empty", id: ""},
		{name: "129 characters", id: strings.Repeat("a", MaxIDLength+1)},
		{name: "10 KB", id: strings.Repeat("vs_", 10<<10/3)},
		{name: "slash", id: "/"},
		{name: "slash inside", id: "vs_1/file_batches"},
		{name: "parent segment", id: "../"},
		{name: "dot segment", id: ".."},
		{name: "single dot", id: "."},
		{name: "dot inside", id: "vs.1"},
		{name: "question mark", id: "?"},
		{name: "query", id: "vs_1?x=1"},
		{name: "hash", id: "#"},
		{name: "fragment", id: "vs_1#frag"},
		{name: "escaped slash", id: "%2F"},
		{name: "escaped NUL", id: "%00"},
		{name: "percent", id: "vs%"},
		{name: "backslash", id: `vs\1`},
		{name: "space", id: " "},
		{name: "space inside", id: "vs 1"},
		{name: "tab", id: "vs\t1"},
		{name: "CR", id: "vs_1\r"},
		{name: "LF", id: "vs_1\n"},
		{name: "CRLF header injection", id: "vs_1\r\nX-Evil: 1"},
		{name: "NUL", id: "vs_1\x00"},
		{name: "DEL", id: "vs_1\x7f"},
		{name: "e acute", id: "vs_é"},
		{name: "emoji", id: "vs_😀"},
		{name: "fullwidth letter", id: "vs_Ａ"},
		{name: "invalid UTF-8", id: "vs_\xff"},
		{name: "colon", id: "vs:1"},
		{name: "at sign", id: "user@vs_1"},
		{name: "plus", id: "vs+1"},
		{name: "semicolon", id: "vs;1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problem := validateID(tt.id)
			if tt.valid {
				if problem != "" {
					t.Errorf("validateID(%q) = %q, want valid", tt.id, problem)
				}
				return
			}
			if problem == "" {
				t.Fatalf("validateID(%q) = valid, want a problem", tt.id)
			}
			// The problem becomes part of a status message, so it must
			// not echo raw control or non-ASCII bytes.
			if i := strings.IndexFunc(problem, func(r rune) bool { return r < 0x20 || r > 0x7e }); i >= 0 {
				t.Errorf("validateID(%q) = %q, has a byte that is not printable ASCII at %d", tt.id, problem, i)
			}
		})
	}
}

func FuzzValidateID(f *testing.F) {
	for _, seed := range []string{
		"vs_abc123", "vsfb_1", "", "/", "../", "..", ".", "?", "#", "%2F", "%00", " ", "\r", "\n", "\x00",
		"é", "😀", "\xff", strings.Repeat("a", MaxIDLength), strings.Repeat("a", MaxIDLength+1),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		problem := validateID(id)
		if problem != "" {
			if i := strings.IndexFunc(problem, func(r rune) bool { return r < 0x20 || r > 0x7e }); i >= 0 {
				t.Errorf("validateID(%q) = %q, has a byte that is not printable ASCII at %d", id, problem, i)
			}
		}

		allowed := len(id) >= 1 && len(id) <= MaxIDLength
		for i := 0; i < len(id); i++ {
			c := id[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
				allowed = false
			}
		}
		if allowed != (problem == "") {
			t.Fatalf("validateID(%q) = %q, want valid = %t", id, problem, allowed)
		}

		if dangerous(id) && problem == "" {
			t.Fatalf("validateID(%q) accepted an ID with a character that changes the URL", id)
		}
		if problem != "" {
			return
		}

		if escaped := url.PathEscape(id); escaped != id {
			t.Errorf("url.PathEscape(%q) = %q, want the ID unchanged", id, escaped)
		}
		path := "/vector_stores/" + id + "/x"
		u, err := url.Parse(path)
		if err != nil {
			t.Fatalf("url.Parse(%q) failed: %v", path, err)
		}
		if u.Path != path || u.EscapedPath() != path {
			t.Errorf("url.Parse(%q) path = %q, escaped %q, want the same path", path, u.Path, u.EscapedPath())
		}
		if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			t.Errorf("url.Parse(%q) has query %q or fragment %q, want neither", path, u.RawQuery, u.Fragment)
		}
		if u.Scheme != "" || u.Host != "" {
			t.Errorf("url.Parse(%q) has scheme %q or host %q, want neither", path, u.Scheme, u.Host)
		}
	})
}

// dangerous reports whether id has a character that can add a path
// segment, a query, a fragment or an escape to a URL, or that is white
// space, a control character or not ASCII.
func dangerous(id string) bool {
	if strings.ContainsAny(id, "/?#%.\\") {
		return true
	}
	for _, r := range id {
		if r >= utf8.RuneSelf || unicode.IsSpace(r) || unicode.IsControl(r) {
			return true
		}
	}
	return false
}
