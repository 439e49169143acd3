package verify

import (
	"container/heap"
	"fmt"
	"math"
	"sort"
	"time"
)

// The stock of one product is a counter: it starts at the initial stock; a
// purchase of one unit that was acknowledged took one unit when there was
// one; a purchase told sold_out found none; a read saw the count. A
// history of these is linearizable when every operation can be given one
// instant between its call and its return such that, in the order of those
// instants, each answer is the counter's.
//
// A general checker (porcupine, Wing and Gong's search) tries orders of
// operations and keeps the states it has seen; on a sale whose shop was
// killed, fifty purchases left open across the restart gave it 2^50
// subsets to try, and it had not decided after two minutes. This model
// needs no search. Every purchase moves the counter by one, so what an
// observation constrains is only how many acknowledged purchases precede
// it: a read of v needs exactly N−v before it, a sold_out all N. With the
// acknowledgements' instants sorted, T₁ ≤ T₂ ≤ …, observations needing k
// sit between T_k and T_{k+1}, which is possible exactly when
//
//	at least k acknowledgements can be placed at or before the
//	observation's return, and at most k before its call.
//
// One sweep through time checks all of these at once, placing each
// acknowledgement as late as it may (at its return) unless a lower bound
// needs it earlier, and then choosing the one due first: this lazy,
// earliest-deadline-first schedule has, at every instant, as few
// acknowledgements placed as any schedule that meets the lower bounds, so
// if it breaks an upper bound every schedule does. TestCounterAgreesWithPorcupine
// checks the argument against porcupine on thousands of small histories.

type opKind int

const (
	opAck     opKind = iota // a purchase of one unit, acknowledged (or stored)
	opSoldOut               // a purchase of one unit told sold_out
	opRead                  // a read of the stock
)

// stockOp is one operation of the history; times are nanoseconds since
// the sale started, ret math.MaxInt64 for a purchase whose answer was lost.
type stockOp struct {
	kind      opKind
	call, ret int64
	stock     int64 // what a read saw
}

// counterResult says whether a history is linearizable and, when it is
// not, the first observation that cannot be placed, in words.
type counterResult struct {
	ok  bool
	why string
}

// sweep event kinds, in the order they are handled at one instant: upper
// bounds count what was placed strictly before, then purchases become
// placeable, then lower bounds and deadlines place.
const (
	evUpper = iota
	evCall
	evLower
	evDeadline
)

type sweepEvent struct {
	at   int64
	kind int
	k    int   // the bound, for evUpper and evLower
	op   int   // index into ops
	due  int64 // an acknowledgement's return, for evCall
}

// checkCounter decides whether ops, starting from initial units, is a
// linearizable history of the counter described above.
func checkCounter(initial int64, ops []stockOp) counterResult {
	var acks int64
	for _, o := range ops {
		if o.kind == opAck {
			acks++
		}
	}
	if acks > initial {
		return counterResult{why: fmt.Sprintf("%d purchases acknowledged or stored, %d units on sale", acks, initial)}
	}
	var evs []sweepEvent
	for i, o := range ops {
		switch o.kind {
		case opAck:
			evs = append(evs, sweepEvent{at: o.call, kind: evCall, op: i, due: o.ret})
			if o.ret != math.MaxInt64 {
				evs = append(evs, sweepEvent{at: o.ret, kind: evDeadline, op: i})
			}
		case opRead, opSoldOut:
			k := initial // sold_out: every unit taken
			if o.kind == opRead {
				k = initial - o.stock
			}
			if k < 0 || k > acks {
				return counterResult{why: fmt.Sprintf("%s: only %d purchases were acknowledged in all", describe(initial, o), acks)}
			}
			evs = append(evs, sweepEvent{at: o.call, kind: evUpper, k: int(k), op: i},
				sweepEvent{at: o.ret, kind: evLower, k: int(k), op: i})
		}
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].at != evs[j].at {
			return evs[i].at < evs[j].at
		}
		return evs[i].kind < evs[j].kind
	})
	placed := make([]bool, len(ops))
	var ready dueHeap // acknowledgements called and not yet placed, by return
	count := 0
	// The answered observation needing the most units taken so far: when
	// an upper bound breaks, either it is to blame or the acknowledgements.
	strictest, strictestK := -1, -1
	for _, e := range evs {
		switch e.kind {
		case evUpper:
			if count <= e.k {
				break
			}
			if strictestK > e.k {
				return counterResult{why: fmt.Sprintf("%s, after %s", describe(initial, ops[e.op]), describe(initial, ops[strictest]))}
			}
			return counterResult{why: fmt.Sprintf("%s, yet %d purchases had been acknowledged before it was asked", describe(initial, ops[e.op]), count)}
		case evCall:
			heap.Push(&ready, dueOp{due: e.due, op: e.op})
		case evLower:
			if e.k > strictestK {
				strictest, strictestK = e.op, e.k
			}
			for count < e.k {
				for ready.Len() > 0 && placed[ready[0].op] {
					heap.Pop(&ready) // placed at its return already
				}
				if ready.Len() == 0 {
					return counterResult{why: fmt.Sprintf("%s, yet only %d purchases could have been acknowledged by its answer", describe(initial, ops[e.op]), count)}
				}
				d := heap.Pop(&ready).(dueOp)
				placed[d.op] = true
				count++
			}
		case evDeadline:
			if !placed[e.op] {
				placed[e.op] = true // it stays in the heap, skipped when popped
				count++
			}
		}
	}
	return counterResult{ok: true}
}

// describe names an observation for a counterexample.
func describe(initial int64, o stockOp) string {
	at := time.Duration(o.call).Round(time.Millisecond)
	if o.kind == opSoldOut {
		return fmt.Sprintf("a purchase sent at %v was told sold_out (all %d units taken)", at, initial)
	}
	return fmt.Sprintf("a read sent at %v saw stock %d (%d units taken)", at, o.stock, initial-o.stock)
}

type dueOp struct {
	due int64
	op  int
}

// dueHeap is a min-heap of acknowledgements by their return.
type dueHeap []dueOp

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueOp)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
