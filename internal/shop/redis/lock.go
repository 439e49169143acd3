package redis

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stampede-dev/stampede/internal/shop"
)

// acquire takes the lock if it is free and, only then, draws the next
// fencing token, so tokens grow in the order locks are granted.
var acquire = goredis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0`)

// release deletes the lock only if it still holds our token: a holder whose
// lock expired must not free the next holder's.
var release = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// Lock is the redis-lock strategy: read-then-write inside a per-product
// Redis lock. A lock can expire while its holder is paused (a GC pause, a
// slow disk), so the holder also carries a fencing token that the store
// checks on write; a write with an older token than the last one fails with
// lock_lost instead of overselling.
//
// Buyers in one process first queue for a local turn per product, so that
// only one of them at a time polls Redis for the lock: without it a crowd of
// pollers swamps Redis and the connection pool, and the holder's own
// release waits behind them.
type Lock struct {
	rdb    *goredis.Client
	store  shop.Store
	prefix string
	ttl    time.Duration
	gap    time.Duration

	mu    sync.Mutex
	turns map[int64]chan struct{}
}

// NewLock returns the redis-lock strategy. Keys start with prefix; a lock
// expires after ttl if its holder never releases it. gap pauses between
// read and write (see shop.ReadThenWrite): a gap longer than ttl lets the
// lock expire under its holder, which the fencing token then catches.
func NewLock(c *Client, store shop.Store, prefix string, ttl, gap time.Duration) *Lock {
	return &Lock{rdb: c.rdb, store: store, prefix: prefix, ttl: ttl, gap: gap, turns: make(map[int64]chan struct{})}
}

func (*Lock) Name() string { return "redis-lock" }

// Buy implements shop.Strategy.
func (l *Lock) Buy(ctx context.Context, o shop.Order) (shop.Order, error) {
	// Stock only goes down, so a lock-free read can refuse early without
	// queueing for the lock; the decision to sell is taken under it.
	if snap, err := l.store.Snapshot(ctx, o.ProductID, o.UserID); err != nil {
		return shop.Order{}, err
	} else if snap.Stock < o.Quantity {
		return shop.Order{}, shop.ErrSoldOut
	}
	turn := l.turn(o.ProductID)
	select {
	case turn <- struct{}{}:
		defer func() { <-turn }()
	case <-ctx.Done():
		return shop.Order{}, shop.ErrTimeout
	}
	key := productKey(l.prefix, "lock", o.ProductID)
	keys := []string{key, productKey(l.prefix, "fence", o.ProductID)}
	tok := token()
	ttl := strconv.FormatInt(l.ttl.Milliseconds(), 10)
	var fence int64
	for pause := 200 * time.Microsecond; ; pause = min(2*pause, 5*time.Millisecond) {
		var err error
		if fence, err = acquire.Run(ctx, l.rdb, keys, tok, ttl).Int64(); err != nil {
			return shop.Order{}, err
		}
		if fence > 0 {
			break
		}
		t := time.NewTimer(pause/2 + rand.N(pause))
		select {
		case <-ctx.Done():
			t.Stop()
			return shop.Order{}, shop.ErrTimeout
		case <-t.C:
		}
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		release.Run(ctx, l.rdb, keys[:1], tok)
	}()
	return shop.ReadThenWrite(ctx, l.store, o, l.gap, fence)
}

// turn returns the channel whose single slot is this process's turn at a
// product's lock.
func (l *Lock) turn(id int64) chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.turns[id]
	if !ok {
		t = make(chan struct{}, 1)
		l.turns[id] = t
	}
	return t
}
