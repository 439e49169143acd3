package parallel

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"golang.org/x/exp/trace"
)

// Slice is a stretch of time in which one goroutine ran on one P, in
// microseconds from the start of the first task.
type Slice struct {
	P     int     `json:"p"`
	Task  int     `json:"task"` // the index of its task in Lanes.Names, or -1 for any other goroutine
	G     int64   `json:"g"`
	Start float64 `json:"start"`
	End   float64 `json:"end"`
}

// Lanes is what a runtime/trace of one run shows: who ran on which P,
// and when.
type Lanes struct {
	Procs int `json:"procs"`
	// Names are the tasks, in the order their regions began.
	Names  []string `json:"names"`
	Slices []Slice  `json:"slices"`
	// SpanUS is from the first task's start to the last task's end.
	SpanUS float64 `json:"spanUs"`
	// Moved counts the tasks that ran on more than one P: the trace shows
	// that a goroutine moved, not whether it was stolen or taken from the
	// global run queue.
	Moved int `json:"moved"`
	// Dropped counts slices left out to keep the picture small.
	Dropped int         `json:"dropped"`
	Sched   SchedCounts `json:"sched"`
}

// SchedCounts are scheduler events a trace shows, over the whole run.
type SchedCounts struct {
	// Created counts goroutines created while tracing; RanElsewhere those
	// whose first run was on another P than the one that created them.
	Created      int `json:"created"`
	RanElsewhere int `json:"ranElsewhere"`
	// LostP counts system calls that blocked long enough for the P to be
	// handed to another thread: the goroutine came back runnable, without
	// a P, instead of running on.
	LostP int `json:"lostP"`
	// Preempted counts goroutines stopped by the runtime for running too
	// long (the trace's reason "preempted"); PreemptedByTask splits them
	// by task, as Lanes.Names.
	Preempted       int   `json:"preempted"`
	PreemptedByTask []int `json:"preemptedByTask"`
}

// maxSlices bounds what a run sends to the page.
const maxSlices = 4000

// ReadLanes reads a trace written by runtime/trace and returns, for every
// goroutine, the intervals it ran and on which P. A goroutine's task is
// the first region it begins; the picture spans the first region's start
// to the last region's end.
func ReadLanes(r io.Reader, procs int) (Lanes, error) {
	tr, err := trace.NewReader(r)
	if err != nil {
		return Lanes{}, fmt.Errorf("read trace: %w", err)
	}
	type open struct {
		at trace.Time
		p  trace.ProcID
	}
	running := map[trace.GoID]open{}
	task := map[trace.GoID]int{}
	names := map[string]int{}
	var l Lanes
	createdOn := map[trace.GoID]trace.ProcID{} // until its first run
	var raw []struct {
		g          trace.GoID
		p          trace.ProcID
		start, end trace.Time
	}
	var first, last trace.Time
	for {
		e, err := tr.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Lanes{}, fmt.Errorf("read trace: %w", err)
		}
		switch e.Kind() {
		case trace.EventRegionBegin:
			name := e.Region().Type
			i, ok := names[name]
			if !ok {
				i = len(l.Names)
				names[name] = i
				l.Names = append(l.Names, name)
			}
			if _, ok := task[e.Goroutine()]; !ok {
				task[e.Goroutine()] = i
			}
			if first == 0 || e.Time() < first {
				first = e.Time()
			}
		case trace.EventRegionEnd:
			if e.Time() > last {
				last = e.Time()
			}
		case trace.EventStateTransition:
			st := e.StateTransition()
			if st.Resource.Kind != trace.ResourceGoroutine {
				continue
			}
			g := st.Resource.Goroutine()
			from, to := st.Goroutine()
			switch {
			case from == trace.GoNotExist && to == trace.GoRunnable:
				l.Sched.Created++
				createdOn[g] = e.Proc()
			case from == trace.GoSyscall && to == trace.GoRunnable:
				l.Sched.LostP++
			case from == trace.GoRunning && to == trace.GoRunnable && st.Reason == "preempted":
				l.Sched.Preempted++
				if t, ok := task[g]; ok {
					for len(l.Sched.PreemptedByTask) <= t {
						l.Sched.PreemptedByTask = append(l.Sched.PreemptedByTask, 0)
					}
					l.Sched.PreemptedByTask[t]++
				}
			}
			if to == trace.GoRunning && from != trace.GoRunning {
				running[g] = open{e.Time(), e.Proc()}
				if p, ok := createdOn[g]; ok {
					if p != e.Proc() && p != trace.NoProc {
						l.Sched.RanElsewhere++
					}
					delete(createdOn, g)
				}
			}
			if from == trace.GoRunning && to != trace.GoRunning {
				if o, ok := running[g]; ok && o.p != trace.NoProc {
					raw = append(raw, struct {
						g          trace.GoID
						p          trace.ProcID
						start, end trace.Time
					}{g, o.p, o.at, e.Time()})
				}
				delete(running, g)
			}
		}
	}
	if first == 0 || last <= first {
		return Lanes{}, errors.New("the trace holds no task")
	}
	l.Procs, l.SpanUS = procs, us(last-first)
	for len(l.Sched.PreemptedByTask) < len(l.Names) {
		l.Sched.PreemptedByTask = append(l.Sched.PreemptedByTask, 0)
	}
	ps := map[trace.GoID]map[trace.ProcID]bool{}
	for _, s := range raw {
		if s.end <= first || s.start >= last {
			continue
		}
		t, ok := task[s.g]
		if !ok {
			t = -1
		} else {
			if ps[s.g] == nil {
				ps[s.g] = map[trace.ProcID]bool{}
			}
			ps[s.g][s.p] = true
		}
		l.Slices = append(l.Slices, Slice{P: int(s.p), Task: t, G: int64(s.g),
			Start: us(max(s.start, first) - first), End: us(min(s.end, last) - first)})
	}
	for _, m := range ps {
		if len(m) > 1 {
			l.Moved++
		}
	}
	if len(l.Slices) > maxSlices {
		// Keep the longest: a picture of thousands of slivers says less.
		slices.SortFunc(l.Slices, func(a, b Slice) int {
			switch da, db := a.End-a.Start, b.End-b.Start; {
			case da > db:
				return -1
			case da < db:
				return 1
			}
			return 0
		})
		l.Dropped = len(l.Slices) - maxSlices
		l.Slices = l.Slices[:maxSlices]
	}
	slices.SortFunc(l.Slices, func(a, b Slice) int {
		if a.P != b.P {
			return a.P - b.P
		}
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	return l, nil
}

func us(t trace.Time) float64 { return float64(t) / 1e3 }
