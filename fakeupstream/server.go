package fakeupstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultAPIKey is the key that a server accepts when [Options.APIKey] is
// empty.
const DefaultAPIKey = "sk-fake-key"

// DefaultAddr is the address that [Server.Start] listens on when given an
// empty one: a free port on the IPv4 loopback interface.
const DefaultAddr = "127.0.0.1:0"

// Options configures a [Server].
type Options struct {
	// APIKey is the only bearer key accepted. Empty means [DefaultAPIKey].
	APIKey string
	// Batches is the initial state. Nil means [DefaultBatches], and an
	// empty non-nil slice starts with no batches.
	Batches []Batch
	// Fast selects the benchmark mode: no state, no recording, no faults, no
	// check of the key beyond its presence, and one precomputed batch as
	// the response to any request that has an Authorization header.
	Fast bool
	// Delay is waited before every response, in both modes and before any
	// fault. The wait ends early, and nothing is sent, when the request's
	// context is done.
	Delay time.Duration
}

// Server is the fake upstream. It is an [http.Handler], and [Server.Start]
// also serves it on a loopback address of its own. Its methods are safe for
// concurrent use.
type Server struct {
	apiKey    string
	fast      bool
	delay     time.Duration
	store     *store
	faults    faultQueue
	responses *responseCounter
	fastOK    fastResponse
	fast401   fastResponse

	recorder  *recorder
	conns     atomic.Int64
	closing   chan struct{} // closed by Close and Shutdown to end waits
	closeOnce sync.Once

	mu   sync.Mutex
	http *http.Server // nil until Start
	addr string
	url  string
}

// New returns a server with the given options. It serves requests through
// [Server.ServeHTTP] at once, and on its own address after [Server.Start].
func New(opts Options) *Server {
	s := &Server{
		apiKey:    opts.APIKey,
		fast:      opts.Fast,
		delay:     opts.Delay,
		responses: newResponseCounter(),
		recorder:  newRecorder(),
		closing:   make(chan struct{}),
	}
	if s.apiKey == "" {
		s.apiKey = DefaultAPIKey
	}
	seed := opts.Batches
	if seed == nil {
		seed = DefaultBatches()
	}
	s.store = newStore(seed)
	s.fastOK = newFastResponse(http.StatusOK, cancelledBatchBody())
	s.fast401 = newFastResponse(http.StatusUnauthorized, errMissingAPIKey().envelope())
	return s
}

// ServeHTTP responds to r. In the default mode it records r, waits
// [Options.Delay], then applies the next queued fault if there is one, and
// otherwise checks the key, routes the path and cancels the batch.
//
// When a delay or a hang ends because the request's context is done or the
// server closes, ServeHTTP panics with [http.ErrAbortHandler], so that
// net/http closes the connection without a response.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.fast {
		s.serveFast(w, r)
		return
	}
	start := time.Now()
	finish := s.recorder.add(r)
	defer finish()
	if !s.wait(r, s.delay) {
		abortResponse()
	}
	if f, ok := s.faults.pop(); ok {
		s.applyFault(w, r, f, start)
		return
	}
	s.serveAPI(w, r, start)
}

// Start listens on addr and serves in the background until [Server.Close]
// or [Server.Shutdown]. An empty addr means [DefaultAddr]. The host must be
// a loopback IP address or "localhost".
func (s *Server) Start(addr string) error {
	if addr == "" {
		addr = DefaultAddr
	}
	if err := CheckLoopback(addr); err != nil {
		return fmt.Errorf("fakeupstream: listen on %q: %w", addr, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http != nil {
		return errors.New("fakeupstream: server already started")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("fakeupstream: listen on %q: %w", addr, err)
	}
	if tcp, ok := l.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		l.Close()
		return fmt.Errorf("fakeupstream: listen on %q: bound address %s is not a loopback address", addr, l.Addr())
	}
	s.http = &http.Server{Handler: s, ConnState: s.ConnState, ReadHeaderTimeout: 10 * time.Second}
	s.addr = l.Addr().String()
	s.url = "http://" + s.addr + "/v1"
	srv := s.http
	// Serve returns http.ErrServerClosed after Close or Shutdown. It stops
	// early only when the listener fails, and clients then see refused
	// connections.
	go func() { _ = srv.Serve(l) }()
	return nil
}

// CheckLoopback returns an error when the host of addr, a "host:port"
// address, is not a loopback IP address or "localhost". The fake upstream
// and the benchmark tools check every address with it before they listen
// on it or send to it, so that no test traffic leaves the machine.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("host %q is not a loopback IP address or localhost", host)
	}
	return nil
}

// URL returns the API root that clients append paths to, such as
// "http://127.0.0.1:8081/v1", or "" before [Server.Start].
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Addr returns the host and port that the server listens on, such as
// "127.0.0.1:8081", or "" before [Server.Start].
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// ConnState counts new connections for [Server.ConnectionsOpened]. The
// server started by [Server.Start] uses it. Set it as the ConnState of
// another http.Server, such as an httptest.Server's Config, that serves s.
func (s *Server) ConnState(_ net.Conn, state http.ConnState) {
	if state == http.StateNew {
		s.conns.Add(1)
	}
}

// ConnectionsOpened returns the number of TCP connections accepted so far.
func (s *Server) ConnectionsOpened() int64 { return s.conns.Load() }

// Reset restores the initial batches and drops the recorded requests and
// the queued faults. The connection count stays.
func (s *Server) Reset() {
	s.store.reset()
	s.recorder.reset()
	s.faults.clear()
}

// Close ends every delay and hang, closes the listener and every
// connection, and waits for the handlers of the recorded requests to
// return. Without [Server.Start] it only ends the delays and hangs, so
// that another server that serves s can be closed next.
func (s *Server) Close() error {
	s.endWaits()
	s.mu.Lock()
	srv := s.http
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Close()
	for _, r := range s.recorder.snapshot() {
		<-r.Done()
	}
	return err
}

// Shutdown ends every delay and hang, then stops the server started by
// [Server.Start] as [http.Server.Shutdown] does.
func (s *Server) Shutdown(ctx context.Context) error {
	s.endWaits()
	s.mu.Lock()
	srv := s.http
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

func (s *Server) endWaits() { s.closeOnce.Do(func() { close(s.closing) }) }

// wait waits d, and returns false when the request's context is done or
// the server closes first.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.closing:
		return false
	}
}

// hang waits until the request's context is done or the server closes,
// then aborts the response.
func (s *Server) hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.closing:
	}
	abortResponse()
}

// abortResponse ends the handler and makes net/http close the connection
// without completing the response. Returning instead would send an empty
// 200 response when the server closes during a wait.
func abortResponse() { panic(http.ErrAbortHandler) }
