// Package sqlstore implements shop.Store on database/sql for any dialect
// that speaks ON CONFLICT and RETURNING (SQLite 3.35+, PostgreSQL 9.5+).
// It owns no driver: the sqlite and postgres packages open the database and
// hand it over with their Dialect and migrations.
package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stampede-dev/stampede/internal/shop"
)

// Dialect is what differs between databases.
type Dialect struct {
	// Name is "sqlite" or "postgres".
	Name string
	// Numbered is true when placeholders are $1, $2, … rather than ?.
	Numbered bool
	// ForUpdate is appended to a SELECT that must lock its row ("" where a
	// transaction already holds the only write lock, as in SQLite).
	ForUpdate string
	// LockMigrations, when not empty, runs first in the migration
	// transaction so that processes starting together migrate one at a time.
	LockMigrations string
	// Migrations holds NNNN_name.sql files, applied once each in name order.
	Migrations fs.FS
	// Embedded is true when a statement costs no network round trip, so a
	// group commit may run several statements in its transaction. A dialect
	// that is not embedded must set CommitBatch.
	Embedded bool
	// CommitBatch, when not empty, is one statement that does all of
	// CommitBatch's work as its own implicit transaction, in one round trip.
	// It takes eight arrays, one per order column (id, product_id, user_id,
	// quantity, idempotency_key with "" for none, request_hash, created_at,
	// reservation epoch with 0 for none), and returns rows (id, why) for
	// the orders it did not store: why is "key" when another stored order
	// holds their key, "stale" when their epoch is older than their
	// product's. It fails, storing nothing, where the batch would oversell,
	// with an error that WouldOversell recognises.
	CommitBatch string
	// CommitFenced, when not empty, is CommitBatch for a batch with
	// reservation epochs; CommitBatch then serves batches without any
	// (epoch 0 throughout) and may skip the fence.
	CommitFenced string
	// WouldOversell recognises CommitBatch's failure for a batch that
	// would take stock below zero or a user past the limit.
	WouldOversell func(error) bool
}

// Store is a shop.Store on two handles: w for writes and r for reads. They
// may be the same pool (PostgreSQL) or not (SQLite: one writer connection,
// many readers).
type Store struct {
	w, r   *sql.DB
	batch  *sql.DB  // group commits, when they have connections of their own (else w)
	wStmts sync.Map // SQL text → *sql.Stmt prepared on w
	rStmts sync.Map // … on r
	bStmts sync.Map // … on batch
	// cold holds statements first needed inside a transaction, which
	// prepared them for itself alone (preparing on the handle could wait
	// for the very connection the transaction holds). Once it ends they
	// are prepared on their handle, so the next transaction finds them
	// ready: the group commit's statements, one per batch size, were
	// otherwise parsed again for every batch.
	cold    sync.Map // coldStmt → *sync.Map, the cache it belongs in
	d       Dialect
	q       queries
	onClose []func()
}

var _ shop.Store = (*Store)(nil)

// Open migrates the database and returns a Store over w and r. Close closes
// both handles.
func Open(ctx context.Context, w, r *sql.DB, d Dialect) (*Store, error) {
	if !d.Embedded && d.CommitBatch == "" {
		return nil, fmt.Errorf("dialect %s: a database over the network needs its one-statement CommitBatch", d.Name)
	}
	s := &Store{w: w, r: r, batch: w, d: d}
	s.q = newQueries(s.bind)
	s.q.lockProduct = s.bind(`SELECT stock, per_user_limit FROM products WHERE id = ?` + d.ForUpdate)
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	for _, q := range []string{s.q.exists, s.q.takeBlind, s.q.takeFenced, s.q.takeIfStock, s.q.lockProduct,
		s.q.userBought, s.q.productLimit, s.q.addUser, s.q.addUserLimited, s.q.insertOrder,
		s.q.countBuckets, s.q.insertBucket, s.q.emptyProduct, s.q.takeBucket, s.q.takeReserved, s.q.orderExists,
		s.q.nextEpoch, s.q.epochOf, s.q.keyedOrders} {
		if _, err := s.prepare(ctx, s.w, q); err != nil {
			return nil, fmt.Errorf("prepare %q: %w", q, err)
		}
	}
	return s, nil
}

// Close implements shop.Store.
func (s *Store) Close() error {
	err := s.w.Close()
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	if s.batch != s.w {
		err = errors.Join(err, s.batch.Close())
	}
	for _, fn := range s.onClose {
		fn()
	}
	return err
}

// UseForBatches gives CommitBatch a handle of its own, so that a group
// commit, which every waiting buyer depends on, never queues for a
// connection behind the readers and buyers it serves. Close closes it.
// Call it before the Store is used.
func (s *Store) UseForBatches(db *sql.DB) { s.batch = db }

// OnClose adds fn to what Close runs after closing the handles, such as
// closing the pool beneath them.
func (s *Store) OnClose(fn func()) { s.onClose = append(s.onClose, fn) }

// bind rewrites ? placeholders for dialects that number them.
func (s *Store) bind(q string) string {
	if !s.d.Numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(s.d.Migrations, "*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if s.d.LockMigrations != "" {
		if _, err := tx.ExecContext(ctx, s.d.LockMigrations); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, name := range names {
		var done int
		if err := tx.QueryRowContext(ctx, s.bind(`SELECT COUNT(*) FROM schema_migrations WHERE name = ?`), name).Scan(&done); err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
		if done > 0 {
			continue
		}
		body, err := fs.ReadFile(s.d.Migrations, name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, s.bind(`INSERT INTO schema_migrations (name) VALUES (?)`), name); err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
	}
	return tx.Commit()
}

type queries struct {
	createProduct, product, products, exists, snapshot, userPurchases, ordersByUser,
	orders, orderByKey,
	takeBlind, takeFenced, takeIfStock, lockProduct, userBought, productLimit,
	addUser, addUserLimited, insertOrder,
	countBuckets, insertBucket, emptyProduct, mergeBuckets, dropBuckets, takeBucket,
	takeReserved, orderExists string
	nextEpoch, epochOf, keyedOrders string
	insertOrders, addUsersLimited   []string // by row count: see multiRow
}

const orderColumns = `id, product_id, user_id, quantity, COALESCE(idempotency_key, ''), COALESCE(request_hash, ''), created_at`

func newQueries(bind func(string) string) queries {
	const productSelect = `SELECT p.id, p.name,
		p.stock + COALESCE((SELECT SUM(b.stock) FROM stock_buckets b WHERE b.product_id = p.id), 0),
		p.sold + COALESCE((SELECT SUM(b.sold) FROM stock_buckets b WHERE b.product_id = p.id), 0),
		p.per_user_limit FROM products p`
	return queries{
		createProduct: bind(`INSERT INTO products (name, stock, sold, per_user_limit, fence, created_at) VALUES (?, ?, 0, ?, 0, ?) RETURNING id`),
		product:       bind(productSelect + ` WHERE p.id = ?`),
		products:      bind(productSelect + ` ORDER BY p.id LIMIT ?`),
		exists:        bind(`SELECT COUNT(*) FROM products WHERE id = ?`),
		snapshot: bind(`SELECT p.stock, p.per_user_limit,
			COALESCE((SELECT u.quantity FROM user_purchases u WHERE u.product_id = p.id AND u.user_id = ?), 0)
			FROM products p WHERE p.id = ?`),
		userPurchases: bind(`SELECT user_id, quantity FROM user_purchases WHERE product_id = ?`),
		ordersByUser:  bind(`SELECT user_id, SUM(quantity) FROM orders WHERE product_id = ? GROUP BY user_id`),
		orders:        bind(`SELECT ` + orderColumns + ` FROM orders WHERE product_id = ? ORDER BY created_at, id`),
		orderByKey:    bind(`SELECT ` + orderColumns + ` FROM orders WHERE idempotency_key = ?`),
		takeBlind:     bind(`UPDATE products SET stock = stock - ?, sold = sold + ? WHERE id = ? RETURNING per_user_limit`),
		takeFenced:    bind(`UPDATE products SET stock = stock - ?, sold = sold + ?, fence = ? WHERE id = ? AND fence < ? AND stock >= ? RETURNING per_user_limit`),
		takeIfStock:   bind(`UPDATE products SET stock = stock - ?, sold = sold + ? WHERE id = ? AND stock >= ? RETURNING per_user_limit`),
		userBought:    bind(`SELECT quantity FROM user_purchases WHERE product_id = ? AND user_id = ?`),
		productLimit:  bind(`SELECT per_user_limit FROM products WHERE id = ?`),
		addUser: bind(`INSERT INTO user_purchases (product_id, user_id, quantity) VALUES (?, ?, ?)
			ON CONFLICT (product_id, user_id) DO UPDATE SET quantity = user_purchases.quantity + excluded.quantity`),
		addUserLimited: bind(`INSERT INTO user_purchases (product_id, user_id, quantity) VALUES (?, ?, ?)
			ON CONFLICT (product_id, user_id) DO UPDATE SET quantity = user_purchases.quantity + excluded.quantity
			WHERE user_purchases.quantity + excluded.quantity <= ?`),
		insertOrder: bind(`INSERT INTO orders (id, product_id, user_id, quantity, idempotency_key, request_hash, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		countBuckets: bind(`SELECT COUNT(*) FROM stock_buckets WHERE product_id = ?`),
		insertBucket: bind(`INSERT INTO stock_buckets (product_id, bucket, stock, sold) VALUES (?, ?, ?, 0)`),
		emptyProduct: bind(`UPDATE products SET stock = 0 WHERE id = ?`),
		mergeBuckets: `UPDATE products SET
			stock = stock + COALESCE((SELECT SUM(b.stock) FROM stock_buckets b WHERE b.product_id = products.id), 0),
			sold = sold + COALESCE((SELECT SUM(b.sold) FROM stock_buckets b WHERE b.product_id = products.id), 0)
			WHERE id IN (SELECT product_id FROM stock_buckets)`,
		dropBuckets:  `DELETE FROM stock_buckets`,
		takeBucket:   bind(`UPDATE stock_buckets SET stock = stock - ?, sold = sold + ? WHERE product_id = ? AND bucket = ? AND stock >= ?`),
		takeReserved: bind(`UPDATE products SET stock = stock - ?, sold = sold + ? WHERE id = ? AND stock >= ? RETURNING per_user_limit`),
		orderExists:  bind(`SELECT COUNT(*) FROM orders WHERE product_id = ? AND created_at = ? AND id = ?`),
		nextEpoch:    bind(`UPDATE products SET reserve_epoch = reserve_epoch + 1 WHERE id = ? RETURNING reserve_epoch`),
		epochOf:      bind(`SELECT reserve_epoch FROM products WHERE id = ?`),
		keyedOrders:  bind(`SELECT ` + orderColumns + ` FROM orders WHERE product_id = ? AND idempotency_key IS NOT NULL`),
		insertOrders: multiRow(bind, `INSERT INTO orders (id, product_id, user_id, quantity, idempotency_key, request_hash, created_at)`,
			`(?, ?, ?, ?, ?, ?, ?)`, `ON CONFLICT DO NOTHING`),
		addUsersLimited: multiRow(bind, `INSERT INTO user_purchases (product_id, user_id, quantity)`, `(?, ?, ?)`,
			`ON CONFLICT (product_id, user_id) DO UPDATE SET quantity = user_purchases.quantity + excluded.quantity
			WHERE user_purchases.quantity + excluded.quantity <= ?`),
	}
}

// CreateProduct implements shop.Store.
func (s *Store) CreateProduct(ctx context.Context, p shop.NewProduct) (shop.Product, error) {
	var id int64
	if err := s.w.QueryRowContext(ctx, s.q.createProduct, p.Name, p.Stock, p.PerUserLimit, time.Now().UnixNano()).Scan(&id); err != nil {
		return shop.Product{}, fmt.Errorf("create product: %w", err)
	}
	return shop.Product{ID: id, Name: p.Name, Stock: p.Stock, PerUserLimit: p.PerUserLimit}, nil
}

// Product implements shop.Store.
func (s *Store) Product(ctx context.Context, id int64) (shop.Product, error) {
	var p shop.Product
	err := s.queryRow(ctx, s.r, s.q.product, []any{id}, &p.ID, &p.Name, &p.Stock, &p.Sold, &p.PerUserLimit)
	if errors.Is(err, sql.ErrNoRows) {
		return shop.Product{}, shop.ErrNotFound
	}
	if err != nil {
		return shop.Product{}, fmt.Errorf("read product %d: %w", id, err)
	}
	return p, nil
}

// Products implements shop.Store.
func (s *Store) Products(ctx context.Context, limit int) ([]shop.Product, error) {
	rows, err := s.query(ctx, s.r, s.q.products, limit)
	if err != nil {
		return nil, fmt.Errorf("list products: %w", err)
	}
	defer rows.Close()
	var ps []shop.Product
	for rows.Next() {
		var p shop.Product
		if err := rows.Scan(&p.ID, &p.Name, &p.Stock, &p.Sold, &p.PerUserLimit); err != nil {
			return nil, fmt.Errorf("list products: %w", err)
		}
		ps = append(ps, p)
	}
	return ps, rows.Err()
}

func scanOrder(sc interface{ Scan(...any) error }) (shop.Order, error) {
	var o shop.Order
	var created int64
	err := sc.Scan(&o.ID, &o.ProductID, &o.UserID, &o.Quantity, &o.IdempotencyKey, &o.RequestHash, &created)
	o.CreatedAt = time.Unix(0, created).UTC()
	return o, err
}

// Orders implements shop.Store.
func (s *Store) Orders(ctx context.Context, productID int64, fn func(shop.Order) error) error {
	rows, err := s.query(ctx, s.r, s.q.orders, productID)
	if err != nil {
		return fmt.Errorf("list orders: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return fmt.Errorf("list orders: %w", err)
		}
		if err := fn(o); err != nil {
			return err
		}
	}
	return rows.Err()
}

// OrderByKey implements shop.Store.
func (s *Store) OrderByKey(ctx context.Context, key string) (shop.Order, error) {
	var o shop.Order
	rows, err := s.query(ctx, s.r, s.q.orderByKey, key)
	if err == nil {
		err = sql.ErrNoRows
		if rows.Next() {
			o, err = scanOrder(rows)
		}
		err = errors.Join(err, rows.Close())
	}
	if errors.Is(err, sql.ErrNoRows) {
		return shop.Order{}, shop.ErrNotFound
	}
	if err != nil {
		return shop.Order{}, fmt.Errorf("find order by key: %w", err)
	}
	return o, nil
}

// UserPurchases implements shop.Store.
func (s *Store) UserPurchases(ctx context.Context, productID int64) (map[string]int64, error) {
	var limit int64
	if err := s.queryRow(ctx, s.r, s.q.productLimit, []any{productID}, &limit); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, shop.ErrNotFound
		}
		return nil, fmt.Errorf("read purchases: %w", err)
	}
	return s.purchases(ctx, s.r, productID, limit)
}

// purchases reads the units each user holds of a product whose per-user
// limit is limit: from user_purchases when there is a limit, the only kind
// of product whose purchases are counted there (the count costs a group
// commit a fifth of its time, and nothing reads it without a limit), and
// from the orders otherwise.
func (s *Store) purchases(ctx context.Context, on runner, productID, limit int64) (map[string]int64, error) {
	q := s.q.userPurchases
	if limit == 0 {
		q = s.q.ordersByUser
	}
	rows, err := s.query(ctx, on, q, productID)
	if err != nil {
		return nil, fmt.Errorf("read purchases: %w", err)
	}
	defer rows.Close()
	m := make(map[string]int64)
	for rows.Next() {
		var u string
		var q int64
		if err := rows.Scan(&u, &q); err != nil {
			return nil, fmt.Errorf("read purchases: %w", err)
		}
		m[u] = q
	}
	return m, rows.Err()
}

// Snapshot implements shop.Store.
func (s *Store) Snapshot(ctx context.Context, productID int64, userID string) (shop.Snapshot, error) {
	var sn shop.Snapshot
	err := s.queryRow(ctx, s.r, s.q.snapshot, []any{userID, productID}, &sn.Stock, &sn.PerUserLimit, &sn.UserBought)
	if errors.Is(err, sql.ErrNoRows) {
		return sn, shop.ErrNotFound
	}
	if err != nil {
		return sn, fmt.Errorf("read stock: %w", err)
	}
	return sn, nil
}

// runner is what a statement runs on: a handle or a transaction.
type runner interface {
	PrepareContext(ctx context.Context, q string) (*sql.Stmt, error)
}

// batchTx is a transaction on the batch handle.
type batchTx struct{ *sql.Tx }

// prepare returns q prepared once per handle and reused: parsing the SQL
// again for each call costs SQLite more than running it.
func (s *Store) prepare(ctx context.Context, on runner, q string) (*sql.Stmt, error) {
	db, cache := s.r, &s.rStmts
	tx, inTx := on.(*sql.Tx)
	if inTx || on == s.w {
		db, cache = s.w, &s.wStmts
	}
	if b, ok := on.(batchTx); ok {
		// A group commit's transaction runs on batch, which may be w.
		tx, inTx, db, cache = b.Tx, true, s.w, &s.wStmts
		if s.batch != s.w {
			db, cache = s.batch, &s.bStmts
		}
	}
	var st *sql.Stmt
	if v, ok := cache.Load(q); ok {
		st = v.(*sql.Stmt)
	} else if inTx {
		// Preparing on the pool could wait for the connection this very
		// transaction holds; prepare on the transaction, and on the pool
		// once it has ended (warm).
		s.cold.Store(coldStmt{db, q}, cache)
		return tx.PrepareContext(ctx, q)
	} else {
		var err error
		if st, err = db.PrepareContext(ctx, q); err != nil {
			return nil, err
		}
		if prev, loaded := cache.LoadOrStore(q, st); loaded {
			st.Close()
			st = prev.(*sql.Stmt)
		}
	}
	if inTx {
		return tx.StmtContext(ctx, st), nil
	}
	return st, nil
}

func (s *Store) exec(ctx context.Context, on runner, q string, args ...any) (sql.Result, error) {
	st, err := s.prepare(ctx, on, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (s *Store) query(ctx context.Context, on runner, q string, args ...any) (*sql.Rows, error) {
	st, err := s.prepare(ctx, on, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow scans the first row of q into dest, or returns sql.ErrNoRows.
func (s *Store) queryRow(ctx context.Context, on runner, q string, args []any, dest ...any) error {
	rows, err := s.query(ctx, on, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}

// inTx runs fn in a write transaction and commits it if fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.inTxOn(ctx, s.w, fn)
}

func (s *Store) inTxOn(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer s.warm(ctx)
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// coldStmt is a statement to prepare on db once no transaction of the
// caller's holds a connection.
type coldStmt struct {
	db *sql.DB
	q  string
}

// warm prepares, each on its handle, the statements transactions had to
// prepare for themselves. A statement that fails to prepare is left to be
// prepared in a transaction again, which reports the error.
func (s *Store) warm(ctx context.Context) {
	s.cold.Range(func(k, cache any) bool {
		c := k.(coldStmt)
		s.cold.Delete(k)
		if _, ok := cache.(*sync.Map).Load(c.q); ok {
			return true
		}
		st, err := c.db.PrepareContext(ctx, c.q)
		if err != nil {
			return true
		}
		if _, loaded := cache.(*sync.Map).LoadOrStore(c.q, st); loaded {
			st.Close()
		}
		return true
	})
}

// missing tells "no such product" from "condition not met" after an
// UPDATE matched no row.
func (s *Store) missing(ctx context.Context, tx *sql.Tx, productID int64, otherwise error) error {
	var n int
	if err := s.queryRow(ctx, tx, s.q.exists, []any{productID}, &n); err != nil {
		return fmt.Errorf("check product: %w", err)
	}
	if n == 0 {
		return shop.ErrNotFound
	}
	return otherwise
}

// finish records the order and, when the product has a limit, the user's
// units (refused past the limit when enforce is set; a caller that checked
// the limit itself, or claims to have, leaves it unset): the common tail of
// every buying transaction.
func (s *Store) finish(ctx context.Context, tx *sql.Tx, o shop.Order, limit int64, enforce bool) error {
	switch {
	case limit > 0 && enforce:
		if o.Quantity > limit {
			return shop.ErrLimitExceeded
		}
		res, err := s.exec(ctx, tx, s.q.addUserLimited, o.ProductID, o.UserID, o.Quantity, limit)
		if err != nil {
			return fmt.Errorf("record purchase: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return shop.ErrLimitExceeded
		}
	case limit > 0:
		if _, err := s.exec(ctx, tx, s.q.addUser, o.ProductID, o.UserID, o.Quantity); err != nil {
			return fmt.Errorf("record purchase: %w", err)
		}
	}
	res, err := s.exec(ctx, tx, s.q.insertOrder, orderArgs(o)...)
	if err != nil {
		return fmt.Errorf("insert order: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return shop.ErrDuplicateKey
	}
	return nil
}

func orderArgs(o shop.Order) []any {
	key, hash := sql.NullString{String: o.IdempotencyKey, Valid: o.IdempotencyKey != ""}, sql.NullString{String: o.RequestHash, Valid: o.RequestHash != ""}
	return []any{o.ID, o.ProductID, o.UserID, o.Quantity, key, hash, o.CreatedAt.UnixNano()}
}

// WriteOrder implements shop.Store.
func (s *Store) WriteOrder(ctx context.Context, o shop.Order, fence int64) (shop.Order, error) {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if fence > 0 {
			// The fence orders the writers; the stock and limit conditions
			// keep a stale read from overselling when its holder writes
			// before the newer holder does.
			var limit int64
			err := s.queryRow(ctx, tx, s.q.takeFenced, []any{o.Quantity, o.Quantity, fence, o.ProductID, fence, o.Quantity}, &limit)
			if errors.Is(err, sql.ErrNoRows) {
				return s.missing(ctx, tx, o.ProductID, shop.ErrLockLost)
			}
			if err != nil {
				return fmt.Errorf("take stock: %w", err)
			}
			return s.finish(ctx, tx, o, limit, true)
		}
		var limit int64
		err := s.queryRow(ctx, tx, s.q.takeBlind, []any{o.Quantity, o.Quantity, o.ProductID}, &limit)
		if errors.Is(err, sql.ErrNoRows) {
			return shop.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("take stock: %w", err)
		}
		return s.finish(ctx, tx, o, limit, false)
	})
	return orderOrNothing(o, err)
}

// BuyAtomic implements shop.Store.
func (s *Store) BuyAtomic(ctx context.Context, o shop.Order) (shop.Order, error) {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var limit int64
		err := s.queryRow(ctx, tx, s.q.takeIfStock, []any{o.Quantity, o.Quantity, o.ProductID, o.Quantity}, &limit)
		if errors.Is(err, sql.ErrNoRows) {
			return s.missing(ctx, tx, o.ProductID, shop.ErrSoldOut)
		}
		if err != nil {
			return fmt.Errorf("take stock: %w", err)
		}
		return s.finish(ctx, tx, o, limit, true)
	})
	return orderOrNothing(o, err)
}

// BuyRowLock implements shop.Store.
func (s *Store) BuyRowLock(ctx context.Context, o shop.Order) (shop.Order, error) {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var stock, limit int64
		err := s.queryRow(ctx, tx, s.q.lockProduct, []any{o.ProductID}, &stock, &limit)
		if errors.Is(err, sql.ErrNoRows) {
			return shop.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lock product: %w", err)
		}
		if stock < o.Quantity {
			return shop.ErrSoldOut
		}
		if limit > 0 {
			var bought int64
			err := s.queryRow(ctx, tx, s.q.userBought, []any{o.ProductID, o.UserID}, &bought)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("read purchases: %w", err)
			}
			if bought+o.Quantity > limit {
				return shop.ErrLimitExceeded
			}
		}
		if err := s.queryRow(ctx, tx, s.q.takeBlind, []any{o.Quantity, o.Quantity, o.ProductID}, &limit); err != nil {
			return fmt.Errorf("take stock: %w", err)
		}
		return s.finish(ctx, tx, o, limit, false)
	})
	return orderOrNothing(o, err)
}

// SplitStock implements shop.Store.
func (s *Store) SplitStock(ctx context.Context, productID int64, n int) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var stock, limit int64
		err := s.queryRow(ctx, tx, s.q.lockProduct, []any{productID}, &stock, &limit)
		if errors.Is(err, sql.ErrNoRows) {
			return shop.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lock product: %w", err)
		}
		var have int
		if err := s.queryRow(ctx, tx, s.q.countBuckets, []any{productID}, &have); err != nil {
			return fmt.Errorf("count buckets: %w", err)
		}
		if have > 0 {
			return nil
		}
		for b := range n {
			share := stock / int64(n)
			if int64(b) < stock%int64(n) {
				share++
			}
			if _, err := s.exec(ctx, tx, s.q.insertBucket, productID, b, share); err != nil {
				return fmt.Errorf("create bucket: %w", err)
			}
		}
		if _, err := s.exec(ctx, tx, s.q.emptyProduct, productID); err != nil {
			return fmt.Errorf("split stock: %w", err)
		}
		return nil
	})
}

// MergeBuckets implements shop.Store.
func (s *Store) MergeBuckets(ctx context.Context) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, s.q.mergeBuckets); err != nil {
			return fmt.Errorf("merge buckets: %w", err)
		}
		if _, err := s.exec(ctx, tx, s.q.dropBuckets); err != nil {
			return fmt.Errorf("merge buckets: %w", err)
		}
		return nil
	})
}

// BuyFromBucket implements shop.Store.
func (s *Store) BuyFromBucket(ctx context.Context, o shop.Order, b int) (shop.Order, error) {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, s.q.takeBucket, o.Quantity, o.Quantity, o.ProductID, b, o.Quantity)
		if err != nil {
			return fmt.Errorf("take stock: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return shop.ErrSoldOut
		}
		var limit int64
		if err := s.queryRow(ctx, tx, s.q.productLimit, []any{o.ProductID}, &limit); err != nil {
			return fmt.Errorf("read limit: %w", err)
		}
		return s.finish(ctx, tx, o, limit, true)
	})
	return orderOrNothing(o, err)
}

// CommitBatch implements shop.Store. Stock and purchases are updated only
// for orders this call inserted, in product and user order so that two
// concurrent batches cannot deadlock.
func (s *Store) CommitBatch(ctx context.Context, orders []shop.Order) (c shop.Committed, err error) {
	if s.d.CommitBatch != "" {
		return s.commitBatchOnce(ctx, orders)
	}
	// An embedded database waits for nothing but its own lock, which
	// busy_timeout bounds, and a cancellable context costs a watcher
	// goroutine per statement (modernc's interrupt, database/sql's
	// transaction): a third of a batch's CPU.
	ctx = context.WithoutCancel(ctx)
	err = s.inTxOn(ctx, s.batch, func(sqlTx *sql.Tx) error {
		c = shop.Committed{}
		tx := batchTx{sqlTx}
		// The transaction holds the only write lock: no epoch moves on
		// while it runs.
		orders, err := s.dropStale(ctx, tx, orders, &c)
		if err != nil {
			return err
		}
		inserted := make(map[string]bool, len(orders))
		if err := s.insertOrders(ctx, tx, orders, inserted); err != nil {
			return err
		}
		for _, o := range orders {
			if inserted[o.ID] {
				continue
			}
			var n int
			if err := s.queryRow(ctx, tx, s.q.orderExists, []any{o.ProductID, o.CreatedAt.UnixNano(), o.ID}, &n); err != nil {
				return fmt.Errorf("check order: %w", err)
			}
			if n == 0 {
				c.Rejected = append(c.Rejected, o.ID)
			}
		}
		perProduct := map[int64]int64{}
		for _, o := range orders {
			if inserted[o.ID] {
				perProduct[o.ProductID] += o.Quantity
			}
		}
		products := slices.Sorted(maps.Keys(perProduct))
		limits := make(map[int64]int64, len(products))
		for _, id := range products {
			var limit int64
			err := s.queryRow(ctx, tx, s.q.takeReserved, []any{perProduct[id], perProduct[id], id, perProduct[id]}, &limit)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("product %d: %w", id, shop.ErrWouldOversell)
			}
			if err != nil {
				return fmt.Errorf("take stock: %w", err)
			}
			limits[id] = limit
		}
		// Users go in by product, each product's limit checked on the rows
		// this batch touches only: an upsert that would pass the limit
		// updates nothing, so fewer rows are affected than were sent. A
		// product without a limit counts nothing per user (see purchases).
		type pu struct {
			product int64
			user    string
		}
		perUser := map[pu]int64{}
		for _, o := range orders {
			if inserted[o.ID] && limits[o.ProductID] > 0 {
				perUser[pu{o.ProductID, o.UserID}] += o.Quantity
			}
		}
		users := slices.SortedFunc(maps.Keys(perUser), func(a, b pu) int {
			if a.product != b.product {
				return cmp.Compare(a.product, b.product)
			}
			return strings.Compare(a.user, b.user)
		})
		args := make([]any, 0, 3*maxRows+1)
		for rest := users; len(rest) > 0; {
			limit := limits[rest[0].product]
			same := 1
			for same < len(rest) && rest[same].product == rest[0].product {
				same++
			}
			n := rowsFor(same)
			args = args[:0]
			for _, k := range rest[:n] {
				if perUser[k] > limit {
					return fmt.Errorf("product %d: %w", k.product, shop.ErrWouldOversell)
				}
				args = append(args, k.product, k.user, perUser[k])
			}
			res, err := s.exec(ctx, tx, s.q.addUsersLimited[n], append(args, limit)...)
			if err != nil {
				return fmt.Errorf("record purchases: %w", err)
			}
			if got, _ := res.RowsAffected(); got != int64(n) {
				return fmt.Errorf("product %d: %w", rest[0].product, shop.ErrWouldOversell)
			}
			rest = rest[n:]
		}
		return nil
	})
	if err != nil {
		return shop.Committed{}, err
	}
	return c, nil
}

// dropStale returns the orders whose epoch is zero or their product's,
// adding the others to c.Stale, except those already stored (a batch
// committed again after its first commit's answer was lost).
func (s *Store) dropStale(ctx context.Context, tx runner, orders []shop.Order, c *shop.Committed) ([]shop.Order, error) {
	epochs := map[int64]int64{}
	for _, o := range orders {
		if o.Epoch == 0 {
			continue
		}
		if _, ok := epochs[o.ProductID]; !ok {
			var e int64
			if err := s.queryRow(ctx, tx, s.q.epochOf, []any{o.ProductID}, &e); err != nil {
				return nil, fmt.Errorf("read the reservation epoch: %w", err)
			}
			epochs[o.ProductID] = e
		}
	}
	if len(epochs) == 0 {
		return orders, nil
	}
	kept := make([]shop.Order, 0, len(orders))
	for _, o := range orders {
		if o.Epoch == 0 || o.Epoch == epochs[o.ProductID] {
			kept = append(kept, o)
			continue
		}
		var n int
		if err := s.queryRow(ctx, tx, s.q.orderExists, []any{o.ProductID, o.CreatedAt.UnixNano(), o.ID}, &n); err != nil {
			return nil, fmt.Errorf("check order: %w", err)
		}
		if n == 0 {
			c.Stale = append(c.Stale, o.ID)
		}
	}
	return kept, nil
}

// BeginReservations implements shop.Store. Moving the epoch on takes the
// product row's write lock first, which waits for every commit holding it,
// so the reads that follow see them.
func (s *Store) BeginReservations(ctx context.Context, id int64) (rs shop.ReservationStart, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		rs = shop.ReservationStart{}
		if err := s.queryRow(ctx, tx, s.q.nextEpoch, []any{id}, &rs.Epoch); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return shop.ErrNotFound
			}
			return fmt.Errorf("move the reservation epoch: %w", err)
		}
		p := &rs.Product
		if err := s.queryRow(ctx, tx, s.q.product, []any{id}, &p.ID, &p.Name, &p.Stock, &p.Sold, &p.PerUserLimit); err != nil {
			return fmt.Errorf("read product %d: %w", id, err)
		}
		if p.PerUserLimit > 0 {
			users, err := s.purchases(ctx, tx, id, p.PerUserLimit)
			if err != nil {
				return err
			}
			rs.Users = users
		}
		rows, err := s.query(ctx, tx, s.q.keyedOrders, id)
		if err != nil {
			return fmt.Errorf("read orders: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			o, err := scanOrder(rows)
			if err != nil {
				return fmt.Errorf("read orders: %w", err)
			}
			rs.Keyed = append(rs.Keyed, o)
		}
		return rows.Err()
	})
	return rs, err
}

// maxRows is the most rows one of the embedded batch's multi-row
// statements carries. A batch runs one statement of each kind per maxRows
// orders, not one or two an order, and each row count is prepared once, on
// first use: a batch of 50 orders in statements of 32, 16 and 2 rows, each
// in a savepoint of its own, took 3 to 8 % longer than in one statement.
const maxRows = 64

// rowsFor is the size of the next multi-row statement for n rows.
func rowsFor(n int) int { return min(n, maxRows) }

// multiRow returns the statements head VALUES (row), (row), … tail for 1
// to maxRows rows, indexed by their row count.
func multiRow(bind func(string) string, head, row, tail string) []string {
	m := make([]string, maxRows+1)
	for n := 1; n <= maxRows; n++ {
		m[n] = bind(head + " VALUES " + strings.Repeat(row+", ", n-1) + row + " " + tail)
	}
	return m
}

// insertOrders inserts orders in multi-row statements and marks in
// inserted each one this call stored. ON CONFLICT DO NOTHING cannot say
// which rows of a statement it skipped, so a statement that stored fewer
// rows than it carried (a replayed batch, a key already taken) is rolled
// back to a savepoint and its rows are inserted one at a time. (A
// RETURNING clause would say, but it made a batch of 50 orders 2 to 5 %
// slower.)
func (s *Store) insertOrders(ctx context.Context, tx batchTx, orders []shop.Order, inserted map[string]bool) error {
	args := make([]any, 0, 7*maxRows)
	for rest := orders; len(rest) > 0; {
		n := rowsFor(len(rest))
		chunk := rest[:n]
		rest = rest[n:]
		args = args[:0]
		for _, o := range chunk {
			args = append(args, orderArgs(o)...)
		}
		if _, err := s.exec(ctx, tx, "SAVEPOINT chunk"); err != nil {
			return fmt.Errorf("insert orders: %w", err)
		}
		res, err := s.exec(ctx, tx, s.q.insertOrders[n], args...)
		if err != nil {
			return fmt.Errorf("insert orders: %w", err)
		}
		if got, _ := res.RowsAffected(); got == int64(n) {
			for _, o := range chunk {
				inserted[o.ID] = true
			}
		} else {
			if _, err := s.exec(ctx, tx, "ROLLBACK TO chunk"); err != nil {
				return fmt.Errorf("insert orders: %w", err)
			}
			for _, o := range chunk {
				res, err := s.exec(ctx, tx, s.q.insertOrders[1], orderArgs(o)...)
				if err != nil {
					return fmt.Errorf("insert order: %w", err)
				}
				if got, _ := res.RowsAffected(); got == 1 {
					inserted[o.ID] = true
				}
			}
		}
		if _, err := s.exec(ctx, tx, "RELEASE chunk"); err != nil {
			return fmt.Errorf("insert orders: %w", err)
		}
	}
	return nil
}

// commitBatchOnce is CommitBatch in the dialect's one statement. A group
// commit that every waiting buyer depends on should not make eight round
// trips, each of which queues again for a CPU in a crowded process.
func (s *Store) commitBatchOnce(ctx context.Context, orders []shop.Order) (shop.Committed, error) {
	n := len(orders)
	ids, users, keys, hashes := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	products, qty, created, epochs := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i, o := range orders {
		ids[i], products[i], users[i], qty[i] = o.ID, o.ProductID, o.UserID, o.Quantity
		keys[i], hashes[i], created[i], epochs[i] = o.IdempotencyKey, o.RequestHash, o.CreatedAt.UnixNano(), o.Epoch
	}
	fail := func(err error) (shop.Committed, error) {
		if s.d.WouldOversell != nil && s.d.WouldOversell(err) {
			return shop.Committed{}, shop.ErrWouldOversell
		}
		return shop.Committed{}, fmt.Errorf("commit orders: %w", err)
	}
	stmt := s.d.CommitBatch
	if s.d.CommitFenced != "" && slices.ContainsFunc(orders, func(o shop.Order) bool { return o.Epoch != 0 }) {
		stmt = s.d.CommitFenced
	}
	rows, err := s.batch.QueryContext(ctx, stmt, ids, products, users, qty, keys, hashes, created, epochs)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var c shop.Committed
	for rows.Next() {
		var id, why sql.NullString
		if err := rows.Scan(&id, &why); err != nil {
			return fail(err)
		}
		switch why.String {
		case "key":
			c.Rejected = append(c.Rejected, id.String)
		case "stale":
			c.Stale = append(c.Stale, id.String)
		}
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return c, nil
}

// orderOrNothing returns o only if its transaction committed, so that a
// caller never mistakes a rolled-back order for a placed one.
func orderOrNothing(o shop.Order, err error) (shop.Order, error) {
	if err != nil {
		return shop.Order{}, err
	}
	return o, nil
}
