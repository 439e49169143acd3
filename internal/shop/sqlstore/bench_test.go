package sqlstore_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/shop"
)

// BenchmarkCommitBatch times the reserve writer's step on each store: one
// group commit of n new orders of one product, each from a new buyer, with
// and without a per-user limit (which the store must count per user) and
// a reservation epoch (Redis's orders carry one). ns/op is one batch;
// ns/order divides it among its orders.
//
//	go test -run '^$' -bench CommitBatch ./internal/shop/sqlstore
func BenchmarkCommitBatch(b *testing.B) {
	ctx := context.Background()
	for _, store := range []string{"sqlite", "postgres"} {
		for _, n := range []int{1, 50, 64, 256, 512} {
			for _, limit := range []int64{0, 1} {
				for _, epoch := range []bool{false, true} {
					b.Run(fmt.Sprintf("%s/orders=%d/limit=%d/epoch=%v", store, n, limit, epoch), func(b *testing.B) {
						s := openStore(b, store)
						p, err := s.CreateProduct(ctx, shop.NewProduct{Name: "bench", Stock: 1 << 40, PerUserLimit: limit})
						if err != nil {
							b.Fatal(err)
						}
						var e int64
						if epoch {
							rs, err := s.BeginReservations(ctx, p.ID)
							if err != nil {
								b.Fatal(err)
							}
							e = rs.Epoch
						}
						orders := make([]shop.Order, n)
						seq := 0
						b.ResetTimer()
						for range b.N {
							for i := range orders {
								seq++
								k := strconv.Itoa(seq)
								orders[i] = shop.Order{ID: fmt.Sprintf("%016x%08d", time.Now().UnixNano(), seq), ProductID: p.ID, UserID: "u" + k,
									Quantity: 1, IdempotencyKey: "k" + k, RequestHash: "h", CreatedAt: time.Now(), Epoch: e}
							}
							c, err := s.CommitBatch(ctx, orders)
							if err != nil || len(c.Rejected)+len(c.Stale) > 0 {
								b.Fatalf("commit: %v %+v", err, c)
							}
						}
						b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/order")
						if got, err := s.Product(ctx, p.ID); err != nil || got.Sold != int64(seq) {
							b.Fatalf("sold %d after %d orders (%v)", got.Sold, seq, err)
						}
					})
				}
			}
		}
	}
}
