package redis

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stampede-dev/stampede/internal/shop"
)

// Repair is what Reconcile found wrong with one product and set right.
type Repair struct {
	Product int64
	// Redis is the stock Redis held; Want what the store and the queue
	// say it should hold: the store's stock less the units of queued
	// orders of the current epoch not yet stored.
	Redis, Want int64
	// Users counts the users whose allowance in Redis disagreed.
	Users int
	Epoch int64 // the epoch the product was reloaded in
}

func (r Repair) String() string {
	return fmt.Sprintf("product %d: Redis held %d units, the store and the queue say %d, %d users' allowances differed; reloaded from the store in epoch %d",
		r.Product, r.Redis, r.Want, r.Users, r.Epoch)
}

// Reconcile compares, for every product the Redis reserve under prefix
// holds, Redis's stock and users' allowances with the store's less the
// orders still queued in the stream (those of the current epoch that are
// not stored yet), and reloads from the store, in a new epoch, each
// product where they disagree: after Redis was restored from an old
// snapshot, say, or written by hand. The queued orders of a reloaded
// product are then refused as stale when a writer commits them, and
// their buyers reserve again.
//
// It must run before any process of the shop takes orders (the shop runs
// it at start, before its workers): orders placed meanwhile would move
// the counts it compares. Each product consistent or repaired is logged.
func Reconcile(ctx context.Context, c *Client, store shop.Store, prefix string, log *slog.Logger) ([]Repair, error) {
	rdb := c.rdb
	var ids []int64
	iter := rdb.Scan(ctx, 0, prefix+"stock:*", 1000).Iterator()
	for iter.Next(ctx) {
		if id, err := strconv.ParseInt(strings.TrimPrefix(iter.Val(), prefix+"stock:"), 10, 64); err == nil {
			ids = append(ids, id)
		}
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("list products in redis: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	entries, err := rdb.XRange(ctx, prefix+"orders", "-", "+").Result()
	if err != nil {
		return nil, fmt.Errorf("read the order queue: %w", err)
	}
	queued := make([]shop.Order, 0, len(entries))
	for _, m := range entries {
		if o, err := decodeEntry(m.Values); err == nil {
			queued = append(queued, o)
		}
	}
	var repairs []Repair
	for _, id := range ids {
		rp, err := reconcileProduct(ctx, c, store, prefix, id, queued)
		if err != nil {
			return repairs, fmt.Errorf("reconcile product %d: %w", id, err)
		}
		if rp == nil {
			log.Info("reservations agree with the store", "product", id)
			continue
		}
		log.Warn("reservations repaired", "repair", rp.String())
		repairs = append(repairs, *rp)
	}
	return repairs, nil
}

func reconcileProduct(ctx context.Context, c *Client, store shop.Store, prefix string, id int64, queued []shop.Order) (*Repair, error) {
	rdb := c.rdb
	pipe := rdb.Pipeline()
	stockCmd := pipe.Get(ctx, productKey(prefix, "stock", id))
	epochCmd := pipe.Get(ctx, productKey(prefix, "epoch", id))
	usersCmd := pipe.HGetAll(ctx, productKey(prefix, "users", id))
	pipe.Exec(ctx) // a missing epoch is an error of its own command
	have, err := stockCmd.Int64()
	if err != nil {
		return nil, fmt.Errorf("read stock: %w", err)
	}
	epoch, _ := epochCmd.Int64()
	p, err := store.Product(ctx, id)
	if shop.ErrorCode(err) == shop.CodeNotFound {
		return nil, nil // another shop's product on a shared prefix; not ours to judge
	}
	if err != nil {
		return nil, err
	}
	// Units are counted per user only for a product with a per-user limit.
	users := map[string]int64{}
	if p.PerUserLimit > 0 {
		if users, err = store.UserPurchases(ctx, id); err != nil {
			return nil, err
		}
	}
	stored := make(map[string]bool)
	err = store.Orders(ctx, id, func(o shop.Order) error { stored[o.ID] = true; return nil })
	if err != nil {
		return nil, err
	}
	want := p.Stock
	wantUsers := maps.Clone(users)
	for _, o := range queued {
		if o.ProductID == id && o.Epoch == epoch && !stored[o.ID] {
			want -= o.Quantity
			if p.PerUserLimit > 0 {
				wantUsers[o.UserID] += o.Quantity
			}
		}
	}
	differ := 0
	redisUsers := usersCmd.Val()
	for u, q := range wantUsers {
		if n, _ := strconv.ParseInt(redisUsers[u], 10, 64); n != q && q != 0 {
			differ++
		}
	}
	for u, v := range redisUsers {
		if n, _ := strconv.ParseInt(v, 10, 64); n != 0 && wantUsers[u] == 0 {
			differ++
		}
	}
	if have == want && differ == 0 {
		return nil, nil
	}
	rs, err := store.BeginReservations(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := loadStart(ctx, rdb, prefix, id, rs); err != nil {
		return nil, err
	}
	return &Repair{Product: id, Redis: have, Want: want, Users: differ, Epoch: rs.Epoch}, nil
}

// loadStart writes a product's reservation state into Redis with the load
// script: only over state of an older epoch.
func loadStart(ctx context.Context, rdb *goredis.Client, prefix string, id int64, rs shop.ReservationStart) error {
	args := []any{rs.Product.Stock, rs.Product.PerUserLimit, prefix + "committed", id, prefix + "idem:", rs.Epoch, len(rs.Users)}
	for u, q := range rs.Users {
		args = append(args, u, q)
	}
	for _, o := range rs.Keyed {
		args = append(args, o.IdempotencyKey, o.ID+"\n"+o.RequestHash+"\n"+strconv.FormatInt(o.CreatedAt.UnixNano(), 10))
	}
	keys := []string{productKey(prefix, "stock", id), productKey(prefix, "users", id), productKey(prefix, "limit", id),
		productKey(prefix, "restocks", id), productKey(prefix, "reserved", id), productKey(prefix, "epoch", id)}
	return load.Run(ctx, rdb, keys, args...).Err()
}
