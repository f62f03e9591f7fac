package fakeupstream

import "testing"

// NewTest starts a server with the given options on a free loopback port
// and closes it when the test ends. It fails the test when the server
// cannot start.
func NewTest(t testing.TB, opts Options) *Server {
	t.Helper()
	s := New(opts)
	if err := s.Start(""); err != nil {
		t.Fatalf("start fake upstream: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close fake upstream: %v", err)
		}
	})
	return s
}
