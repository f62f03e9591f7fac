package fakeupstream_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"example.com/filebatch/fakeupstream"
)

// discardWriter is a ResponseWriter that keeps only the headers, so that
// the benchmarks measure the handler alone.
type discardWriter struct{ header http.Header }

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

func benchmarkServeHTTP(b *testing.B, opts fakeupstream.Options) {
	s := fakeupstream.New(opts)
	defer s.Close()
	req := httptest.NewRequest(http.MethodPost, "/v1/vector_stores/vs_abc123/file_batches/vsfb_completed/cancel", nil)
	req.Header.Set("Authorization", "Bearer "+fakeupstream.DefaultAPIKey)
	w := &discardWriter{header: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.header)
		s.ServeHTTP(w, req)
	}
}

func BenchmarkServeHTTPFast(b *testing.B) {
	benchmarkServeHTTP(b, fakeupstream.Options{Fast: true})
}

// BenchmarkServeHTTPDefault measures a 400 response, because the batch is
// completed. The server records every request, so its memory grows with
// b.N.
func BenchmarkServeHTTPDefault(b *testing.B) {
	benchmarkServeHTTP(b, fakeupstream.Options{})
}
