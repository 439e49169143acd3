package api

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stampede-dev/stampede/internal/shop"
)

func TestDecodeOrder(t *testing.T) {
	long := strings.Repeat("u", MaxUserIDLen+1)
	for _, tc := range []struct {
		body string
		want shop.OrderRequest
		code string
	}{
		{body: `{"product_id":7,"user_id":"alice","quantity":2}`, want: shop.OrderRequest{ProductID: 7, UserID: "alice", Quantity: 2}},
		{body: `{"product_id":"7","user_id":42,"quantity":1}`, want: shop.OrderRequest{ProductID: 7, UserID: "42", Quantity: 1}},
		{body: ` {"product_id":7,"user_id":"a","quantity":2.0,"extra":true} `, want: shop.OrderRequest{ProductID: 7, UserID: "a", Quantity: 2}},
		{body: `{"product_id":"abc","user_id":"a","quantity":1}`, want: shop.OrderRequest{ProductID: -1, UserID: "a", Quantity: 1}},
		{body: `{"product_id":0,"user_id":"a","quantity":1}`, want: shop.OrderRequest{ProductID: -1, UserID: "a", Quantity: 1}},
		{body: `{"product_id":7,"user_id":"` + strings.Repeat("é", MaxUserIDLen) + `","quantity":1}`, want: shop.OrderRequest{ProductID: 7, UserID: strings.Repeat("é", MaxUserIDLen), Quantity: 1}},
		{body: ``, code: shop.CodeInvalidJSON},
		{body: `[1]`, code: shop.CodeInvalidJSON},
		{body: `{"product_id":7`, code: shop.CodeInvalidJSON},
		{body: `{"product_id":7} {}`, code: shop.CodeInvalidJSON},
		{body: `{"user_id":"a","quantity":1}`, code: shop.CodeMissingField},
		{body: `{"product_id":7,"quantity":1}`, code: shop.CodeMissingField},
		{body: `{"product_id":7,"user_id":"a"}`, code: shop.CodeMissingField},
		{body: `{"product_id":7,"user_id":"a","quantity":null}`, code: shop.CodeMissingField},
		{body: `{"product_id":7,"user_id":"a","quantity":0}`, code: shop.CodeInvalidValue},
		{body: `{"product_id":7,"user_id":"a","quantity":-3}`, code: shop.CodeInvalidValue},
		{body: `{"product_id":7,"user_id":"a","quantity":1.5}`, code: shop.CodeInvalidValue},
		{body: `{"product_id":7,"user_id":"a","quantity":"1"}`, code: shop.CodeInvalidValue},
		{body: `{"product_id":7,"user_id":"a","quantity":1000001}`, code: shop.CodeInvalidValue},
		{body: `{"product_id":7,"user_id":"a","quantity":1e300}`, code: shop.CodeInvalidValue},
		{body: `{"product_id":true,"user_id":"a","quantity":1}`, code: shop.CodeInvalidValue},
		{body: `{"product_id":1.5,"user_id":"a","quantity":1}`, code: shop.CodeInvalidValue},
		{body: `{"product_id":7,"user_id":"","quantity":1}`, code: shop.CodeInvalidValue},
		{body: `{"product_id":7,"user_id":"` + long + `","quantity":1}`, code: shop.CodeInvalidValue},
		{body: `{"product_id":7,"user_id":{},"quantity":1}`, code: shop.CodeInvalidValue},
		{body: `{"product_id":7,"user_id":4.5,"quantity":1}`, code: shop.CodeInvalidValue},
	} {
		got, err := DecodeOrder([]byte(tc.body))
		if tc.code != "" {
			if err == nil || err.Code != tc.code {
				t.Errorf("DecodeOrder(%s) = %+v, %v; want code %s", tc.body, got, err, tc.code)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("DecodeOrder(%s) = %+v, %v; want %+v", tc.body, got, err, tc.want)
		}
	}
}

func TestDecodeProduct(t *testing.T) {
	for _, tc := range []struct {
		body string
		want shop.NewProduct
		code string
	}{
		{body: `{"name":"phone","stock":100,"per_user_limit":2}`, want: shop.NewProduct{Name: "phone", Stock: 100, PerUserLimit: 2}},
		{body: `{"name":"phone","stock":0}`, want: shop.NewProduct{Name: "phone"}},
		{body: `{"stock":1}`, code: shop.CodeMissingField},
		{body: `{"name":"x"}`, code: shop.CodeMissingField},
		{body: `{"name":"","stock":1}`, code: shop.CodeInvalidValue},
		{body: `{"name":"x","stock":-1}`, code: shop.CodeInvalidValue},
		{body: `{"name":"x","stock":1000000001}`, code: shop.CodeInvalidValue},
		{body: `{"name":"x","stock":1,"per_user_limit":-1}`, code: shop.CodeInvalidValue},
		{body: `{"name":7,"stock":1}`, code: shop.CodeInvalidValue},
		{body: `nope`, code: shop.CodeInvalidJSON},
	} {
		got, err := DecodeProduct([]byte(tc.body))
		if tc.code != "" {
			if err == nil || err.Code != tc.code {
				t.Errorf("DecodeProduct(%s) = %+v, %v; want code %s", tc.body, got, err, tc.code)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("DecodeProduct(%s) = %+v, %v; want %+v", tc.body, got, err, tc.want)
		}
	}
}

// FuzzDecodeOrder checks that any body either decodes to an order within
// bounds or is refused with a 400 or 422, and never panics.
func FuzzDecodeOrder(f *testing.F) {
	for _, s := range []string{
		`{"product_id":7,"user_id":"alice","quantity":2}`,
		`{"product_id":"7","user_id":42,"quantity":1e2}`,
		`{"product_id":-1,"user_id":"","quantity":0}`,
		`{"quantity":1.0000000001}`, `{}`, `[]`, `null`, `{"user_id":"\u0000"}`,
		` {"quantity":3 , "user_id" : "u-1", "product_id":12}` + "\n", `{"product_id":1,"user_id":"a","quantity":1,"quantity":2}`,
		`{"product_id":007,"user_id":"a","quantity":1}`, `{"product_id":1,"user_id":"a","quantity":1}x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeOrder(body)
		if fast, ok := decodeOrderFast(body); ok {
			if slow, serr := decodeOrderJSON(body); serr != nil || slow != fast {
				t.Fatalf("fast path %+v, encoding/json %+v, %v", fast, slow, serr)
			}
		}
		if err != nil {
			if s := status(err); s != 400 && s != 422 {
				t.Fatalf("status %d for a bad body", s)
			}
			return
		}
		if req.Quantity < 1 || req.Quantity > MaxQuantity {
			t.Fatalf("quantity %d out of bounds", req.Quantity)
		}
		if n := utf8.RuneCountInString(req.UserID); n < 1 || n > MaxUserIDLen {
			t.Fatalf("user_id of %d characters", n)
		}
		if req.ProductID < 1 && req.ProductID != unknownProduct {
			t.Fatalf("product_id %d", req.ProductID)
		}
	})
}
