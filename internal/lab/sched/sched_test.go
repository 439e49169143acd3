package sched

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stampede-dev/stampede/internal/lab"
	"github.com/stampede-dev/stampede/internal/lab/labtest"
)

func tasks(spec ...[3]int) []Task {
	out := make([]Task, len(spec))
	for i, s := range spec {
		out[i] = Task{Name: "P" + string(rune('1'+i)), Arrival: s[0], Burst: s[1], Priority: s[2], Tickets: 1}
	}
	return out
}

func run(t *testing.T, ts []Task, cfg Config) Result {
	t.Helper()
	r, err := Simulate(ts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func waits(r Result) []int {
	out := make([]int, len(r.Tasks))
	for i, s := range r.Tasks {
		out[i] = s.Waiting
	}
	return out
}

// gantt renders the slices as "P1:0-24 P2:24-27", idle as "-".
func gantt(r Result) string {
	var parts []string
	for _, s := range r.Slices {
		name := s.Task
		if name == "" {
			name = "-"
		}
		parts = append(parts, name+":"+itoa(s.Start)+"-"+itoa(s.End))
	}
	return strings.Join(parts, " ")
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var d []byte
	for ; n > 0; n /= 10 {
		d = append([]byte{byte('0' + n%10)}, d...)
	}
	return string(d)
}

// The hand-computed cases of Silberschatz, Galvin and Gagne's Operating
// System Concepts (chapter 5) and Arpaci-Dusseau's OSTEP (chapters 7-9).
func TestTextbookCases(t *testing.T) {
	cases := []struct {
		name     string
		tasks    []Task
		cfg      Config
		gantt    string
		waiting  []int
		avgWait  float64
		avgTurn  float64
		avgResp  float64
		checkAvg bool
	}{
		{name: "OSC FCFS P1 P2 P3", tasks: tasks([3]int{0, 24}, [3]int{0, 3}, [3]int{0, 3}), cfg: Config{Algorithm: FCFS},
			gantt: "P1:0-24 P2:24-27 P3:27-30", waiting: []int{0, 24, 27}, avgWait: 17, avgTurn: 27, avgResp: 17, checkAvg: true},
		{name: "OSC FCFS short first", tasks: tasks([3]int{0, 3}, [3]int{0, 3}, [3]int{0, 24}), cfg: Config{Algorithm: FCFS},
			gantt: "P1:0-3 P2:3-6 P3:6-30", waiting: []int{0, 3, 6}, avgWait: 3, avgTurn: 13, avgResp: 3, checkAvg: true},
		{name: "OSC SJF", tasks: tasks([3]int{0, 6}, [3]int{0, 8}, [3]int{0, 7}, [3]int{0, 3}), cfg: Config{Algorithm: SJF},
			gantt: "P4:0-3 P1:3-9 P3:9-16 P2:16-24", waiting: []int{3, 16, 9, 0}, avgWait: 7, avgTurn: 13, avgResp: 7, checkAvg: true},
		{name: "OSC SRTF", tasks: tasks([3]int{0, 8}, [3]int{1, 4}, [3]int{2, 9}, [3]int{3, 5}), cfg: Config{Algorithm: SRTF},
			gantt: "P1:0-1 P2:1-5 P4:5-10 P1:10-17 P3:17-26", waiting: []int{9, 0, 15, 2}, avgWait: 6.5, avgTurn: 13, avgResp: 4.25, checkAvg: true},
		{name: "OSC priority", tasks: tasks([3]int{0, 10, 3}, [3]int{0, 1, 1}, [3]int{0, 2, 4}, [3]int{0, 1, 5}, [3]int{0, 5, 2}), cfg: Config{Algorithm: Priority},
			gantt: "P2:0-1 P5:1-6 P1:6-16 P3:16-18 P4:18-19", waiting: []int{6, 0, 16, 18, 1}, avgWait: 8.2, avgTurn: 12, avgResp: 8.2, checkAvg: true},
		{name: "OSC round robin q=4", tasks: tasks([3]int{0, 24}, [3]int{0, 3}, [3]int{0, 3}), cfg: Config{Algorithm: RoundRobin, Quantum: 4},
			gantt: "P1:0-4 P2:4-7 P3:7-10 P1:10-30", waiting: []int{6, 4, 7}, avgWait: 17.0 / 3, avgTurn: 47.0 / 3, avgResp: 11.0 / 3, checkAvg: true},
		// OSTEP 7.3: A 100, B 10, C 10 at 0; FIFO averages 110 turnaround, SJF 50.
		{name: "OSTEP FIFO convoy", tasks: tasks([3]int{0, 100}, [3]int{0, 10}, [3]int{0, 10}), cfg: Config{Algorithm: FCFS},
			gantt: "P1:0-100 P2:100-110 P3:110-120", waiting: []int{0, 100, 110}, avgWait: 70, avgTurn: 110, avgResp: 70, checkAvg: true},
		{name: "OSTEP SJF", tasks: tasks([3]int{0, 100}, [3]int{0, 10}, [3]int{0, 10}), cfg: Config{Algorithm: SJF},
			gantt: "P2:0-10 P3:10-20 P1:20-120", waiting: []int{20, 0, 10}, avgWait: 10, avgTurn: 50, avgResp: 10, checkAvg: true},
		// OSTEP 7.5: A 100 at 0, B and C 10 at 10; STCF averages 50.
		{name: "OSTEP STCF", tasks: tasks([3]int{0, 100}, [3]int{10, 10}, [3]int{10, 10}), cfg: Config{Algorithm: SRTF},
			gantt: "P1:0-10 P2:10-20 P3:20-30 P1:30-120", waiting: []int{20, 0, 10}, avgWait: 10, avgTurn: 50, avgResp: 10.0 / 3, checkAvg: true},
		// OSTEP 7.7: A, B, C of 5 at 0 with a 1-tick slice: response 1.
		{name: "OSTEP RR response", tasks: tasks([3]int{0, 5}, [3]int{0, 5}, [3]int{0, 5}), cfg: Config{Algorithm: RoundRobin, Quantum: 1},
			gantt:   "P1:0-1 P2:1-2 P3:2-3 P1:3-4 P2:4-5 P3:5-6 P1:6-7 P2:7-8 P3:8-9 P1:9-10 P2:10-11 P3:11-12 P1:12-13 P2:13-14 P3:14-15",
			waiting: []int{8, 9, 10}, avgWait: 9, avgTurn: 14, avgResp: 1, checkAvg: true},
		{name: "OSTEP SJF response", tasks: tasks([3]int{0, 5}, [3]int{0, 5}, [3]int{0, 5}), cfg: Config{Algorithm: SJF},
			gantt: "P1:0-5 P2:5-10 P3:10-15", waiting: []int{0, 5, 10}, avgWait: 5, avgTurn: 10, avgResp: 5, checkAvg: true},
		{name: "preemptive priority", tasks: tasks([3]int{0, 5, 3}, [3]int{2, 2, 1}, [3]int{3, 1, 0}), cfg: Config{Algorithm: PriorityPre},
			gantt: "P1:0-2 P2:2-3 P3:3-4 P2:4-5 P1:5-8", waiting: []int{3, 1, 0}},
		{name: "idle gap", tasks: tasks([3]int{0, 2}, [3]int{5, 1}), cfg: Config{Algorithm: FCFS},
			gantt: "P1:0-2 -:2-5 P2:5-6", waiting: []int{0, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := run(t, c.tasks, c.cfg)
			if got := gantt(r); got != c.gantt {
				t.Errorf("gantt\n got %s\nwant %s", got, c.gantt)
			}
			if got := waits(r); !reflect.DeepEqual(got, c.waiting) {
				t.Errorf("waiting %v, want %v", got, c.waiting)
			}
			if c.checkAvg {
				if !close(r.AvgWaiting, c.avgWait) || !close(r.AvgTurnaround, c.avgTurn) || !close(r.AvgResponse, c.avgResp) {
					t.Errorf("averages waiting %.3f turnaround %.3f response %.3f, want %.3f %.3f %.3f",
						r.AvgWaiting, r.AvgTurnaround, r.AvgResponse, c.avgWait, c.avgTurn, c.avgResp)
				}
			}
		})
	}
}

func close(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// OSTEP chapter 8: a long job sinks through the levels; a short job that
// arrives later starts at the top and finishes before the long one runs
// again; a boost lifts the long job back to the top.
func TestMLFQ(t *testing.T) {
	ts := []Task{{Name: "A", Burst: 40, Tickets: 1}, {Name: "B", Arrival: 30, Burst: 5, Tickets: 1}}
	r := run(t, ts, Config{Algorithm: MLFQ, Quanta: []int{5, 10, 20}})
	if got, want := gantt(r), "A:0-5 A:5-15 A:15-30 B:30-35 A:35-45"; got != want {
		t.Errorf("gantt\n got %s\nwant %s", got, want)
	}
	levels := map[int]int{0: 0, 5: 1, 15: 2, 30: 0, 35: 2}
	for tick, want := range levels {
		if got := r.Ticks[tick].Level; got != want {
			t.Errorf("tick %d: level %d, want %d", tick, got, want)
		}
	}
	// With a boost every 20 ticks, A is back at level 0 at tick 20.
	r = run(t, ts[:1], Config{Algorithm: MLFQ, Quanta: []int{5, 10, 20}, Boost: 20})
	if got, want := gantt(r), "A:0-5 A:5-15 A:15-20 A:20-25 A:25-35 A:35-40"; got != want {
		t.Errorf("boost gantt\n got %s\nwant %s", got, want)
	}
	// A job that does I/O before its allotment is spent does not escape
	// demotion (OSTEP's rule 4): the allotment counts across runs.
	io := []Task{{Name: "A", Burst: 8, Tickets: 1, IOEvery: 1, IOTime: 1}}
	r = run(t, io, Config{Algorithm: MLFQ, Quanta: []int{3, 100}})
	wantLevels := []int{0, -1, 0, -1, 0, -1, 1}
	for i, want := range wantLevels {
		tk := r.Ticks[i]
		got := tk.Level
		if tk.Running == "" {
			got = -1
		}
		if got != want {
			t.Errorf("I/O tick %d: level %d, want %d (ticks %+v)", i, got, want, r.Ticks[:8])
		}
	}
}

func TestIOAndQueues(t *testing.T) {
	ts := []Task{{Name: "A", Burst: 4, Tickets: 1, IOEvery: 2, IOTime: 3}, {Name: "B", Burst: 6, Tickets: 1}}
	r := run(t, ts, Config{Algorithm: FCFS})
	if got, want := gantt(r), "A:0-2 B:2-8 A:8-10"; got != want {
		t.Errorf("gantt\n got %s\nwant %s", got, want)
	}
	// At tick 2 B runs and A waits on I/O; at tick 5 A is ready again.
	if tk := r.Ticks[2]; tk.Running != "B" || !reflect.DeepEqual(tk.Waiting, []string{"A"}) || len(tk.Ready[0]) != 0 {
		t.Errorf("tick 2: %+v", tk)
	}
	if tk := r.Ticks[5]; tk.Running != "B" || len(tk.Waiting) != 0 || !reflect.DeepEqual(tk.Ready[0], []string{"A"}) {
		t.Errorf("tick 5: %+v", tk)
	}
	// A: turnaround 10, burst 4, I/O 3: ready-queue time is 3 (ticks 5-7).
	if a := r.Tasks[0]; a.Waiting != 3 || a.Turnaround != 10 || a.Response != 0 {
		t.Errorf("A: %+v", a)
	}
}

func TestAgingEndsStarvation(t *testing.T) {
	// L (priority 9) starves behind a stream of urgent tasks without aging.
	ts := []Task{{Name: "L", Burst: 2, Priority: 9, Tickets: 1}}
	for i := range 6 {
		ts = append(ts, Task{Name: "H" + itoa(i), Arrival: i * 3, Burst: 3, Priority: 1, Tickets: 1})
	}
	noAging := run(t, ts, Config{Algorithm: PriorityPre})
	if got := noAging.Tasks[0].FirstRun; got != 18 {
		t.Errorf("without aging L first runs at %d, want 18 (after every urgent task)", got)
	}
	aged := run(t, ts, Config{Algorithm: PriorityPre, Aging: 1})
	if got := aged.Tasks[0].FirstRun; got >= 18 {
		t.Errorf("with aging every tick L first runs at %d, want before 18", got)
	}
}

func TestLotteryIsSeededAndProportional(t *testing.T) {
	ts := []Task{{Name: "A", Burst: 200, Tickets: 75}, {Name: "B", Burst: 200, Tickets: 25}}
	a := run(t, ts, Config{Algorithm: Lottery, Quantum: 1, Seed: 42})
	b := run(t, ts, Config{Algorithm: Lottery, Quantum: 1, Seed: 42})
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave two different runs")
	}
	c := run(t, ts, Config{Algorithm: Lottery, Quantum: 1, Seed: 43})
	if reflect.DeepEqual(a.Slices, c.Slices) {
		t.Fatal("seeds 42 and 43 gave the same schedule")
	}
	// Over the first 200 ticks A should hold about 75%.
	ran := 0
	for _, tk := range a.Ticks[:200] {
		if tk.Running == "A" {
			ran++
		}
	}
	if ran < 135 || ran > 165 {
		t.Errorf("A ran %d of 200 ticks with 75%% of the tickets (seed 42)", ran)
	}
	// Every dispatch shows its draw: the winning ticket among all 100,
	// held by the ready tasks in queue order (75 of them A's, 25 B's).
	draws := 0
	for _, tk := range a.Ticks[:200] {
		if d := tk.Draw; d != nil {
			draws++
			want, left := "", d.Ticket
			for k, n := range d.Tickets {
				if want == "" && left < n {
					want = d.Holders[k]
				}
				left -= n
			}
			if d.Total != 100 || len(d.Holders) != 2 || d.Tickets[0]+d.Tickets[1] != 100 || d.Winner != want || tk.Running != want {
				t.Fatalf("tick %d: draw %+v, running %s", tk.T, *d, tk.Running)
			}
		}
	}
	if draws != 200 {
		t.Errorf("%d draws in 200 ticks of quantum 1, want 200", draws)
	}
}

// MLFQ's time slice is not its allotment: with a slice of 2, two tasks
// take turns at the top level every 2 ticks, each moving down once it has
// used its allotment of 6 over several turns.
func TestMLFQSlice(t *testing.T) {
	ts := []Task{{Name: "A", Burst: 10, Tickets: 1}, {Name: "B", Burst: 10, Tickets: 1}}
	r := run(t, ts, Config{Algorithm: MLFQ, Quanta: []int{6, 100}, Slice: 2})
	if got, want := gantt(r), "A:0-2 B:2-4 A:4-6 B:6-8 A:8-10 B:10-12 A:12-14 B:14-16 A:16-18 B:18-20"; got != want {
		t.Errorf("gantt\n got %s\nwant %s", got, want)
	}
	for tick, want := range map[int]int{0: 0, 9: 0, 11: 0, 12: 1, 19: 1} {
		if got := r.Ticks[tick].Level; got != want {
			t.Errorf("tick %d: level %d, want %d", tick, got, want)
		}
	}
	// Without a slice, the allotment is the slice: A runs 6, then B 6.
	r = run(t, ts, Config{Algorithm: MLFQ, Quanta: []int{6, 100}})
	if got, want := gantt(r), "A:0-6 B:6-12 A:12-16 B:16-20"; got != want {
		t.Errorf("no slice: gantt\n got %s\nwant %s", got, want)
	}
}

func TestDeterministic(t *testing.T) {
	ts := Generate(7, 12)
	if !reflect.DeepEqual(ts, Generate(7, 12)) {
		t.Fatal("Generate is not deterministic")
	}
	for _, alg := range Algorithms() {
		cfg := Config{Algorithm: alg, Quantum: 3, Seed: 9, Aging: 2, Boost: 30}
		if !reflect.DeepEqual(run(t, ts, cfg), run(t, ts, cfg)) {
			t.Errorf("%s: two runs differ", alg)
		}
		r := run(t, ts, cfg)
		// Every tick is accounted for: run + waited + I/O = turnaround.
		for i, s := range r.Tasks {
			io := 0
			if ts[i].IOEvery > 0 {
				io = (ts[i].Burst - 1) / ts[i].IOEvery * ts[i].IOTime
			}
			if s.Burst+s.Waiting+io != s.Turnaround {
				t.Errorf("%s %s: burst %d + waiting %d + I/O %d != turnaround %d", alg, s.Name, s.Burst, s.Waiting, io, s.Turnaround)
			}
		}
	}
}

func TestParse(t *testing.T) {
	ts, err := Parse("# comment\nA 0 5\nB 2 3 1 10 2 4\n\nC 1 2 4\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []Task{{Name: "A", Burst: 5, Tickets: 1}, {Name: "B", Arrival: 2, Burst: 3, Priority: 1, Tickets: 10, IOEvery: 2, IOTime: 4}, {Name: "C", Arrival: 1, Burst: 2, Priority: 4, Tickets: 1}}
	if !reflect.DeepEqual(ts, want) {
		t.Fatalf("got %+v", ts)
	}
	back, err := Parse(Format(ts))
	if err != nil || !reflect.DeepEqual(back, ts) {
		t.Fatalf("Format does not round-trip: %v %+v", err, back)
	}
	for _, bad := range []struct{ in, msg string }{
		{"", "the workload has no tasks"},
		{"A 0", "line 1: want name arrival burst [priority [tickets [io-every io-time]]], got 2 fields"},
		{"A 0 x", `line 1: "x" is not a whole number`},
		{"A 0 0", "task A: burst 0: allowed 1 to 200"},
		{"A 0 1\nA 1 1", `task name "A" is used twice`},
		{"A 999 1", "task A: arrival 999: allowed 0 to 200"},
		{"A 0 5 0 1 2 0", "task A: I/O every 2 for 0: both 0, or every 1 to 200 for 1 to 50"},
	} {
		if _, err := Parse(bad.in); err == nil || err.Error() != bad.msg {
			t.Errorf("Parse(%q) = %v, want %q", bad.in, err, bad.msg)
		}
	}
}

func TestExperiment(t *testing.T) {
	e := New()
	rep := labtest.Run[Report](t, e, map[string]any{"workload": "P1 0 24\nP2 0 3\nP3 0 3\n", "algorithm": "rr", "compare": "fcfs", "quantum": 4.0}, nil)
	if len(rep.Runs) != 2 || rep.Runs[0].Config.Algorithm != RoundRobin || rep.Runs[1].Config.Algorithm != FCFS {
		t.Fatalf("runs: %+v", rep.Runs)
	}
	if !close(rep.Runs[0].AvgWaiting, 17.0/3) || rep.Runs[1].AvgWaiting != 17 {
		t.Errorf("averages %v and %v, want 5.67 and 17", rep.Runs[0].AvgWaiting, rep.Runs[1].AvgWaiting)
	}
	// An empty workload is generated from the seed, the same each time.
	gen := labtest.Run[Report](t, e, map[string]any{"tasks": 7.0, "seed": 3.0}, nil)
	if !reflect.DeepEqual(gen.Tasks, Generate(3, 7)) || gen.Workload != Format(Generate(3, 7)) {
		t.Errorf("generated workload differs from Generate(3, 7)")
	}
	for raw, msg := range map[string]string{
		"P1 0":                     "workload: line 1: want name arrival burst [priority [tickets [io-every io-time]]], got 2 fields",
		"P1 0 999":                 "workload: task P1: burst 999: allowed 1 to 200",
		"quanta:2,x":               `quanta: allotment "x": a whole number of ticks from 1 to 100`,
		"quanta:1,2,3,4,5,6,7,8,9": "quanta: 1 to 8 levels, got 9",
	} {
		in := map[string]any{"workload": raw}
		if q, ok := strings.CutPrefix(raw, "quanta:"); ok {
			in = map[string]any{"quanta": q}
		}
		if _, err := lab.Resolve(e.Info().Params, in); err == nil || err.Error() != msg {
			t.Errorf("Resolve(%v) = %v, want %q", in, err, msg)
		}
	}
}
