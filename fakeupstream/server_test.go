package fakeupstream_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"example.com/filebatch/fakeupstream"
)

func TestURL(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{})
	if !regexp.MustCompile(`^http://127\.0\.0\.1:[0-9]+/v1$`).MatchString(s.URL()) {
		t.Errorf("URL() = %q, want http://127.0.0.1:PORT/v1", s.URL())
	}
	if got, want := s.URL(), "http://"+s.Addr()+"/v1"; got != want {
		t.Errorf("URL() = %q, want %q from Addr()", got, want)
	}
	if err := s.Start(""); err == nil {
		t.Error("second Start() = nil, want an error")
	}
}

func TestStartRejectsNonLoopback(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{":0", "0.0.0.0:0", "192.0.2.1:0", "example.com:0", "no-port"} {
		t.Run(addr, func(t *testing.T) {
			s := fakeupstream.New(fakeupstream.Options{})
			if err := s.Start(addr); err == nil {
				s.Close()
				t.Errorf("Start(%q) = nil, want an error", addr)
			}
		})
	}
}

func TestFastMode(t *testing.T) {
	t.Parallel()
	s := fakeupstream.NewTest(t, fakeupstream.Options{Fast: true, APIKey: "sk-only"})
	s.Inject(fakeupstream.ServerError(500))
	client := newClient(t)

	seen := make(map[string]bool)
	for _, path := range []string{cancelPath("vs_any", "vsfb_any"), "/anything"} {
		resp, body := send(t, client, "POST", s.URL()+path, "sk-other")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status = %d, want 200 for any key and no fault; body %s", path, resp.StatusCode, body)
		}
		if b := decodeBatch(t, body); b.ID != fakeupstream.BatchInProgress || b.Status != "cancelled" {
			t.Errorf("%s: batch %s with status %q, want %s cancelled", path, b.ID, b.Status, fakeupstream.BatchInProgress)
		}
		id := resp.Header.Get("X-Request-Id")
		if !requestIDPattern.MatchString(id) || seen[id] {
			t.Errorf("%s: x-request-id = %q, want a new req_ ID", path, id)
		}
		seen[id] = true
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type = %q, want application/json", path, ct)
		}
	}

	resp, body := send(t, client, "POST", s.URL()+cancelPath("vs_any", "vsfb_any"), "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without key: status = %d, want 401", resp.StatusCode)
	}
	checkEnvelope(t, body, "invalid_request_error", "")

	if n := len(s.Requests()); n != 0 {
		t.Errorf("fast mode recorded %d requests, want 0", n)
	}
}

func TestConnectionsOpened(t *testing.T) {
	t.Parallel()
	for _, fast := range []bool{false, true} {
		name := "default mode"
		if fast {
			name = "fast mode"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := fakeupstream.NewTest(t, fakeupstream.Options{Fast: fast})
			transport := &http.Transport{DisableKeepAlives: true}
			client := &http.Client{Transport: transport}
			for range 3 {
				cancel(t, client, s, fakeupstream.VectorStoreID, fakeupstream.BatchCompleted)
			}
			if got := s.ConnectionsOpened(); got != 3 {
				t.Errorf("ConnectionsOpened() = %d after 3 requests without keep-alive, want 3", got)
			}
		})
	}
}

func TestMountedOnHTTPTest(t *testing.T) {
	t.Parallel()
	s := fakeupstream.New(fakeupstream.Options{})
	ts := httptest.NewUnstartedServer(s)
	ts.Config.ConnState = s.ConnState
	ts.Start()
	t.Cleanup(ts.Close)
	t.Cleanup(func() { s.Close() }) // runs first, ending any hang

	if s.URL() != "" {
		t.Errorf("URL() = %q without Start, want empty", s.URL())
	}
	target := ts.URL + "/v1" + cancelPath(fakeupstream.VectorStoreID, fakeupstream.BatchInProgress)
	resp, body := send(t, newClient(t), "POST", target, fakeupstream.DefaultAPIKey)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", resp.StatusCode, body)
	}
	if got := s.ConnectionsOpened(); got != 1 {
		t.Errorf("ConnectionsOpened() = %d, want 1", got)
	}
	if got := len(s.Requests()); got != 1 {
		t.Errorf("recorded %d requests, want 1", got)
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{addr: "127.0.0.1:0", ok: true},
		{addr: "127.10.0.1:8081", ok: true},
		{addr: "[::1]:8081", ok: true},
		{addr: "localhost:8081", ok: true},
		{addr: ":8081", ok: false},
		{addr: "0.0.0.0:8081", ok: false},
		{addr: "10.0.0.1:8081", ok: false},
		{addr: "example.com:443", ok: false},
		{addr: "127.0.0.1", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := fakeupstream.CheckLoopback(tt.addr)
			if (err == nil) != tt.ok {
				t.Errorf("CheckLoopback(%q) = %v, want ok %t", tt.addr, err, tt.ok)
			}
		})
	}
}
