package parallel

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// runs lists, in order, the goroutines P i was given by schedule.
func runs(ticks []SimTick, i int) []string {
	var out []string
	for _, t := range ticks {
		for _, e := range t.Events {
			if e.P == i && e.Runs != "" {
				out = append(out, e.Runs)
			}
		}
	}
	return out
}

func eventsOf(ticks []SimTick, rule string) []string {
	var out []string
	for _, t := range ticks {
		for _, e := range t.Events {
			if e.Rule == rule {
				out = append(out, fmt.Sprintf("%d: %s", t.Tick, e.Text))
			}
		}
	}
	return out
}

// One P: each new goroutine takes runnext and pushes the previous one to
// the local queue, so the newest runs first and the rest in order.
func TestSimRunnextIsLIFOThenFIFO(t *testing.T) {
	ticks := Simulate(SimScenarios["burst"], 1, 256, 300)
	after6 := ticks[6].Ps[0]
	if after6.Runnext != "w6" || strings.Join(after6.Local, " ") != "w1 w2 w3 w4 w5" {
		t.Fatalf("after six spawns: runnext %q, local %v", after6.Runnext, after6.Local)
	}
	if got := strings.Join(runs(ticks, 0), " "); got != "main w6 w1 w2 w3 w4 w5" {
		t.Fatalf("P0 ran %s", got)
	}
	last := ticks[len(ticks)-1]
	// main: 6 ticks spawning and 2 running; then six workers of 3 ticks.
	if last.Done != 7 || last.Tick != 8+18 {
		t.Fatalf("ended at tick %d with %d done", last.Tick, last.Done)
	}
}

// A full local queue of 2: the fourth spawn moves half the queue (w1)
// and the displaced runnext (w3) to the global queue.
func TestSimOverflowMovesHalfToGlobal(t *testing.T) {
	ticks := Simulate(SimScenarios["burst"], 1, 2, 300)
	after4 := ticks[4]
	if after4.Ps[0].Runnext != "w4" || strings.Join(after4.Ps[0].Local, " ") != "w2" || strings.Join(after4.Global, " ") != "w1 w3" {
		t.Fatalf("after four spawns: %+v, global %v", after4.Ps[0], after4.Global)
	}
	if ev := eventsOf(ticks, "overflow"); len(ev) == 0 || ev[0] != "4: P0's local queue is full (2): w1, w3 move to the global queue" {
		t.Fatalf("overflow events %q", ev)
	}
}

// Two Ps: P1 is woken when main's first goroutine is queued, and steals
// it from P0's runnext; later ones it steals half a queue at a time.
func TestSimIdlePSteals(t *testing.T) {
	ticks := Simulate(SimScenarios["burst"], 2, 256, 300)
	if ev := eventsOf(ticks, "wakep"); len(ev) == 0 || ev[0] != "1: P1 is idle: an M is woken to spin on it" {
		t.Fatalf("wakep %q", ev)
	}
	if ev := eventsOf(ticks, "stealnext"); len(ev) == 0 || ev[0] != "2: P1 steals w1 from P0's runnext" {
		t.Fatalf("stealnext %q", ev)
	}
	all := append(runs(ticks, 0), runs(ticks, 1)...)
	slices.Sort(all)
	if strings.Join(all, " ") != "main w1 w2 w3 w4 w5 w6" {
		t.Fatalf("ran %v: every goroutine exactly once", all)
	}
	if last := ticks[len(ticks)-1]; last.Done != 7 {
		t.Fatalf("%d done", last.Done)
	}
}

// A goroutine that runs 10 ms is preempted to the global queue.
func TestSimPreemptsAfter10ms(t *testing.T) {
	ticks := Simulate(SimScenarios["spin"], 1, 256, 300)
	ev := eventsOf(ticks, "preempt")
	if len(ev) < 2 || !strings.HasSuffix(ev[0], ": spin1 has run 10 ms on P0: preempted, to the global queue") {
		t.Fatalf("preemptions %q", ev)
	}
}

// A system call with work waiting loses its P; when it returns with every
// P busy, the goroutine waits in the global queue.
func TestSimSyscallHandsOffItsP(t *testing.T) {
	ticks := Simulate(SimScenarios["syscall"], 1, 256, 300)
	if ev := eventsOf(ticks, "handoff"); len(ev) != 1 || !strings.Contains(ev[0], "sys1 is still in its system call and work waits: P0 is handed to another M") {
		t.Fatalf("handoffs %q", ev)
	}
	ret := append(eventsOf(ticks, "exitglobal"), eventsOf(ticks, "exitother")...)
	if len(ret) != 1 {
		t.Fatalf("returns %q", ret)
	}
}

// Every scenario ends, every goroutine once, under any settings, and no
// goroutine is ever in two places.
func TestSimEveryScenarioEnds(t *testing.T) {
	for name, spec := range SimScenarios {
		for procs := 1; procs <= 4; procs++ {
			for _, q := range []int{2, 3, 256} {
				ticks := Simulate(spec, procs, q, 300)
				last := ticks[len(ticks)-1]
				want := 1
				for _, a := range spec.Actions {
					want += a.Count
				}
				if last.Done != want {
					t.Errorf("%s, %d Ps, queue %d: %d of %d done by tick %d", name, procs, q, last.Done, want, last.Tick)
				}
				for _, tk := range ticks {
					seen := map[string]bool{}
					var all []string
					for _, p := range tk.Ps {
						if p.G != "" {
							all = append(all, p.G)
						}
						if p.Runnext != "" {
							all = append(all, p.Runnext)
						}
						all = append(all, p.Local...)
						if len(p.Local) > q {
							t.Fatalf("%s: local queue of %d over %d", name, len(p.Local), q)
						}
					}
					all = append(append(all, tk.Global...), tk.Syscalls...)
					for _, g := range all {
						if seen[g] {
							t.Fatalf("%s, %d Ps, queue %d, tick %d: %s twice: %+v", name, procs, q, tk.Tick, g, tk)
						}
						seen[g] = true
					}
				}
			}
		}
	}
}
