package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/shop"
)

// A database written by an older stampede (migrations 0001 and 0002 only)
// keeps every order, purchase and key through 0003, which rebuilds orders
// and user_purchases WITHOUT ROWID, 0004, after which a product without a
// per-user limit answers its purchases from its orders, and 0005, which
// stores orders by product and time (a listing reads them in that order
// without sorting); it takes new orders afterwards.
func TestMigrationKeepsOlderDatabases(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"0001_init.sql", "0002_reserve_epoch.sql"} {
		body, err := migrations.ReadFile("migrations/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := old.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (name TEXT PRIMARY KEY)`,
		`INSERT INTO schema_migrations VALUES ('0001_init.sql'), ('0002_reserve_epoch.sql')`,
		`INSERT INTO products (id, name, stock, sold, per_user_limit, created_at) VALUES (1, 'phone', 8, 2, 2, 0)`,
		`INSERT INTO user_purchases VALUES (1, 'ada', 2)`,
		`INSERT INTO orders VALUES ('o1', 1, 'ada', 1, 'k1', 'h1', 10), ('o2', 1, 'ada', 1, NULL, NULL, 20)`,
		`INSERT INTO products (id, name, stock, sold, per_user_limit, created_at) VALUES (2, 'case', 7, 3, 0, 0)`,
		`INSERT INTO user_purchases VALUES (2, 'bob', 2), (2, 'cy', 1)`,
		`INSERT INTO orders VALUES ('o6', 2, 'bob', 2, NULL, NULL, 10), ('o7', 2, 'cy', 1, NULL, NULL, 20)`,
	} {
		if _, err := old.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("open the older database: %v", err)
	}
	defer s.Close()
	var ids []string
	if err := s.Orders(ctx, 1, func(o shop.Order) error { ids = append(ids, o.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || ids[0] != "o1" || ids[1] != "o2" {
		t.Fatalf("orders after the migration = %v, want [o1 o2]", ids)
	}
	o, err := s.OrderByKey(ctx, "k1")
	if err != nil || o.ID != "o1" || o.RequestHash != "h1" {
		t.Fatalf("OrderByKey(k1) = %+v, %v; want o1 with hash h1", o, err)
	}
	users, err := s.UserPurchases(ctx, 1)
	if err != nil || len(users) != 1 || users["ada"] != 2 {
		t.Fatalf("UserPurchases = %v, %v; want map[ada:2]", users, err)
	}
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	plan, err := raw.QueryContext(ctx, `EXPLAIN QUERY PLAN SELECT id FROM orders WHERE product_id = 1 ORDER BY created_at, id`)
	if err != nil {
		t.Fatal(err)
	}
	for plan.Next() {
		var id, parent, unused int
		var detail string
		if err := plan.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(detail, "TEMP B-TREE") || !strings.Contains(detail, "PRIMARY KEY") {
			t.Errorf("a product's orders are read by %q, want the table's own key and no sort", detail)
		}
	}
	plan.Close()
	var counted int
	if err := raw.QueryRowContext(ctx, `SELECT COUNT(*) FROM user_purchases WHERE product_id = 2`).Scan(&counted); err != nil || counted != 0 {
		t.Fatalf("user_purchases rows of the product without a limit = %d, %v; want 0", counted, err)
	}
	if _, err := s.CommitBatch(ctx, []shop.Order{{ID: "o8", ProductID: 2, UserID: "cy", Quantity: 1, CreatedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	users, err = s.UserPurchases(ctx, 2)
	if err != nil || len(users) != 2 || users["bob"] != 2 || users["cy"] != 2 {
		t.Fatalf("UserPurchases of the product without a limit = %v, %v; want map[bob:2 cy:2]", users, err)
	}
	// New orders go in; a key already used is still refused, and ada is
	// still at her limit of 2.
	now := time.Now()
	c, err := s.CommitBatch(ctx, []shop.Order{
		{ID: "o3", ProductID: 1, UserID: "bob", Quantity: 1, IdempotencyKey: "k3", CreatedAt: now},
		{ID: "o4", ProductID: 1, UserID: "eve", Quantity: 1, IdempotencyKey: "k1", CreatedAt: now},
	})
	if err != nil {
		t.Fatalf("CommitBatch after the migration: %v", err)
	}
	if len(c.Rejected) != 1 || c.Rejected[0] != "o4" {
		t.Fatalf("Rejected = %v, want [o4] (its key k1 is o1's)", c.Rejected)
	}
	_, err = s.CommitBatch(ctx, []shop.Order{{ID: "o5", ProductID: 1, UserID: "ada", Quantity: 1, CreatedAt: now}})
	if !errors.Is(err, shop.ErrWouldOversell) {
		t.Fatalf("ada past her limit: err = %v, want ErrWouldOversell", err)
	}
	p, err := s.Product(ctx, 1)
	if err != nil || p.Stock != 7 || p.Sold != 3 {
		t.Fatalf("product = %+v, %v; want stock 7, sold 3", p, err)
	}
}

// Group commits of one size reuse the statements the first one prepared
// (they are prepared on the writer once its transaction ends): the
// second and third batches find them ready and commit the same way.
func TestGroupCommitsReuseTheirStatements(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "shop.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.CreateProduct(ctx, shop.NewProduct{Name: "phone", Stock: 100, PerUserLimit: 1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for b := range 3 {
		var batch []shop.Order
		for i := range 3 {
			id := fmt.Sprintf("o%d-%d", b, i)
			batch = append(batch, shop.Order{ID: id, ProductID: p.ID, UserID: "u" + id, Quantity: 1, IdempotencyKey: "k" + id, CreatedAt: now})
		}
		if c, err := s.CommitBatch(ctx, batch); err != nil || len(c.Rejected) != 0 {
			t.Fatalf("batch %d: %+v, %v", b, c, err)
		}
	}
	got, err := s.Product(ctx, p.ID)
	if err != nil || got.Stock != 91 || got.Sold != 9 {
		t.Fatalf("product %+v, %v; want stock 91, sold 9", got, err)
	}
}
