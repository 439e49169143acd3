package interleave

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// straight writes a program of goroutines with the given numbers of steps,
// none of which can block.
func straight(steps ...int) string {
	var b strings.Builder
	b.WriteString("var x = 0\n")
	for g, n := range steps {
		fmt.Fprintf(&b, "go G%d\n", g+1)
		for range n {
			b.WriteString("  fadd x 1\n")
		}
	}
	return b.String()
}

func enumerate(t *testing.T, src string) ModelCheck {
	t.Helper()
	p, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	mc, err := p.Enumerate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

// Goroutines of n1, n2, … steps that never block have (n1+n2+…)! /
// (n1! n2! …) schedules: the multinomial coefficient, worked out by hand.
func TestSchedulesAreTheMultinomialCoefficient(t *testing.T) {
	for _, c := range []struct {
		steps []int
		want  uint64
	}{
		{[]int{1}, 1},
		{[]int{1, 1}, 2},            // C(2,1)
		{[]int{2, 2}, 6},            // C(4,2)
		{[]int{3, 3}, 20},           // C(6,3)
		{[]int{3, 4}, 35},           // C(7,3)
		{[]int{5, 1}, 6},            // C(6,1)
		{[]int{8, 8}, 12870},        // C(16,8)
		{[]int{2, 2, 2}, 90},        // 6!/(2!2!2!)
		{[]int{1, 2, 3}, 60},        // 6!/(1!2!3!)
		{[]int{4, 4, 4}, 34650},     // 12!/(4!4!4!)
		{[]int{3, 3, 3, 3}, 369600}, // 12!/(3!)^4
		{[]int{16, 16}, 601080390},  // C(32,16)
	} {
		mc := enumerate(t, straight(c.steps...))
		if mc.Schedules != c.want || len(mc.Outcomes) != 1 || mc.Outcomes[0].Schedules != c.want {
			t.Errorf("%v steps: %d schedules (%+v), want %d", c.steps, mc.Schedules, mc.Outcomes, c.want)
		}
	}
}

func outcomes(mc ModelCheck) map[string]uint64 {
	m := map[string]uint64{}
	for _, o := range mc.Outcomes {
		m[o.Label] = o.Schedules
	}
	return m
}

func TestBuiltins(t *testing.T) {
	for _, c := range []struct {
		id       string
		want     map[string]uint64
		failing  uint64
		shortest int // steps in the shortest failing schedule
	}{
		// Only the two serial orders keep both updates: G1's store
		// before G2's load, or the other way round.
		{"lost-update", map[string]uint64{"x=1": 18, "x=2": 2}, 18, 6},
		// Whoever locks first runs its four remaining steps alone.
		{"lost-update+mutex", map[string]uint64{"x=2": 2}, 0, -1},
		{"lost-update+atomic", map[string]uint64{"x=2": 2}, 0, -1},
		// A buyer who loads after the other's store sees 0 and stops
		// after 2 steps: the other's first 4 steps, then its last merged
		// with those 2, C(3,1) = 3 ways, for either buyer. Otherwise both
		// run 5 steps and both sell: C(10,5) = 252 interleavings less the
		// C(6,1) = 6 in which each buyer's store precedes the other's
		// load, for either buyer: 240.
		{"check-then-act", map[string]uint64{"stock=0 sold=2": 240, "stock=0 sold=1": 6}, 240, 10},
		// a then b, b then a: a deadlock when the first two moves are the
		// two first locks, in either order (2 schedules). Otherwise the
		// goroutine that locks first takes both, and after it unlocks b
		// the other either waits for it to finish or takes b at once and
		// waits for a: 2 schedules for either goroutine going first.
		{"lock-order", map[string]uint64{`deadlock: G1 at "lock b", G2 at "lock a"`: 2, "finished": 4}, 2, 2},
		// One order: whoever takes a first runs alone until it lets a go.
		{"lock-order+lock-order", map[string]uint64{"finished": 2}, 0, -1},
		{"channel-deadlock", map[string]uint64{`deadlock: G1 at "send c 1", G2 at "send d 1"`: 1}, 1, 0},
		{"channel-deadlock+receive-first", map[string]uint64{"got=2": 2}, 0, -1},
	} {
		t.Run(c.id, func(t *testing.T) {
			src, _, ok := lookup(c.id)
			if !ok {
				t.Fatalf("no program %q", c.id)
			}
			mc := enumerate(t, src)
			got := outcomes(mc)
			if fmt.Sprint(got) != fmt.Sprint(c.want) || mc.Failing != c.failing {
				t.Fatalf("outcomes %v, failing %d; want %v, failing %d", got, mc.Failing, c.want, c.failing)
			}
			if c.shortest < 0 {
				if mc.ShortestFailure != -1 {
					t.Fatalf("a shortest failure in a program that cannot fail: %+v", mc.Outcomes[mc.ShortestFailure])
				}
				return
			}
			if n := len(mc.Outcomes[mc.ShortestFailure].Shortest); n != c.shortest {
				t.Fatalf("shortest failing schedule has %d steps, want %d", n, c.shortest)
			}
		})
	}
}

// The memoised count agrees with brute force over every sequence of moves
// for the programs whose counts were not worked out by hand, and the
// fixes never fail.
func TestEnumerationAgainstBruteForce(t *testing.T) {
	for _, id := range []string{"check-then-act", "check-then-act+mutex", "check-then-act+cas", "double-check", "philosophers", "philosophers+lock-order", "channel-deadlock+buffered"} {
		src, _, _ := lookup(id)
		p, err := Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]uint64{}
		var walk func(s State)
		walk = func(s State) {
			ms := p.Moves(s)
			if len(ms) == 0 {
				want[p.End(s).Label]++
				return
			}
			for _, m := range ms {
				walk(p.Apply(s, m))
			}
		}
		walk(p.initial())
		mc, err := p.Enumerate(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := outcomes(mc); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: memoised %v, brute force %v", id, got, want)
		}
		fixed := strings.Contains(id, "+")
		if fixed != (mc.Failing == 0) {
			t.Errorf("%s: %d failing schedules of %d", id, mc.Failing, mc.Schedules)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"", "at least one goroutine"},
		{"load r x", "line 1: \"load r x\": steps belong to a goroutine"},
		{"var x = 0\ngo\n  load r y", "line 3: \"load r y\": \"y\" is not a declared var"},
		{"var x = 0\ngo\n  load x x", "\"x\" is a shared var, not a register"},
		{"var x = 0\ngo\n  jump x", "unknown step \"jump\""},
		{"var x = 0\ngo\nl:\n  load r x\n  if r == 0 goto l", "line 5: jumps go forward only"},
		{"var x = 0\ngo\n  if x == 0 goto nowhere", "\"x\" is a shared var"},
		{"go\n  mov r 1\n  if r == 1 goto nowhere", "line 3: no label \"nowhere\" in G1"},
		{"chan c 9\ngo", "capacity is 0 (unbuffered) to 4"},
		{"var x = 0\nvar x = 1", "declared twice"},
		{"go\nvar x = 0", "declare var before the first go"},
		{"var go = 1", "keyword"},
		{"var x = 0\ncheck y == 1", "check VARIABLE CMP INTEGER"},
		{strings.Repeat("go\n", 5), "at most 4 goroutines"},
		{"var x = 0\ngo\n" + strings.Repeat("  fadd x 1\n", 17), "at most 16 steps"},
		{strings.Repeat("#", MaxSource+1), "at most 4000 bytes"},
	} {
		_, err := Parse(c.src)
		var pe *ParseError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v; want an error containing %q", c.src, err, c.want)
		}
	}
}

func TestGraphAgreesWithEnumeration(t *testing.T) {
	for _, id := range ProgramIDs() {
		src, _, _ := lookup(id)
		p, err := Parse(src)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		nodes, ok := p.Graph()
		if !ok {
			t.Fatalf("%s: graph too big for the page", id)
		}
		mc, err := p.Enumerate(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != mc.States {
			t.Errorf("%s: graph has %d states, the enumeration %d", id, len(nodes), mc.States)
		}
		// Count the schedules again on the graph, which is a DAG.
		memo := map[int]uint64{}
		var count func(i int) uint64
		count = func(i int) uint64 {
			if n, ok := memo[i]; ok {
				return n
			}
			var n uint64
			if nodes[i].End != nil {
				n = 1
			}
			for _, j := range nodes[i].Next {
				n += count(j)
			}
			memo[i] = n
			return n
		}
		if n := count(0); n != mc.Schedules {
			t.Errorf("%s: %d schedules on the graph, %d enumerated", id, n, mc.Schedules)
		}
	}
}

func TestShortestScheduleReachesItsOutcome(t *testing.T) {
	for _, id := range ProgramIDs() {
		src, _, _ := lookup(id)
		p, _ := Parse(src)
		mc, err := p.Enumerate(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range mc.Outcomes {
			s := p.initial()
			for _, m := range o.Shortest {
				s = p.Apply(s, m)
			}
			if len(p.Moves(s)) != 0 || p.End(s).Label != o.Label {
				t.Errorf("%s: the shortest schedule to %q ends at %q", id, o.Label, p.End(s).Label)
			}
		}
	}
}

// A program past the memory budget stops early with ErrTooBig, saying how
// far it got, rather than taking the lab's memory; a cancelled check stops
// too.
func TestEnumerateStopsAtItsBudget(t *testing.T) {
	src := "var x = 0\ncheck x == 100\n"
	for g := range 4 {
		src += fmt.Sprintf("go G%d\n", g)
		for range 5 {
			src += "  load r x\n  add r 1\n  store x r\n"
		}
	}
	p, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	defer func(b int) { checkBudget = b }(checkBudget)
	checkBudget = 1 << 20
	_, err = p.Enumerate(context.Background())
	if !errors.Is(err, ErrTooBig) || !strings.Contains(err.Error(), "the budget of one check") || !strings.Contains(err.Error(), "stopped after ") {
		t.Errorf("a program past a 1 MiB budget: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Enumerate(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled check: %v, want context.Canceled", err)
	}
}
