package shop

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Error codes a client can see in {"error":{"code":...}}.
const (
	CodeBadRequest          = "bad_request"
	CodeInvalidJSON         = "invalid_json"
	CodeMissingField        = "missing_field"
	CodeInvalidValue        = "invalid_value"
	CodeBodyTooLarge        = "body_too_large"
	CodeNotFound            = "not_found"
	CodeSoldOut             = "sold_out"
	CodeLimitExceeded       = "limit_exceeded"
	CodeIdempotencyConflict = "idempotency_conflict"
	CodeLockLost            = "lock_lost"
	CodeOverloaded          = "overloaded"
	CodeTimeout             = "timeout"
	CodeInternal            = "internal"
)

// statusOf maps each code to its HTTP status; it is the only such table.
var statusOf = map[string]int{
	CodeBadRequest:          http.StatusBadRequest,
	CodeInvalidJSON:         http.StatusBadRequest,
	CodeMissingField:        http.StatusBadRequest,
	CodeInvalidValue:        http.StatusUnprocessableEntity,
	CodeBodyTooLarge:        http.StatusRequestEntityTooLarge,
	CodeNotFound:            http.StatusNotFound,
	CodeSoldOut:             http.StatusConflict,
	CodeLimitExceeded:       http.StatusConflict,
	CodeIdempotencyConflict: http.StatusConflict,
	CodeLockLost:            http.StatusServiceUnavailable,
	CodeOverloaded:          http.StatusServiceUnavailable,
	CodeTimeout:             http.StatusServiceUnavailable,
	CodeInternal:            http.StatusInternalServerError,
}

// Error is the one error type the shop shows its clients.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	json    []byte // {"error":{…}} and a newline, made once
}

// body is e as the shop answers it.
func (e *Error) body() []byte {
	if e.json != nil {
		return e.json
	}
	b, _ := json.Marshal(struct {
		Error *Error `json:"error"`
	}{e})
	return append(b, '\n')
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Status is the HTTP status for e's code.
func (e *Error) Status() int {
	if s, ok := statusOf[e.Code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// errorOf makes an Error with its answer encoded once, so that the shared
// ones (sold_out above all, in a crowd) cost no encoding per request.
func errorOf(code, msg string) *Error {
	e := &Error{Code: code, Message: msg}
	e.json = e.body()
	return e
}

// Shared errors. Compare with ErrorCode, not ==, since stores may wrap them.
var (
	ErrNotFound      = errorOf(CodeNotFound, "product not found")
	ErrSoldOut       = errorOf(CodeSoldOut, "not enough stock left")
	ErrLimitExceeded = errorOf(CodeLimitExceeded, "this order would pass the per-user limit")
	ErrLockLost      = errorOf(CodeLockLost, "the lock expired before the write; retry")
	ErrOverloaded    = errorOf(CodeOverloaded, "the shop is shedding load; retry later")
	ErrTimeout       = errorOf(CodeTimeout, "the order did not finish before its deadline; retry with the same Idempotency-Key")
	// ErrDuplicateKey is returned by a Store when an idempotency key is taken.
	ErrDuplicateKey = errors.New("idempotency key already used")
)

// ErrorCode returns the code of the *Error in err's chain, or "" if none.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
