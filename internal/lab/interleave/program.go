// Package interleave is the lab's seventh chapter: small concurrent
// programs written one step per line, every interleaving of their steps
// enumerated exactly (a model check), and the same programs run by real
// goroutines over many trials.
//
// A program is a few goroutines sharing integer variables, mutexes and
// channels. Each line of a goroutine is one step, indivisible in the model
// (an atomic load, store or add, a lock, a send, …). The model assumes
// sequentially consistent memory: it finds the bugs of interleaving (a
// lost update, an oversell, a deadlock), not those of a CPU or compiler
// reordering memory accesses.
package interleave

import (
	"fmt"
	"strconv"
	"strings"
)

// Limits on a program: they keep an exhaustive model check to well under a
// second and the schedule counts within 64 bits (4 goroutines of 12 steps
// have 48!/(12!)^4 ≈ 1.3e26 schedules in the worst case, so the count
// reports an overflow rather than wrap; the built-in programs are far
// smaller).
const (
	MaxGoroutines = 4
	MaxSteps      = 16 // per goroutine
	MaxShared     = 8  // variables
	MaxLocks      = 4  // mutexes
	MaxChans      = 4
	MaxCap        = 4 // a channel's buffer
	MaxRegisters  = 8 // per goroutine
	MaxSource     = 4000
)

// Ops of the language. Operands: X a shared variable, R a register (a
// goroutine's own variable, 0 at start), V a register or an integer, M a
// mutex, C a channel, L a label further down.
const (
	OpLoad   = "load"   // load R X: R = X
	OpStore  = "store"  // store X V: X = V
	OpMov    = "mov"    // mov R V: R = V
	OpAdd    = "add"    // add R V: R = R + V
	OpFadd   = "fadd"   // fadd X V: X = X + V in one step (atomic.AddInt64)
	OpCas    = "cas"    // cas X OLD NEW R: if X == OLD { X = NEW; R = 1 } else { R = 0 }
	OpLock   = "lock"   // lock M: waits while M is held
	OpUnlock = "unlock" // unlock M: unlocking a free mutex is fatal, as in Go
	OpSend   = "send"   // send C V: waits for room, or for a receiver when unbuffered
	OpRecv   = "recv"   // recv C R: waits for a value
	OpIf     = "if"     // if V CMP V goto L: jumps forward when the comparison holds
)

// Operand is a register, a shared variable or a constant, resolved to an
// index at parse time.
type Operand struct {
	Reg   int   // index of a register, or -1
	Const int64 // the value when Reg is -1
}

// Instr is one step of a goroutine.
type Instr struct {
	Op   string
	Text string // the line as written, trimmed
	Line int    // 1-based line in the source
	// Var indexes a shared variable, mutex or channel, by Op.
	Var int
	// Dst is the register written (load, mov, add, cas, recv).
	Dst int
	// A and B are the value operands (store, mov, add, fadd, send: A; cas:
	// A old and B new; if: A and B compared by Cmp).
	A, B   Operand
	Cmp    string
	cmp    func(a, b int64) bool // Cmp's function, looked up once at parse time
	Target int                   // if: the step jumped to (may be the goroutine's end)
}

// Goroutine is one goroutine's steps.
type Goroutine struct {
	Name      string           `json:"name"`
	Registers []string         `json:"registers"`
	Steps     []string         `json:"steps"` // each step's text, for the page
	Labels    map[int][]string `json:"labels"`
	Ins       []Instr          `json:"-"`
}

// Check is a condition on the final state: Var Cmp Value.
type Check struct {
	Var   int
	Cmp   string
	cmp   func(a, b int64) bool
	Value int64
	Text  string
}

// Program is a parsed program.
type Program struct {
	Source  string
	Shared  []string // variable names
	Initial []int64  // their initial values
	Locks   []string
	Chans   []string
	Caps    []int
	Checks  []Check
	G       []Goroutine
}

var comparisons = map[string]func(a, b int64) bool{
	"==": func(a, b int64) bool { return a == b },
	"!=": func(a, b int64) bool { return a != b },
	"<":  func(a, b int64) bool { return a < b },
	"<=": func(a, b int64) bool { return a <= b },
	">":  func(a, b int64) bool { return a > b },
	">=": func(a, b int64) bool { return a >= b },
}

// ParseError names the line a program went wrong on.
type ParseError struct {
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// Parse reads a program:
//
//	# a comment
//	var x = 0        a shared integer and its initial value
//	mutex m
//	chan c 0         a channel and its buffer (0: unbuffered)
//	check x == 2     what must hold at the end (==, !=, <, <=, >, >=)
//	go NAME          a goroutine; its steps follow, one per line
//	  load r x
//	  if r > 0 goto done
//	  …
//	done:            a label (jumps go forward only)
//
// Declarations come before the first go. Any other name used as an
// operand is a register of its goroutine, starting at 0.
func Parse(src string) (*Program, error) {
	if len(src) > MaxSource {
		return nil, &ParseError{Msg: fmt.Sprintf("a program is at most %d bytes", MaxSource)}
	}
	p := &Program{Source: src}
	kinds := map[string]string{} // name -> "var", "mutex", "chan"
	type pending struct {
		g, step int
		label   string
		line    int
	}
	var jumps []pending
	var labels []map[string]int // per goroutine: label -> step
	regs := []map[string]int{}
	fail := func(line int, format string, args ...any) error {
		return &ParseError{Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	for n, raw := range strings.Split(src, "\n") {
		line := n + 1
		text := raw
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		f := strings.Fields(text)
		g := len(p.G) - 1
		switch {
		case f[0] == "var" || f[0] == "mutex" || f[0] == "chan" || f[0] == "check":
			if g >= 0 && f[0] != "check" {
				return nil, fail(line, "declare %s before the first go", f[0])
			}
		case f[0] == "go":
		case g < 0:
			return nil, fail(line, "%q: steps belong to a goroutine; start one with go", text)
		}
		switch f[0] {
		case "var":
			// var x = 0, or var x 0, or var x
			if len(f) == 4 && f[2] == "=" {
				f = []string{f[0], f[1], f[3]}
			}
			if len(f) != 2 && len(f) != 3 {
				return nil, fail(line, "var NAME = VALUE")
			}
			if err := checkName(f[1], kinds); err != nil {
				return nil, fail(line, "%v", err)
			}
			var v int64
			if len(f) == 3 {
				var err error
				if v, err = strconv.ParseInt(f[2], 10, 32); err != nil {
					return nil, fail(line, "%q is not an integer", f[2])
				}
			}
			if len(p.Shared) == MaxShared {
				return nil, fail(line, "at most %d shared variables", MaxShared)
			}
			kinds[f[1]] = "var"
			p.Shared, p.Initial = append(p.Shared, f[1]), append(p.Initial, v)
		case "mutex":
			if len(f) != 2 {
				return nil, fail(line, "mutex NAME")
			}
			if err := checkName(f[1], kinds); err != nil {
				return nil, fail(line, "%v", err)
			}
			if len(p.Locks) == MaxLocks {
				return nil, fail(line, "at most %d mutexes", MaxLocks)
			}
			kinds[f[1]] = "mutex"
			p.Locks = append(p.Locks, f[1])
		case "chan":
			if len(f) != 2 && len(f) != 3 {
				return nil, fail(line, "chan NAME CAPACITY")
			}
			if err := checkName(f[1], kinds); err != nil {
				return nil, fail(line, "%v", err)
			}
			c := 0
			if len(f) == 3 {
				var err error
				if c, err = strconv.Atoi(f[2]); err != nil || c < 0 || c > MaxCap {
					return nil, fail(line, "a channel's capacity is 0 (unbuffered) to %d", MaxCap)
				}
			}
			if len(p.Chans) == MaxChans {
				return nil, fail(line, "at most %d channels", MaxChans)
			}
			kinds[f[1]] = "chan"
			p.Chans, p.Caps = append(p.Chans, f[1]), append(p.Caps, c)
		case "check":
			if len(f) != 4 || kinds[f[1]] != "var" || comparisons[f[2]] == nil {
				return nil, fail(line, "check VARIABLE CMP INTEGER, with a declared variable and ==, !=, <, <=, > or >=")
			}
			v, err := strconv.ParseInt(f[3], 10, 64)
			if err != nil {
				return nil, fail(line, "%q is not an integer", f[3])
			}
			p.Checks = append(p.Checks, Check{Var: index(p.Shared, f[1]), Cmp: f[2], cmp: comparisons[f[2]], Value: v, Text: strings.Join(f[1:], " ")})
		case "go":
			if len(f) > 2 {
				return nil, fail(line, "go NAME")
			}
			if len(p.G) == MaxGoroutines {
				return nil, fail(line, "at most %d goroutines", MaxGoroutines)
			}
			name := fmt.Sprintf("G%d", len(p.G)+1)
			if len(f) == 2 {
				name = f[1]
			}
			p.G = append(p.G, Goroutine{Name: name, Labels: map[int][]string{}})
			labels = append(labels, map[string]int{})
			regs = append(regs, map[string]int{})
		default:
			gr := &p.G[g]
			if strings.HasSuffix(text, ":") && len(f) == 1 {
				l := strings.TrimSuffix(text, ":")
				if !isName(l) {
					return nil, fail(line, "%q is not a label", l)
				}
				if _, dup := labels[g][l]; dup {
					return nil, fail(line, "label %q twice in %s", l, gr.Name)
				}
				labels[g][l] = len(gr.Ins)
				gr.Labels[len(gr.Ins)] = append(gr.Labels[len(gr.Ins)], l)
				continue
			}
			if len(gr.Ins) == MaxSteps {
				return nil, fail(line, "at most %d steps in a goroutine", MaxSteps)
			}
			in, label, err := parseInstr(f, kinds, p, gr, regs[g])
			if err != nil {
				return nil, fail(line, "%q: %v", text, err)
			}
			in.Text, in.Line = strings.Join(f, " "), line
			if label != "" {
				jumps = append(jumps, pending{g, len(gr.Ins), label, line})
			}
			gr.Ins = append(gr.Ins, in)
			gr.Steps = append(gr.Steps, in.Text)
		}
	}
	if len(p.G) == 0 {
		return nil, fail(0, "a program needs at least one goroutine (go)")
	}
	for _, j := range jumps {
		to, ok := labels[j.g][j.label]
		if !ok {
			return nil, fail(j.line, "no label %q in %s", j.label, p.G[j.g].Name)
		}
		if to <= j.step {
			return nil, fail(j.line, "jumps go forward only (a loop could run forever, and every schedule must end)")
		}
		p.G[j.g].Ins[j.step].Target = to
	}
	for i, m := range regs {
		p.G[i].Registers = make([]string, len(m))
		for name, r := range m {
			p.G[i].Registers[r] = name
		}
	}
	return p, nil
}

// parseInstr reads one step; label is the target of an if.
func parseInstr(f []string, kinds map[string]string, p *Program, g *Goroutine, regs map[string]int) (in Instr, label string, err error) {
	in = Instr{Op: f[0], Dst: -1, A: Operand{Reg: -1}, B: Operand{Reg: -1}}
	reg := func(s string) (int, error) {
		if kinds[s] != "" {
			return 0, fmt.Errorf("%q is a shared %s, not a register", s, kinds[s])
		}
		if !isName(s) {
			return 0, fmt.Errorf("%q is not a register name", s)
		}
		r, ok := regs[s]
		if !ok {
			if len(regs) == MaxRegisters {
				return 0, fmt.Errorf("at most %d registers in a goroutine", MaxRegisters)
			}
			r = len(regs)
			regs[s] = r
		}
		return r, nil
	}
	value := func(s string) (Operand, error) {
		if v, err := strconv.ParseInt(s, 10, 32); err == nil {
			return Operand{Reg: -1, Const: v}, nil
		}
		r, err := reg(s)
		return Operand{Reg: r}, err
	}
	named := func(s, kind string) (int, error) {
		if kinds[s] != kind {
			return 0, fmt.Errorf("%q is not a declared %s", s, kind)
		}
		switch kind {
		case "var":
			return index(p.Shared, s), nil
		case "mutex":
			return index(p.Locks, s), nil
		}
		return index(p.Chans, s), nil
	}
	arity := map[string]int{OpLoad: 3, OpStore: 3, OpMov: 3, OpAdd: 3, OpFadd: 3, OpCas: 5, OpLock: 2, OpUnlock: 2, OpSend: 3, OpRecv: 3, OpIf: 6}
	n, ok := arity[f[0]]
	if !ok {
		return in, "", fmt.Errorf("unknown step %q (load, store, mov, add, fadd, cas, lock, unlock, send, recv, if)", f[0])
	}
	if len(f) != n {
		return in, "", fmt.Errorf("%s takes %d operands", f[0], n-1)
	}
	switch f[0] {
	case OpLoad:
		if in.Dst, err = reg(f[1]); err == nil {
			in.Var, err = named(f[2], "var")
		}
	case OpStore, OpFadd:
		if in.Var, err = named(f[1], "var"); err == nil {
			in.A, err = value(f[2])
		}
	case OpMov, OpAdd:
		if in.Dst, err = reg(f[1]); err == nil {
			in.A, err = value(f[2])
		}
	case OpCas:
		if in.Var, err = named(f[1], "var"); err != nil {
			break
		}
		if in.A, err = value(f[2]); err != nil {
			break
		}
		if in.B, err = value(f[3]); err != nil {
			break
		}
		in.Dst, err = reg(f[4])
	case OpLock, OpUnlock:
		in.Var, err = named(f[1], "mutex")
	case OpSend:
		if in.Var, err = named(f[1], "chan"); err == nil {
			in.A, err = value(f[2])
		}
	case OpRecv:
		if in.Var, err = named(f[1], "chan"); err == nil {
			in.Dst, err = reg(f[2])
		}
	case OpIf:
		if comparisons[f[2]] == nil || f[4] != "goto" {
			return in, "", fmt.Errorf("if A CMP B goto LABEL, with ==, !=, <, <=, > or >=")
		}
		in.Cmp, in.cmp, label = f[2], comparisons[f[2]], f[5]
		if in.A, err = value(f[1]); err == nil {
			in.B, err = value(f[3])
		}
	}
	return in, label, err
}

func checkName(s string, kinds map[string]string) error {
	if !isName(s) {
		return fmt.Errorf("%q is not a name (a letter, then letters, digits or _)", s)
	}
	if kinds[s] != "" {
		return fmt.Errorf("%q is declared twice", s)
	}
	if _, op := map[string]bool{"var": true, "mutex": true, "chan": true, "check": true, "go": true, "goto": true}[s]; op {
		return fmt.Errorf("%q is a keyword", s)
	}
	return nil
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		letter := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func index(names []string, s string) int {
	for i, n := range names {
		if n == s {
			return i
		}
	}
	return -1
}
