package shop

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// A Strategy decides how an order takes stock. Buy persists o or returns an
// error; when o.IdempotencyKey already names an order it returns that order
// (or an Order with an empty ID, meaning "look it up in the Store") together
// with ErrDuplicateKey.
type Strategy interface {
	Name() string
	Buy(ctx context.Context, o Order) (Order, error)
}

// StrategyInfo describes a strategy for --list-strategies and for choosing
// defaults.
type StrategyInfo struct {
	Name string
	// SafeWhen says in one line when the strategy never oversells.
	SafeWhen string
	// Safe is false for the strategy kept to show a failure in any setup.
	Safe bool
	// OneProcess is true when the strategy is safe only inside one process.
	OneProcess bool
	// Redis is true when the strategy needs --redis.
	Redis bool
}

// Strategies lists every strategy in the order of the evolution it teaches.
func Strategies() []StrategyInfo {
	return []StrategyInfo{
		{Name: "naive", SafeWhen: "never under concurrency: reads stock, then writes (kept to show the oversell)", OneProcess: true},
		{Name: "mutex", SafeWhen: "only with one process: an in-process lock around read-then-write", Safe: true, OneProcess: true},
		{Name: "redis-lock", SafeWhen: "across processes: a Redis lock with a fencing token the store checks", Safe: true, Redis: true},
		{Name: "atomic", SafeWhen: "always: one conditional UPDATE and the order insert in one transaction", Safe: true},
		{Name: "row-lock", SafeWhen: "always: SELECT ... FOR UPDATE (an immediate transaction on SQLite), then update", Safe: true},
		{Name: "buckets", SafeWhen: "always: stock split across rows, each taken with a conditional UPDATE", Safe: true},
		{Name: "reserve", SafeWhen: "always: atomic reservation (in memory: one process; with --redis: many), durable queue, group commit", Safe: true},
	}
}

// LookupStrategy returns the StrategyInfo named name.
func LookupStrategy(name string) (StrategyInfo, bool) {
	for _, s := range Strategies() {
		if s.Name == name {
			return s, true
		}
	}
	return StrategyInfo{}, false
}

// ReadThenWrite is Phase 1 of every flash sale: read the stock, decide in
// the application, then write. Between the read and the write another buyer
// can read the same stock, which is how a shop oversells. gap is a pause
// between the two, standing for the work real code does there (pricing, a
// fraud check, a call to another service); it widens the window so the
// lesson shows at any load. fence is passed to Store.WriteOrder.
func ReadThenWrite(ctx context.Context, s Store, o Order, gap time.Duration, fence int64) (Order, error) {
	snap, err := s.Snapshot(ctx, o.ProductID, o.UserID)
	if err != nil {
		return Order{}, err
	}
	if snap.Stock < o.Quantity {
		return Order{}, ErrSoldOut
	}
	if snap.PerUserLimit > 0 && snap.UserBought+o.Quantity > snap.PerUserLimit {
		return Order{}, ErrLimitExceeded
	}
	if gap > 0 {
		t := time.NewTimer(gap)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return Order{}, ErrTimeout
		}
	}
	return s.WriteOrder(ctx, o, fence)
}

// Naive reads then writes with nothing to stop another buyer in between.
// It oversells.
type Naive struct {
	Store Store
	Gap   time.Duration // see ReadThenWrite
}

func (Naive) Name() string { return "naive" }

// Buy implements Strategy.
func (n Naive) Buy(ctx context.Context, o Order) (Order, error) {
	return ReadThenWrite(ctx, n.Store, o, n.Gap, 0)
}

// Mutex serialises read-then-write with a lock held by this process only,
// so a second process oversells.
type Mutex struct {
	Store Store
	Gap   time.Duration // see ReadThenWrite
	mu    sync.Mutex
}

func (*Mutex) Name() string { return "mutex" }

// Buy implements Strategy.
func (m *Mutex) Buy(ctx context.Context, o Order) (Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return ReadThenWrite(ctx, m.Store, o, m.Gap, 0)
}

// Atomic lets the database check and take stock in one statement.
type Atomic struct{ Store Store }

func (Atomic) Name() string { return "atomic" }

// Buy implements Strategy.
func (a Atomic) Buy(ctx context.Context, o Order) (Order, error) { return a.Store.BuyAtomic(ctx, o) }

// RowLock locks the product row for the length of the transaction.
type RowLock struct{ Store Store }

func (RowLock) Name() string { return "row-lock" }

// Buy implements Strategy.
func (r RowLock) Buy(ctx context.Context, o Order) (Order, error) { return r.Store.BuyRowLock(ctx, o) }

// Buckets spreads a product's stock over N rows so that concurrent buyers
// contend on different rows. A buyer starts at a random bucket and tries the
// others in turn; it is sold out only when no bucket can serve it, so an
// order for several units can be refused while the buckets together still
// hold enough.
type Buckets struct {
	Store Store
	N     int

	mu    sync.Mutex
	split map[int64]bool
}

func (*Buckets) Name() string { return "buckets" }

// Buy implements Strategy.
func (b *Buckets) Buy(ctx context.Context, o Order) (Order, error) {
	if err := b.ensureSplit(ctx, o.ProductID); err != nil {
		return Order{}, err
	}
	start := rand.IntN(b.N)
	for i := range b.N {
		got, err := b.Store.BuyFromBucket(ctx, o, (start+i)%b.N)
		if ErrorCode(err) == CodeSoldOut {
			continue
		}
		return got, err
	}
	return Order{}, ErrSoldOut
}

func (b *Buckets) ensureSplit(ctx context.Context, productID int64) error {
	b.mu.Lock()
	done := b.split[productID]
	b.mu.Unlock()
	if done {
		return nil
	}
	if err := b.Store.SplitStock(ctx, productID, b.N); err != nil {
		return err
	}
	b.mu.Lock()
	if b.split == nil {
		b.split = make(map[int64]bool)
	}
	b.split[productID] = true
	b.mu.Unlock()
	return nil
}
