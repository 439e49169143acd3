package shop

import (
	"context"
	"sync/atomic"
	"time"
)

// orderDeadlines hands out contexts that end at an order's deadline, one
// per slot of time: the orders begun within a slot share it, so that an
// order costs no timer of its own. (context.WithTimeout under each
// request's context, with its timer and its place among that context's
// children, took 6 % of the shop's CPU an order.) An order begun at t gets
// a deadline in (t+timeout-slot, t+timeout].
type orderDeadlines struct {
	timeout, slot time.Duration
	cur           atomic.Pointer[deadlineSlot]
}

type deadlineSlot struct {
	ctx          context.Context
	cancel       context.CancelFunc // not called: ctx ends at its deadline
	begins, ends time.Time          // orders begun in [begins, ends) share ctx
}

func newOrderDeadlines(timeout time.Duration) *orderDeadlines {
	return &orderDeadlines{timeout: timeout, slot: min(10*time.Millisecond, timeout/100)}
}

// context returns the context of an order begun at now.
func (d *orderDeadlines) context(now time.Time) context.Context {
	if s := d.cur.Load(); s != nil && !now.Before(s.begins) && now.Before(s.ends) {
		return s.ctx
	}
	ctx, cancel := context.WithDeadline(context.Background(), now.Add(d.timeout))
	d.cur.Store(&deadlineSlot{ctx: ctx, cancel: cancel, begins: now, ends: now.Add(d.slot)})
	return ctx
}
