package api

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/stampede-dev/stampede/internal/shop"
)

// statusOf maps each error code to its HTTP status; it is the only such
// table.
var statusOf = map[string]int{
	shop.CodeBadRequest:          http.StatusBadRequest,
	shop.CodeInvalidJSON:         http.StatusBadRequest,
	shop.CodeMissingField:        http.StatusBadRequest,
	shop.CodeInvalidValue:        http.StatusUnprocessableEntity,
	shop.CodeBodyTooLarge:        http.StatusRequestEntityTooLarge,
	shop.CodeNotFound:            http.StatusNotFound,
	shop.CodeMethodNotAllowed:    http.StatusMethodNotAllowed,
	shop.CodeSoldOut:             http.StatusConflict,
	shop.CodeLimitExceeded:       http.StatusConflict,
	shop.CodeIdempotencyConflict: http.StatusConflict,
	shop.CodeLockLost:            http.StatusServiceUnavailable,
	shop.CodeOverloaded:          http.StatusServiceUnavailable,
	shop.CodeTimeout:             http.StatusServiceUnavailable,
	shop.CodeOutcomeUnknown:      http.StatusGatewayTimeout,
	shop.CodeUnavailable:         http.StatusServiceUnavailable,
	shop.CodeInternal:            http.StatusInternalServerError,
}

// status is the HTTP status for e's code.
func status(e *shop.Error) int {
	if s, ok := statusOf[e.Code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// shared holds the encoded answers of the shop's shared errors, so that the
// commonest (sold_out, above all, in a crowd) cost no encoding per request.
var shared sync.Map // *shop.Error → []byte

func init() {
	for _, e := range []*shop.Error{shop.ErrNotFound, shop.ErrSoldOut, shop.ErrLimitExceeded,
		shop.ErrLockLost, shop.ErrOverloaded, shop.ErrTimeout, shop.ErrOutcomeUnknown, shop.ErrUnavailable} {
		shared.Store(e, encodeError(e))
	}
}

// errorBody is e as the shop answers it: {"error":{…}} and a newline.
func errorBody(e *shop.Error) []byte {
	if b, ok := shared.Load(e); ok {
		return b.([]byte)
	}
	return encodeError(e)
}

func encodeError(e *shop.Error) []byte {
	b, _ := json.Marshal(struct {
		Error *shop.Error `json:"error"`
	}{e})
	return append(b, '\n')
}
