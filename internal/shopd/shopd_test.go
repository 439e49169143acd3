package shopd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/shop/redis"
	"github.com/stampede-dev/stampede/internal/shop/shoptest"
	"github.com/stampede-dev/stampede/internal/shopd"
	"github.com/stampede-dev/stampede/internal/testenv"
)

// start serves a shop on a free loopback port until the test ends.
func start(t *testing.T, cfg shopd.Config) *shoptest.Client { return startB(t, cfg) }

func startB(t testing.TB, cfg shopd.Config) *shoptest.Client {
	t.Helper()
	// Under -race the pure-Go SQLite runs some ten times slower, and 2,000
	// orders queue for its one writer: give them time rather than 503s.
	cfg.OrderTimeout = 2 * time.Minute
	c := shoptest.NewClient("http://"+serve(t, cfg).Addr(), 2500)
	t.Cleanup(c.Close) // before the server stops: cleanups run last first
	return c
}

// serve opens a shop on a free loopback port and serves it until the test
// ends.
func serve(t testing.TB, cfg shopd.Config) *shopd.Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if _, err := cfg.Resolve(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := shopd.Open(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, 10*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s
}

// stores returns the store DSNs every strategy is tried against.
func stores(*testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "shop.db") },
		"postgres": func(t *testing.T) string { return testenv.Postgres(t) },
	}
}

var sale = shoptest.Sale{Users: 500, Orders: 2000, Twins: 10}

// TestSafeStrategiesHold fires 2,000 concurrent orders from 500 users at a
// product with 100 units, for every safe strategy on every store, and
// checks that exactly 100 are sold.
func TestSafeStrategiesHold(t *testing.T) {
	for storeName, dsn := range stores(t) {
		for _, tc := range []struct {
			strategy string
			redis    bool
		}{
			{"atomic", false},
			{"row-lock", false},
			{"buckets", false},
			{"reserve", false},
			{"redis-lock", true},
			{"reserve", true},
		} {
			name := storeName + "/" + tc.strategy
			if tc.redis {
				name += "+redis"
			}
			t.Run(name, func(t *testing.T) {
				cfg := shopd.DefaultConfig()
				cfg.Store = dsn(t)
				cfg.Strategy = tc.strategy
				if tc.redis {
					cfg.Redis, cfg.RedisPrefix = testenv.Redis(t)
				}
				c := start(t, cfg)
				id := c.CreateProduct(t, "phone", 100, 2)
				r := shoptest.Run(t, c, id, sale)
				shoptest.CheckHeld(t, c, id, 100, 2, r)
			})
		}
	}
}

// TestNaiveOversells is the lesson of read-then-write: under the same crowd
// it sells more than it has.
func TestNaiveOversells(t *testing.T) {
	for storeName, dsn := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			cfg := shopd.DefaultConfig()
			cfg.Store = dsn(t)
			cfg.Strategy = "naive"
			// Stands for the work between read and write; without it a fast
			// store can close the window before the crowd reaches it.
			cfg.Gap = 2 * time.Millisecond
			c := start(t, cfg)
			id := c.CreateProduct(t, "phone", 100, 0)
			r := shoptest.Run(t, c, id, shoptest.Sale{Users: 500, Orders: 2000})
			p := c.Product(t, id)
			orders := c.Orders(t, id)
			if oversold := p.Sold - 100; oversold <= 0 {
				t.Errorf("naive sold %d of 100 (outcomes %v); the lesson needs an oversell", p.Sold, r.Outcomes)
			}
			if int64(len(orders)) != p.Sold || int64(len(r.Created)) != p.Sold || p.Stock != 100-p.Sold {
				t.Errorf("books disagree: %d orders, %d acknowledged, sold %d, stock %d", len(orders), len(r.Created), p.Sold, p.Stock)
			}
		})
	}
}

// TestFencingTokenStopsExpiredLock lets one shop pause past its lock's
// expiry (as in a long GC pause) while a second shop, pausing briefly, takes
// the lock and writes. When the first wakes, its write carries an older
// fencing token than the store has seen, and is refused with lock_lost
// instead of overselling.
func TestFencingTokenStopsExpiredLock(t *testing.T) {
	cfg := shopd.DefaultConfig()
	cfg.Store = "sqlite:" + filepath.Join(t.TempDir(), "shop.db")
	cfg.Strategy = "redis-lock"
	cfg.Redis, cfg.RedisPrefix = testenv.Redis(t)
	cfg.LockTTL, cfg.Gap = 20*time.Millisecond, 100*time.Millisecond
	slow := start(t, cfg)
	cfg.Gap = 2 * time.Millisecond
	fast := start(t, cfg)
	id := slow.CreateProduct(t, "phone", 50, 0)

	slowDone := make(chan shoptest.Result)
	go func() { slowDone <- shoptest.Run(t, slow, id, shoptest.Sale{Users: 5, Orders: 5, KeyPrefix: "slow"}) }()
	time.Sleep(10 * time.Millisecond) // the slow shop takes the lock first
	rf := shoptest.Run(t, fast, id, shoptest.Sale{Users: 20, Orders: 20, KeyPrefix: "fast"})
	rs := <-slowDone

	if rs.Outcomes["503 lock_lost"] == 0 {
		t.Errorf("no write of the slow shop was refused (slow %v, fast %v)", rs.Outcomes, rf.Outcomes)
	}
	created := len(rs.Created) + len(rf.Created)
	p := slow.Product(t, id)
	if p.Stock < 0 || int64(created) != p.Sold || p.Stock+p.Sold != 50 || len(slow.Orders(t, id)) != created {
		t.Errorf("sold %d, stock %d, acknowledged %d: the books must balance at 50", p.Sold, p.Stock, created)
	}
}

// startRedisReserve serves reserve with Redis on SQLite, and returns a
// client of the shop, one of its Redis and its configuration (for the
// key prefix).
func startRedisReserve(t *testing.T) (*shoptest.Client, *redis.Client, shopd.Config) {
	t.Helper()
	cfg := shopd.DefaultConfig()
	cfg.Store = "sqlite:" + filepath.Join(t.TempDir(), "shop.db")
	cfg.Strategy = "reserve"
	cfg.Redis, cfg.RedisPrefix = testenv.Redis(t)
	c := start(t, cfg)
	rc, err := redis.Dial(context.Background(), cfg.Redis)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	return c, rc, cfg
}

// TestReconcileRepairsRedis: Redis disagrees with the store (as after a
// restore from an old snapshot: 1 unit left where the store has 7, a
// user's allowance forgotten). Reconciliation, which the shop runs at
// start, reloads the product from the store in a new epoch, and the sale
// then sells exactly the 7 units; run again, it finds nothing to repair.
func TestReconcileRepairsRedis(t *testing.T) {
	c, rc, cfg := startRedisReserve(t)
	ctx := context.Background()
	id := c.CreateProduct(t, "phone", 10, 1)
	// A product without a limit, whose buyers nobody counts, agrees too.
	unlimited := c.CreateProduct(t, "case", 10, 0)
	for i := range 3 {
		for _, p := range []int64{id, unlimited} {
			if a, err := c.Order(ctx, p, "u"+strconv.Itoa(i), 1, fmt.Sprint("k", p, "-", i)); err != nil || a.Outcome() != "201" {
				t.Fatalf("order %d of product %d: %v %v", i, p, a.Outcome(), err)
			}
		}
	}
	st, _, err := shopd.OpenStore(ctx, cfg.Store, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if reps, err := redis.Reconcile(ctx, rc, st, cfg.RedisPrefix, log); err != nil || len(reps) != 0 {
		t.Fatalf("reconcile a consistent Redis: %v %v, want nothing repaired", reps, err)
	}
	idKey := strconv.FormatInt(id, 10)
	for _, cmd := range [][]any{{"SET", cfg.RedisPrefix + "stock:" + idKey, 1}, {"HDEL", cfg.RedisPrefix + "users:" + idKey, "u0"}} {
		if _, err := rc.Do(ctx, cmd...); err != nil {
			t.Fatal(err)
		}
	}
	reps, err := redis.Reconcile(ctx, rc, st, cfg.RedisPrefix, log)
	if err != nil {
		t.Fatal(err)
	}
	want := redis.Repair{Product: id, Redis: 1, Want: 7, Users: 1, Epoch: 2}
	if len(reps) != 1 || reps[0] != want {
		t.Fatalf("repairs %+v, want [%+v]", reps, want)
	}
	if reps, err := redis.Reconcile(ctx, rc, st, cfg.RedisPrefix, log); err != nil || len(reps) != 0 {
		t.Fatalf("reconcile again: %v %v, want nothing repaired", reps, err)
	}
	if a, err := c.Order(ctx, id, "u0", 1, "again"); err != nil || a.Outcome() != "409 limit_exceeded" {
		t.Errorf("u0's second unit: %v %v, want 409 limit_exceeded (the allowance is back)", a.Outcome(), err)
	}
	r := shoptest.Run(t, c, id, shoptest.Sale{Users: 20, Orders: 20, KeyPrefix: "crowd"})
	p := c.Product(t, id)
	if len(r.Created) != 7 || p.Stock != 0 || p.Sold != 10 {
		t.Errorf("after the repair: %d sold (%v), stock %d, sold %d; want 7 more, stock 0, 10 sold", len(r.Created), r.Outcomes, p.Stock, p.Sold)
	}
}

// TestColdStartSeedsOnce: two shop processes meet a product Redis does
// not hold yet, at the same moment. One loads it (one reservation epoch);
// the other waits for it, so no order reserved under the first load is
// refused as stale by a second: no buyer hears 503.
func TestColdStartSeedsOnce(t *testing.T) {
	first, rc, cfg := startRedisReserve(t)
	second := start(t, cfg)
	ctx := context.Background()
	id := first.CreateProduct(t, "phone", 20, 0)
	outcomes := make(chan string, 40)
	var wg sync.WaitGroup
	for i := range 40 {
		c := first
		if i%2 == 1 {
			c = second
		}
		wg.Go(func() {
			a, err := c.Order(ctx, id, "u"+strconv.Itoa(i), 1, "k"+strconv.Itoa(i))
			if err != nil {
				outcomes <- err.Error()
				return
			}
			outcomes <- a.Outcome()
		})
	}
	wg.Wait()
	close(outcomes)
	got := map[string]int{}
	for o := range outcomes {
		got[o]++
	}
	if got["201"] != 20 || got["409 sold_out"] != 20 || len(got) != 2 {
		t.Errorf("outcomes %v, want 20 × 201 and 20 × 409 sold_out", got)
	}
	epoch, err := rc.Do(ctx, "GET", cfg.RedisPrefix+"epoch:"+strconv.FormatInt(id, 10))
	if err != nil || epoch != "1" {
		t.Errorf("the product's epoch in Redis: %v %v, want 1 (loaded once)", epoch, err)
	}
}

// TestRedisSoldOutFromMemory: once Redis has refused a product as sold out,
// each shop process refuses later buyers from memory, with no round trip,
// yet still sends a retry of a reserved order to Redis so that its buyer
// gets the order back; news of a restock ends the memory.
func TestRedisSoldOutFromMemory(t *testing.T) {
	c, rc, cfg := startRedisReserve(t)
	id := c.CreateProduct(t, "phone", 5, 0)
	ctx := context.Background()
	order := func(user, key string) shoptest.Answer {
		t.Helper()
		a, err := c.Order(ctx, id, user, 1, key)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	first := map[string]string{}
	for i := range 5 {
		k := "k" + strconv.Itoa(i)
		if a := order("u"+strconv.Itoa(i), k); a.Outcome() != "201" {
			t.Fatalf("order %d: %s", i, a.Outcome())
		}
		first[k] = order("u"+strconv.Itoa(i), k).OrderID // the replay names the stored order
	}
	if a := order("late", "late1"); a.Outcome() != "409 sold_out" {
		t.Fatalf("sixth buyer: %s", a.Outcome())
	}
	if a := order("u2", "k2"); a.Outcome() != "200" || a.OrderID != first["k2"] || a.OrderID == "" {
		t.Errorf("retry of a reserved order after the sell-out: %s %q, want 200 %q", a.Outcome(), a.OrderID, first["k2"])
	}
	// Without its stock key Redis would answer "uninit", and the shop would
	// load the product again: a 409 with the key still gone can only come
	// from the process's memory.
	stockKey := cfg.RedisPrefix + "stock:" + strconv.FormatInt(id, 10)
	if _, err := rc.Do(ctx, "DEL", stockKey); err != nil {
		t.Fatal(err)
	}
	if a := order("late", "late2"); a.Outcome() != "409 sold_out" {
		t.Errorf("buyer after the sell-out, with a key: %s, want 409 sold_out from memory", a.Outcome())
	}
	if a := order("late", ""); a.Outcome() != "409 sold_out" {
		t.Errorf("buyer after the sell-out, without a key: %s, want 409 sold_out from memory", a.Outcome())
	}
	if n, _ := rc.Do(ctx, "EXISTS", stockKey); n != int64(0) {
		t.Errorf("the stock key is back (%d) though memory answered", n)
	}
	// A restock announced by any process ends the memory: the next buyer
	// goes to Redis, finds the stock key gone, has the product loaded
	// again from the store (which holds none) within the same request, and
	// hears sold_out: never a quick 503.
	if _, err := rc.Do(ctx, "PUBLISH", cfg.RedisPrefix+"committed", "restock:"+strconv.FormatInt(id, 10)+":1000"); err != nil {
		t.Fatal(err)
	}
	reloaded := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !reloaded; time.Sleep(10 * time.Millisecond) {
		if got := order("late", "").Outcome(); got != "409 sold_out" {
			t.Fatalf("after a restock the buyer got %s, want 409 sold_out", got)
		}
		n, _ := rc.Do(ctx, "EXISTS", stockKey)
		reloaded = n == int64(1)
	}
	if !reloaded {
		t.Error("after a restock no buyer had the product loaded into Redis again")
	}
	if a := order("late", "late3"); a.Outcome() != "409 sold_out" {
		t.Errorf("after the reload from the store: %s, want 409 sold_out", a.Outcome())
	}
	if p := c.Product(t, id); p.Sold != 5 || p.Stock != 0 {
		t.Errorf("sold %d, stock %d; want 5 and 0", p.Sold, p.Stock)
	}
}

// TestReserveNeverOversellsPastTheStore: whatever a reservation believes,
// the store has the last word. A second shop on the same store (strategy
// atomic) sells 5 of 10 units behind the back of a reserve shop that has
// already loaded its book, as a fault would leave a book wrong. The
// reserve shop's crowd then finds exactly the 4 units left: its group
// commit is refused, split until the orders that do not fit stand alone,
// and their buyers hear sold_out.
func TestReserveNeverOversellsPastTheStore(t *testing.T) {
	behindTheBooksBack(t, 0, func(t *testing.T, reserve, atomic *shoptest.Client, id int64) {
		ctx := context.Background()
		for i := range 5 {
			if a, err := atomic.Order(ctx, id, "side"+strconv.Itoa(i), 1, ""); err != nil || a.Outcome() != "201" {
				t.Fatalf("order behind the book's back: %v %v", a.Outcome(), err)
			}
		}
		r := shoptest.Run(t, reserve, id, shoptest.Sale{Users: 9, Orders: 9})
		p := reserve.Product(t, id)
		if len(r.Created) != 4 || r.Outcomes["409 sold_out"] != 5 || p.Stock != 0 || p.Sold != 10 || len(reserve.Orders(t, id)) != 10 {
			t.Errorf("outcomes %v; stock %d, sold %d; want 4 × 201 and 5 × 409 sold_out, stock 0 and 10 sold", r.Outcomes, p.Stock, p.Sold)
		}
	})
}

// TestReserveRefusedForTheLimitSaysSo: the store's guard refuses an order
// that would take a user past the limit the reservation did not know of
// (a second shop sold that user their 2 units behind the book's back).
// The buyer hears limit_exceeded, not sold_out, and the unit goes back on
// sale: the store still holds it.
func TestReserveRefusedForTheLimitSaysSo(t *testing.T) {
	behindTheBooksBack(t, 2, func(t *testing.T, reserve, atomic *shoptest.Client, id int64) {
		ctx := context.Background()
		for i := range 2 {
			if a, err := atomic.Order(ctx, id, "bob", 1, "side"+strconv.Itoa(i)); err != nil || a.Outcome() != "201" {
				t.Fatalf("order behind the book's back: %v %v", a.Outcome(), err)
			}
		}
		a, err := reserve.Order(ctx, id, "bob", 1, "bob-3")
		if err != nil || a.Outcome() != "409 limit_exceeded" {
			t.Fatalf("bob's third unit: %v %v, want 409 limit_exceeded", a.Outcome(), err)
		}
		r := shoptest.Run(t, reserve, id, shoptest.Sale{Users: 20, Orders: 20, KeyPrefix: "crowd"})
		p := reserve.Product(t, id)
		if len(r.Created) != 7 || p.Stock != 0 || p.Sold != 10 || len(reserve.Orders(t, id)) != 10 {
			t.Errorf("outcomes %v; stock %d, sold %d; want 7 more sold, stock 0 and 10 sold", r.Outcomes, p.Stock, p.Sold)
		}
	})
}

// behindTheBooksBack runs fn, on each store, with and without Redis, with
// a reserve shop that has loaded a product of 10 units (limit per user as
// given) and sold 1 of them, and an atomic shop on the same store, to
// sell behind the reserve shop's back as a fault would leave its book
// wrong.
func behindTheBooksBack(t *testing.T, limit int64, fn func(t *testing.T, reserve, atomic *shoptest.Client, id int64)) {
	for storeName, dsn := range stores(t) {
		for _, withRedis := range []bool{false, true} {
			name := storeName + "/reserve"
			if withRedis {
				name += "+redis"
			}
			t.Run(name, func(t *testing.T) {
				cfg := shopd.DefaultConfig()
				cfg.Store = dsn(t)
				cfg.Strategy = "reserve"
				if withRedis {
					cfg.Redis, cfg.RedisPrefix = testenv.Redis(t)
				}
				reserve := start(t, cfg)
				id := reserve.CreateProduct(t, "phone", 10, limit)
				if a, err := reserve.Order(context.Background(), id, "first", 1, "first"); err != nil || a.Outcome() != "201" {
					t.Fatalf("first order: %v %v", a.Outcome(), err)
				}
				other := cfg
				other.Strategy, other.Redis = "atomic", ""
				fn(t, reserve, start(t, other), id)
			})
		}
	}
}

// TestRedisReserveHealsAfterRedisForgets: Redis comes back empty (here: the
// shop's keys, stream and consumer group deleted, as a restart without
// persistence leaves them). The shop takes orders again by itself, stock
// reloaded from the store, and the books still balance.
func TestRedisReserveHealsAfterRedisForgets(t *testing.T) {
	c, rc, cfg := startRedisReserve(t)
	ctx := context.Background()
	id := c.CreateProduct(t, "phone", 20, 0)
	for i := range 5 {
		if a, err := c.Order(ctx, id, "before"+strconv.Itoa(i), 1, "before"+strconv.Itoa(i)); err != nil || a.Outcome() != "201" {
			t.Fatalf("order before the loss: %v %v", a.Outcome(), err)
		}
	}
	first, err := c.Order(ctx, id, "before0", 1, "before0") // a replay: 200 and the order
	if err != nil || first.Outcome() != "200" {
		t.Fatalf("replay before the loss: %v %v", first.Outcome(), err)
	}
	if err := rc.DeletePrefix(ctx, cfg.RedisPrefix); err != nil {
		t.Fatal(err)
	}
	healed := time.Time{}
	lost := time.Now()
	for i := 0; time.Since(lost) < 5*time.Second; i++ {
		a, err := c.Order(ctx, id, "after"+strconv.Itoa(i), 1, "after"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		if a.Outcome() == "201" {
			healed = time.Now()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if healed.IsZero() {
		t.Fatal("no order was taken within 5 s of Redis forgetting everything")
	}
	r := shoptest.Run(t, c, id, shoptest.Sale{Users: 40, Orders: 40, KeyPrefix: "rest"})
	p := c.Product(t, id)
	if len(r.Created) != 14 || p.Stock != 0 || p.Sold != 20 || len(c.Orders(t, id)) != 20 {
		t.Errorf("after healing in %v: %d more sold (%v), stock %d, sold %d; want 14 more, stock 0, 20 sold",
			healed.Sub(lost), len(r.Created), r.Outcomes, p.Stock, p.Sold)
	}
	// Redis was seeded again from the store, keys included: the product
	// is sold out, yet a retry of an order stored before the loss gets
	// that order.
	if a, err := c.Order(ctx, id, "before0", 1, "before0"); err != nil || a.Outcome() != "200" || a.OrderID != first.OrderID {
		t.Errorf("retry of an order stored before Redis forgot: %v %q %v, want 200 %q", a.Outcome(), a.OrderID, err, first.OrderID)
	}
}

// TestPoisonOrderIsIsolated: an order every store refuses (here one for a
// product that does not exist, put straight into the queue) fails the
// group commit it lands in. The batch is split until it stands alone, the
// honest orders around it are stored, and after maxDeliveries tries it is
// moved to the dead-letter stream instead of being retried forever.
func TestPoisonOrderIsIsolated(t *testing.T) {
	c, rc, cfg := startRedisReserve(t)
	ctx := context.Background()
	id := c.CreateProduct(t, "phone", 10, 0)
	if a, err := c.Order(ctx, id, "first", 1, "first"); err != nil || a.Outcome() != "201" { // the queue exists
		t.Fatalf("first order: %v %v", a.Outcome(), err)
	}
	if _, err := rc.Do(ctx, "XADD", cfg.RedisPrefix+"orders", "*", "id", "poison", "p", "999999", "u", "p", "q", "1",
		"k", "", "h", "", "t", strconv.FormatInt(time.Now().UnixNano(), 10)); err != nil {
		t.Fatal(err)
	}
	r := shoptest.Run(t, c, id, shoptest.Sale{Users: 5, Orders: 5, KeyPrefix: "honest"})
	if len(r.Created) != 5 {
		t.Errorf("honest orders next to the poison one: %v, want 5 × 201", r.Outcomes)
	}
	var dead int64
	for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		n, err := rc.Do(ctx, "XLEN", cfg.RedisPrefix+"dead")
		if err != nil {
			t.Fatal(err)
		}
		if dead = n.(int64); dead > 0 {
			break
		}
	}
	pending, err := rc.Do(ctx, "XLEN", cfg.RedisPrefix+"orders")
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Product(t, id); dead != 1 || pending.(int64) != 0 || p.Sold != 6 || p.Stock != 4 {
		t.Errorf("dead letters %d, queue %v, sold %d, stock %d; want 1, 0, 6 and 4", dead, pending, p.Sold, p.Stock)
	}
}

// TestRedisCrashAndEmptyRestart: the shop's Redis (a private one) is killed
// mid-sale and comes back empty. While it is down the shop says so at
// /readyz and sheds orders with 503 unavailable and Retry-After, not 500;
// when it is back the shop takes orders again by itself, within 5 s, and
// the books balance.
func TestRedisCrashAndEmptyRestart(t *testing.T) {
	rs := testenv.PrivateRedis(t)
	cfg := shopd.DefaultConfig()
	cfg.Store = "sqlite:" + filepath.Join(t.TempDir(), "shop.db")
	cfg.Strategy, cfg.Redis = "reserve", rs.URL
	c := start(t, cfg)
	ctx := context.Background()
	id := c.CreateProduct(t, "phone", 20, 0)
	ready := func() (int, string) {
		var body struct{ Status, Reason string }
		code, err := c.Do(ctx, "GET", "/readyz", nil, nil, &body)
		if err != nil {
			t.Fatal(err)
		}
		return code, body.Status
	}
	if code, status := ready(); code != 200 || status != "ready" {
		t.Fatalf("/readyz before: %d %q", code, status)
	}
	for i := range 5 {
		if a, err := c.Order(ctx, id, "before"+strconv.Itoa(i), 1, "before"+strconv.Itoa(i)); err != nil || a.Outcome() != "201" {
			t.Fatalf("order before the crash: %v %v", a.Outcome(), err)
		}
	}
	rs.Kill(t)
	var code int
	var status string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code, status = ready(); code == 503 {
			break
		}
	}
	if code != 503 || status != "not ready" {
		t.Errorf("/readyz with Redis down: %d %q, want 503 not ready", code, status)
	}
	if a, err := c.Order(ctx, id, "down", 1, "down"); err != nil || a.Outcome() != "503 unavailable" {
		t.Errorf("order with Redis down: %v %v, want 503 unavailable", a.Outcome(), err)
	}
	if code, err := c.Do(ctx, "GET", "/healthz", nil, nil, nil); err != nil || code != 200 {
		t.Errorf("/healthz with Redis down: %d %v; the process lives", code, err)
	}
	rs.Start(t)
	back := time.Now()
	healed := false
	for i := 0; time.Since(back) < 5*time.Second && !healed; i++ {
		a, err := c.Order(ctx, id, "after"+strconv.Itoa(i), 1, "after"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		healed = a.Outcome() == "201"
		time.Sleep(50 * time.Millisecond)
	}
	if !healed {
		t.Fatal("no order taken within 5 s of Redis coming back")
	}
	r := shoptest.Run(t, c, id, shoptest.Sale{Users: 40, Orders: 40, KeyPrefix: "rest"})
	p := c.Product(t, id)
	if len(r.Created) != 14 || p.Stock != 0 || p.Sold != 20 || len(c.Orders(t, id)) != 20 {
		t.Errorf("after the restart: %d more sold (%v), stock %d, sold %d; want 14 more, stock 0, 20 sold", len(r.Created), r.Outcomes, p.Stock, p.Sold)
	}
	if code, _ := ready(); code != 200 {
		t.Errorf("/readyz after the restart: %d", code)
	}
}

// TestRetryAfterRestartGetsItsOrder: a buyer whose order was stored, and
// who retries with its key after the shop restarted and the product sold
// out, gets its order back, not sold_out: the new process's memory of keys
// starts empty, the store's does not.
func TestRetryAfterRestartGetsItsOrder(t *testing.T) {
	cfg := shopd.DefaultConfig()
	cfg.Store = "sqlite:" + filepath.Join(t.TempDir(), "shop.db")
	ctx := context.Background()
	first := startB(t, cfg)
	id := first.CreateProduct(t, "phone", 1, 0)
	a, err := first.Order(ctx, id, "alice", 1, "alice-1")
	if err != nil || a.Outcome() != "201" {
		t.Fatalf("first order: %v %v", a.Outcome(), err)
	}
	second := startB(t, cfg) // a new process on the same store: empty memory
	again, err := second.Order(ctx, id, "alice", 1, "alice-1")
	if err != nil || again.Outcome() != "200" || again.OrderID != a.OrderID {
		t.Errorf("retry after the restart: %v %q %v, want 200 %q", again.Outcome(), again.OrderID, err, a.OrderID)
	}
}

// A GOGC set by the user is left alone; without one the shop counts a
// floor of 32 MiB, shared among its processes, as live heap, which keeps
// its collector from running every 4 MiB.
func TestHeapFloorLeavesGOGCAlone(t *testing.T) {
	t.Setenv("GOGC", "100")
	if got := shopd.HeapFloorFor(1); got != 0 {
		t.Errorf("with GOGC=100 the floor is %d bytes, want 0", got)
	}
	t.Setenv("GOGC", "")
	for procs, want := range map[int]int{1: 32 << 20, 8: 4 << 20} {
		if got := shopd.HeapFloorFor(procs); got != want {
			t.Errorf("without GOGC, %d processes: the floor is %d bytes, want %d", procs, got, want)
		}
	}
}

// TestFrozenStoreSaysOutcomeUnknown freezes PostgreSQL for longer than the
// order timeout. The orders queued for its commit may still be stored, so
// their buyers hear 504 outcome_unknown, without Retry-After: not the
// retryable 503 that would invite a keyless buyer to buy twice. Once the
// store thaws, every one of them is stored, counted with SQL, which is why
// a blind retry would have been wrong.
func TestFrozenStoreSaysOutcomeUnknown(t *testing.T) {
	pg := testenv.PrivatePostgres(t)
	cfg := shopd.DefaultConfig()
	cfg.Store, cfg.OrderTimeout = pg.DSN, 300*time.Millisecond
	s := serve(t, cfg)
	c := shoptest.NewClient("http://"+s.Addr(), 16)
	t.Cleanup(c.Close)
	ctx := context.Background()
	id := c.CreateProduct(t, "phone", 100, 0)
	if a, err := c.Order(ctx, id, "warm", 1, ""); err != nil || a.Outcome() != "201" {
		t.Fatalf("an order before the freeze: %v %v", a.Outcome(), err)
	}
	if err := pg.Pause(); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			if err := pg.Resume(); err != nil {
				t.Error(err)
			}
		}
	}
	defer thaw()
	const buyers = 8
	type answer struct {
		status           int
		code, retryAfter string
		err              error
	}
	answers := make([]answer, buyers)
	var wg sync.WaitGroup
	for i := range buyers {
		wg.Go(func() {
			body := fmt.Sprintf(`{"product_id":%d,"user_id":"frozen%d","quantity":1}`, id, i)
			req, _ := http.NewRequestWithContext(ctx, "POST", c.Base+"/api/orders", strings.NewReader(body))
			resp, err := c.HTTP.Do(req)
			if err != nil {
				answers[i].err = err
				return
			}
			defer resp.Body.Close()
			var e struct{ Error struct{ Code string } }
			json.NewDecoder(resp.Body).Decode(&e)
			answers[i] = answer{resp.StatusCode, e.Error.Code, resp.Header.Get("Retry-After"), nil}
		})
	}
	wg.Wait()
	for i, a := range answers {
		if a.err != nil || a.status != 504 || a.code != "outcome_unknown" || a.retryAfter != "" {
			t.Errorf("buyer %d with the store frozen: %d %q Retry-After %q %v; want 504 outcome_unknown without Retry-After", i, a.status, a.code, a.retryAfter, a.err)
		}
	}
	thaw()
	var stored string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if stored = testenv.SQL(t, pg.DSN, `SELECT count(*) FROM orders WHERE user_id LIKE 'frozen%'`); stored == strconv.Itoa(buyers) {
			break
		}
	}
	if stored != strconv.Itoa(buyers) {
		t.Errorf("%s of the %d orders answered outcome_unknown were stored once the store thawed; want all %d", stored, buyers, buyers)
	}
}
