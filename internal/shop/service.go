package shop

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
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
type Service struct {
	store        Store
	strategy     Strategy
	orderTimeout time.Duration
	slots        chan struct{}
}

// NewService returns a Service that lets at most maxInFlight orders run at
// once (the rest get ErrOverloaded) and gives each at most orderTimeout.
func NewService(store Store, strategy Strategy, maxInFlight int, orderTimeout time.Duration) *Service {
	return &Service{store: store, strategy: strategy, orderTimeout: orderTimeout, slots: make(chan struct{}, maxInFlight)}
}

// Store returns the service's store.
func (s *Service) Store() Store { return s.store }

// Strategy returns the service's strategy.
func (s *Service) Strategy() Strategy { return s.strategy }

// PlaceOrder buys for req. created is false when req replays an earlier
// order with the same Idempotency-Key, in which case that order is returned
// and nothing is bought. Errors are *Error values, except unexpected store
// failures, which the caller should log and report as internal.
func (s *Service) PlaceOrder(ctx context.Context, req OrderRequest) (o Order, created bool, err error) {
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		return Order{}, false, ErrOverloaded
	}
	ctx, cancel := context.WithTimeout(ctx, s.orderTimeout)
	defer cancel()

	h := req.hash()
	if _, indexes := s.strategy.(interface{ IndexesKeys() }); req.IdempotencyKey != "" && !indexes {
		prev, err := s.store.OrderByKey(ctx, req.IdempotencyKey)
		if err == nil {
			return replay(prev, h)
		}
		if ErrorCode(err) != CodeNotFound {
			return Order{}, false, timeoutOr(ctx, err)
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
		// A concurrent twin of this request may have taken the last unit
		// first; a retry then deserves that order, not sold_out.
		if c := ErrorCode(err); req.IdempotencyKey != "" && (c == CodeSoldOut || c == CodeLimitExceeded) {
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
		return Order{}, false, errorOf(CodeIdempotencyConflict, "this Idempotency-Key was used with a different order")
	}
	return prev, false, nil
}

// timeoutOr reports a deadline as ErrTimeout rather than a driver message.
func timeoutOr(ctx context.Context, err error) error {
	if ErrorCode(err) == "" && ctx.Err() != nil {
		return ErrTimeout
	}
	return err
}

// newOrderID returns 128 random bits in hex; IDs are made before the order
// is stored so that queued orders can be named.
func newOrderID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
