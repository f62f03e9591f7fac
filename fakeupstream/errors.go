package fakeupstream

import (
	"fmt"
	"net/http"
)

// OpenAI error types and codes that the server sends.
const (
	TypeInvalidRequest    = "invalid_request_error"
	TypeServerError       = "server_error"
	TypeRequests          = "requests"
	TypeInsufficientQuota = "insufficient_quota"

	CodeInvalidAPIKey     = "invalid_api_key"
	CodeRateLimitExceeded = "rate_limit_exceeded"
	CodeInsufficientQuota = "insufficient_quota"
)

// apiError is an OpenAI error response: an HTTP status and the fields of the
// envelope {"error":{"message","type","param","code"}}.
type apiError struct {
	status  int
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// newAPIError returns an error whose param is null, and whose code is null
// when code is empty.
func newAPIError(status int, errType, code, message string) *apiError {
	e := &apiError{status: status, Message: message, Type: errType}
	if code != "" {
		e.Code = &code
	}
	return e
}

// envelope returns the JSON text of the error envelope.
func (e *apiError) envelope() []byte {
	return encodeJSON(struct {
		Error *apiError `json:"error"`
	}{e})
}

func errMissingAPIKey() *apiError {
	return newAPIError(http.StatusUnauthorized, TypeInvalidRequest, "",
		`Missing API key. Send it in the Authorization header as "Bearer <key>".`)
}

func errInvalidAPIKey() *apiError {
	return newAPIError(http.StatusUnauthorized, TypeInvalidRequest, CodeInvalidAPIKey,
		"The API key in the Authorization header is not valid. Check the key and try again.")
}

func errUnknownURL(method, path string) *apiError {
	return newAPIError(http.StatusNotFound, TypeInvalidRequest, "",
		fmt.Sprintf("Unknown URL: %s %s. Check the method and the path.", method, path))
}

func errMethodNotAllowed(method, path string) *apiError {
	return newAPIError(http.StatusMethodNotAllowed, TypeInvalidRequest, "",
		fmt.Sprintf("Method %s is not allowed on %s. Use POST.", method, path))
}

func errVectorStoreNotFound(vectorStoreID string) *apiError {
	return newAPIError(http.StatusNotFound, TypeInvalidRequest, "",
		fmt.Sprintf("Vector store '%s' does not exist.", vectorStoreID))
}

func errBatchNotFound(vectorStoreID, batchID string) *apiError {
	return newAPIError(http.StatusNotFound, TypeInvalidRequest, "",
		fmt.Sprintf("File batch '%s' does not exist in vector store '%s'.", batchID, vectorStoreID))
}

func errBatchFinished(b Batch) *apiError {
	return newAPIError(http.StatusBadRequest, TypeInvalidRequest, "",
		fmt.Sprintf("File batch '%s' cannot be cancelled because its status is '%s'.", b.ID, b.Status))
}
