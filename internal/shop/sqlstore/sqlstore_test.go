package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/shop"
	"github.com/stampede-dev/stampede/internal/shop/postgres"
	"github.com/stampede-dev/stampede/internal/shop/sqlite"
	"github.com/stampede-dev/stampede/internal/testenv"
)

// stores opens each store the shop supports, fresh for the test.
func stores(t *testing.T) map[string]shop.Store {
	t.Helper()
	return map[string]shop.Store{"sqlite": openStore(t, "sqlite"), "postgres": openStore(t, "postgres")}
}

// openStore opens a fresh store of the kind named, closed when tb ends.
func openStore(tb testing.TB, kind string) shop.Store {
	tb.Helper()
	ctx := context.Background()
	var st shop.Store
	var err error
	switch kind {
	case "sqlite":
		st, err = sqlite.Open(ctx, filepath.Join(tb.TempDir(), "shop.db"))
	case "postgres":
		st, err = postgres.Open(ctx, testenv.Postgres(tb), 0)
	default:
		tb.Fatalf("no store %q", kind)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// TestCommitBatch pins the group commit's contract on every store: it
// takes stock and adds to each user only for orders it stores, a batch
// committed again changes nothing, and an order whose key another stored
// order holds is rejected by name while the rest of its batch is stored.
func TestCommitBatch(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			p, err := st.CreateProduct(ctx, shop.NewProduct{Name: "phone", Stock: 10, PerUserLimit: 0})
			if err != nil {
				t.Fatal(err)
			}
			at := time.Unix(1700000000, 0).UTC()
			order := func(id, user string, q int64, key string) shop.Order {
				return shop.Order{ID: id, ProductID: p.ID, UserID: user, Quantity: q, IdempotencyKey: key, RequestHash: "h-" + id, CreatedAt: at}
			}
			check := func(step string, wantRejected []string, gotRejected []string, stock int64, users map[string]int64, orders int) {
				t.Helper()
				got, err := st.Product(ctx, p.ID)
				if err != nil {
					t.Fatal(err)
				}
				u, err := st.UserPurchases(ctx, p.ID)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				st.Orders(ctx, p.ID, func(shop.Order) error { n++; return nil })
				slices.Sort(gotRejected)
				if !slices.Equal(gotRejected, wantRejected) || got.Stock != stock || got.Sold != 10-stock || n != orders || len(u) != len(users) {
					t.Errorf("%s: rejected %v, stock %d, sold %d, %d orders, users %v; want rejected %v, stock %d, %d orders, users %v",
						step, gotRejected, got.Stock, got.Sold, n, u, wantRejected, stock, orders, users)
				}
				for k, v := range users {
					if u[k] != v {
						t.Errorf("%s: user %s holds %d, want %d", step, k, u[k], v)
					}
				}
			}
			first := []shop.Order{order("o1", "a", 1, "k1"), order("o2", "b", 2, "k2"), order("o3", "a", 3, "")}
			rej, err := st.CommitBatch(ctx, first)
			if err != nil {
				t.Fatal(err)
			}
			check("first batch", nil, rej.Rejected, 4, map[string]int64{"a": 4, "b": 2}, 3)

			rej, err = st.CommitBatch(ctx, first)
			if err != nil {
				t.Fatal(err)
			}
			check("the same batch again", nil, rej.Rejected, 4, map[string]int64{"a": 4, "b": 2}, 3)

			rej, err = st.CommitBatch(ctx, []shop.Order{order("o4", "c", 1, "k4"), order("o5", "d", 2, "k1"), order("o6", "b", 1, "")})
			if err != nil {
				t.Fatal(err)
			}
			check("a batch with a taken key", []string{"o5"}, rej.Rejected, 2, map[string]int64{"a": 4, "b": 3, "c": 1}, 5)

			// Whatever a reservation believed, the store does not oversell.
			_, err = st.CommitBatch(ctx, []shop.Order{order("o7", "e", 1, ""), order("o8", "f", 2, "")})
			if !errors.Is(err, shop.ErrWouldOversell) {
				t.Errorf("three units of two: %v, want ErrWouldOversell", err)
			}
			check("a batch past the stock", nil, nil, 2, map[string]int64{"a": 4, "b": 3, "c": 1}, 5)

			lim, err := st.CreateProduct(ctx, shop.NewProduct{Name: "limited", Stock: 10, PerUserLimit: 1})
			if err != nil {
				t.Fatal(err)
			}
			o := order("o9", "g", 1, "")
			o2 := order("o10", "g", 1, "")
			o.ProductID, o2.ProductID = lim.ID, lim.ID
			if _, err := st.CommitBatch(ctx, []shop.Order{o, o2}); !errors.Is(err, shop.ErrWouldOversell) {
				t.Errorf("two units to a user limited to one: %v, want ErrWouldOversell", err)
			}
			if got, _ := st.Product(ctx, lim.ID); got.Stock != 10 || got.Sold != 0 {
				t.Errorf("limited product after the refused batch: stock %d sold %d, want 10 and 0", got.Stock, got.Sold)
			}
			// A user who already holds the limit gets nothing more, one
			// unit at a time.
			o3, o4 := order("o11", "h", 1, ""), order("o12", "h", 1, "")
			o3.ProductID, o4.ProductID = lim.ID, lim.ID
			if _, err := st.CommitBatch(ctx, []shop.Order{o3}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.CommitBatch(ctx, []shop.Order{o4}); !errors.Is(err, shop.ErrWouldOversell) {
				t.Errorf("a second unit to a user limited to one: %v, want ErrWouldOversell", err)
			}
			if got, _ := st.Product(ctx, lim.ID); got.Stock != 9 || got.Sold != 1 {
				t.Errorf("limited product: stock %d sold %d, want 9 and 1", got.Stock, got.Sold)
			}
		})
	}
}

// TestCommitBatchOfManyStatements: a batch longer than one multi-row
// statement (150 orders: 64, 64 and 22 rows on SQLite) stores every order
// but those whose key is taken, wherever they fall, and a replay of the
// whole batch stores nothing more.
func TestCommitBatchOfManyStatements(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			p, err := st.CreateProduct(ctx, shop.NewProduct{Name: "phone", Stock: 1000})
			if err != nil {
				t.Fatal(err)
			}
			at := time.Unix(1700000000, 0).UTC()
			var batch []shop.Order
			for i := range 150 {
				key := fmt.Sprintf("k%d", i)
				if i == 70 || i == 140 {
					key = "k3" // taken by order 3, in the first statement
				}
				batch = append(batch, shop.Order{ID: fmt.Sprintf("o%03d", i), ProductID: p.ID, UserID: fmt.Sprintf("u%d", i),
					Quantity: 1, IdempotencyKey: key, RequestHash: "h", CreatedAt: at})
			}
			for _, step := range []string{"first commit", "replay"} {
				c, err := st.CommitBatch(ctx, batch)
				if err != nil {
					t.Fatalf("%s: %v", step, err)
				}
				slices.Sort(c.Rejected)
				if want := []string{"o070", "o140"}; !slices.Equal(c.Rejected, want) {
					t.Errorf("%s: rejected %v, want %v", step, c.Rejected, want)
				}
				got, err := st.Product(ctx, p.ID)
				if err != nil || got.Stock != 852 || got.Sold != 148 {
					t.Errorf("%s: product %+v, %v; want stock 852, sold 148", step, got, err)
				}
				n := 0
				if err := st.Orders(ctx, p.ID, func(shop.Order) error { n++; return nil }); err != nil || n != 148 {
					t.Errorf("%s: %d orders stored (%v), want 148", step, n, err)
				}
			}
		})
	}
}

// TestReservationEpochFence: once BeginReservations has moved a product to
// a new epoch, the orders reserved in the old one are refused as stale,
// storing nothing and taking no stock, unless already stored; orders of
// the new epoch, and unfenced ones, commit. What BeginReservations read
// includes every order committed before it.
func TestReservationEpochFence(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			p, err := st.CreateProduct(ctx, shop.NewProduct{Name: "phone", Stock: 10, PerUserLimit: 5})
			if err != nil {
				t.Fatal(err)
			}
			order := func(id, user, key string, epoch int64) shop.Order {
				return shop.Order{ID: id, ProductID: p.ID, UserID: user, Quantity: 1, IdempotencyKey: key, RequestHash: "h" + id,
					CreatedAt: time.Unix(1, 0), Epoch: epoch}
			}
			first, err := st.BeginReservations(ctx, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if first.Epoch != 1 || first.Product.Stock != 10 || len(first.Users) != 0 || len(first.Keyed) != 0 {
				t.Fatalf("first start: %+v", first)
			}
			c, err := st.CommitBatch(ctx, []shop.Order{order("a1", "ann", "ka", 1), order("a2", "bob", "", 1)})
			if err != nil || len(c.Stale) != 0 || len(c.Rejected) != 0 {
				t.Fatalf("batch of the current epoch: %+v %v", c, err)
			}
			second, err := st.BeginReservations(ctx, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if second.Epoch != 2 || second.Product.Stock != 8 || second.Users["ann"] != 1 || second.Users["bob"] != 1 ||
				len(second.Keyed) != 1 || second.Keyed[0].IdempotencyKey != "ka" || second.Keyed[0].ID != "a1" || second.Keyed[0].RequestHash != "ha1" {
				t.Fatalf("second start: %+v", second)
			}
			// A batch of epoch 1 committed again (its first answer lost) is
			// not stale; new orders of epoch 1 are; epoch 2 and unfenced
			// orders go in.
			c, err = st.CommitBatch(ctx, []shop.Order{order("a1", "ann", "ka", 1), order("a3", "cat", "kc", 1),
				order("b1", "dan", "kd", 2), order("u1", "eve", "", 0)})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Stale, []string{"a3"}) || len(c.Rejected) != 0 {
				t.Errorf("stale %v rejected %v, want stale [a3] and none rejected", c.Stale, c.Rejected)
			}
			got, err := st.Product(ctx, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			st.Orders(ctx, p.ID, func(o shop.Order) error {
				if o.ID == "a3" {
					t.Error("the stale order a3 was stored")
				}
				n++
				return nil
			})
			if got.Stock != 6 || got.Sold != 4 || n != 4 {
				t.Errorf("stock %d sold %d with %d orders, want 6, 4 and 4", got.Stock, got.Sold, n)
			}
			if _, err := st.BeginReservations(ctx, 1<<40); !errors.Is(err, shop.ErrNotFound) {
				t.Errorf("a product that does not exist: %v, want ErrNotFound", err)
			}
		})
	}
}

// Every buying path counts a user's units of a product with a per-user
// limit, whether the store enforces the limit (atomic, buckets, the fenced
// write) or the caller checked it first (row-lock, the unfenced write of
// naive and mutex), so that the next purchase is held to it; a product
// without a limit has its purchases summed from its orders.
func TestBuyingPathsCountPurchases(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			seq := 0
			order := func(product int64, user string) shop.Order {
				seq++
				return shop.Order{ID: fmt.Sprint("o", seq), ProductID: product, UserID: user, Quantity: 1, CreatedAt: time.Now()}
			}
			lim, err := st.CreateProduct(ctx, shop.NewProduct{Name: "limited", Stock: 100, PerUserLimit: 2})
			if err != nil {
				t.Fatal(err)
			}
			free, err := st.CreateProduct(ctx, shop.NewProduct{Name: "free", Stock: 100})
			if err != nil {
				t.Fatal(err)
			}
			paths := map[string]func(shop.Order) (shop.Order, error){
				"row-lock":       func(o shop.Order) (shop.Order, error) { return st.BuyRowLock(ctx, o) },
				"atomic":         func(o shop.Order) (shop.Order, error) { return st.BuyAtomic(ctx, o) },
				"unfenced write": func(o shop.Order) (shop.Order, error) { return st.WriteOrder(ctx, o, 0) },
				"fenced write":   func(o shop.Order) (shop.Order, error) { return st.WriteOrder(ctx, o, int64(seq)) },
			}
			for path, buy := range paths {
				for i := range 2 {
					if _, err := buy(order(lim.ID, path)); err != nil {
						t.Fatalf("%s, purchase %d of 2: %v", path, i+1, err)
					}
					if _, err := buy(order(free.ID, path)); err != nil {
						t.Fatalf("%s, purchase %d without a limit: %v", path, i+1, err)
					}
				}
				snap, err := st.Snapshot(ctx, lim.ID, path)
				if err != nil || snap.UserBought != 2 {
					t.Errorf("%s: the user's units after two purchases = %d, %v; want 2", path, snap.UserBought, err)
				}
			}
			// Each user's count holds them to the limit.
			for path := range paths {
				if _, err := st.BuyAtomic(ctx, order(lim.ID, path)); shop.ErrorCode(err) != shop.CodeLimitExceeded {
					t.Errorf("%s: a third unit: %v, want %s", path, err, shop.CodeLimitExceeded)
				}
			}
			for _, p := range []int64{lim.ID, free.ID} {
				users, err := st.UserPurchases(ctx, p)
				if err != nil || len(users) != len(paths) {
					t.Fatalf("product %d: purchases %v, %v; want 2 for each of %d users", p, users, err, len(paths))
				}
				for u, n := range users {
					if n != 2 {
						t.Errorf("product %d: user %s holds %d, want 2", p, u, n)
					}
				}
			}
		})
	}
}
