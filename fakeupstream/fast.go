package fakeupstream

import (
	"net/http"
	"strconv"
	"time"
)

// fastResponse is a precomputed response of the fast mode.
type fastResponse struct {
	status        int
	body          []byte
	contentLength []string
}

func newFastResponse(status int, body []byte) fastResponse {
	return fastResponse{status: status, body: body, contentLength: []string{strconv.Itoa(len(body))}}
}

// serveFast responds to any request that has an Authorization header with
// the cancelled [BatchInProgress], and to any other with a 401. Only the request
// ID, the processing time and the remaining-requests count vary.
func (s *Server) serveFast(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if !s.wait(r, s.delay) {
		abortResponse()
	}
	resp := &s.fastOK
	if len(r.Header["Authorization"]) == 0 {
		resp = &s.fast401
	}
	h := w.Header()
	s.responses.setStandardHeaders(h, start)
	h["Content-Length"] = resp.contentLength
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body) // a write error means that the client went away
}
