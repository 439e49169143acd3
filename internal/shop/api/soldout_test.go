package api_test

import (
	"context"
	syncatomic "sync/atomic"
	"testing"

	"github.com/stampede-dev/stampede/internal/shop"
)

// countingStore counts the calls that cost a round trip to the database.
type countingStore struct {
	shop.Store
	buys, lookups syncatomic.Int64
}

func (c *countingStore) BuyAtomic(ctx context.Context, o shop.Order) (shop.Order, error) {
	c.buys.Add(1)
	return c.Store.BuyAtomic(ctx, o)
}

func (c *countingStore) OrderByKey(ctx context.Context, key string) (shop.Order, error) {
	c.lookups.Add(1)
	return c.Store.OrderByKey(ctx, key)
}

// TestSoldOutFromMemory: once the store has refused a quantity as sold
// out, the same or a larger quantity is refused without asking it; a
// smaller one still asks, and so does an order with an Idempotency-Key,
// whose earlier order (if stored) is what its buyer must get back.
func TestSoldOutFromMemory(t *testing.T) {
	var cs *countingStore
	srv, _ := newShopOn(t, func(s shop.Store) shop.Store { cs = &countingStore{Store: s}; return cs }, atomic, 100)
	call(t, srv, "POST", "/api/products", `{"name":"phone","stock":3}`)
	order := func(q string, hdr ...string) answer {
		return call(t, srv, "POST", "/api/orders", `{"product_id":1,"user_id":"u","quantity":`+q+`}`, hdr...)
	}
	steps := []struct {
		name          string
		q             string
		key           string
		status        int
		code          string
		buys, lookups int64
	}{
		{"two of three", "2", "k1", 201, "", 1, 1},
		{"two of one: the store refuses", "2", "", 409, shop.CodeSoldOut, 2, 1},
		{"two again: memory refuses", "2", "", 409, shop.CodeSoldOut, 2, 1},
		{"three: memory refuses", "3", "", 409, shop.CodeSoldOut, 2, 1},
		{"one: smaller, so the store is asked", "1", "", 201, "", 3, 1},
		{"one of none: the store refuses", "1", "", 409, shop.CodeSoldOut, 4, 1},
		{"one more: memory", "1", "", 409, shop.CodeSoldOut, 4, 1},
		{"a new key: looked up, then memory", "1", "k2", 409, shop.CodeSoldOut, 4, 2},
		{"the stored key's retry gets its order", "2", "k1", 200, "", 4, 3},
	}
	for _, s := range steps {
		var a answer
		if s.key != "" {
			a = order(s.q, "Idempotency-Key", s.key)
		} else {
			a = order(s.q)
		}
		if a.status != s.status || a.code() != s.code || cs.buys.Load() != s.buys || cs.lookups.Load() != s.lookups {
			t.Errorf("%s: %d %q with %d buys and %d lookups; want %d %q, %d and %d",
				s.name, a.status, a.code(), cs.buys.Load(), cs.lookups.Load(), s.status, s.code, s.buys, s.lookups)
		}
	}
}
