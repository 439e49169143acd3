package shop_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/shop"
	"github.com/stampede-dev/stampede/internal/shop/sqlite"
)

// The in-memory reserve holds an Idempotency-Key only while its order is
// in flight, so its memory does not grow with every order sold. Retries
// still get their order, whether they arrive while it is in flight (a
// twin waits for it) or after it is stored, on a product with a per-user
// limit (refused by the limit, then found in the store) and without one
// (refused by the store's key, then found there).
func TestReserveLetsGoOfStoredKeys(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "shop.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := shop.NewReserve(st, 64, 1024)
	defer r.Close()
	svc := shop.NewService(st, r, 10_000, time.Minute)

	for _, limit := range []int64{0, 1} {
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			p, err := st.CreateProduct(ctx, shop.NewProduct{Name: "phone", Stock: 1000, PerUserLimit: limit})
			if err != nil {
				t.Fatal(err)
			}
			const keys, twins = 50, 4
			ids := make([][]string, keys)
			created := make([]int, keys)
			var mu sync.Mutex
			var wg sync.WaitGroup
			for k := range keys {
				for range twins {
					wg.Go(func() {
						o, fresh, err := svc.PlaceOrder(ctx, shop.OrderRequest{ProductID: p.ID, UserID: fmt.Sprint("u", k), Quantity: 1, IdempotencyKey: fmt.Sprint(limit, "-k", k)})
						mu.Lock()
						defer mu.Unlock()
						if err != nil {
							t.Errorf("key %d: %v", k, err)
							return
						}
						ids[k] = append(ids[k], o.ID)
						if fresh {
							created[k]++
						}
					})
				}
			}
			wg.Wait()
			if n := shop.KeysInFlight(r); n != 0 {
				t.Errorf("%d keys held after every order was answered, want 0", n)
			}
			// Retried once more, after the fact: the stored order again.
			for k := range keys {
				o, fresh, err := svc.PlaceOrder(ctx, shop.OrderRequest{ProductID: p.ID, UserID: fmt.Sprint("u", k), Quantity: 1, IdempotencyKey: fmt.Sprint(limit, "-k", k)})
				if err != nil || fresh || o.ID != ids[k][0] {
					t.Errorf("key %d retried after it was stored: order %s, created %v, %v; want %s, not created", k, o.ID, fresh, err, ids[k][0])
				}
				for _, id := range ids[k] {
					if id != ids[k][0] {
						t.Errorf("key %d answered with orders %v, want one", k, ids[k])
						break
					}
				}
				if created[k] != 1 {
					t.Errorf("key %d created %d orders, want 1", k, created[k])
				}
			}
			got, err := st.Product(ctx, p.ID)
			if err != nil || got.Sold != keys || got.Stock != 1000-keys {
				t.Errorf("product %+v, %v; want %d sold", got, err, keys)
			}
			if n := shop.KeysInFlight(r); n != 0 {
				t.Errorf("%d keys held after the retries, want 0", n)
			}
		})
	}
}
