package redis

import (
	"context"

	"github.com/stampede-dev/stampede/internal/shop"
)

// ReserveOnce reserves for orders with one run of the reserve script, as a
// batch sender does for the buyers it holds, and returns each order's
// answer.
func ReserveOnce(ctx context.Context, r *Reserve, orders []shop.Order) ([][]string, error) {
	batch := make([]*reservation, len(orders))
	for i, o := range orders {
		batch[i] = &reservation{ctx: ctx, o: o, done: make(chan struct{})}
	}
	r.reserveBatch(ctx, batch)
	answers := make([][]string, len(orders))
	for i, rv := range batch {
		<-rv.done
		if rv.err != nil {
			return nil, rv.err
		}
		answers[i] = rv.res
	}
	return answers, nil
}

// Load seeds Redis with a product's reservations from the store.
func Load(ctx context.Context, r *Reserve, id int64) error { return r.ensureLoaded(ctx, id) }
