// Package postgres opens the shop's PostgreSQL store through a bounded
// pgx/v5 connection pool.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stampede-dev/stampede/internal/shop/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DefaultMaxConns bounds the pool when neither the DSN's pool_max_conns
// nor the caller sets it: more connections than this only queue on the hot
// product row.
const DefaultMaxConns = 16

// OperatorRoom is how many of the server's connections a shop leaves free
// for people: an operator's psql, a backup, a monitoring agent.
const OperatorRoom = 5

// commitBatch does a whole group commit in one statement, which PostgreSQL
// runs as one transaction. It first locks the rows of the products whose
// orders carry a reservation epoch and keeps only the orders of each
// product's current epoch (BeginReservations, which moves an epoch on,
// waits for this lock, and this lock for it). Then it inserts the orders
// (a replay of a committed batch inserts nothing), takes from stock and
// adds to each user only what this statement inserted, and names the
// orders it did not store: refused for their key ("key") or their epoch
// ("stale"). Purchases are counted per user only for products with a
// per-user limit (sqlstore's purchases says why). If that leaves a stock
// below zero or a user past the limit, stampede_would_oversell raises
// SB001 and the whole statement stores nothing (CASE keeps the call for
// that case alone). Data-modifying CTEs all see the snapshot from before
// the statement, so an order that is neither inserted now nor stored
// before was refused. Rows are locked in product and user order, so two
// batches cannot deadlock.
const commitBatch = commitInput + `, fence AS (
	SELECT id, reserve_epoch FROM products
	WHERE id IN (SELECT product_id FROM input WHERE epoch > 0)
	ORDER BY id FOR NO KEY UPDATE
), valid AS (
	SELECT i.* FROM input i
	WHERE i.epoch = 0 OR EXISTS (SELECT 1 FROM fence f WHERE f.id = i.product_id AND f.reserve_epoch = i.epoch)
)` + commitOrders

// commitBatchPlain is commitBatch for a batch without reservation epochs
// (the in-memory reserve's): every order is valid and no row is locked
// first. The fence, paid by every batch, cost PostgreSQL's in-memory
// reserve 45 % of its orders per second (bench/shop.sh: 3,500 against
// 6,400).
const commitBatchPlain = commitInput + `, valid AS (SELECT * FROM input)` + commitOrders

// commitInput unpacks the eight arrays, one per order column.
const commitInput = `WITH input AS (
	SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bigint[], $8::bigint[])
		AS t(id, product_id, user_id, quantity, idempotency_key, request_hash, created_at, epoch)
)`

// commitOrders stores the valid orders and answers for the others.
const commitOrders = `, ins AS (
	INSERT INTO orders (id, product_id, user_id, quantity, idempotency_key, request_hash, created_at)
	SELECT id, product_id, user_id, quantity, NULLIF(idempotency_key, ''), NULLIF(request_hash, ''), created_at FROM valid
	ON CONFLICT DO NOTHING
	RETURNING id, product_id, user_id, quantity
), stock AS (
	UPDATE products p SET stock = p.stock - t.q, sold = p.sold + t.q
	FROM (SELECT product_id, SUM(quantity) AS q FROM ins GROUP BY product_id ORDER BY product_id) t
	WHERE p.id = t.product_id
	RETURNING p.stock
), users AS (
	INSERT INTO user_purchases (product_id, user_id, quantity)
	SELECT i.product_id, i.user_id, SUM(i.quantity) FROM ins i JOIN products p ON p.id = i.product_id
	WHERE p.per_user_limit > 0
	GROUP BY i.product_id, i.user_id ORDER BY i.product_id, i.user_id
	ON CONFLICT (product_id, user_id) DO UPDATE SET quantity = user_purchases.quantity + excluded.quantity
	RETURNING product_id, quantity
), over AS (
	SELECT 1 FROM stock WHERE stock < 0
	UNION ALL
	SELECT 1 FROM users u JOIN products p ON p.id = u.product_id WHERE p.per_user_limit > 0 AND u.quantity > p.per_user_limit
)
SELECT i.id, CASE WHEN EXISTS (SELECT 1 FROM valid v WHERE v.id = i.id) THEN 'key' ELSE 'stale' END FROM input i
WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.id = i.id)
  AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = i.id)
UNION ALL
SELECT NULL, NULL WHERE (CASE WHEN EXISTS (SELECT 1 FROM over) THEN stampede_would_oversell() ELSE 0 END) = 1`

// wouldOversell recognises stampede_would_oversell's error.
func wouldOversell(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "SB001"
}

// PoolSize returns the pool_max_conns a DSN sets, or 0.
func PoolSize(dsn string) (int, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return 0, fmt.Errorf("postgres DSN: %w", err)
	}
	if !strings.Contains(dsn, "pool_max_conns=") {
		return 0, nil
	}
	return int(cfg.MaxConns), nil
}

// Budget is what a PostgreSQL server can give a shop in connections.
type Budget struct {
	Max      int // max_connections
	Reserved int // superuser_reserved_connections (and reserved_connections where it exists)
	InUse    int // held by other clients when it was read
}

// Free is what is left for the shop once superusers, the clients already
// connected and OperatorRoom have theirs; it may be negative.
func (b Budget) Free() int { return b.Max - b.Reserved - b.InUse - OperatorRoom }

func (b Budget) String() string {
	return fmt.Sprintf("the server allows %d connections: %d reserved for superusers, %d in use, %d kept for operators, which leaves %d",
		b.Max, b.Reserved, b.InUse, OperatorRoom, b.Free())
}

// ReadBudget asks the server at dsn how many connections it allows and
// how many are taken, over one connection of its own (not counted).
func ReadBudget(ctx context.Context, dsn string) (Budget, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return Budget{}, fmt.Errorf("postgres DSN: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return Budget{}, fmt.Errorf("connect to postgres at %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	defer conn.Close(ctx)
	var b Budget
	err = conn.QueryRow(ctx, `SELECT current_setting('max_connections')::int,
		current_setting('superuser_reserved_connections')::int + COALESCE(current_setting('reserved_connections', true)::int, 0),
		(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid())::int`).Scan(&b.Max, &b.Reserved, &b.InUse)
	if err != nil {
		return Budget{}, fmt.Errorf("read connection limits: %w", err)
	}
	return b, nil
}

// Open connects to dsn (postgres://…; pool_max_conns and search_path may be
// set in it) and migrates the schema. maxConns, when above zero, bounds the
// pool whatever the DSN says. Processes starting together migrate one at a
// time under an advisory lock.
func Open(ctx context.Context, dsn string, maxConns int) (*sqlstore.Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres DSN: %w", err)
	}
	switch {
	case maxConns > 0:
		cfg.MaxConns = int32(maxConns)
	case !strings.Contains(dsn, "pool_max_conns="): // pgxpool's default is max(4, cores)
		cfg.MaxConns = DefaultMaxConns
	}
	// Group commits get connections of their own, out of the same budget,
	// so that buyers and readers queueing for the pool never hold up the
	// commit they are all waiting for.
	batchConns := int32(0)
	if cfg.MaxConns >= 4 {
		batchConns = 2
	}
	bcfg := cfg.Copy()
	cfg.MaxConns -= batchConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres at %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	db := stdlib.OpenDBFromPool(pool)
	sub, _ := fs.Sub(migrations, "migrations")
	s, err := sqlstore.Open(ctx, db, db, sqlstore.Dialect{
		Name:           "postgres",
		Numbered:       true,
		ForUpdate:      " FOR UPDATE",
		LockMigrations: "SELECT pg_advisory_xact_lock(7355608)",
		Migrations:     sub,
		CommitBatch:    commitBatchPlain,
		CommitFenced:   commitBatch,
		WouldOversell:  wouldOversell,
	})
	if err != nil {
		db.Close()
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s.OnClose(pool.Close)
	if batchConns > 0 {
		bcfg.MaxConns = batchConns
		// The group commit is one long statement run over and over; with
		// its plan made once (generic), a batch of 64 orders with epochs
		// took 2.7 ms, against 4.5 ms with PostgreSQL left to choose
		// between that and planning each batch afresh (custom plans: 8.8
		// ms when forced). BenchmarkCommitBatch, medians of 3.
		bcfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
		bpool, err := pgxpool.NewWithConfig(ctx, bcfg)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("connect to postgres: %w", err)
		}
		s.UseForBatches(stdlib.OpenDBFromPool(bpool))
		s.OnClose(bpool.Close)
	}
	return s, nil
}

// CreateSchema creates a schema on the server dsn names and returns dsn
// with its search_path set to it, so that a test run has tables of its own.
func CreateSchema(ctx context.Context, dsn, schema string) (string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return "", err
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema, nil
}

// DropSchema drops a schema made by CreateSchema, with its tables.
func DropSchema(ctx context.Context, dsn, schema string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	return err
}
