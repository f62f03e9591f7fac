package service

import "testing"

func TestMetadataKey(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   string
	}{
		{name: "request id", header: "X-Request-Id", want: "x-request-id"},
		{name: "rate limit", header: "X-Ratelimit-Reset-Tokens", want: "x-ratelimit-reset-tokens"},
		{name: "unlisted rate limit", header: "X-Ratelimit-Limit-Images", want: "x-ratelimit-limit-images"},
		{name: "retry after", header: "Retry-After", want: "retry-after"},
		{name: "already lower case", header: "x-should-retry", want: "x-should-retry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := metadataKey(tt.header); got != tt.want {
				t.Errorf("metadataKey(%q) = %q, want %q", tt.header, got, tt.want)
			}
		})
	}
}
