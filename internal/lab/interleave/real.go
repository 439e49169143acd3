package interleave

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// trial is one run of a program by real goroutines. Shared variables are
// atomic integers, so each step is indivisible as in the model and the
// race detector has nothing to say; the goroutines run in parallel on as
// many cores as GOMAXPROCS allows, and the machine decides the schedule.
//
// Mutexes and channels are the trial's own, built as the runtime builds
// sync.Mutex and chan (a lock of their own, queues of waiting goroutines,
// a direct hand-off to a waiter), so that the trial knows exactly when
// every goroutine left is waiting for another: a deadlock. Go's runtime
// knows this only for the whole process, and a lab serving a page always
// has goroutines that could wake the others; the child in deadlock.go
// shows the runtime's own report.
type trial struct {
	p     *Program
	yield bool
	vars  []atomic.Int64
	// at is each goroutine's step, or "" once it has finished; only the
	// goroutine writes its own, and run reads them after all have ended.
	at []string

	mu       sync.Mutex // guards what follows
	held     []bool
	lockQ    [][]*waiter
	bufs     [][]int64
	sendQ    [][]*waiter
	recvQ    [][]*waiter
	blocked  int
	finished int
	fatal    string
	stuck    bool          // every goroutine left is waiting
	abort    chan struct{} // closed when stuck or fatal
}

// waiter is a goroutine waiting on a mutex or a channel; whoever wakes it
// hands it the mutex or the value and closes ready.
type waiter struct {
	ready chan struct{}
	val   int64
}

func newTrial(p *Program, yield bool) *trial {
	t := &trial{p: p, yield: yield, vars: make([]atomic.Int64, len(p.Shared)),
		held: make([]bool, len(p.Locks)), lockQ: make([][]*waiter, len(p.Locks)),
		bufs: make([][]int64, len(p.Chans)), sendQ: make([][]*waiter, len(p.Chans)), recvQ: make([][]*waiter, len(p.Chans)),
		abort: make(chan struct{}), at: make([]string, len(p.G))}
	for i, v := range p.Initial {
		t.vars[i].Store(v)
	}
	return t
}

// run runs the trial to its end: every goroutine finished, or stuck, or a
// fatal step.
func (t *trial) run() Outcome {
	together(len(t.p.G), func(g int) {
		if steps(t.p, g, t.vars, t, t.yield, t.at) {
			t.at[g] = ""
			t.mu.Lock()
			t.finished++
			t.checkStuck()
			t.mu.Unlock()
		}
	})
	switch {
	case t.fatal != "":
		return Outcome{Label: "fatal: " + t.fatal, Kind: KindFatal}
	case t.stuck:
		var waiting []string
		for g, at := range t.at {
			if at != "" {
				waiting = append(waiting, fmt.Sprintf("%s at %q", t.p.G[g].Name, at))
			}
		}
		return Outcome{Label: "deadlock: " + strings.Join(waiting, ", "), Kind: KindDeadlock}
	}
	vars := make([]int64, len(t.vars))
	for i := range t.vars {
		vars[i] = t.vars[i].Load()
	}
	return t.p.Final(vars)
}

// together runs body(0) … body(n-1) in n goroutines released at once,
// and waits for them. They spin at the gate rather than block, so those
// already on a core start within nanoseconds of each other; a goroutine
// that has spun a while yields, in case the one it waits for is queued
// behind it on its own P (it would otherwise wait for the runtime to
// preempt the spinner, 10 ms later).
func together(n int, body func(g int)) {
	var ready, done sync.WaitGroup
	var gate atomic.Bool
	ready.Add(n)
	done.Add(n)
	for g := range n {
		go func() {
			defer done.Done()
			ready.Done()
			for spins := 0; !gate.Load(); spins++ {
				if spins >= 64 {
					runtime.Gosched()
				}
			}
			body(g)
		}()
	}
	ready.Wait()
	gate.Store(true)
	done.Wait()
}

// primitives are the mutexes and channels a run of a program uses; each
// operation reports false when the run is over and the goroutine must
// stop.
type primitives interface {
	lock(g, m int) bool
	unlock(g, m int) bool
	send(c int, v int64) bool
	recv(c int) (int64, bool)
}

// steps runs goroutine g of p with real shared variables, recording its
// current step in at[g] (if at is not nil); it reports whether the
// goroutine reached its end.
func steps(p *Program, g int, vars []atomic.Int64, prims primitives, yield bool, at []string) bool {
	ins := p.G[g].Ins
	regs := make([]int64, len(p.G[g].Registers))
	val := func(o Operand) int64 {
		if o.Reg < 0 {
			return o.Const
		}
		return regs[o.Reg]
	}
	for pc := 0; pc < len(ins); {
		in := ins[pc]
		pc++
		if at != nil {
			at[g] = in.Text
		}
		ok := true
		switch in.Op {
		case OpLoad:
			regs[in.Dst] = vars[in.Var].Load()
		case OpStore:
			vars[in.Var].Store(val(in.A))
		case OpMov:
			regs[in.Dst] = val(in.A)
		case OpAdd:
			regs[in.Dst] += val(in.A)
		case OpFadd:
			vars[in.Var].Add(val(in.A))
		case OpCas:
			regs[in.Dst] = 0
			if vars[in.Var].CompareAndSwap(val(in.A), val(in.B)) {
				regs[in.Dst] = 1
			}
		case OpIf:
			if in.cmp(val(in.A), val(in.B)) {
				pc = in.Target
			}
		case OpLock:
			ok = prims.lock(g, in.Var)
		case OpUnlock:
			ok = prims.unlock(g, in.Var)
		case OpSend:
			ok = prims.send(in.Var, val(in.A))
		case OpRecv:
			regs[in.Dst], ok = prims.recv(in.Var)
		}
		if !ok {
			return false
		}
		if yield {
			runtime.Gosched()
		}
	}
	return true
}

// checkStuck ends the trial when every goroutine not finished is waiting:
// none of them can be woken. Called with mu held, after a change to
// blocked or finished.
func (t *trial) checkStuck() {
	if t.blocked > 0 && t.blocked+t.finished == len(t.p.G) && !t.stuck && t.fatal == "" {
		t.stuck = true
		close(t.abort)
	}
}

// wait parks the caller, who holds mu, on w until it is handed what it
// waits for (true) or the trial ends stuck (false).
func (t *trial) wait(w *waiter) bool {
	t.blocked++
	t.checkStuck()
	t.mu.Unlock()
	select {
	case <-w.ready:
		return true
	case <-t.abort:
		return false
	}
}

// wake hands w what it waited for; mu is held.
func (t *trial) wake(w *waiter) {
	t.blocked--
	close(w.ready)
}

func (t *trial) lock(_, m int) bool {
	t.mu.Lock()
	if !t.held[m] {
		t.held[m] = true
		t.mu.Unlock()
		return true
	}
	w := &waiter{ready: make(chan struct{})}
	t.lockQ[m] = append(t.lockQ[m], w)
	return t.wait(w)
}

// unlock hands the mutex to the first waiter, if any; it reports false,
// ending the trial, when the mutex was not locked.
func (t *trial) unlock(g, m int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.held[m] {
		if t.fatal == "" && !t.stuck {
			t.fatal = t.p.G[g].Name + ": unlock of unlocked mutex " + t.p.Locks[m]
			close(t.abort)
		}
		return false
	}
	if q := t.lockQ[m]; len(q) > 0 {
		t.lockQ[m] = q[1:]
		t.wake(q[0]) // it holds the mutex now
		return true
	}
	t.held[m] = false
	return true
}

func (t *trial) send(c int, v int64) bool {
	t.mu.Lock()
	if q := t.recvQ[c]; len(q) > 0 {
		t.recvQ[c] = q[1:]
		q[0].val = v
		t.wake(q[0])
		t.mu.Unlock()
		return true
	}
	if len(t.bufs[c]) < t.p.Caps[c] {
		t.bufs[c] = append(t.bufs[c], v)
		t.mu.Unlock()
		return true
	}
	w := &waiter{ready: make(chan struct{}), val: v}
	t.sendQ[c] = append(t.sendQ[c], w)
	return t.wait(w)
}

func (t *trial) recv(c int) (int64, bool) {
	t.mu.Lock()
	if len(t.bufs[c]) > 0 {
		v := t.bufs[c][0]
		t.bufs[c] = t.bufs[c][1:]
		// A waiting sender's value takes the freed slot.
		if q := t.sendQ[c]; len(q) > 0 {
			t.sendQ[c] = q[1:]
			t.bufs[c] = append(t.bufs[c], q[0].val)
			t.wake(q[0])
		}
		t.mu.Unlock()
		return v, true
	}
	if q := t.sendQ[c]; len(q) > 0 {
		t.sendQ[c] = q[1:]
		v := q[0].val
		t.wake(q[0])
		t.mu.Unlock()
		return v, true
	}
	w := &waiter{ready: make(chan struct{})}
	t.recvQ[c] = append(t.recvQ[c], w)
	if !t.wait(w) {
		return 0, false
	}
	return w.val, true
}

// Tally is how the trials ended, by outcome.
type Tally struct {
	Outcome
	Trials int `json:"trials"`
}

// Trials runs the program n times with real goroutines and counts the
// outcomes, most frequent first. It stops early, returning what it
// counted, when ctx is done. each, if not nil, is called after every
// trial with the number run so far.
func Trials(ctx context.Context, p *Program, n int, yield bool, each func(done int)) ([]Tally, int) {
	counts := map[string]*Tally{}
	var order []*Tally
	run := 0
	for ; run < n && ctx.Err() == nil; run++ {
		o := newTrial(p, yield).run()
		c := counts[o.Label]
		if c == nil {
			c = &Tally{Outcome: o}
			counts[o.Label] = c
			order = append(order, c)
		}
		c.Trials++
		if each != nil {
			each(run + 1)
		}
	}
	out := make([]Tally, len(order))
	for i, c := range order {
		out[i] = *c
	}
	sortTallies(out)
	return out, run
}

// sortTallies orders tallies by count, most first, then by label.
func sortTallies(ts []Tally) {
	slices.SortFunc(ts, func(a, b Tally) int {
		if a.Trials != b.Trials {
			return cmp.Compare(b.Trials, a.Trials)
		}
		return strings.Compare(a.Label, b.Label)
	})
}
