package verify

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/anishathalye/porcupine"
)

// TestCounterAgreesWithPorcupine checks the sweep against porcupine's
// exhaustive search on random small histories, linearizable or not.
func TestCounterAgreesWithPorcupine(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var legal, illegal int
	for trial := range 20000 {
		initial := int64(rng.IntN(4))
		ops := make([]stockOp, 1+rng.IntN(7))
		for i := range ops {
			call := int64(rng.IntN(20))
			o := stockOp{kind: opKind(rng.IntN(3)), call: call, ret: call + int64(rng.IntN(8))}
			switch {
			case o.kind == opRead:
				o.stock = int64(rng.IntN(int(initial)+2)) - int64(rng.IntN(2))
			case o.kind == opAck && rng.IntN(6) == 0:
				o.ret = math.MaxInt64
			}
			ops[i] = o
		}
		got := checkCounter(initial, ops)
		want := porcupine.CheckOperations(counterModel(initial), porcupineOps(ops))
		if got.ok != want {
			t.Fatalf("trial %d: initial %d, ops %+v: sweep says %v (%s), porcupine %v", trial, initial, ops, got.ok, got.why, want)
		}
		if want {
			legal++
		} else {
			illegal++
		}
	}
	if legal < 2000 || illegal < 2000 {
		t.Fatalf("the random histories were %d legal and %d illegal: too few of one kind to compare", legal, illegal)
	}
}

func TestCounterExplainsAViolation(t *testing.T) {
	// Two units. Both purchases were acknowledged before the read was
	// asked, yet it saw one unit left.
	ops := []stockOp{
		{kind: opAck, call: 0, ret: 10},
		{kind: opAck, call: 5, ret: 15},
		{kind: opRead, call: 20, ret: 30, stock: 1},
	}
	got := checkCounter(2, ops)
	want := "a read sent at 0s saw stock 1 (1 units taken), yet 2 purchases had been acknowledged before it was asked"
	if got.ok || got.why != want {
		t.Fatalf("got %v %q, want false %q", got.ok, got.why, want)
	}
	// A buyer told sold_out while a purchase was still in flight, then a
	// read that still saw its unit: the purchase cannot be placed both
	// before the sold_out and after the read.
	ops = []stockOp{
		{kind: opAck, call: 0, ret: 100},
		{kind: opSoldOut, call: 10, ret: 20},
		{kind: opRead, call: 30, ret: 40, stock: 1},
	}
	got = checkCounter(1, ops)
	want = "a read sent at 0s saw stock 1 (0 units taken), after a purchase sent at 0s was told sold_out (all 1 units taken)"
	if got.ok || got.why != want {
		t.Fatalf("got %v %q, want false %q", got.ok, got.why, want)
	}
	// A purchase told sold_out while a unit was still there for sure.
	ops = []stockOp{{kind: opSoldOut, call: 0, ret: 10}, {kind: opAck, call: 20, ret: 30}}
	if got := checkCounter(1, ops); got.ok {
		t.Fatal("sold_out before the only unit was taken passed")
	}
	// The same, with the purchase concurrent: legal.
	ops = []stockOp{{kind: opSoldOut, call: 0, ret: 25}, {kind: opAck, call: 20, ret: 30}}
	if got := checkCounter(1, ops); !got.ok {
		t.Fatalf("sold_out concurrent with the last purchase failed: %s", got.why)
	}
}

// counterModel is the counter as a porcupine model, starting at initial.
func counterModel(initial int64) porcupine.Model {
	m := stockModel
	m.Init = func() any { return initial }
	return m
}

func porcupineOps(ops []stockOp) []porcupine.Operation {
	out := make([]porcupine.Operation, len(ops))
	for i, o := range ops {
		in, res := opInput{qty: 1}, opOutput{}
		switch o.kind {
		case opAck:
			res.took = true
		case opRead:
			in.read, res.stock = true, o.stock
		}
		out[i] = porcupine.Operation{ClientId: i, Input: in, Output: res, Call: o.call, Return: o.ret}
	}
	return out
}

// The counter as a porcupine model: the state is the stock.
type (
	opInput struct {
		read bool
		qty  int64
	}
	opOutput struct {
		stock int64 // read
		took  bool  // purchase: acknowledged (true) or sold out
	}
)

var stockModel = porcupine.Model{
	Step: func(state, in, out any) (bool, any) {
		s, i, o := state.(int64), in.(opInput), out.(opOutput)
		switch {
		case i.read:
			return o.stock == s, s
		case o.took:
			return s >= i.qty, s - i.qty
		default:
			return s < i.qty, s
		}
	},
}
