package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/shop"
)

// TestAppendOrder holds the hand-written answer to encoding/json's bytes,
// and checks that it steps aside for strings that need escaping.
func TestAppendOrder(t *testing.T) {
	at := time.Date(2026, 11, 27, 8, 30, 1, 123456700, time.UTC)
	for _, tc := range []struct {
		o    shop.Order
		fast bool
	}{
		{shop.Order{ID: "0187a9", ProductID: 7, UserID: "alice", Quantity: 2, IdempotencyKey: "k-1", CreatedAt: at}, true},
		{shop.Order{ID: "0187a9", ProductID: 1, UserID: "u 42", Quantity: 1, CreatedAt: at.Truncate(time.Second)}, true},
		{shop.Order{ID: "x", ProductID: 1, UserID: "a<b", Quantity: 1, CreatedAt: at}, false},
		{shop.Order{ID: "x", ProductID: 1, UserID: "é", Quantity: 1, CreatedAt: at}, false},
		{shop.Order{ID: "x", ProductID: 1, UserID: "a", Quantity: 1, IdempotencyKey: `k"`, CreatedAt: at}, false},
	} {
		got, ok := appendOrder(nil, tc.o)
		want, err := json.Marshal(tc.o)
		if err != nil {
			t.Fatal(err)
		}
		if ok != tc.fast || (ok && string(got) != string(want)) || (!ok && len(got) != 0) {
			t.Errorf("appendOrder(%+v) = %s, %v; want %s, %v", tc.o, got, ok, want, tc.fast)
		}
	}
}

// TestDecodeOrderFastTakesTheUsualBody: the body stampede load and most
// clients send never goes through reflection.
func TestDecodeOrderFastTakesTheUsualBody(t *testing.T) {
	req, ok := decodeOrderFast([]byte(`{"product_id":12,"user_id":"u123","quantity":1}`))
	if want := (shop.OrderRequest{ProductID: 12, UserID: "u123", Quantity: 1}); !ok || req != want {
		t.Errorf("got %+v, %v; want %+v, true", req, ok, want)
	}
}
