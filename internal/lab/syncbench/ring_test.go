package syncbench

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func TestRingFIFOAndBounds(t *testing.T) {
	r := NewRing[int](4)
	if _, ok := r.TryPop(); ok {
		t.Fatal("pop from an empty ring succeeded")
	}
	for lap := range 3 { // wrap around the slots several times
		for i := range 4 {
			if !r.TryPush(lap*10 + i) {
				t.Fatalf("lap %d: push %d refused with room left", lap, i)
			}
		}
		if r.TryPush(99) {
			t.Fatalf("lap %d: push into a full ring succeeded", lap)
		}
		for i := range 4 {
			v, ok := r.TryPop()
			if !ok || v != lap*10+i {
				t.Fatalf("lap %d: pop = %d, %v; want %d", lap, v, ok, lap*10+i)
			}
		}
		if _, ok := r.TryPop(); ok {
			t.Fatalf("lap %d: pop from a drained ring succeeded", lap)
		}
	}
}

func TestNewRingRejectsBadCapacity(t *testing.T) {
	for _, c := range []int{0, 1, 3, 100} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewRing(%d) did not panic", c)
				}
			}()
			NewRing[int](c)
		}()
	}
}

// Every item pushed by 8 producers arrives exactly once at 8 consumers,
// through a ring small enough to be full and empty all the time.
func TestRingStressExactlyOnce(t *testing.T) {
	const producers, consumers, perProducer = 8, 8, 10_000
	r := NewRing[uint64](64)
	seen := make([]atomic.Int32, producers*perProducer)
	var consumed atomic.Int64
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perProducer {
				r.Push(uint64(p*perProducer + i))
			}
		}()
	}
	const total = producers * perProducer
	var cg sync.WaitGroup
	for range consumers {
		cg.Add(1)
		go func() {
			defer cg.Done()
			for consumed.Load() < total {
				if v, ok := r.TryPop(); ok {
					seen[v].Add(1)
					consumed.Add(1)
				} else {
					runtime.Gosched()
				}
			}
		}()
	}
	wg.Wait()
	cg.Wait()
	if got := consumed.Load(); got != total {
		t.Fatalf("consumed %d items, want %d", got, total)
	}
	for i := range seen {
		if n := seen[i].Load(); n != 1 {
			t.Fatalf("item %d arrived %d times", i, n)
		}
	}
}
