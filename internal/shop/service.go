package shop

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"time"
)

// OrderRequest is a validated order from a client.
type OrderRequest struct {
	ProductID      int64
	UserID         string
	Quantity       int64
	IdempotencyKey string
}

// hash identifies the request's body, so that a replayed key with another
// body can be told apart from an honest retry.
func (r OrderRequest) hash() string {
	sum := sha256.Sum256([]byte(strconv.FormatInt(r.ProductID, 10) + "\x00" + r.UserID + "\x00" + strconv.FormatInt(r.Quantity, 10)))
	return hex.EncodeToString(sum[:16])
}

// Service places orders with a strategy, sheds load past a bound, and makes
// retries with an Idempotency-Key safe. Create it with NewService.
//
// Once a product is sold out, later orders for it are refused from memory,
// before they take a slot: a flash sale's crowd mostly arrives after the
// last unit is gone. A strategy that indexes keys itself says so with
// KnownSoldOut; for the others the Service remembers the smallest quantity
// the store refused, which stays refused because their stock never comes
// back (an order with a key is still looked up first, so that a retry of a
// stored order gets that order).
type Service struct {
	store        Store
	strategy     Strategy
	indexes      bool // the strategy finds reused keys itself
	complete     bool // … and knows every key, stored ones included
	known        SoldOutKnower
	orderTimeout time.Duration
	deadlines    *orderDeadlines // for strategies that index keys: see PlaceOrder
	slots        chan struct{}

	mu      sync.Mutex
	soldOut map[int64]int64 // product → smallest quantity refused as sold out
}

// A Readier is a Strategy that can be unable to take orders (a backend it
// needs is unreachable). Ready returns nil, or why not, at once.
type Readier interface {
	Ready() error
}

// Ready reports whether the shop can take orders: nil, or the reason.
func (s *Service) Ready() error {
	if r, ok := s.strategy.(Readier); ok {
		return r.Ready()
	}
	return nil
}

// A SoldOutKnower is a Strategy that can tell from memory that an order
// would be refused as sold out, with the order's key taken into account.
type SoldOutKnower interface {
	KnownSoldOut(o Order) bool
}

// NewService returns a Service that lets at most maxInFlight orders run at
// once (the rest get ErrOverloaded) and gives each at most orderTimeout.
func NewService(store Store, strategy Strategy, maxInFlight int, orderTimeout time.Duration) *Service {
	_, indexes := strategy.(interface{ IndexesKeys() })
	_, complete := strategy.(interface{ KeysComplete() })
	known, _ := strategy.(SoldOutKnower)
	return &Service{store: store, strategy: strategy, indexes: indexes, complete: complete, known: known, orderTimeout: orderTimeout,
		deadlines: newOrderDeadlines(orderTimeout), slots: make(chan struct{}, maxInFlight), soldOut: make(map[int64]int64)}
}

// knownSoldOut reports whether the Service has seen the store refuse q or
// fewer units of the product.
func (s *Service) knownSoldOut(productID, q int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	min, ok := s.soldOut[productID]
	return ok && q >= min
}

func (s *Service) learnSoldOut(productID, q int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if min, ok := s.soldOut[productID]; !ok || q < min {
		s.soldOut[productID] = q
	}
}

// Store returns the service's store.
func (s *Service) Store() Store { return s.store }

// Strategy returns the service's strategy.
func (s *Service) Strategy() Strategy { return s.strategy }

// PlaceOrder buys for req. created is false when req replays an earlier
// order with the same Idempotency-Key, in which case that order is returned
// and nothing is bought. Errors are *Error values, except unexpected store
// failures, which the caller should log and report as internal.
//
// The order ends when ctx does or at its deadline, orderTimeout after it
// began, except under a strategy that indexes keys: that strategy queues
// the order for a group commit, which the caller's leaving could not take
// back, so only the deadline ends its wait.
func (s *Service) PlaceOrder(ctx context.Context, req OrderRequest) (o Order, created bool, err error) {
	if s.known != nil && s.known.KnownSoldOut(Order{ProductID: req.ProductID, Quantity: req.Quantity, IdempotencyKey: req.IdempotencyKey}) {
		return Order{}, false, ErrSoldOut
	}
	if !s.indexes && req.IdempotencyKey == "" && s.knownSoldOut(req.ProductID, req.Quantity) {
		return Order{}, false, ErrSoldOut
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		return Order{}, false, ErrOverloaded
	}
	if s.indexes {
		// See above. The orders begun together share a context.
		ctx = s.deadlines.context(time.Now())
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.orderTimeout)
		defer cancel()
	}

	h := req.hash()
	if req.IdempotencyKey != "" && !s.indexes {
		// Sold out is asked before the key is looked up: it was learnt
		// from the store after every unit's order had committed, so a
		// twin that took the last unit is found. Asked after, it could
		// have been learnt after a look-up that came before the twin's
		// commit, and this retry would hear sold_out for its own order.
		soldOut := s.knownSoldOut(req.ProductID, req.Quantity)
		prev, err := s.store.OrderByKey(ctx, req.IdempotencyKey)
		if err == nil {
			return replay(prev, h)
		}
		if ErrorCode(err) != CodeNotFound {
			return Order{}, false, timeoutOr(ctx, err)
		}
		if soldOut {
			return Order{}, false, ErrSoldOut
		}
	}
	o, err = s.strategy.Buy(ctx, Order{
		ID:             newOrderID(),
		ProductID:      req.ProductID,
		UserID:         req.UserID,
		Quantity:       req.Quantity,
		IdempotencyKey: req.IdempotencyKey,
		RequestHash:    h,
		CreatedAt:      time.Now().UTC(),
	})
	if errors.Is(err, ErrDuplicateKey) {
		if o.ID == "" {
			if o, err = s.store.OrderByKey(ctx, req.IdempotencyKey); err != nil {
				return Order{}, false, timeoutOr(ctx, err)
			}
		}
		return replay(o, h)
	}
	if err != nil {
		c := ErrorCode(err)
		if c == CodeSoldOut && !s.indexes {
			s.learnSoldOut(req.ProductID, req.Quantity)
		}
		// A concurrent twin of this request may have taken the last unit
		// first, or (for a strategy that indexes keys) an order already
		// stored holds the key: a retry then
		// deserves that order, not sold_out. A strategy whose keys are
		// complete has already answered that.
		if req.IdempotencyKey != "" && !s.complete && (c == CodeSoldOut || c == CodeLimitExceeded) {
			if prev, perr := s.store.OrderByKey(ctx, req.IdempotencyKey); perr == nil {
				return replay(prev, h)
			}
		}
		return Order{}, false, timeoutOr(ctx, err)
	}
	return o, true, nil
}

func replay(prev Order, hash string) (Order, bool, error) {
	if prev.RequestHash != hash {
		return Order{}, false, NewError(CodeIdempotencyConflict, "this Idempotency-Key was used with a different order")
	}
	return prev, false, nil
}

// timeoutOr reports a store error at the deadline as ErrOutcomeUnknown
// rather than a driver message: a write cut off by its deadline may have
// committed.
func timeoutOr(ctx context.Context, err error) error {
	if ErrorCode(err) == "" && ctx.Err() != nil {
		return ErrOutcomeUnknown
	}
	return err
}

// newOrderID returns 128 bits in hex: the time in nanoseconds, then 64
// random bits. IDs are made before the order is stored so that queued
// orders can be named; leading with the time makes each new id sort after
// the last, so the store's index on ids grows at its right edge and a group
// commit touches one or two index pages instead of one per order.
func newOrderID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixNano()))
	rand.Read(b[8:])
	return hex.EncodeToString(b[:])
}
