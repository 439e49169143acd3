package redis_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/shop"
	"github.com/stampede-dev/stampede/internal/shop/redis"
	"github.com/stampede-dev/stampede/internal/shop/sqlite"
	"github.com/stampede-dev/stampede/internal/testenv"
)

// One run of the reserve script answers a whole batch of buyers, each
// seeing the ones before it: a key used twice is a duplicate of its first
// order, a user's allowance and a product's stock run out part-way, an
// order without a key is refused like one with a key, and a product Redis
// does not hold is reported as such. What the batch reserved is what the
// store ends up with, and the next batch sees it.
func TestReserveBatchAnswersEachBuyerInTurn(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "shop.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	url, prefix := testenv.Redis(t)
	rc, err := redis.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	r, err := redis.NewReserve(ctx, rc, st, prefix, 64, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	limited, err := st.CreateProduct(ctx, shop.NewProduct{Name: "phone", Stock: 3, PerUserLimit: 2})
	if err != nil {
		t.Fatal(err)
	}
	single, err := st.CreateProduct(ctx, shop.NewProduct{Name: "case", Stock: 1})
	if err != nil {
		t.Fatal(err)
	}
	unloaded, err := st.CreateProduct(ctx, shop.NewProduct{Name: "cable", Stock: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{limited.ID, single.ID} {
		if err := redis.Load(ctx, r, id); err != nil {
			t.Fatal(err)
		}
	}

	n := 0
	order := func(product int64, user, key string, q int64) shop.Order {
		n++
		return shop.Order{ID: fmt.Sprintf("%016x%016x", time.Now().UnixNano(), n), ProductID: product, UserID: user,
			Quantity: q, IdempotencyKey: key, RequestHash: "h" + key, CreatedAt: time.Now()}
	}
	orders := []shop.Order{
		order(limited.ID, "u1", "k1", 1),  // ok: 2 left
		order(limited.ID, "u1", "k1", 1),  // dup of the first
		order(limited.ID, "u1", "k2", 1),  // ok: 1 left, u1 at its limit
		order(limited.ID, "u1", "k3", 1),  // limit
		order(single.ID, "u2", "k4", 1),   // ok: the case sold out
		order(limited.ID, "u3", "k5", 2),  // sold_out: 1 left
		order(limited.ID, "u3", "k6", 1),  // ok: the phone sold out
		order(single.ID, "u4", "", 1),     // sold_out, without a key
		order(unloaded.ID, "u5", "k7", 1), // uninit
	}
	got, err := redis.ReserveOnce(ctx, r, orders)
	if err != nil {
		t.Fatal(err)
	}
	// Loading a product counts as its first restock: generation 1.
	want := [][]string{{"ok"}, {"dup", orders[0].ID + "\nhk1\n" + fmt.Sprint(orders[0].CreatedAt.UnixNano())}, {"ok"}, {"limit"},
		{"ok"}, {"sold_out", "1"}, {"ok"}, {"sold_out", "1"}, {"uninit"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("answers:\n got %q\nwant %q", got, want)
	}

	// Units are counted per user only where there is a limit: u1 holds 2
	// phones and u3 one; nobody is counted for the case.
	for _, c := range []struct {
		product int64
		want    map[string]string
	}{{limited.ID, map[string]string{"u1": "2", "u3": "1"}}, {single.ID, map[string]string{}}} {
		got, err := rc.Do(ctx, "HGETALL", fmt.Sprintf("%susers:%d", prefix, c.product))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("product %d: users %v, want %v", c.product, got, c.want)
		}
	}

	// The four reserved orders reach the store, and nothing else does.
	deadline := time.Now().Add(10 * time.Second)
	for {
		p1, err1 := st.Product(ctx, limited.ID)
		p2, err2 := st.Product(ctx, single.ID)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if p1.Sold == 3 && p2.Sold == 1 {
			if p1.Stock != 0 || p2.Stock != 0 {
				t.Fatalf("stock left: phone %d, case %d; want 0 and 0", p1.Stock, p2.Stock)
			}
			break
		}
		if p1.Sold > 3 || p2.Sold > 1 || time.Now().After(deadline) {
			t.Fatalf("sold: phone %d, case %d; want 3 and 1", p1.Sold, p2.Sold)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, i := range []int{0, 2, 4, 6} {
		o, err := st.OrderByKey(ctx, orders[i].IdempotencyKey)
		if err != nil || o.ID != orders[i].ID || o.UserID != orders[i].UserID {
			t.Errorf("key %s: stored %+v, %v; want order %s", orders[i].IdempotencyKey, o, err, orders[i].ID)
		}
	}
	if _, err := st.OrderByKey(ctx, "k3"); shop.ErrorCode(err) != shop.CodeNotFound {
		t.Errorf("key k3 (refused for the limit): %v, want not found", err)
	}

	// The next batch sees the stock taken and the keys used.
	got, err = redis.ReserveOnce(ctx, r, []shop.Order{order(limited.ID, "u9", "k9", 1), order(limited.ID, "u1", "k2", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !reflect.DeepEqual(got[0], []string{"sold_out", "1"}) || got[1][0] != "dup" || !strings.HasPrefix(got[1][1], orders[2].ID+"\n") {
		t.Errorf("second batch: %q, want sold_out 1, then dup of %s", got, orders[2].ID)
	}
}
