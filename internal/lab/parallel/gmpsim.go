package parallel

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/stampede-dev/stampede/internal/lab"
)

// The scheduler model: a step-by-step SIMULATION of the rules Go's
// runtime schedules goroutines by (src/runtime/proc.go), small enough to
// follow one tick at a time. A tick stands for a millisecond. What is
// simplified: one M per P (a new M is not drawn), system calls always
// block long enough to be retaken, the order Ps are tried in when
// stealing is fixed rather than random, and a spinning M finds work at
// once.

// Rules the model follows, each with where the runtime does it.
var simRules = map[string]string{
	"runnext":    "runqput(pp, gp, next=true): a goroutine made ready by a running one goes to its P's runnext slot, and the one it displaces to the tail of the local queue",
	"overflow":   "runqputslow: a full local queue (256) moves half of itself, with the new goroutine, to the global queue in one batch",
	"local":      "findRunnable → runqget: a P runs runnext first, then the head of its local queue",
	"fairness":   "schedule → findRunnable: every 61st schedule (pp.schedtick%61 == 0) a P takes from the global queue first, so it cannot starve",
	"global":     "findRunnable → globrunqget: a P with an empty local queue takes a batch from the global queue",
	"steal":      "findRunnable → stealWork → runqsteal → runqgrab: an idle P takes half of another P's local queue",
	"stealnext":  "runqgrab: with nothing in a victim's local queue, its runnext may be stolen too (the runtime waits a few µs first, in case the owner is about to run it)",
	"wakep":      "wakep: a goroutine became ready while a P was idle, so an M is woken to spin on that P and look for work",
	"idle":       "findRunnable → stopm: no work anywhere; the M stops spinning and parks, and its P goes to the idle list",
	"syscall":    "entersyscall: the goroutine's M blocks in the kernel, still holding its P (in state _Psyscall)",
	"handoff":    "sysmon → retake → handoffp: a P held in a system call while work waits is taken and handed to another M",
	"exitfast":   "exitsyscall → exitsyscallfast: the system call returned and the goroutine's old P is free, so it carries on",
	"exitother":  "exitsyscall → exitsyscallfast: the old P is busy; another idle P is taken",
	"exitglobal": "exitsyscall0: no P is free, so the goroutine goes to the global queue and its M parks",
	"preempt":    "sysmon → retake → preemptone: a goroutine that has run 10 ms (forcePreemptNS) is preempted; gopreempt_m puts it on the global queue",
	"exit":       "goexit0: the goroutine ends and its P schedules again",
}

// SimAction is one thing a simulated goroutine does.
type SimAction struct {
	Kind  string   // "run", "spawn" or "syscall"
	Ticks int      // run and syscall
	Child *SimSpec // spawn
	Count int      // spawn: how many
}

// SimSpec describes a simulated goroutine.
type SimSpec struct {
	Name    string
	Actions []SimAction
}

func simRun(n int) SimAction     { return SimAction{Kind: "run", Ticks: n} }
func simSyscall(n int) SimAction { return SimAction{Kind: "syscall", Ticks: n} }
func simSpawn(n int, s *SimSpec) SimAction {
	return SimAction{Kind: "spawn", Count: n, Child: s}
}

// SimScenarios are the model's built-in workloads.
var SimScenarios = map[string]SimSpec{
	"burst": {Name: "main", Actions: []SimAction{simSpawn(6, &SimSpec{Name: "w", Actions: []SimAction{simRun(3)}}), simRun(2)}},
	"syscall": {Name: "main", Actions: []SimAction{simSpawn(4, &SimSpec{Name: "w", Actions: []SimAction{simRun(3)}}),
		simSpawn(1, &SimSpec{Name: "sys", Actions: []SimAction{simRun(1), simSyscall(5), simRun(1)}}), simRun(1)}},
	"spin": {Name: "main", Actions: []SimAction{simSpawn(1, &SimSpec{Name: "spin", Actions: []SimAction{simRun(25)}}),
		simSpawn(3, &SimSpec{Name: "w", Actions: []SimAction{simRun(4)}}), simRun(1)}},
	"all": {Name: "main", Actions: []SimAction{simSpawn(1, &SimSpec{Name: "spin", Actions: []SimAction{simRun(22)}}),
		simSpawn(6, &SimSpec{Name: "w", Actions: []SimAction{simRun(3)}}),
		simSpawn(1, &SimSpec{Name: "sys", Actions: []SimAction{simRun(1), simSyscall(6), simRun(2)}}), simRun(2)}},
}

// SimEvent is one thing that happened in a tick, and the rule behind it.
type SimEvent struct {
	P    int    `json:"p"` // -1 for none in particular
	Text string `json:"text"`
	Rule string `json:"rule"`
	// Runs is the goroutine P starts running, when the event is a choice
	// of schedule.
	Runs string `json:"runs,omitempty"`
}

// SimP is one P at the end of a tick.
type SimP struct {
	State     string   `json:"state"` // running, idle, syscall
	G         string   `json:"g"`     // the goroutine it runs, or in a syscall
	RunFor    int      `json:"runFor"`
	Runnext   string   `json:"runnext"`
	Local     []string `json:"local"`
	Schedtick int      `json:"schedtick"`
}

// SimTick is the state after one tick, with what happened in it.
type SimTick struct {
	Tick     int        `json:"tick"`
	Ps       []SimP     `json:"ps"`
	Global   []string   `json:"global"`
	Syscalls []string   `json:"syscalls"` // goroutines in a system call without a P
	Done     int        `json:"done"`
	Events   []SimEvent `json:"events"`
}

type simG struct {
	name     string
	actions  []SimAction
	at, left int // current action and what is left of it
	spawned  int
	until    int // end of its system call
}

type simP struct {
	g         *simG
	runFor    int
	runnext   *simG
	local     []*simG
	schedtick int
	syscall   *simG // a goroutine in a system call still holding this P
}

type sim struct {
	ps     []*simP
	global []*simG
	inSys  []*simG // in a system call, without a P
	cap    int
	names  map[string]int
	done   int
	total  int
	events []SimEvent
}

func (s *sim) event(p int, rule, format string, args ...any) {
	s.events = append(s.events, SimEvent{P: p, Text: fmt.Sprintf(format, args...), Rule: rule})
}

func (s *sim) newG(spec *SimSpec) *simG {
	s.names[spec.Name]++
	s.total++
	g := &simG{name: fmt.Sprintf("%s%d", spec.Name, s.names[spec.Name]), actions: spec.Actions}
	if spec.Name == "main" {
		g.name = "main"
	}
	g.left = g.actions[0].Ticks
	return g
}

// runqput puts g on p's runnext, kicking the old runnext to the local
// queue's tail, and moves half the queue to the global one when full.
func (s *sim) runqput(i int, g *simG) {
	p := s.ps[i]
	old := p.runnext
	p.runnext = g
	if old == nil {
		s.event(i, "runnext", "%s goes to P%d's runnext", g.name, i)
		return
	}
	if len(p.local) < s.cap {
		p.local = append(p.local, old)
		s.event(i, "runnext", "%s goes to P%d's runnext; %s, displaced, to the tail of its local queue", g.name, i, old.name)
		return
	}
	half := len(p.local) / 2
	moved := append(append([]*simG{}, p.local[:half]...), old)
	p.local = append([]*simG{}, p.local[half:]...)
	s.global = append(s.global, moved...)
	s.event(i, "overflow", "P%d's local queue is full (%d): %s move to the global queue", i, s.cap, names(moved))
}

func names(gs []*simG) string {
	n := make([]string, len(gs))
	for i, g := range gs {
		n[i] = g.name
	}
	return strings.Join(n, ", ")
}

// work reports whether any goroutine is waiting for a P.
func (s *sim) work() bool {
	if len(s.global) > 0 {
		return true
	}
	for _, p := range s.ps {
		if p.runnext != nil || len(p.local) > 0 {
			return true
		}
	}
	return false
}

// schedule finds the next goroutine for an idle P i, by the runtime's
// order.
func (s *sim) schedule(i int) {
	p := s.ps[i]
	// take gives P the goroutine and says why; inherit is true when it
	// runs in the time slice of the one that readied it (runnext).
	take := func(g *simG, inherit bool, rule, format string, args ...any) {
		p.g, p.runFor = g, 0
		if !inherit {
			p.schedtick++
		}
		s.event(i, rule, format, args...)
		s.events[len(s.events)-1].Runs = g.name
	}
	if p.schedtick%61 == 0 && len(s.global) > 0 {
		n := p.schedtick
		g := s.global[0]
		s.global = s.global[1:]
		take(g, false, "fairness", "P%d has scheduled %d times, a multiple of 61: it takes %s from the global queue before its own", i, n, g.name)
		return
	}
	if g := p.runnext; g != nil {
		p.runnext = nil
		take(g, true, "local", "P%d runs %s from runnext", i, g.name)
		return
	}
	if len(p.local) > 0 {
		g := p.local[0]
		p.local = p.local[1:]
		take(g, false, "local", "P%d runs %s from the head of its local queue", i, g.name)
		return
	}
	if len(s.global) > 0 {
		n := min(len(s.global), len(s.global)/len(s.ps)+1, s.cap/2+1)
		batch := s.global[:n]
		s.global = s.global[n:]
		p.local = append(p.local, batch[1:]...)
		take(batch[0], false, "global", "P%d takes %s from the global queue and runs %s", i, names(batch), batch[0].name)
		return
	}
	for k := 1; k < len(s.ps); k++ {
		v := (i + k) % len(s.ps)
		victim := s.ps[v]
		if n := len(victim.local); n > 0 {
			half := (n + 1) / 2
			stolen := victim.local[:half]
			victim.local = append([]*simG{}, victim.local[half:]...)
			p.local = append(p.local, stolen[1:]...)
			take(stolen[0], false, "steal", "P%d steals %s, half of P%d's local queue, and runs %s", i, names(stolen), v, stolen[0].name)
			return
		}
	}
	for k := 1; k < len(s.ps); k++ {
		v := (i + k) % len(s.ps)
		if g := s.ps[v].runnext; g != nil && s.ps[v].g != nil {
			s.ps[v].runnext = nil
			take(g, false, "stealnext", "P%d steals %s from P%d's runnext", i, g.name, v)
			return
		}
	}
}

// Simulate runs spec on procs Ps with local queues of cap goroutines
// until every goroutine has ended or maxTicks pass.
func Simulate(spec SimSpec, procs, cap, maxTicks int) []SimTick {
	s := &sim{cap: cap, names: map[string]int{}}
	for range procs {
		s.ps = append(s.ps, &simP{})
	}
	main := s.newG(&spec)
	s.ps[0].g = main
	s.ps[0].schedtick = 1
	s.event(0, "local", "P0 runs main")
	s.events[0].Runs = "main"
	var ticks []SimTick
	ticks = append(ticks, s.snapshot(0))
	for t := 1; t <= maxTicks && s.done < s.total; t++ {
		s.events = nil
		// System calls that return now.
		var still []*simG
		for _, g := range s.inSys {
			if g.until > t {
				still = append(still, g)
				continue
			}
			s.exitSyscall(g, nil, -1)
		}
		s.inSys = still
		for i, p := range s.ps {
			if g := p.syscall; g != nil && g.until <= t {
				p.syscall = nil
				s.exitSyscall(g, p, i)
			}
		}
		// sysmon.
		for i, p := range s.ps {
			if p.g != nil && p.runFor >= 10 {
				g := p.g
				p.g = nil
				s.global = append(s.global, g)
				s.event(i, "preempt", "%s has run %d ms on P%d: preempted, to the global queue", g.name, p.runFor, i)
			}
			if g := p.syscall; g != nil && s.work() {
				p.syscall = nil
				s.inSys = append(s.inSys, g)
				s.event(i, "handoff", "%s is still in its system call and work waits: P%d is handed to another M", g.name, i)
			}
		}
		// Idle Ps look for work.
		for i, p := range s.ps {
			if p.g == nil && p.syscall == nil {
				s.schedule(i)
			}
		}
		// Every running goroutine does one tick.
		for i, p := range s.ps {
			if p.g != nil {
				s.step(i, t)
			}
		}
		ticks = append(ticks, s.snapshot(t))
	}
	return ticks
}

func (s *sim) exitSyscall(g *simG, own *simP, i int) {
	if g.at == len(g.actions) {
		// The system call was its last act.
		s.done++
		s.event(i, "exit", "%s's system call returned, and it ends", g.name)
		return
	}
	g.left = g.actions[g.at].Ticks
	if own != nil && own.g == nil {
		own.g, own.runFor = g, 0
		s.event(i, "exitfast", "%s's system call returned; its P%d was still its own", g.name, i)
		return
	}
	for k, p := range s.ps {
		if p.g == nil && p.syscall == nil && p.runnext == nil && len(p.local) == 0 {
			p.g, p.runFor = g, 0
			s.event(k, "exitother", "%s's system call returned; it takes idle P%d", g.name, k)
			return
		}
	}
	s.global = append(s.global, g)
	s.event(-1, "exitglobal", "%s's system call returned with no P free: it waits in the global queue", g.name)
}

// step runs one tick of the goroutine on P i.
func (s *sim) step(i, t int) {
	p := s.ps[i]
	g := p.g
	a := g.actions[g.at]
	p.runFor++
	switch a.Kind {
	case "run":
		g.left--
		if g.left > 0 {
			return
		}
	case "spawn":
		c := s.newG(a.Child)
		s.runqput(i, c)
		for k, q := range s.ps {
			if k != i && q.g == nil && q.syscall == nil {
				s.event(k, "wakep", "P%d is idle: an M is woken to spin on it", k)
				break
			}
		}
		g.spawned++
		if g.spawned < a.Count {
			return
		}
		g.spawned = 0
	case "syscall":
		g.until = t + a.Ticks
		g.at++
		p.g, p.syscall = nil, g
		s.event(i, "syscall", "%s enters a %d ms system call on P%d", g.name, a.Ticks, i)
		return
	}
	g.at++
	if g.at == len(g.actions) {
		p.g = nil
		s.done++
		s.event(i, "exit", "%s ends", g.name)
		return
	}
	g.left = g.actions[g.at].Ticks
}

func (s *sim) snapshot(t int) SimTick {
	st := SimTick{Tick: t, Global: gnames(s.global), Syscalls: gnames(s.inSys), Done: s.done, Events: s.events}
	for _, p := range s.ps {
		sp := SimP{State: "idle", Runnext: "", Local: gnames(p.local), Schedtick: p.schedtick, RunFor: p.runFor}
		switch {
		case p.g != nil:
			sp.State, sp.G = "running", p.g.name
		case p.syscall != nil:
			sp.State, sp.G = "syscall", p.syscall.name
		}
		if p.runnext != nil {
			sp.Runnext = p.runnext.name
		}
		st.Ps = append(st.Ps, sp)
	}
	if st.Events == nil {
		st.Events = []SimEvent{}
	}
	return st
}

func gnames(gs []*simG) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.name
	}
	return out
}

// GMPSim is the experiment that runs the model.
type GMPSim struct{}

// NewGMPSim returns the scheduler model experiment.
func NewGMPSim() *GMPSim { return &GMPSim{} }

var _ lab.Experiment = (*GMPSim)(nil)

// Info describes the experiment.
func (*GMPSim) Info() lab.Info {
	return lab.Info{
		ID: "gmp-sim", Chapter: 6, Simulation: true,
		Title:   "Go's scheduler, simulated one tick at a time",
		Summary: "A model of the runtime's scheduling rules (runnext, local and global run queues, the 61st tick, stealing half, hand-off on a system call, preemption after 10 ms) played on a small workload.",
		Params: []lab.Param{
			{Name: "scenario", Label: "Workload", Kind: lab.Choice, Default: "all", Choices: []string{"all", "burst", "syscall", "spin"}},
			{Name: "procs", Label: "Ps (GOMAXPROCS)", Kind: lab.Int, Default: 2, Min: 1, Max: 4},
			{Name: "queue", Label: "Local queue size", Help: "256 in the runtime; make it small to see a full queue spill into the global one",
				Kind: lab.Int, Default: 256, Min: 2, Max: 256},
		},
	}
}

// SimResult is the model's run.
type SimResult struct {
	Scenario string            `json:"scenario"`
	Procs    int               `json:"procs"`
	Queue    int               `json:"queue"`
	Ticks    []SimTick         `json:"ticks"`
	Rules    map[string]string `json:"rules"`
}

// Run plays the model.
func (*GMPSim) Run(_ context.Context, p lab.Values, emit func(lab.Event)) error {
	spec := SimScenarios[p.String("scenario")]
	emit(lab.Result(SimResult{Scenario: p.String("scenario"), Procs: p.Int("procs"), Queue: p.Int("queue"),
		Ticks: Simulate(spec, p.Int("procs"), p.Int("queue"), 300), Rules: simRules}))
	return nil
}

// WriteText prints each tick's events.
func (r SimResult) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "SIMULATION (a model of runtime/proc.go's rules, not this machine): %s on %d Ps, local queues of %d.\n", r.Scenario, r.Procs, r.Queue)
	for _, t := range r.Ticks {
		for _, e := range t.Events {
			fmt.Fprintf(w, "%4d ms  %-10s %s\n", t.Tick, e.Rule, e.Text)
		}
	}
	last := r.Ticks[len(r.Ticks)-1]
	_, err := fmt.Fprintf(w, "%d goroutines ended by %d ms.\n", last.Done, last.Tick)
	return err
}
