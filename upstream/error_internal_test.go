package upstream

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

func TestExcerpt(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
	}{
		{name: "empty", body: "", want: ""},
		{name: "plain", body: "bad gateway", want: "bad gateway"},
		{name: "white space collapsed", body: "  a \r\n\t b  \n", want: "a b"},
		{name: "unicode white space", body: "a\u00a0\u2028b", want: "a b"},
		{name: "C0 control", body: "a\x00b\x1bc", want: "a\uFFFDb\uFFFDc"},
		{name: "DEL", body: "a\x7fb", want: "a\uFFFDb"},
		{name: "C1 control", body: "a\u0085b\u009bc", want: "a b\uFFFDc"},
		{name: "bidi override", body: "a\u202eb", want: "a\uFFFDb"},
		{name: "zero-width space", body: "a\u200bb", want: "a\uFFFDb"},
		{name: "invalid UTF-8", body: "a\xff\xfeb", want: "a\uFFFDb"},
		{name: "non-ASCII text kept", body: "café ☕ 错误", want: "café ☕ 错误"},
		{name: "512 bytes kept", body: strings.Repeat("x", 512), want: strings.Repeat("x", 512)},
		{name: "longer body cut", body: strings.Repeat("x", 513), want: strings.Repeat("x", 512)},
		{
			name: "cut inside a rune",
			body: strings.Repeat("x", 511) + "é",
			want: strings.Repeat("x", 511),
		},
		{
			name: "replacements do not grow it",
			body: strings.Repeat("\x00", 600),
			want: strings.Repeat("\uFFFD", 512/len("\uFFFD")),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := excerpt([]byte(tt.body)); got != tt.want {
				t.Errorf("excerpt(%q) = %q, want %q", tt.body, got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	const maxDuration = time.Duration(math.MaxInt64)
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
		wantOK bool
	}{
		{name: "none", header: http.Header{}, want: 0, wantOK: false},
		{name: "seconds", header: http.Header{"Retry-After": {"30"}}, want: 30 * time.Second, wantOK: true},
		{name: "zero seconds", header: http.Header{"Retry-After": {"0"}}, want: 0, wantOK: true},
		{name: "fractional seconds", header: http.Header{"Retry-After": {"1.5"}}, want: 1500 * time.Millisecond, wantOK: true},
		{name: "milliseconds", header: http.Header{"Retry-After-Ms": {"20"}}, want: 20 * time.Millisecond, wantOK: true},
		{name: "fractional milliseconds", header: http.Header{"Retry-After-Ms": {"0.25"}}, want: 250 * time.Microsecond, wantOK: true},
		{
			name:   "milliseconds win",
			header: http.Header{"Retry-After-Ms": {"20"}, "Retry-After": {"30"}},
			want:   20 * time.Millisecond,
			wantOK: true,
		},
		{
			name:   "invalid milliseconds fall back",
			header: http.Header{"Retry-After-Ms": {"x"}, "Retry-After": {"30"}},
			want:   30 * time.Second,
			wantOK: true,
		},
		{
			name:   "negative milliseconds fall back",
			header: http.Header{"Retry-After-Ms": {"-1"}, "Retry-After": {"30"}},
			want:   30 * time.Second,
			wantOK: true,
		},
		{name: "NaN milliseconds", header: http.Header{"Retry-After-Ms": {"NaN"}}, want: 0, wantOK: false},
		{name: "infinite milliseconds", header: http.Header{"Retry-After-Ms": {"+Inf"}}, want: maxDuration, wantOK: true},
		{name: "huge seconds", header: http.Header{"Retry-After": {"1e30"}}, want: maxDuration, wantOK: true},
		{name: "negative seconds", header: http.Header{"Retry-After": {"-30"}}, want: 0, wantOK: false},
		{
			name:   "HTTP date",
			header: http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}},
			want:   90 * time.Second,
			wantOK: true,
		},
		{
			name:   "RFC 850 date",
			header: http.Header{"Retry-After": {"Saturday, 01-Mar-25 12:01:00 GMT"}},
			want:   time.Minute,
			wantOK: true,
		},
		{
			name:   "date in the past",
			header: http.Header{"Retry-After": {now.Add(-time.Hour).Format(http.TimeFormat)}},
			want:   0,
			wantOK: true,
		},
		{name: "garbage", header: http.Header{"Retry-After": {"soon"}}, want: 0, wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseRetryAfter(tt.header, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseRetryAfter(%v) = %v, %t, want %v, %t", tt.header, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name   string
		policy RetryPolicy
	}{
		{name: "default", policy: DefaultRetryPolicy()},
		{name: "no cap in practice", policy: RetryPolicy{InitialBackoff: 500 * time.Millisecond, MaxBackoff: math.MaxInt64}},
		{name: "cap below initial", policy: RetryPolicy{InitialBackoff: time.Second, MaxBackoff: 100 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for attempt := 1; attempt <= 100; attempt++ {
				// The wait before jitter is InitialBackoff doubled once per
				// earlier retry, capped at MaxBackoff.
				ceiling := float64(tt.policy.InitialBackoff) * math.Pow(2, float64(attempt-1))
				ceiling = min(ceiling, float64(tt.policy.MaxBackoff))
				got := tt.policy.backoff(attempt)
				if float64(got) > ceiling || float64(got) < 0.75*ceiling-1 {
					t.Fatalf("backoff(%d) = %v, want it in [0.75, 1] × %.4gs", attempt, got, ceiling/1e9)
				}
			}
		})
	}
}

// FuzzErrorBody feeds arbitrary non-2xx responses to newStatusError.
func FuzzErrorBody(f *testing.F) {
	f.Add(502, []byte("<html>\r\n<body>bad gateway</body>\r\n</html>"), "", "", false)
	f.Add(404, []byte(`{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":"not_found"}}`), "", "", false)
	f.Add(429, []byte(`{"error":{"message":"slow","type":"requests"}}`), "1.5", "20", false)
	f.Add(400, []byte(`{"error":{"message":"too big"}}`), "", "", true)
	f.Add(500, []byte(strings.Repeat("\x00\xff", 600)), "Wed, 21 Oct 2015 07:28:00 GMT", "-1", false)
	f.Add(503, []byte(strings.Repeat("é", 300)), "NaN", "+Inf", false)
	f.Add(0, []byte{}, "", "", false)
	f.Add(-1, []byte(`{"error":null}`), "1e400", "", false)
	f.Fuzz(func(t *testing.T, status int, body []byte, retryAfter, retryAfterMs string, tooLarge bool) {
		resp := &http.Response{StatusCode: status, Header: http.Header{}}
		if retryAfter != "" {
			resp.Header.Set("Retry-After", retryAfter)
		}
		if retryAfterMs != "" {
			resp.Header.Set("Retry-After-Ms", retryAfterMs)
		}
		e := newStatusError(resp, Meta{RequestID: "req_fuzz"}, body, tooLarge)

		if e.StatusCode != status {
			t.Errorf("StatusCode = %d, want %d", e.StatusCode, status)
		}
		if len(e.Body) > bodyExcerptBytes {
			t.Errorf("len(Body) = %d, want at most %d", len(e.Body), bodyExcerptBytes)
		}
		if !utf8.ValidString(e.Body) {
			t.Errorf("Body = %q, want valid UTF-8", e.Body)
		}
		if i := strings.IndexFunc(e.Body, unicode.IsControl); i >= 0 {
			t.Errorf("Body = %q has a control character at byte %d", e.Body, i)
		}
		if e.Body != "" && e.Message+e.Type != "" {
			t.Errorf("Body = %q and envelope message %q type %q, want only one of them", e.Body, e.Message, e.Type)
		}
		if e.RetryAfter < 0 {
			t.Errorf("RetryAfter = %v, want it not negative", e.RetryAfter)
		}
		if e.Invalid() {
			t.Error("Invalid() = true, want false for a non-2xx answer")
		}
		var env errorEnvelope
		if !tooLarge && json.Unmarshal(body, &env) == nil && env.Error != nil && e.Body != "" {
			t.Errorf("Body = %q, want empty for an error envelope", e.Body)
		}
		msg := e.Error()
		if msg == "" {
			t.Error("Error() is empty")
		}
		if !strings.Contains(msg, "req_fuzz") {
			t.Errorf("Error() = %q, want it to contain the request id", msg)
		}
	})
}
