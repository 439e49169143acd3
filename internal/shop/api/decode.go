package api

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/stampede-dev/stampede/internal/shop"
)

// Bounds on what a client may ask for.
const (
	MaxQuantity    = 1_000_000
	MaxStock       = 1_000_000_000
	MaxUserIDLen   = 64
	MaxNameLen     = 200
	MaxBodyBytes   = 64 << 10
	MaxIdemKeyLen  = 200
	unknownProduct = -1 // a product_id that cannot name a product: 404, not 422
)

// DecodeOrder parses a POST /api/orders body. product_id may be a number or
// a string of digits; user_id a string of 1 to 64 characters or a JSON
// integer, taken as its decimal string; quantity an integer from 1 to
// MaxQuantity. A product_id that is well-formed but cannot exist decodes as
// ProductID -1, which no store holds.
func DecodeOrder(body []byte) (shop.OrderRequest, *shop.Error) {
	if req, ok := decodeOrderFast(body); ok {
		return req, nil
	}
	return decodeOrderJSON(body)
}

// decodeOrderJSON is DecodeOrder through encoding/json, for every body.
func decodeOrderJSON(body []byte) (shop.OrderRequest, *shop.Error) {
	var raw struct {
		ProductID json.RawMessage `json:"product_id"`
		UserID    json.RawMessage `json:"user_id"`
		Quantity  json.RawMessage `json:"quantity"`
	}
	if err := decodeObject(body, &raw); err != nil {
		return shop.OrderRequest{}, err
	}
	for _, f := range []struct {
		name string
		v    json.RawMessage
	}{{"product_id", raw.ProductID}, {"user_id", raw.UserID}, {"quantity", raw.Quantity}} {
		if len(f.v) == 0 || string(f.v) == "null" {
			return shop.OrderRequest{}, shop.NewError(shop.CodeMissingField, "missing field "+f.name)
		}
	}
	var req shop.OrderRequest
	var err *shop.Error
	if req.ProductID, err = decodeProductID(raw.ProductID); err != nil {
		return shop.OrderRequest{}, err
	}
	if req.UserID, err = decodeUserID(raw.UserID); err != nil {
		return shop.OrderRequest{}, err
	}
	q, ok := jsonInt(raw.Quantity)
	if !ok {
		return shop.OrderRequest{}, shop.NewError(shop.CodeInvalidValue, "quantity must be an integer")
	}
	if q < 1 || q > MaxQuantity {
		return shop.OrderRequest{}, shop.NewError(shop.CodeInvalidValue, "quantity must be from 1 to "+strconv.Itoa(MaxQuantity))
	}
	req.Quantity = q
	return req, nil
}

// DecodeProduct parses a POST /api/products body.
func DecodeProduct(body []byte) (shop.NewProduct, *shop.Error) {
	var raw struct {
		Name         *string         `json:"name"`
		Stock        json.RawMessage `json:"stock"`
		PerUserLimit json.RawMessage `json:"per_user_limit"`
	}
	if err := decodeObject(body, &raw); err != nil {
		return shop.NewProduct{}, err
	}
	if raw.Name == nil {
		return shop.NewProduct{}, shop.NewError(shop.CodeMissingField, "missing field name")
	}
	if len(raw.Stock) == 0 || string(raw.Stock) == "null" {
		return shop.NewProduct{}, shop.NewError(shop.CodeMissingField, "missing field stock")
	}
	n := utf8.RuneCountInString(*raw.Name)
	if n < 1 || n > MaxNameLen {
		return shop.NewProduct{}, shop.NewError(shop.CodeInvalidValue, "name must have 1 to "+strconv.Itoa(MaxNameLen)+" characters")
	}
	if !storable(*raw.Name) {
		return shop.NewProduct{}, shop.NewError(shop.CodeInvalidValue, "name must be valid UTF-8 text without NUL or U+FFFD")
	}
	stock, ok := jsonInt(raw.Stock)
	if !ok || stock < 0 || stock > MaxStock {
		return shop.NewProduct{}, shop.NewError(shop.CodeInvalidValue, "stock must be an integer from 0 to "+strconv.Itoa(MaxStock))
	}
	var limit int64
	if len(raw.PerUserLimit) > 0 && string(raw.PerUserLimit) != "null" {
		if limit, ok = jsonInt(raw.PerUserLimit); !ok || limit < 0 || limit > MaxStock {
			return shop.NewProduct{}, shop.NewError(shop.CodeInvalidValue, "per_user_limit must be an integer from 0 (no limit) to "+strconv.Itoa(MaxStock))
		}
	}
	return shop.NewProduct{Name: *raw.Name, Stock: stock, PerUserLimit: limit}, nil
}

// ParseProductID reads a product id from a URL path; an id that cannot
// exist is reported as not found.
func ParseProductID(s string) (int64, *shop.Error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, shop.ErrNotFound
	}
	return id, nil
}

func decodeObject(body []byte, v any) *shop.Error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return shop.NewError(shop.CodeInvalidJSON, "body must be a JSON object")
	}
	if !json.Valid(body) {
		return shop.NewError(shop.CodeInvalidJSON, "body is not valid JSON")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return shop.NewError(shop.CodeInvalidValue, "a field has the wrong type")
	}
	return nil
}

func decodeProductID(v json.RawMessage) (int64, *shop.Error) {
	if v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) != nil {
			return 0, shop.NewError(shop.CodeInvalidValue, "product_id must be a number or a string")
		}
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id < 1 {
			return unknownProduct, nil
		}
		return id, nil
	}
	id, ok := jsonInt(v)
	if !ok {
		return 0, shop.NewError(shop.CodeInvalidValue, "product_id must be a number or a string")
	}
	if id < 1 {
		return unknownProduct, nil
	}
	return id, nil
}

func decodeUserID(v json.RawMessage) (string, *shop.Error) {
	var s string
	switch {
	case v[0] == '"':
		if json.Unmarshal(v, &s) != nil {
			return "", shop.NewError(shop.CodeInvalidValue, "user_id must be a string")
		}
	default:
		n, ok := jsonInt(v)
		if !ok {
			return "", shop.NewError(shop.CodeInvalidValue, "user_id must be a string or an integer")
		}
		s = strconv.FormatInt(n, 10)
	}
	if n := utf8.RuneCountInString(s); n < 1 || n > MaxUserIDLen {
		return "", shop.NewError(shop.CodeInvalidValue, "user_id must have 1 to "+strconv.Itoa(MaxUserIDLen)+" characters")
	}
	if !storable(s) {
		return "", shop.NewError(shop.CodeInvalidValue, "user_id must be valid UTF-8 text without NUL or U+FFFD")
	}
	return s, nil
}

// storable reports whether every store keeps s as it is: PostgreSQL cannot
// hold a NUL, and encoding/json turns invalid UTF-8 and lone surrogates
// into U+FFFD, so two different ids would become one (sharing one per-user
// limit). A value that fails would otherwise be accepted and then fail a
// whole group commit.
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0) && !strings.ContainsRune(s, utf8.RuneError)
}

// ValidKey reports whether an Idempotency-Key can be stored and compared as
// it was sent: at most MaxIdemKeyLen bytes of UTF-8 without control
// characters.
func ValidKey(k string) bool {
	if len(k) > MaxIdemKeyLen || !utf8.ValidString(k) {
		return false
	}
	for _, r := range k {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// jsonInt reads a JSON number that is an integer in int64 range; 2.0 and
// 2e3 count, 2.5 and "2" do not.
func jsonInt(v json.RawMessage) (int64, bool) {
	if len(v) == 0 || !(v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) {
		return 0, false
	}
	if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}
