package fakeupstream

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// serveAPI responds to r as OpenAI would. It checks the key, routes the
// path and applies the cancel request to the stored batches.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, start time.Time) {
	if e := s.authenticate(r); e != nil {
		s.writeError(w, start, e)
		return
	}
	path := requestPath(r)
	vectorStoreID, batchID, ok := parseCancelPath(path)
	if !ok {
		s.writeError(w, start, errUnknownURL(r.Method, path))
		return
	}
	if r.Method != http.MethodPost {
		w.Header()["Allow"] = headerAllowPOST
		s.writeError(w, start, errMethodNotAllowed(r.Method, path))
		return
	}
	batch, e := s.store.cancel(vectorStoreID, batchID)
	if e != nil {
		s.writeError(w, start, e)
		return
	}
	s.writeJSON(w, start, http.StatusOK, encodeJSON(batch))
}

// authenticate returns the 401 error for a request without a bearer key
// or with a key other than the server's.
func (s *Server) authenticate(r *http.Request) *apiError {
	key, ok := bearerToken(r.Header.Get("Authorization"))
	switch {
	case !ok:
		return errMissingAPIKey()
	case key != s.apiKey:
		return errInvalidAPIKey()
	}
	return nil
}

// bearerToken returns the token of an Authorization header value of the
// form "Bearer <token>", with the scheme matched case-insensitively.
func bearerToken(header string) (string, bool) {
	const scheme = "Bearer "
	if len(header) < len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return "", false
	}
	token := strings.TrimSpace(header[len(scheme):])
	return token, token != ""
}

// requestPath returns the path of r escaped as the client sent it.
func requestPath(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		path, _, _ := strings.Cut(r.RequestURI, "?")
		return path
	}
	return r.URL.EscapedPath() // a request built in-process or in absolute form
}

// parseCancelPath returns the unescaped IDs of an escaped path
// /v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel.
// It fails for any other path, including one with an empty ID.
func parseCancelPath(path string) (vectorStoreID, batchID string, ok bool) {
	rest, ok := strings.CutPrefix(path, "/v1/vector_stores/")
	if !ok {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[1] != "file_batches" || parts[3] != "cancel" {
		return "", "", false
	}
	vectorStoreID, err1 := url.PathUnescape(parts[0])
	batchID, err2 := url.PathUnescape(parts[2])
	if err1 != nil || err2 != nil || vectorStoreID == "" || batchID == "" {
		return "", "", false
	}
	return vectorStoreID, batchID, true
}

func (s *Server) writeError(w http.ResponseWriter, start time.Time, e *apiError) {
	s.writeJSON(w, start, e.status, e.envelope())
}

// writeJSON sends body with the standard headers and an explicit
// Content-Length.
func (s *Server) writeJSON(w http.ResponseWriter, start time.Time, status int, body []byte) {
	h := w.Header()
	s.responses.setStandardHeaders(h, start)
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, _ = w.Write(body) // a write error means that the client went away
}
