package api

import (
	"strconv"
	"time"

	"github.com/stampede-dev/stampede/internal/shop"
)

// The order path's common case without reflection: decodeOrderFast reads
// the usual order body and appendOrder writes the usual answer, byte for
// byte as DecodeOrder and encoding/json would (FuzzDecodeOrder and
// TestAppendOrder hold them to it). Anything unusual (escapes, non-ASCII,
// other keys, repeated keys, numbers in other notations) is left to the
// general code: the fast path answers only when it is sure.

// decodeOrderFast decodes {"product_id":N,"user_id":"S","quantity":N} in
// any key order, with JSON whitespace between tokens, where N is a plain
// positive integer and S plain printable ASCII. ok is false for anything
// else, which DecodeOrder must then decode.
func decodeOrderFast(b []byte) (req shop.OrderRequest, ok bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return req, false
	}
	var seen [3]bool
	for {
		i = skipWS(b, i+1)
		key, next, ok := plainString(b, i)
		if !ok {
			return req, false
		}
		i = skipWS(b, next)
		if i >= len(b) || b[i] != ':' {
			return req, false
		}
		i = skipWS(b, i+1)
		switch key {
		case "product_id", "quantity":
			n, next, ok := plainUint(b, i)
			if !ok || n < 1 {
				return req, false
			}
			if key == "product_id" {
				if seen[0] {
					return req, false
				}
				seen[0], req.ProductID = true, n
			} else {
				if seen[2] || n > MaxQuantity {
					return req, false
				}
				seen[2], req.Quantity = true, n
			}
			i = next
		case "user_id":
			s, next, ok := plainString(b, i)
			if !ok || seen[1] || len(s) < 1 || len(s) > MaxUserIDLen {
				return req, false
			}
			seen[1], req.UserID, i = true, s, next
		default:
			return req, false
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return req, false
		}
		if b[i] == '}' {
			break
		}
		if b[i] != ',' {
			return req, false
		}
	}
	if skipWS(b, i+1) != len(b) || !seen[0] || !seen[1] || !seen[2] {
		return req, false
	}
	return req, true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a JSON string of printable ASCII without escapes.
func plainString(b []byte, i int) (s string, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return "", 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return string(b[i+1 : j]), j + 1, true
		case c == '\\' || c < 0x20 || c > 0x7e:
			return "", 0, false
		}
	}
	return "", 0, false
}

// plainUint reads digits with no sign, fraction, exponent or leading zero,
// at most 18 of them so that the value fits an int64.
func plainUint(b []byte, i int) (n int64, next int, ok bool) {
	j := i
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		n = n*10 + int64(b[j]-'0')
		j++
	}
	if j == i || j-i > 18 || b[i] == '0' {
		return 0, 0, false
	}
	if j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
		return 0, 0, false
	}
	return n, j, true
}

// appendOrder appends o as encoding/json marshals it, and reports false,
// having appended nothing, when a string of o needs escaping.
func appendOrder(b []byte, o shop.Order) ([]byte, bool) {
	if !jsonSafe(o.ID) || !jsonSafe(o.UserID) || !jsonSafe(o.IdempotencyKey) {
		return b, false
	}
	if y := o.CreatedAt.Year(); y < 0 || y > 9999 {
		return b, false
	}
	b = append(b, `{"order_id":"`...)
	b = append(b, o.ID...)
	b = append(b, `","product_id":`...)
	b = strconv.AppendInt(b, o.ProductID, 10)
	b = append(b, `,"user_id":"`...)
	b = append(b, o.UserID...)
	b = append(b, `","quantity":`...)
	b = strconv.AppendInt(b, o.Quantity, 10)
	if o.IdempotencyKey != "" {
		b = append(b, `,"idempotency_key":"`...)
		b = append(b, o.IdempotencyKey...)
		b = append(b, '"')
	}
	b = append(b, `,"created_at":"`...)
	b = o.CreatedAt.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...), true
}

// jsonSafe reports whether encoding/json writes s as it is: printable ASCII
// other than the quote, the backslash and the HTML characters it escapes.
func jsonSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}
