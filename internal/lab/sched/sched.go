// Package sched is a CPU scheduler simulator, the lab's second chapter.
// It plays a workload of tasks through one of eight classic algorithms
// tick by tick and records, for every tick, which task ran and what sat
// in the ready and waiting queues, so the page can step through it.
//
// It is a simulation on purpose: the kernel's real scheduler cannot be
// switched to FCFS or lottery to watch. Results are deterministic: the
// same workload, configuration and seed give the same result.
//
// Conventions, as in most textbooks: time is in whole ticks; a lower
// priority number is more urgent; ties go to the task that entered the
// ready queue first; tasks arriving at a tick join the queue before a task
// preempted at that tick; waiting time is time spent in the ready queue.
package sched

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Algorithms, by the names the lab and the API use.
const (
	FCFS         = "fcfs"    // first come, first served
	SJF          = "sjf"     // shortest job first, non-preemptive
	SRTF         = "srtf"    // shortest remaining time first
	Priority     = "prio"    // priority, non-preemptive
	PriorityPre  = "prio-p"  // priority, preemptive
	RoundRobin   = "rr"      // round robin
	MLFQ         = "mlfq"    // multi-level feedback queue
	Lottery      = "lottery" // proportional share by tickets
	maxSimTicks  = 20_000
	defaultQuant = 2
)

// Algorithms lists every algorithm name.
func Algorithms() []string {
	return []string{FCFS, SJF, SRTF, Priority, PriorityPre, RoundRobin, MLFQ, Lottery}
}

// Task is one job of a workload. Burst is its total CPU time. With
// IOEvery > 0 it blocks for IOTime ticks after every IOEvery ticks of CPU
// (unless it has just finished).
type Task struct {
	Name     string `json:"name"`
	Arrival  int    `json:"arrival"`
	Burst    int    `json:"burst"`
	Priority int    `json:"priority"`
	Tickets  int    `json:"tickets"`
	IOEvery  int    `json:"ioEvery"`
	IOTime   int    `json:"ioTime"`
}

// Config picks the algorithm and its settings.
type Config struct {
	Algorithm string `json:"algorithm"`
	// Quantum is the time slice of rr and lottery.
	Quantum int `json:"quantum"`
	// Aging, for the priority algorithms: every Aging ticks in the ready
	// queue make a task one step more urgent, until it runs. 0 is off.
	Aging int `json:"aging"`
	// Quanta are MLFQ's time allotments per level, top level first; a task
	// that uses up its level's allotment (in one go or across several
	// runs) moves down one level.
	Quanta []int `json:"quanta"`
	// Boost moves every task back to MLFQ's top level every Boost ticks.
	// 0 is off.
	Boost int `json:"boost"`
	// Slice is MLFQ's time slice within a level: a task that has run this
	// long goes to the back of its level's queue, and keeps what it has
	// used of the level's allotment. 0: a task keeps the CPU until its
	// allotment is spent (the slice is the allotment).
	Slice int `json:"slice"`
	// Seed drives the lottery.
	Seed uint64 `json:"seed"`
}

// Tick is the state during one tick.
type Tick struct {
	T       int        `json:"t"`
	Running string     `json:"running"` // "" when idle
	Level   int        `json:"level"`   // MLFQ level of the running task
	Ready   [][]string `json:"ready"`   // per level, head first; one level but for MLFQ
	Waiting []string   `json:"waiting"` // blocked on I/O
	// Draw, for the lottery, is the draw that dispatched a task at this
	// tick: the winning ticket among all the ready tasks' tickets.
	Draw *Draw `json:"draw,omitempty"`
}

// Draw is one lottery draw: ticket Ticket (from 0) of Total won it for
// Winner. The ready tasks hold the tickets in turn, in queue order: the
// first Tickets[0] are Holders[0]'s, and so on.
type Draw struct {
	Ticket  int      `json:"ticket"`
	Total   int      `json:"total"`
	Winner  string   `json:"winner"`
	Holders []string `json:"holders"`
	Tickets []int    `json:"tickets"`
}

// Slice is a stretch of ticks one task (or nobody) ran, for the Gantt chart.
type Slice struct {
	Task  string `json:"task"` // "" when idle
	Start int    `json:"start"`
	End   int    `json:"end"`
	Level int    `json:"level"`
}

// Stats are one task's times.
type Stats struct {
	Name       string `json:"name"`
	Arrival    int    `json:"arrival"`
	Burst      int    `json:"burst"`
	FirstRun   int    `json:"firstRun"`
	Finish     int    `json:"finish"`
	Waiting    int    `json:"waiting"`
	Turnaround int    `json:"turnaround"`
	Response   int    `json:"response"`
}

// Result is one simulated run.
type Result struct {
	Config        Config  `json:"config"`
	Ticks         []Tick  `json:"ticks"`
	Slices        []Slice `json:"slices"`
	Tasks         []Stats `json:"tasks"`
	AvgWaiting    float64 `json:"avgWaiting"`
	AvgTurnaround float64 `json:"avgTurnaround"`
	AvgResponse   float64 `json:"avgResponse"`
	// Switches counts dispatches of a task other than the one that ran
	// the tick before.
	Switches int `json:"switches"`
}

type state struct {
	Task
	remaining, sinceIO, ioLeft int
	started                    bool
	firstRun, finish, waited   int
	level, used, prio, age     int
	arrived, done              bool
}

// Simulate plays tasks through cfg.
func Simulate(tasks []Task, cfg Config) (Result, error) {
	if err := Validate(tasks); err != nil {
		return Result{}, err
	}
	if !slices.Contains(Algorithms(), cfg.Algorithm) {
		return Result{}, fmt.Errorf("unknown algorithm %q", cfg.Algorithm)
	}
	if cfg.Quantum <= 0 {
		cfg.Quantum = defaultQuant
	}
	if cfg.Algorithm != MLFQ || len(cfg.Quanta) == 0 {
		if cfg.Algorithm == MLFQ {
			cfg.Quanta = []int{2, 4, 8}
		} else {
			cfg.Quanta = nil
		}
	}
	for _, q := range cfg.Quanta {
		if q <= 0 {
			return Result{}, fmt.Errorf("MLFQ quanta must be positive, got %d", q)
		}
	}
	levels := max(1, len(cfg.Quanta))
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))

	st := make([]*state, len(tasks))
	for i, t := range tasks {
		st[i] = &state{Task: t, remaining: t.Burst, prio: t.Priority}
	}
	queues := make([][]int, levels) // ready queues of task indices
	var waiting []int
	running := -1
	slice := 0     // ticks the running task has had since dispatch
	spent := false // the running MLFQ task used up its allotment
	prev := -1
	res := Result{Config: cfg}
	left := len(tasks)

	enqueue := func(i int) { queues[st[i].level] = append(queues[st[i].level], i) }
	nextBurst := func(i int) int {
		s := st[i]
		if s.IOEvery > 0 {
			return min(s.remaining, s.IOEvery-s.sinceIO)
		}
		return s.remaining
	}
	// better reports whether candidate i should run before j under the
	// preemptive rules (strictly better; ties keep the running task).
	better := func(i, j int) bool {
		switch cfg.Algorithm {
		case SRTF:
			return nextBurst(i) < nextBurst(j)
		case PriorityPre:
			return st[i].prio < st[j].prio
		case MLFQ:
			return st[i].level < st[j].level
		}
		return false
	}

	for t := 0; left > 0; t++ {
		if t > maxSimTicks {
			return Result{}, fmt.Errorf("simulation ran past %d ticks", maxSimTicks)
		}
		// 1. Arrivals, then tasks back from I/O.
		for i, s := range st {
			if !s.arrived && s.Arrival == t {
				s.arrived = true
				enqueue(i)
			}
		}
		for _, i := range slices.Clone(waiting) {
			if st[i].ioLeft == 0 {
				waiting = slices.DeleteFunc(waiting, func(x int) bool { return x == i })
				enqueue(i)
			}
		}
		// 2. MLFQ priority boost.
		if cfg.Algorithm == MLFQ && cfg.Boost > 0 && t > 0 && t%cfg.Boost == 0 {
			var all []int
			for l := range queues {
				all = append(all, queues[l]...)
				queues[l] = nil
			}
			queues[0] = all
			for _, s := range st {
				s.level, s.used = 0, 0
			}
		}
		// 3. Preempt the running task when its slice is spent or a better
		// task is ready.
		if running >= 0 {
			s := st[running]
			preempt := false
			switch cfg.Algorithm {
			case RoundRobin, Lottery:
				preempt = slice >= cfg.Quantum
			case MLFQ:
				preempt = spent || (cfg.Slice > 0 && slice >= cfg.Slice)
			}
			if !preempt {
				for l := range queues {
					for _, i := range queues[l] {
						if better(i, running) {
							preempt = true
						}
					}
				}
			}
			if preempt {
				s.prio, s.age = s.Priority, 0 // aging starts over
				enqueue(running)
				running = -1
			}
		}
		// 4. Dispatch.
		var draw *Draw
		if running < 0 {
			running, draw = pick(cfg, st, queues, nextBurst, rng)
			if running >= 0 {
				s := st[running]
				queues[s.level] = slices.DeleteFunc(queues[s.level], func(x int) bool { return x == running })
				slice = 0
				if !s.started {
					s.started, s.firstRun = true, t
				}
			}
		}
		if running >= 0 && running != prev {
			res.Switches++
		}
		prev = running
		// 5. Record the tick.
		tick := Tick{T: t, Ready: make([][]string, levels), Waiting: names(st, waiting), Draw: draw}
		for l := range queues {
			tick.Ready[l] = names(st, queues[l])
		}
		if running >= 0 {
			tick.Running, tick.Level = st[running].Name, st[running].level
		}
		res.Ticks = append(res.Ticks, tick)
		if n := len(res.Slices); n > 0 && res.Slices[n-1].Task == tick.Running && res.Slices[n-1].Level == tick.Level && res.Slices[n-1].End == t {
			res.Slices[n-1].End = t + 1
		} else {
			res.Slices = append(res.Slices, Slice{Task: tick.Running, Start: t, End: t + 1, Level: tick.Level})
		}
		// 6. Run the tick.
		for _, i := range waiting {
			st[i].ioLeft--
		}
		for l := range queues {
			for _, i := range queues[l] {
				s := st[i]
				s.waited++
				if cfg.Aging > 0 {
					if s.age++; s.age >= cfg.Aging {
						s.age = 0
						s.prio = max(0, s.prio-1)
					}
				}
			}
		}
		if running >= 0 {
			s := st[running]
			s.remaining--
			s.sinceIO++
			s.used++
			slice++
			switch {
			case s.remaining == 0:
				s.done, s.finish = true, t+1
				left--
				running = -1
			case s.IOEvery > 0 && s.sinceIO == s.IOEvery:
				// MLFQ keeps counting the allotment across the I/O.
				s.sinceIO, s.ioLeft = 0, s.IOTime
				s.prio, s.age = s.Priority, 0
				waiting = append(waiting, running)
				running = -1
			}
			// MLFQ demotes a task whose allotment is spent, whether it
			// keeps the CPU to the end of a slice or gave it up for I/O.
			if spent = cfg.Algorithm == MLFQ && !s.done && s.used >= cfg.Quanta[s.level]; spent {
				s.used = 0
				s.level = min(s.level+1, levels-1)
			}
		}
	}
	var w, ta, r float64
	for _, s := range st {
		ps := Stats{Name: s.Name, Arrival: s.Arrival, Burst: s.Burst, FirstRun: s.firstRun, Finish: s.finish,
			Waiting: s.waited, Turnaround: s.finish - s.Arrival, Response: s.firstRun - s.Arrival}
		res.Tasks = append(res.Tasks, ps)
		w, ta, r = w+float64(ps.Waiting), ta+float64(ps.Turnaround), r+float64(ps.Response)
	}
	n := float64(len(st))
	res.AvgWaiting, res.AvgTurnaround, res.AvgResponse = w/n, ta/n, r/n
	return res, nil
}

// pick chooses the next task to run from the ready queues, or -1, and
// for the lottery the draw that chose it.
func pick(cfg Config, st []*state, queues [][]int, nextBurst func(int) int, rng *rand.Rand) (int, *Draw) {
	var ready []int // in queue order: the tie-breaker
	for _, q := range queues {
		if cfg.Algorithm == MLFQ && len(q) > 0 {
			return q[0], nil // head of the highest non-empty level
		}
		ready = append(ready, q...)
	}
	if len(ready) == 0 {
		return -1, nil
	}
	best := ready[0]
	switch cfg.Algorithm {
	case SJF, SRTF:
		for _, i := range ready {
			if nextBurst(i) < nextBurst(best) {
				best = i
			}
		}
	case Priority, PriorityPre:
		for _, i := range ready {
			if st[i].prio < st[best].prio {
				best = i
			}
		}
	case Lottery:
		total := 0
		for _, i := range ready {
			total += st[i].Tickets
		}
		d := &Draw{Ticket: rng.IntN(total), Total: total, Holders: names(st, ready)}
		for _, i := range ready {
			d.Tickets = append(d.Tickets, st[i].Tickets)
		}
		left := d.Ticket
		for _, i := range ready {
			if left < st[i].Tickets {
				d.Winner = st[i].Name
				return i, d
			}
			left -= st[i].Tickets
		}
	}
	return best, nil
}

func names(st []*state, idx []int) []string {
	out := make([]string, len(idx))
	for k, i := range idx {
		out[k] = st[i].Name
	}
	return out
}
