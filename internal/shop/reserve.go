package shop

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"time"
)

// Reserve is the flash-sale design for one process: stock is reserved
// atomically in memory, each accepted order is queued, and a single writer
// persists the queue in batches (group commit). Buy returns only after the
// order's batch has committed, so every acknowledged order survives a crash
// of the shop; the store's write-ahead log is the durable queue.
//
// The reservation lives in this process's memory, so two processes would
// each sell the whole stock: use the Redis reservation for more than one.
//
// If a batch cannot be committed its reservations are kept, not returned to
// stock: the outcome of a failed commit is unknown, and underselling is the
// safe error. A restart reloads stock from the store.
type Reserve struct {
	store    Store
	maxBatch int
	queue    chan *pending
	written  chan struct{} // closed when the writer has drained the queue

	closeMu sync.RWMutex
	closed  bool

	mu    sync.Mutex
	books map[int64]*stockBook
	keys  map[string]*pending // idempotency key → its order, while the order is in flight
}

// IndexesKeys marks Reserve as finding reused Idempotency-Keys itself: the
// Service need not ask the Store before every order. Reserve holds a key
// only while its order is in flight, so that its memory does not grow with
// every order sold; a key whose order is stored (since this process
// started, or before) is caught when its batch commits (CommitBatch
// rejects the order), or refused as over the user's limit, and the Service
// answers it from the Store.
func (*Reserve) IndexesKeys() {}

// pending is an order waiting for its batch to commit.
type pending struct {
	order Order
	book  *stockBook // set once its units are reserved
	done  chan struct{}
	err   error // set before done is closed
}

// stockBook is the in-memory state of one product.
type stockBook struct {
	mu     sync.Mutex
	loaded bool
	stock  int64
	limit  int64
	users  map[string]int64 // units per user, kept only when limit > 0
	// inflight counts reservations whose batch has not finished
	// committing; drained is closed when it falls to zero. A buyer is told
	// sold_out only when nothing is in flight: the store shows a unit as
	// taken when its batch commits, and a sold_out said before then would
	// be contradicted by a read of the store a moment later.
	inflight int64
	drained  chan struct{}
}

// NewReserve starts the writer. maxBatch bounds a group commit and
// queueLen the orders waiting for one; a full queue sheds load. Close stops
// the writer after it has committed everything queued.
func NewReserve(store Store, maxBatch, queueLen int) *Reserve {
	r := &Reserve{
		store:    store,
		maxBatch: maxBatch,
		queue:    make(chan *pending, queueLen),
		written:  make(chan struct{}),
		books:    make(map[int64]*stockBook),
		keys:     make(map[string]*pending),
	}
	go r.write()
	return r
}

func (*Reserve) Name() string { return "reserve" }

// Buy implements Strategy.
func (r *Reserve) Buy(ctx context.Context, o Order) (Order, error) {
	b, err := r.book(ctx, o.ProductID)
	if err != nil {
		return Order{}, err
	}
	p := &pending{order: o, done: make(chan struct{})}
	if o.IdempotencyKey != "" {
		r.mu.Lock()
		prev, dup := r.keys[o.IdempotencyKey]
		if !dup {
			r.keys[o.IdempotencyKey] = p
		}
		r.mu.Unlock()
		if dup {
			if err := wait(ctx, prev); err != nil {
				return Order{}, err
			}
			return prev.order, ErrDuplicateKey
		}
	}
	if err := r.reserve(ctx, b, p); err != nil {
		r.settle(b, p, err)
		return Order{}, err
	}
	if err := wait(ctx, p); err != nil {
		return Order{}, err
	}
	return p.order, nil
}

// reserve takes stock for p and queues it for the writer. Sold out is said
// only once the reservations in flight have committed (or failed).
func (r *Reserve) reserve(ctx context.Context, b *stockBook, p *pending) error {
	o := p.order
	b.mu.Lock()
	for b.stock < o.Quantity {
		if b.inflight == 0 {
			b.mu.Unlock()
			return ErrSoldOut
		}
		drained := b.drained
		b.mu.Unlock()
		select {
		case <-drained:
		case <-ctx.Done():
			return ErrTimeout
		}
		b.mu.Lock()
	}
	if b.limit > 0 {
		if b.users[o.UserID]+o.Quantity > b.limit {
			b.mu.Unlock()
			return ErrLimitExceeded
		}
		b.users[o.UserID] += o.Quantity
	}
	b.stock -= o.Quantity
	if b.inflight++; b.drained == nil {
		b.drained = make(chan struct{})
	}
	b.mu.Unlock()
	p.book = b
	if err := r.enqueue(p); err != nil {
		r.release(b, o)
		r.landed(p)
		return err
	}
	return nil
}

// landed ends p's flight: its batch committed or failed, or it was never
// queued.
func (r *Reserve) landed(p *pending) {
	b := p.book
	b.mu.Lock()
	if b.inflight--; b.inflight == 0 {
		close(b.drained)
		b.drained = nil
	}
	b.mu.Unlock()
}

// release returns an order's units to the book.
func (r *Reserve) release(b *stockBook, o Order) {
	b.mu.Lock()
	b.stock += o.Quantity
	if b.limit > 0 {
		b.users[o.UserID] -= o.Quantity
	}
	b.mu.Unlock()
}

// settle finishes an order that will not be stored: twins waiting on its
// key hear err, and the key is free again.
func (r *Reserve) settle(b *stockBook, p *pending, err error) {
	r.forgetKey(p)
	p.err = err
	close(p.done)
}

// forgetKey lets go of p's key once p is no longer in flight: a twin that
// came meanwhile holds p itself.
func (r *Reserve) forgetKey(p *pending) {
	if p.order.IdempotencyKey == "" {
		return
	}
	r.mu.Lock()
	if r.keys[p.order.IdempotencyKey] == p {
		delete(r.keys, p.order.IdempotencyKey)
	}
	r.mu.Unlock()
}

func (r *Reserve) enqueue(p *pending) error {
	r.closeMu.RLock()
	defer r.closeMu.RUnlock()
	if r.closed {
		return ErrOverloaded
	}
	select {
	case r.queue <- p:
		return nil
	default:
		return ErrOverloaded
	}
}

// wait waits for p's commit. At the deadline p is queued, and the writer
// may yet commit it: the outcome is unknown.
func wait(ctx context.Context, p *pending) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ErrOutcomeUnknown
	}
}

// book returns the loaded stock book of a product.
func (r *Reserve) book(ctx context.Context, id int64) (*stockBook, error) {
	r.mu.Lock()
	b, ok := r.books[id]
	if !ok {
		b = &stockBook{}
		r.books[id] = b
	}
	r.mu.Unlock()

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.loaded {
		return b, nil
	}
	p, err := r.store.Product(ctx, id)
	if err != nil {
		return nil, err
	}
	b.stock, b.limit = p.Stock, p.PerUserLimit
	if b.limit > 0 {
		if b.users, err = r.store.UserPurchases(ctx, id); err != nil {
			return nil, err
		}
	}
	b.loaded = true
	return b, nil
}

// write is the single writer: it takes whatever is queued, up to maxBatch,
// and commits it in one transaction. While one commit runs the next batch
// gathers, so batches grow with load.
//
// Before committing it lingers, briefly: a buyer's send wakes the writer
// into the scheduler's next slot, so without a pause it would run as soon
// as the first buyer queues, and on one core commit every order alone. It
// yields the CPU while the queue keeps growing, so the buyers already being
// served queue too. A lone order waits for company by blocking on the
// queue, for at most maxLinger: a yield there would keep the writer
// runnable, and the scheduler polls the network only when nothing is (a
// trace of the shop on one core showed such spins stalling it for up to
// 0.8 ms). An idle shop thus commits a lone order within maxLinger.
func (r *Reserve) write() {
	defer close(r.written)
	batch := make([]*pending, 0, r.maxBatch)
	orders := make([]Order, 0, r.maxBatch)
	linger := time.NewTimer(maxLinger)
	linger.Stop()
	for p := range r.queue {
		batch = append(batch[:0], p)
		batch = r.gather(batch, linger)
		orders = orders[:0]
		for _, p := range batch {
			orders = append(orders, p.order)
		}
		// This book's orders carry no epoch: CommitBatch reports none stale.
		c, refused, err := CommitGuarded(r.store, orders)
		for _, p := range batch {
			switch {
			case slices.Contains(refused, p.order.ID) && refusedForLimit(r.store, p.order):
				// The store has the units but not the user's allowance:
				// the units go back on sale, the user's stays taken.
				p.book.mu.Lock()
				p.book.stock += p.order.Quantity
				p.book.mu.Unlock()
				r.settle(p.book, p, ErrLimitExceeded)
			case slices.Contains(refused, p.order.ID):
				// The store holds less than this book believed: the book
				// keeps the units it cannot sell, erring towards sold out.
				r.settle(p.book, p, ErrSoldOut)
			case slices.Contains(c.Rejected, p.order.ID):
				r.release(p.book, p.order)
				r.settle(p.book, p, ErrDuplicateKey)
			default:
				// The key goes before the buyer hears: a buyer who has
				// heard finds no key of its order still held. A twin that
				// comes in between reserves anew and the store refuses
				// its key for the order just committed.
				r.forgetKey(p)
				p.err = err
				close(p.done)
			}
			r.landed(p)
		}
	}
}

// maxLinger bounds the writer's wait for a lone order's company.
const maxLinger = time.Millisecond

// gather lingers for batch to grow, as write describes, and returns it.
func (r *Reserve) gather(batch []*pending, linger *time.Timer) []*pending {
	lone := false // waited on the queue once already
	for len(batch) < r.maxBatch {
		n := len(batch)
		var open bool
		batch, open = r.drain(batch)
		switch {
		case !open || (len(batch) == n && (n > 1 || lone)):
			return batch // closed, or the queue stopped growing
		case len(batch) > n:
			runtime.Gosched() // more came: let the rest of the crowd queue too
			continue
		}
		lone = true
		linger.Reset(maxLinger)
		select {
		case q, ok := <-r.queue:
			linger.Stop()
			if !ok {
				return batch
			}
			batch = append(batch, q)
			runtime.Gosched()
		case <-linger.C:
		}
	}
	return batch
}

// drain adds what is queued, up to maxBatch, to batch without waiting; open
// is false once the queue is closed and empty.
func (r *Reserve) drain(batch []*pending) (_ []*pending, open bool) {
	for len(batch) < r.maxBatch {
		select {
		case q, ok := <-r.queue:
			if !ok {
				return batch, false
			}
			batch = append(batch, q)
		default:
			return batch, true
		}
	}
	return batch, true
}

// CommitWithRetry commits a batch of reserved orders, retrying a failure a
// few times; CommitBatch is idempotent, so a batch that did commit before
// the error is not doubled.
func CommitWithRetry(s Store, orders []Order) (Committed, error) {
	return commitAttempts(s, orders, 5)
}

func commitAttempts(s Store, orders []Order, attempts int) (c Committed, err error) {
	for attempt, pause := 0, 10*time.Millisecond; attempt < attempts; attempt, pause = attempt+1, pause*2 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err = s.CommitBatch(ctx, orders)
		cancel()
		if err == nil {
			return c, nil
		}
		if errors.Is(err, ErrWouldOversell) {
			return Committed{}, err // the same batch would be refused again
		}
		if attempt+1 < attempts {
			time.Sleep(pause)
		}
	}
	return Committed{}, err
}

// CommitGuardedOnce is CommitGuarded with one attempt per commit: for a
// batch that failed before, split on any error by the caller.
func CommitGuardedOnce(s Store, orders []Order) (c Committed, refused []string, err error) {
	return commitGuarded(s, orders, 1)
}

// CommitGuarded commits a batch of reserved orders like CommitWithRetry,
// and when the store refuses it because it would oversell (the reservation
// and the store disagree, after a fault), splits it in halves until the
// orders that do not fit stand alone: every other order is stored, and
// those come back as refused, stored nowhere. An error other than the
// refusal leaves the outcome of the batch unknown, as CommitWithRetry's.
func CommitGuarded(s Store, orders []Order) (c Committed, refused []string, err error) {
	return commitGuarded(s, orders, 5)
}

// StoreHolds reports whether the store still holds o's units. For an order
// CommitGuarded refused, yes means the per-user limit refused it, not the
// stock: stock only falls, so the store held the units when it refused.
func StoreHolds(ctx context.Context, s Store, o Order) (bool, error) {
	p, err := s.Product(ctx, o.ProductID)
	if err != nil {
		return false, err
	}
	return p.Stock >= o.Quantity, nil
}

// refusedForLimit is StoreHolds for the in-memory writer: a store that
// cannot say counts as not holding them, so the buyer hears sold out, the
// safe answer.
func refusedForLimit(s Store, o Order) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	held, err := StoreHolds(ctx, s, o)
	return err == nil && held
}

func commitGuarded(s Store, orders []Order, attempts int) (c Committed, refused []string, err error) {
	c, err = commitAttempts(s, orders, attempts)
	if !errors.Is(err, ErrWouldOversell) {
		return c, nil, err
	}
	if len(orders) == 1 {
		return Committed{}, []string{orders[0].ID}, nil
	}
	mid := len(orders) / 2
	c1, f1, err := commitGuarded(s, orders[:mid], attempts)
	if err != nil {
		return Committed{}, nil, err
	}
	c2, f2, err := commitGuarded(s, orders[mid:], attempts)
	if err != nil {
		return Committed{}, nil, err
	}
	return Committed{Rejected: append(c1.Rejected, c2.Rejected...), Stale: append(c1.Stale, c2.Stale...)}, append(f1, f2...), nil
}

// Close refuses new orders, waits for the writer to commit every queued
// order, and returns.
func (r *Reserve) Close() error {
	r.closeMu.Lock()
	if !r.closed {
		r.closed = true
		close(r.queue)
	}
	r.closeMu.Unlock()
	<-r.written
	return nil
}

// keysInFlight is how many Idempotency-Keys r holds.
func (r *Reserve) keysInFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.keys)
}
