package interleave

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"runtime/debug"
	"slices"
	"strings"
)

// State is one point of a program's execution in the model: where each
// goroutine is, its registers, the shared variables, who holds each mutex
// and what each channel holds.
type State struct {
	PC    []int     `json:"pc"` // len(Ins) once the goroutine is done
	Regs  [][]int64 `json:"regs"`
	Vars  []int64   `json:"vars"`
	Held  []int     `json:"held"` // the goroutine holding each mutex, or -1
	Bufs  [][]int64 `json:"bufs"`
	Fatal string    `json:"fatal,omitempty"`
}

// Move is one step of a schedule: goroutine G runs its next step. An
// unbuffered send moves its receiver, Partner, with it; Partner is -1
// otherwise.
type Move struct {
	G       int `json:"g"`
	Partner int `json:"partner"`
}

func (p *Program) initial() State {
	s := State{PC: make([]int, len(p.G)), Regs: make([][]int64, len(p.G)), Vars: slices.Clone(p.Initial),
		Held: make([]int, len(p.Locks)), Bufs: make([][]int64, len(p.Chans))}
	for i, g := range p.G {
		s.Regs[i] = make([]int64, len(g.Registers))
	}
	for i := range s.Held {
		s.Held[i] = -1
	}
	return s
}

func (s State) clone() State {
	c := State{PC: slices.Clone(s.PC), Regs: make([][]int64, len(s.Regs)), Vars: slices.Clone(s.Vars),
		Held: slices.Clone(s.Held), Bufs: make([][]int64, len(s.Bufs)), Fatal: s.Fatal}
	for i, r := range s.Regs {
		c.Regs[i] = slices.Clone(r)
	}
	for i, b := range s.Bufs {
		c.Bufs[i] = slices.Clone(b)
	}
	return c
}

// key identifies a state for memoisation.
func (s State) key() string {
	b := make([]byte, 0, 64)
	for _, pc := range s.PC {
		b = binary.AppendUvarint(b, uint64(pc))
	}
	for _, r := range s.Regs {
		for _, v := range r {
			b = binary.AppendVarint(b, v)
		}
	}
	for _, v := range s.Vars {
		b = binary.AppendVarint(b, v)
	}
	for _, h := range s.Held {
		b = binary.AppendVarint(b, int64(h))
	}
	for _, buf := range s.Bufs {
		b = binary.AppendUvarint(b, uint64(len(buf)))
		for _, v := range buf {
			b = binary.AppendVarint(b, v)
		}
	}
	return string(append(b, s.Fatal...))
}

func (p *Program) done(s State, g int) bool { return s.PC[g] >= len(p.G[g].Ins) }

func (s State) val(g int, o Operand) int64 {
	if o.Reg < 0 {
		return o.Const
	}
	return s.Regs[g][o.Reg]
}

// Moves lists what may happen next, in goroutine order. A state with none
// is the end of a schedule: every goroutine done, a fatal error, or a
// deadlock.
func (p *Program) Moves(s State) []Move {
	if s.Fatal != "" {
		return nil
	}
	var ms []Move
	for g := range p.G {
		if p.done(s, g) {
			continue
		}
		in := p.G[g].Ins[s.PC[g]]
		switch in.Op {
		case OpLock:
			if s.Held[in.Var] >= 0 {
				continue
			}
		case OpSend:
			if p.Caps[in.Var] == 0 {
				for h := range p.G {
					if h != g && !p.done(s, h) && p.G[h].Ins[s.PC[h]].Op == OpRecv && p.G[h].Ins[s.PC[h]].Var == in.Var {
						ms = append(ms, Move{G: g, Partner: h})
					}
				}
				continue
			}
			if len(s.Bufs[in.Var]) == p.Caps[in.Var] {
				continue
			}
		case OpRecv:
			// An unbuffered receive happens with a send, as the sender's move.
			if p.Caps[in.Var] == 0 || len(s.Bufs[in.Var]) == 0 {
				continue
			}
		}
		ms = append(ms, Move{G: g, Partner: -1})
	}
	return ms
}

// Apply returns the state after m, which must be one of p.Moves(s).
func (p *Program) Apply(s State, m Move) State {
	s = s.clone()
	g := m.G
	in := p.G[g].Ins[s.PC[g]]
	next := s.PC[g] + 1
	switch in.Op {
	case OpLoad:
		s.Regs[g][in.Dst] = s.Vars[in.Var]
	case OpStore:
		s.Vars[in.Var] = s.val(g, in.A)
	case OpMov:
		s.Regs[g][in.Dst] = s.val(g, in.A)
	case OpAdd:
		s.Regs[g][in.Dst] += s.val(g, in.A)
	case OpFadd:
		s.Vars[in.Var] += s.val(g, in.A)
	case OpCas:
		if s.Vars[in.Var] == s.val(g, in.A) {
			s.Vars[in.Var] = s.val(g, in.B)
			s.Regs[g][in.Dst] = 1
		} else {
			s.Regs[g][in.Dst] = 0
		}
	case OpLock:
		s.Held[in.Var] = g
	case OpUnlock:
		if s.Held[in.Var] < 0 {
			s.Fatal = fmt.Sprintf("%s: unlock of unlocked mutex %s (Go: fatal error: sync: unlock of unlocked mutex)", p.G[g].Name, p.Locks[in.Var])
		}
		s.Held[in.Var] = -1
	case OpSend:
		v := s.val(g, in.A)
		if m.Partner >= 0 {
			h := m.Partner
			s.Regs[h][p.G[h].Ins[s.PC[h]].Dst] = v
			s.PC[h]++
		} else {
			s.Bufs[in.Var] = append(s.Bufs[in.Var], v)
		}
	case OpRecv:
		s.Regs[g][in.Dst] = s.Bufs[in.Var][0]
		s.Bufs[in.Var] = s.Bufs[in.Var][1:]
	case OpIf:
		if in.cmp(s.val(g, in.A), s.val(g, in.B)) {
			next = in.Target
		}
	}
	s.PC[g] = next
	return s
}

// Outcome kinds.
const (
	KindOK       = "ok"       // every goroutine finished and every check holds
	KindFailed   = "failed"   // every goroutine finished, and a check does not hold
	KindDeadlock = "deadlock" // goroutines remain and none can move
	KindFatal    = "fatal"    // a step Go would stop the program for
)

// Outcome is how a schedule ends: the final shared variables, or the
// deadlock or fatal error.
type Outcome struct {
	Label string `json:"label"`
	Kind  string `json:"kind"`
	// Broken lists the checks that do not hold.
	Broken []string `json:"broken,omitempty"`
}

// Failed reports whether the outcome is one the program must avoid.
func (o Outcome) Failed() bool { return o.Kind != KindOK }

// End is the outcome of a state with no moves.
func (p *Program) End(s State) Outcome {
	if s.Fatal != "" {
		return Outcome{Label: "fatal: " + s.Fatal, Kind: KindFatal}
	}
	var waiting []string
	for g := range p.G {
		if !p.done(s, g) {
			waiting = append(waiting, fmt.Sprintf("%s at %q", p.G[g].Name, p.G[g].Ins[s.PC[g]].Text))
		}
	}
	if len(waiting) > 0 {
		return Outcome{Label: "deadlock: " + strings.Join(waiting, ", "), Kind: KindDeadlock}
	}
	return p.Final(s.Vars)
}

// Final is the outcome of a run that finished with these shared values.
func (p *Program) Final(vars []int64) Outcome {
	parts := make([]string, len(vars))
	for i, v := range vars {
		parts[i] = fmt.Sprintf("%s=%d", p.Shared[i], v)
	}
	o := Outcome{Label: strings.Join(parts, " "), Kind: KindOK}
	if len(parts) == 0 {
		o.Label = "finished"
	}
	for _, c := range p.Checks {
		if !c.cmp(vars[c.Var], c.Value) {
			o.Broken = append(o.Broken, c.Text)
		}
	}
	if len(o.Broken) > 0 {
		o.Kind = KindFailed
	}
	return o
}

// Limits of the model check.
const (
	maxGraph = 4000 // states sent to the page for the game
)

// checkBudget bounds the memory one model check may take for its
// memoised states, counted as it goes (the key's bytes, the table's slot,
// the tally): with at most maxChecks at once, the lab's memory stays
// bounded whatever program a page sends. A variable for the tests.
var checkBudget = 96 << 20

// maxChecks model checks run at once; others wait their turn.
const maxChecks = 2

var checks = make(chan struct{}, maxChecks)

// ErrTooBig is returned when a program has too many states to explore
// within the budget, or schedules to count in 64 bits.
var ErrTooBig = errors.New("too many interleavings to enumerate: use fewer goroutines or steps")

// Count is how many schedules end in one outcome, and the shortest of
// them.
type Count struct {
	Outcome
	Schedules uint64 `json:"schedules"`
	// Shortest is one of the shortest schedules that end this way, as the
	// moves in order.
	Shortest []Move `json:"shortest"`
}

// ModelCheck is the model check's result: every schedule of the program,
// grouped by outcome.
type ModelCheck struct {
	Schedules uint64  `json:"schedules"`
	States    int     `json:"states"`
	Outcomes  []Count `json:"outcomes"` // the failures first, then by count
	// Failing is how many schedules end in a failure.
	Failing uint64 `json:"failing"`
	// ShortestFailure is the index in Outcomes of the failing outcome with
	// the shortest schedule, or -1.
	ShortestFailure int `json:"shortestFailure"`
}

// tally is, for one state, how the schedules from it end: by outcome
// index, how many, the length of the shortest and its first move. An
// outcome no schedule from the state reaches has n == 0. (A slice, not a
// map: a million states' small maps took a gigabyte.)
type tally []ending

type ending struct {
	n     uint64
	len   int
	first Move
}

// at is outcome i's ending, n == 0 where the state does not reach it.
func (t tally) at(i int) ending {
	if i < len(t) {
		return t[i]
	}
	return ending{}
}

// memoBytes estimates what one memoised state holds: its key, its slot in
// the table and its tally.
func memoBytes(key string, t tally) int {
	return len(key) + 48 + 24 + 32*cap(t)
}

// Enumerate visits every schedule of p, counting each outcome: a schedule
// is a sequence of moves from the start to a state with none. It runs in
// time proportional to the number of distinct states, not schedules, by
// memoising how the schedules from each state end. It waits for its turn
// among the model checks under way, stops with ErrTooBig past the memory
// budget, and with ctx's error when ctx ends.
func (p *Program) Enumerate(ctx context.Context) (ModelCheck, error) {
	select {
	case checks <- struct{}{}:
	case <-ctx.Done():
		return ModelCheck{}, ctx.Err()
	}
	mc, used, err := p.enumerate(ctx)
	<-checks
	if used > 16<<20 {
		// Hand a large check's memory back to the system now, not minutes
		// later: the lab lives on a learner's laptop.
		debug.FreeOSMemory()
	}
	return mc, err
}

// enumerate is Enumerate's work, and the memory its memo took.
func (p *Program) enumerate(ctx context.Context) (_ ModelCheck, used int, _ error) {
	memo := map[string]tally{}
	var outcomes []Outcome
	byLabel := map[string]int{}
	var walk func(s State) (tally, error)
	walk = func(s State) (tally, error) {
		k := s.key()
		if t, ok := memo[k]; ok {
			return t, nil
		}
		if used >= checkBudget {
			return nil, fmt.Errorf("%w: stopped after %d states, about %d MiB, the budget of one check", ErrTooBig, len(memo), used>>20)
		}
		if len(memo)%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var t tally
		moves := p.Moves(s)
		if len(moves) == 0 {
			o := p.End(s)
			i, ok := byLabel[o.Label]
			if !ok {
				i = len(outcomes)
				byLabel[o.Label] = i
				outcomes = append(outcomes, o)
			}
			t = make(tally, i+1)
			t[i] = ending{n: 1, first: Move{-1, -1}}
		}
		for _, m := range moves {
			sub, err := walk(p.Apply(s, m))
			if err != nil {
				return nil, err
			}
			if len(sub) > len(t) {
				t = append(t, make(tally, len(sub)-len(t))...)
			}
			for i, c := range sub {
				if c.n == 0 {
					continue
				}
				e := t[i]
				sum, carry := bits.Add64(e.n, c.n, 0)
				if carry != 0 {
					return nil, ErrTooBig
				}
				if e.n == 0 || c.len+1 < e.len {
					e.len, e.first = c.len+1, m
				}
				e.n = sum
				t[i] = e
			}
		}
		t = slices.Clip(t)
		memo[k] = t
		used += memoBytes(k, t)
		return t, nil
	}
	start := p.initial()
	top, err := walk(start)
	if err != nil {
		return ModelCheck{}, used, err
	}
	mc := ModelCheck{States: len(memo), ShortestFailure: -1}
	for i, o := range outcomes {
		c := Count{Outcome: o, Schedules: top.at(i).n}
		// Follow the first moves of the shortest schedule to this outcome.
		for s := start; ; {
			e := memo[s.key()].at(i)
			if e.len == 0 {
				break
			}
			c.Shortest = append(c.Shortest, e.first)
			s = p.Apply(s, e.first)
		}
		var carry uint64
		mc.Schedules, carry = bits.Add64(mc.Schedules, c.Schedules, 0)
		if carry != 0 {
			return ModelCheck{}, used, ErrTooBig
		}
		if o.Failed() {
			mc.Failing += c.Schedules
		}
		mc.Outcomes = append(mc.Outcomes, c)
	}
	slices.SortStableFunc(mc.Outcomes, func(a, b Count) int {
		if a.Failed() != b.Failed() {
			if a.Failed() {
				return -1
			}
			return 1
		}
		if a.Schedules != b.Schedules {
			if a.Schedules > b.Schedules {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Label, b.Label)
	})
	for i, c := range mc.Outcomes {
		if c.Failed() && (mc.ShortestFailure < 0 || len(c.Shortest) < len(mc.Outcomes[mc.ShortestFailure].Shortest)) {
			mc.ShortestFailure = i
		}
	}
	return mc, used, nil
}

// Node is one state of the game's graph: the state, the moves out of it
// (Next[i] is the node Moves[i] leads to) and, at an end, the outcome.
type Node struct {
	State
	Moves []Move   `json:"moves"`
	Next  []int    `json:"next"`
	End   *Outcome `json:"end,omitempty"`
}

// Graph returns every state reachable from the start, node 0, for the
// page's step-by-step game; ok is false when there are more than the
// page should hold.
func (p *Program) Graph() (nodes []Node, ok bool) {
	ids := map[string]int{}
	start := p.initial()
	ids[start.key()] = 0
	nodes = []Node{{State: start}}
	for i := 0; i < len(nodes); i++ {
		s := nodes[i].State
		moves := p.Moves(s)
		nodes[i].Moves = orEmpty(moves)
		nodes[i].Next = make([]int, 0, len(moves))
		if len(moves) == 0 {
			o := p.End(s)
			nodes[i].End = &o
		}
		for _, m := range moves {
			t := p.Apply(s, m)
			id, seen := ids[t.key()]
			if !seen {
				if len(nodes) == maxGraph {
					return nil, false
				}
				id = len(nodes)
				ids[t.key()] = id
				nodes = append(nodes, Node{State: t})
			}
			nodes[i].Next = append(nodes[i].Next, id)
		}
	}
	return nodes, true
}

// Describe writes a schedule as the steps it runs, one per line.
func (p *Program) Describe(moves []Move) []string {
	s := p.initial()
	out := make([]string, 0, len(moves))
	for _, m := range moves {
		in := p.G[m.G].Ins[s.PC[m.G]]
		line := fmt.Sprintf("%s: %s", p.G[m.G].Name, in.Text)
		if m.Partner >= 0 {
			line += fmt.Sprintf("  ↔ %s: %s", p.G[m.Partner].Name, p.G[m.Partner].Ins[s.PC[m.Partner]].Text)
		}
		out = append(out, line)
		s = p.Apply(s, m)
	}
	return out
}
