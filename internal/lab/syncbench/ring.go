package syncbench

import (
	"fmt"
	"runtime"
	"sync/atomic"
)

// Ring is a bounded multi-producer, multi-consumer FIFO queue that uses no
// lock: each slot carries a sequence number that says whether it is free
// for the producer of a given position or full for its consumer, and
// producers and consumers claim positions with compare-and-swap. (The
// design is Dmitry Vyukov's bounded MPMC queue.)
//
// The zero value is not usable; call NewRing.
type Ring[T any] struct {
	_     [64]byte // keep the hot counters on cache lines of their own
	head  atomic.Uint64
	_     [56]byte
	tail  atomic.Uint64
	_     [56]byte
	mask  uint64
	slots []slot[T]
}

type slot[T any] struct {
	seq atomic.Uint64
	val T
}

// NewRing returns an empty ring of the given capacity, which must be a
// power of two of at least 2.
func NewRing[T any](capacity int) *Ring[T] {
	if capacity < 2 || capacity&(capacity-1) != 0 {
		panic(fmt.Sprintf("syncbench: ring capacity %d is not a power of two >= 2", capacity))
	}
	r := &Ring[T]{mask: uint64(capacity - 1), slots: make([]slot[T], capacity)}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r
}

// Cap returns the ring's capacity.
func (r *Ring[T]) Cap() int { return len(r.slots) }

// TryPush adds v at the tail and reports true, or reports false at once
// when the ring is full. It never blocks.
func (r *Ring[T]) TryPush(v T) bool {
	pos := r.tail.Load()
	for {
		s := &r.slots[pos&r.mask]
		seq := s.seq.Load()
		switch d := int64(seq - pos); {
		case d == 0: // free for this position: claim it
			if r.tail.CompareAndSwap(pos, pos+1) {
				s.val = v
				s.seq.Store(pos + 1) // publish to the consumer of pos
				return true
			}
			pos = r.tail.Load()
		case d < 0: // still holds an item from one lap ago: full
			return false
		default: // another producer took pos; catch up
			pos = r.tail.Load()
		}
	}
}

// TryPop removes the head and reports true, or reports false at once when
// the ring is empty. It never blocks.
func (r *Ring[T]) TryPop() (T, bool) {
	pos := r.head.Load()
	for {
		s := &r.slots[pos&r.mask]
		seq := s.seq.Load()
		switch d := int64(seq - (pos + 1)); {
		case d == 0: // full for this position: claim it
			if r.head.CompareAndSwap(pos, pos+1) {
				v := s.val
				var zero T
				s.val = zero
				s.seq.Store(pos + r.mask + 1) // free for the producer one lap on
				return v, true
			}
			pos = r.head.Load()
		case d < 0: // not yet written: empty
			var zero T
			return zero, false
		default:
			pos = r.head.Load()
		}
	}
}

// Push adds v, yielding the processor while the ring is full.
func (r *Ring[T]) Push(v T) {
	for !r.TryPush(v) {
		runtime.Gosched()
	}
}
