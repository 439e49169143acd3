package shopd_test

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stampede-dev/stampede/internal/shopd"
	"github.com/stampede-dev/stampede/internal/testenv"
)

// BenchmarkOrders measures orders/s over HTTP on loopback for every
// strategy and store, and the ceiling: the same server stack answering
// with a fixed 201. Every order succeeds (stock is ample), so each one pays
// for a write; after the run the books must balance exactly.
//
//	go test -run '^$' -bench Orders -benchtime 5s ./internal/shopd
//
// Compare each strategy's ns/op with ceiling's in the same run.
func BenchmarkOrders(b *testing.B) {
	type variant struct {
		name, strategy string
		redis, ceiling bool
	}
	variants := []variant{{name: "ceiling", ceiling: true}}
	for _, s := range []string{"naive", "mutex", "atomic", "row-lock", "buckets", "reserve"} {
		variants = append(variants, variant{name: s, strategy: s})
	}
	variants = append(variants, variant{name: "redis-lock", strategy: "redis-lock", redis: true}, variant{name: "reserve+redis", strategy: "reserve", redis: true})

	for storeName, dsn := range map[string]func(t *testing.B) string{
		"sqlite":   func(b *testing.B) string { return "sqlite:" + b.TempDir() + "/shop.db" },
		"postgres": func(b *testing.B) string { return testenv.Postgres(b) },
	} {
		for _, v := range variants {
			if v.ceiling && storeName != "sqlite" {
				continue
			}
			b.Run(storeName+"/"+v.name, func(b *testing.B) {
				cfg := shopd.DefaultConfig()
				cfg.Store, cfg.Strategy, cfg.Ceiling = dsn(b), v.strategy, v.ceiling
				if v.redis {
					cfg.Redis, cfg.RedisPrefix = testenv.Redis(b)
				}
				c := startB(b, cfg)
				const stock = 1_000_000_000
				id := c.CreateProduct(b, "bench", stock, 0)
				var seq, created atomic.Int64
				b.SetParallelism(128) // 128 × GOMAXPROCS clients
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						n := strconv.FormatInt(seq.Add(1), 10)
						a, err := c.Order(context.Background(), id, "u"+n, 1, "k"+n)
						if err != nil || a.Status != http.StatusCreated {
							b.Errorf("order: %v %s", err, a.Outcome())
							return
						}
						created.Add(1)
					}
				})
				b.StopTimer()
				b.ReportMetric(float64(created.Load())/b.Elapsed().Seconds(), "orders/s")
				if v.ceiling {
					return
				}
				if p := c.Product(b, id); p.Sold != created.Load() || p.Stock+p.Sold != stock {
					b.Errorf("books: sold %d, stock %d, acknowledged %d", p.Sold, p.Stock, created.Load())
				}
			})
		}
	}
}
