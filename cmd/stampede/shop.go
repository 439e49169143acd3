package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/stampede-dev/stampede/internal/prefork"
	"github.com/stampede-dev/stampede/internal/shop"
	"github.com/stampede-dev/stampede/internal/shopd"
)

func runShop(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := shopd.DefaultConfig()
	fs := newFlagSet("shop", "shop [--addr HOST:PORT] [--store DSN] [--redis URL] [--strategy NAME] [--procs N]", stderr)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address")
	fs.StringVar(&cfg.Store, "store", cfg.Store, "store: sqlite:PATH or postgres://USER@HOST:PORT/DB")
	fs.StringVar(&cfg.Redis, "redis", "", "Redis URL (redis://HOST:PORT/DB) for redis-lock and the multi-process reserve")
	fs.StringVar(&cfg.RedisPrefix, "redis-prefix", cfg.RedisPrefix, "prefix of every Redis key, to keep shops apart")
	fs.StringVar(&cfg.Strategy, "strategy", "", "concurrency strategy (default: the fastest safe one for the setup)")
	fs.IntVar(&cfg.Procs, "procs", cfg.Procs, "worker processes sharing the port (SO_REUSEPORT)")
	fs.IntVar(&cfg.Pool, "pool", 0, "PostgreSQL connections per process (default: 16, or fewer so that all processes fit the server's max_connections)")
	fs.IntVar(&cfg.Buckets, "buckets", cfg.Buckets, "stock rows per product for the buckets strategy")
	fs.IntVar(&cfg.MaxInFlight, "max-inflight", cfg.MaxInFlight, "orders placed at once before the shop sheds load with 503")
	fs.DurationVar(&cfg.OrderTimeout, "order-timeout", cfg.OrderTimeout, "deadline of one order, store included")
	fs.IntVar(&cfg.BatchSize, "batch", cfg.BatchSize, "most orders in one group commit (reserve)")
	fs.DurationVar(&cfg.LockTTL, "lock-ttl", cfg.LockTTL, "lock expiry (redis-lock)")
	fs.DurationVar(&cfg.Gap, "gap", 0, "pause between read and write in naive, mutex and redis-lock, standing for real work there; widens the race window")
	fs.BoolVar(&cfg.Ceiling, "ceiling", false, "benchmark baseline: answer every request with a fixed 201 and touch nothing")
	list := fs.Bool("list-strategies", false, "print the strategies and when each is safe, then exit")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if *list {
		for _, s := range shop.Strategies() {
			fmt.Fprintf(stdout, "%-11s %s\n", s.Name, s.SafeWhen)
		}
		return nil
	}
	warning, err := cfg.Resolve()
	if err != nil {
		return usageError{err}
	}
	log := logger(stderr)
	if !prefork.IsWorker() {
		if warning != "" {
			fmt.Fprintf(stderr, "warning: %s\n", warning)
		}
	}
	return shopd.Run(ctx, cfg, append([]string{"shop"}, args...), log, func(addr string) {
		if !prefork.IsWorker() {
			if w := prefork.BacklogWarning(); w != "" {
				fmt.Fprintf(stderr, "warning: %s\n", w)
			}
			fmt.Fprintf(stdout, "stampede shop: serving http://%s (strategy %s, store %s, %d process(es)); Ctrl-C stops\n", addr, cfg.Strategy, storeName(cfg.Store), cfg.Procs)
		}
	})
}

// storeName says where orders go: a SQLite file by its absolute path, so
// that nobody wonders which folder the default ./stampede.db went to; a
// PostgreSQL DSN as given.
func storeName(store string) string {
	if path, ok := strings.CutPrefix(store, "sqlite:"); ok {
		if abs, err := filepath.Abs(path); err == nil {
			return "sqlite, orders stored in " + abs
		}
	}
	return store
}
