package shopd_test

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/shop"
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

// BenchmarkPlaceOrder measures the order's own work, without HTTP: 512 ×
// GOMAXPROCS buyers (512 with -cpu 1) call the service directly, every
// order a new buyer of a product with ample stock. Besides orders/s it
// reports the CPU the whole process spent per order (cpu-µs/order: the
// handlers, the strategy's senders and writers, the store's driver), which
// is what an order costs the shop's core before HTTP is added. Pin it to
// one core to read it as the shop's floor:
//
//	taskset -c 0 go test -run '^$' -bench PlaceOrder -cpu 1 -benchtime 5s ./internal/shopd
func BenchmarkPlaceOrder(b *testing.B) {
	for _, v := range []struct {
		name, store string
		redis       bool
	}{{"sqlite/reserve", "sqlite", false}, {"postgres/reserve+redis", "postgres", true}} {
		b.Run(v.name, func(b *testing.B) {
			cfg := shopd.DefaultConfig()
			cfg.Strategy = "reserve"
			cfg.Store = "sqlite:" + b.TempDir() + "/shop.db"
			if v.store == "postgres" {
				cfg.Store = testenv.Postgres(b)
			}
			if v.redis {
				cfg.Redis, cfg.RedisPrefix = testenv.Redis(b)
			}
			s := serve(b, cfg)
			ctx := context.Background()
			svc, st := shopd.ServiceOf(s)
			const stock = 1_000_000_000
			p, err := st.CreateProduct(ctx, shop.NewProduct{Name: "bench", Stock: stock})
			if err != nil {
				b.Fatal(err)
			}
			var seq, created atomic.Int64
			var before, after syscall.Rusage
			b.SetParallelism(512)
			syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := strconv.FormatInt(seq.Add(1), 10)
					_, fresh, err := svc.PlaceOrder(ctx, shop.OrderRequest{ProductID: p.ID, UserID: "u" + n, Quantity: 1, IdempotencyKey: "k" + n})
					if err != nil || !fresh {
						b.Errorf("order %s: created %v, %v", n, fresh, err)
						return
					}
					created.Add(1)
				}
			})
			b.StopTimer()
			syscall.Getrusage(syscall.RUSAGE_SELF, &after)
			cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
			b.ReportMetric(float64(created.Load())/b.Elapsed().Seconds(), "orders/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(created.Load()), "cpu-µs/order")
			if got, err := st.Product(ctx, p.ID); err != nil || got.Sold != created.Load() || got.Stock+got.Sold != stock {
				b.Errorf("books: %+v, %v; acknowledged %d", got, err, created.Load())
			}
		})
	}
}
