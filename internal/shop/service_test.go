package shop

import (
	"context"
	"testing"
	"time"
)

// twinStore is a store in which, while a retry looks its key up, the
// retry's twin commits the product's last unit and another buyer learns
// that it is sold out: that look-up finds nothing, the next finds the
// twin's order. Only OrderByKey is called.
type twinStore struct {
	Store
	svc    *Service
	twin   Order
	looked int
}

func (s *twinStore) OrderByKey(context.Context, string) (Order, error) {
	if s.looked++; s.looked == 1 {
		s.svc.learnSoldOut(s.twin.ProductID, s.twin.Quantity)
		return Order{}, ErrNotFound
	}
	return s.twin, nil
}

type soldOut struct{}

func (soldOut) Name() string                              { return "sold-out" }
func (soldOut) Buy(context.Context, Order) (Order, error) { return Order{}, ErrSoldOut }

// A retry whose twin took the last unit while the retry looked its key up
// is answered with the twin's order, not sold_out.
func TestRetryFindsTheTwinThatTookTheLastUnit(t *testing.T) {
	req := OrderRequest{ProductID: 1, UserID: "ada", Quantity: 1, IdempotencyKey: "k"}
	st := &twinStore{twin: Order{ID: "twin", ProductID: 1, UserID: "ada", Quantity: 1, IdempotencyKey: "k", RequestHash: req.hash()}}
	st.svc = NewService(st, soldOut{}, 10, time.Second)
	o, created, err := st.svc.PlaceOrder(context.Background(), req)
	if err != nil || created || o.ID != "twin" {
		t.Errorf("PlaceOrder: order %q, created %v, %v; want the twin's order, not created", o.ID, created, err)
	}
}
