package shop

import (
	"context"
	"testing"
	"time"
)

// Orders begun within one slot share a context; each order's deadline is
// at most the timeout after it began and more than the timeout less a
// slot, including an order whose clock reading is older than the slot in
// use (it gets a context of its own rather than a later deadline).
func TestOrderDeadlinesShareASlot(t *testing.T) {
	d := newOrderDeadlines(time.Second)
	if d.slot != 10*time.Millisecond {
		t.Fatalf("slot %v, want 10ms", d.slot)
	}
	t0 := time.Now()
	check := func(at time.Duration) context.Context {
		t.Helper()
		now := t0.Add(at)
		ctx := d.context(now)
		dl, ok := ctx.Deadline()
		if !ok || dl.After(now.Add(time.Second)) || !dl.After(now.Add(time.Second-d.slot)) {
			t.Errorf("order begun at +%v: deadline +%v (%v), want in (+%v, +%v]", at, dl.Sub(t0), ok, at+time.Second-d.slot, at+time.Second)
		}
		return ctx
	}
	first := check(0)
	if check(9*time.Millisecond) != first {
		t.Error("an order 9 ms into the slot got a context of its own")
	}
	next := check(10 * time.Millisecond)
	if next == first {
		t.Error("an order 10 ms after the slot began shared its context")
	}
	if late := check(5 * time.Millisecond); late == next || late == first {
		t.Error("an order that read the clock before the slot in use began shared a context")
	}
}

// blocker is a strategy that waits for its context to end, and records it.
type blocker struct{ ctxErr error }

func (*blocker) Name() string { return "blocker" }

func (b *blocker) Buy(ctx context.Context, o Order) (Order, error) {
	b.ctxErr = ctx.Err()
	<-ctx.Done()
	return Order{}, ctx.Err()
}

type indexingBlocker struct{ blocker }

func (*indexingBlocker) IndexesKeys() {}

// An order cut off at its deadline inside the strategy may have been
// written: it ends as outcome_unknown (504), never as a retryable 503. A strategy that queues
// orders for a group commit (one that indexes keys) is not stopped by its
// caller's context, which could not take the order back; any other is.
func TestPlaceOrderDeadlines(t *testing.T) {
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name     string
		strategy interface {
			Strategy
			err() error
		}
		wantErr error // what the strategy's context said at once, the caller's being cancelled
	}{
		{"indexes keys", &indexingBlocker{}, nil},
		{"store-bound", &blocker{}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewService(nil, tc.strategy, 10, 50*time.Millisecond)
			_, _, err := s.PlaceOrder(gone, OrderRequest{ProductID: 1, UserID: "ada", Quantity: 1})
			if tc.strategy.err() != tc.wantErr {
				t.Errorf("the strategy's context began with %v, want %v", tc.strategy.err(), tc.wantErr)
			}
			if tc.wantErr == nil && ErrorCode(err) != CodeOutcomeUnknown {
				t.Errorf("PlaceOrder: %v, want outcome_unknown", err)
			}
		})
	}
}

func (b *blocker) err() error { return b.ctxErr }
