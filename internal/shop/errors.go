package shop

import "errors"

// Error codes a client can see in {"error":{"code":...}}.
const (
	CodeBadRequest          = "bad_request"
	CodeInvalidJSON         = "invalid_json"
	CodeMissingField        = "missing_field"
	CodeInvalidValue        = "invalid_value"
	CodeBodyTooLarge        = "body_too_large"
	CodeNotFound            = "not_found"
	CodeMethodNotAllowed    = "method_not_allowed"
	CodeSoldOut             = "sold_out"
	CodeLimitExceeded       = "limit_exceeded"
	CodeIdempotencyConflict = "idempotency_conflict"
	CodeLockLost            = "lock_lost"
	CodeOverloaded          = "overloaded"
	CodeTimeout             = "timeout"
	CodeOutcomeUnknown      = "outcome_unknown"
	CodeUnavailable         = "unavailable"
	CodeInternal            = "internal"
)

// Error is the one error type the shop shows its clients; the API maps
// each code to its status.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// NewError returns an Error with a code and a message for the client.
func NewError(code, msg string) *Error { return &Error{Code: code, Message: msg} }

// Shared errors. Compare with ErrorCode, not ==, since stores may wrap them.
var (
	ErrNotFound      = NewError(CodeNotFound, "product not found")
	ErrSoldOut       = NewError(CodeSoldOut, "not enough stock left")
	ErrLimitExceeded = NewError(CodeLimitExceeded, "this order would pass the per-user limit")
	ErrLockLost      = NewError(CodeLockLost, "the lock expired before the write; retry")
	ErrOverloaded    = NewError(CodeOverloaded, "the shop is shedding load; retry later")
	// ErrTimeout is a deadline passed before anything was written: the
	// order was not taken, and any retry is safe.
	ErrTimeout = NewError(CodeTimeout, "the order timed out before it was taken; retry")
	// ErrOutcomeUnknown is a deadline passed (or a backend lost) after the
	// order may have been written: it may yet be stored. Only a retry with
	// the same Idempotency-Key is safe; without a key, a retry may buy
	// twice, and the user's orders are the only way to find out.
	ErrOutcomeUnknown = NewError(CodeOutcomeUnknown, "the order may or may not be stored; retry only with the same Idempotency-Key, or look for it among the user's orders")
	ErrUnavailable    = NewError(CodeUnavailable, "the shop cannot take orders now (see /readyz); retry later")
	// ErrDuplicateKey is returned by a Store when an idempotency key is taken.
	ErrDuplicateKey = errors.New("idempotency key already used")
	// ErrWouldOversell is returned by Store.CommitBatch for a batch that
	// would take stock below zero or a user past the limit: a reservation
	// that disagrees with the store (after a fault) loses to the store.
	ErrWouldOversell = errors.New("the batch would take stock below zero or a user past the limit")
)

// ErrorCode returns the code of the *Error in err's chain, or "" if none.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
