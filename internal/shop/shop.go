// Package shop is the flash-sale order service: its domain types, the
// Store it persists to, the concurrency strategies that decide how an order
// takes stock, and the Service that places orders with them.
//
// The package imports only the standard library: the HTTP API lives in
// shop/api, and the databases and Redis in sub-packages that implement the
// interfaces declared here.
package shop

import (
	"context"
	"time"
)

// Product is one item on sale. Stock is what remains unsold; Sold is the
// number of units in persisted orders, so Stock+Sold equals the initial stock
// for every strategy that never oversells.
type Product struct {
	ID           int64  `json:"id"`
	Name         string `json:"name"`
	Stock        int64  `json:"stock"`
	Sold         int64  `json:"sold"`
	PerUserLimit int64  `json:"per_user_limit"`
}

// NewProduct is what a client sends to create a product. A PerUserLimit of
// zero means no limit.
type NewProduct struct {
	Name         string
	Stock        int64
	PerUserLimit int64
}

// Order is one persisted purchase.
type Order struct {
	ID             string    `json:"order_id"`
	ProductID      int64     `json:"product_id"`
	UserID         string    `json:"user_id"`
	Quantity       int64     `json:"quantity"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	RequestHash    string    `json:"-"`
	CreatedAt      time.Time `json:"created_at"`
	// Epoch is the reservation epoch the order's units were reserved in
	// (see Store.BeginReservations); zero for an order no reservation
	// system fences.
	Epoch int64 `json:"-"`
}

// Committed says which orders of a batch CommitBatch did not store, and
// why; their stock was not taken.
type Committed struct {
	// Rejected orders' Idempotency-Key belongs to another stored order.
	Rejected []string
	// Stale orders were reserved in an epoch their product has left: the
	// reservation system was rebuilt from the store after they were
	// reserved, and its count does not include them.
	Stale []string
}

// ReservationStart is a product as a reservation system (Redis) starts
// from: read after every commit of an older epoch has finished.
type ReservationStart struct {
	Product Product
	// Users holds the units each user holds of a product with a per-user
	// limit; nil without one, where nothing counts them.
	Users map[string]int64
	// Keyed lists the stored orders that have an Idempotency-Key (ID, key,
	// request hash and creation time set), so that retries of them are
	// known.
	Keyed []Order
	Epoch int64
}

// Snapshot is what a read-then-write strategy reads before it decides.
type Snapshot struct {
	Stock        int64 // units left
	UserBought   int64 // units this user already holds; 0 when there is no limit (nothing counts them)
	PerUserLimit int64 // zero means no limit
}

// Store persists products and orders. Every method is safe for concurrent
// use and honours ctx. Methods that buy return an *Error with CodeSoldOut,
// CodeLimitExceeded or CodeNotFound when the order cannot be taken, and
// ErrDuplicateKey when o.IdempotencyKey is already used by another order.
//
// The buying methods are deliberately different in how much they protect:
// each strategy picks the one its lesson needs.
type Store interface {
	CreateProduct(ctx context.Context, p NewProduct) (Product, error)
	Product(ctx context.Context, id int64) (Product, error)
	// Products lists up to limit products in id order.
	Products(ctx context.Context, limit int) ([]Product, error)
	// Orders calls fn for each persisted order of a product, oldest first.
	Orders(ctx context.Context, productID int64, fn func(Order) error) error
	// OrderByKey finds the order placed with an idempotency key.
	OrderByKey(ctx context.Context, key string) (Order, error)
	// UserPurchases returns the units each user holds of a product. A
	// store counts them as it goes only for a product with a per-user
	// limit, which needs them at every order; for one without, it sums the
	// product's orders here.
	UserPurchases(ctx context.Context, productID int64) (map[string]int64, error)

	// Snapshot reads stock and the user's holdings without locking.
	Snapshot(ctx context.Context, productID int64, userID string) (Snapshot, error)
	// WriteOrder subtracts o.Quantity from stock and records o without
	// checking stock or limit: the caller claims it has checked. A fence
	// greater than zero is compared with the last fence that wrote the
	// product; an older or equal fence, or stock or a limit that no longer
	// allows the order, fails with CodeLockLost.
	WriteOrder(ctx context.Context, o Order, fence int64) (Order, error)
	// BuyAtomic takes stock with one conditional update in one transaction.
	BuyAtomic(ctx context.Context, o Order) (Order, error)
	// BuyRowLock locks the product row, checks, then updates.
	BuyRowLock(ctx context.Context, o Order) (Order, error)
	// SplitStock moves a product's stock into n bucket rows, once.
	SplitStock(ctx context.Context, productID int64, n int) error
	// MergeBuckets moves every bucket's stock back into its product row.
	MergeBuckets(ctx context.Context) error
	// BuyFromBucket takes stock from bucket b of a product split by SplitStock.
	BuyFromBucket(ctx context.Context, o Order, b int) (Order, error)
	// CommitBatch persists orders whose stock was already reserved, in one
	// transaction. It is idempotent: an order whose ID is already stored is
	// skipped, so a batch may be committed again after a crash. It does not
	// store an order whose idempotency key another stored order holds, nor
	// one whose nonzero Epoch is older than its product's, and says which
	// (their stock is not taken). Whatever the reservation believed, it
	// stores nothing and fails with an error wrapping ErrWouldOversell if
	// the batch would take a product's stock below zero or a user past the
	// per-user limit.
	CommitBatch(ctx context.Context, orders []Order) (Committed, error)
	// BeginReservations moves a product into a new reservation epoch and
	// returns its state, read in the same transaction once every commit
	// running in an older epoch has finished. From then on CommitBatch
	// refuses the orders of older epochs as Stale: a reservation system
	// rebuilt from this state never counts twice, or misses, an order
	// whose commit was in flight when it was rebuilt.
	BeginReservations(ctx context.Context, productID int64) (ReservationStart, error)

	Close() error
}
