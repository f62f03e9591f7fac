package fakeupstream

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// faultQueue is the FIFO of injected faults.
type faultQueue struct {
	mu      sync.Mutex
	entries []queuedFault
}

type queuedFault struct {
	fault     Fault
	remaining int // requests left; negative means every request
}

func (q *faultQueue) push(f Fault, count int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.entries = append(q.entries, queuedFault{fault: f, remaining: count})
}

// pop returns the fault for the next request, if any.
func (q *faultQueue) pop() (Fault, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.entries) == 0 {
		return Fault{}, false
	}
	head := &q.entries[0]
	f := head.fault
	if head.remaining > 0 {
		head.remaining--
		if head.remaining == 0 {
			q.entries = q.entries[1:]
		}
	}
	return f, true
}

func (q *faultQueue) clear() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.entries = nil
}

// Inject queues faults. Each applies to one request, in order, after the
// faults queued before. Once the queue is empty, requests get the normal
// response.
func (s *Server) Inject(faults ...Fault) {
	for _, f := range faults {
		s.faults.push(f, 1)
	}
}

// InjectN queues f for the next n requests after the faults queued before.
// It does nothing when n is not positive.
func (s *Server) InjectN(n int, f Fault) {
	if n > 0 {
		s.faults.push(f, n)
	}
}

// InjectAlways queues f for every request after the faults queued before,
// until [Server.ClearFaults] or [Server.Reset]. Faults queued after it
// never apply.
func (s *Server) InjectAlways(f Fault) { s.faults.push(f, -1) }

// ClearFaults drops every queued fault.
func (s *Server) ClearFaults() { s.faults.clear() }

// applyFault sends the response that f describes, or breaks the exchange.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f Fault, start time.Time) {
	if !s.wait(r, f.Delay) {
		abortResponse()
	}
	switch f.Kind {
	case FaultPass:
		s.serveAPI(&headerOverrideWriter{ResponseWriter: w, header: f.Header}, r, start)
	case FaultHang:
		s.hang(r)
	case FaultTruncate, FaultResetMidBody, FaultResetNoResponse:
		s.breakConnection(w, f, start)
	default:
		s.setFaultHeaders(w.Header(), f, start)
		w.WriteHeader(f.status())
		_, _ = w.Write(f.Body) // a write error means that the client went away
	}
}

func (f Fault) status() int {
	if f.Status == 0 {
		return http.StatusOK
	}
	return f.Status
}

// setFaultHeaders sets the standard headers unless f omits them, then f's
// headers and Content-Length.
func (s *Server) setFaultHeaders(h http.Header, f Fault, start time.Time) {
	if !f.OmitStandardHeaders {
		s.responses.setStandardHeaders(h, start)
	}
	for name, values := range f.Header {
		h[http.CanonicalHeaderKey(name)] = append([]string(nil), values...)
	}
	h["Content-Length"] = []string{strconv.Itoa(len(f.Body))}
}

// breakConnection takes over the connection and breaks the exchange as
// f.Kind selects. Without HTTP/1 hijacking, it aborts the response instead.
func (s *Server) breakConnection(w http.ResponseWriter, f Fault, start time.Time) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		abortResponse()
	}
	defer conn.Close()
	if f.Kind != FaultTruncate {
		if tcp, ok := conn.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0) // Close then sends RST in place of FIN
		}
	}
	if f.Kind == FaultResetNoResponse {
		return
	}
	h := make(http.Header)
	s.setFaultHeaders(h, f, start)
	writeHead(buf.Writer, f.status(), h)
	_, _ = buf.Write(f.Body[:len(f.Body)/2])
	_ = buf.Flush()
}

// writeHead writes an HTTP/1.1 status line and header block.
func writeHead(w *bufio.Writer, status int, h http.Header) {
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	_ = h.Write(w)
	_, _ = w.WriteString("\r\n")
}

// headerOverrideWriter sets header on top of the handler's headers when the
// response starts.
type headerOverrideWriter struct {
	http.ResponseWriter
	header      http.Header
	wroteHeader bool
}

func (w *headerOverrideWriter) WriteHeader(status int) {
	if !w.wroteHeader {
		w.wroteHeader = true
		h := w.ResponseWriter.Header()
		for name, values := range w.header {
			h[http.CanonicalHeaderKey(name)] = append([]string(nil), values...)
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *headerOverrideWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets [http.ResponseController] reach the underlying writer.
func (w *headerOverrideWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
