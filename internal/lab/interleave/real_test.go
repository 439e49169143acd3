package interleave

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/lab"
	"github.com/stampede-dev/stampede/internal/lab/labtest"
	"github.com/stampede-dev/stampede/internal/testenv"
)

// TestMain lets this test binary be the deadlock child, as the stampede
// binary is in the lab.
func TestMain(m *testing.M) { labtest.Main(m, ChildMain) }

// Real goroutines reach only outcomes the model reaches, every trial is
// counted once, and a fixed program never fails, however it is scheduled.
func TestRealTrialsStayInsideTheModel(t *testing.T) {
	for _, id := range ProgramIDs() {
		for _, yield := range []bool{false, true} {
			src, _, _ := lookup(id)
			p, _ := Parse(src)
			mc, err := p.Enumerate(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			model := outcomes(mc)
			const n = 2000
			tallies, ran := Trials(context.Background(), p, n, yield, nil)
			sum := 0
			for _, c := range tallies {
				sum += c.Trials
				if model[c.Label] == 0 {
					t.Errorf("%s (yield %v): %d trials ended in %q, which no schedule of the model reaches (model: %v)", id, yield, c.Trials, c.Label, model)
				}
				if strings.Contains(id, "+") && c.Failed() {
					t.Errorf("%s (yield %v): the fixed program failed %d times: %q", id, yield, c.Trials, c.Label)
				}
			}
			if ran != n || sum != n {
				t.Errorf("%s: ran %d, counted %d, want %d", id, ran, sum, n)
			}
		}
	}
}

// Both goroutines send first on unbuffered channels: every real trial
// deadlocks, and is seen to, exactly where the model says.
func TestRealDeadlockIsDetected(t *testing.T) {
	src, _, _ := lookup("channel-deadlock")
	p, _ := Parse(src)
	tallies, _ := Trials(context.Background(), p, 500, false, nil)
	want := `deadlock: G1 at "send c 1", G2 at "send d 1"`
	if len(tallies) != 1 || tallies[0].Label != want || tallies[0].Trials != 500 || tallies[0].Kind != KindDeadlock {
		t.Fatalf("tallies %+v; want all 500 %q", tallies, want)
	}
}

// An unlock of a free mutex ends the trial as Go's runtime would end the
// program, and so does the model.
func TestUnlockOfUnlockedMutexIsFatal(t *testing.T) {
	p, err := Parse("mutex m\ngo\n  unlock m\n")
	if err != nil {
		t.Fatal(err)
	}
	mc, err := p.Enumerate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(mc.Outcomes) != 1 || mc.Outcomes[0].Kind != KindFatal || mc.Failing != 1 {
		t.Fatalf("model: %+v", mc.Outcomes)
	}
	tallies, _ := Trials(context.Background(), p, 10, false, nil)
	if len(tallies) != 1 || tallies[0].Kind != KindFatal || tallies[0].Label != "fatal: G1: unlock of unlocked mutex m" {
		t.Fatalf("real: %+v", tallies)
	}
}

// The channel deadlock hangs the child at its first trial. Without cgo,
// Go's runtime stops it, in its own words; with cgo it never calls it a
// deadlock, and the SIGQUIT dump shows both goroutines blocked in a send
// and the trial's goroutine waiting for them.
func TestRuntimeReportsTheDeadlock(t *testing.T) {
	r, err := runChild(context.Background(), labtest.Executable(t), "channel-deadlock", 1000, false)
	if err != nil {
		t.Fatal(err)
	}
	want := RuntimeReport{Trials: 1, Deadlock: true, Detector: "runtime", Cgo: false,
		Fatal: "fatal error: all goroutines are asleep - deadlock!", Exit: "exit status 2"}
	if cgo() {
		want = RuntimeReport{Trials: 1, Deadlock: true, Detector: "sigquit", Cgo: true, Fatal: "SIGQUIT: quit", Exit: "exit status 2"}
	}
	got := r
	got.Goroutines, got.Excerpt = nil, ""
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("report %+v\nwant %+v\n%s", got, want, r.Excerpt)
	}
	states := map[string]int{}
	for _, g := range r.Goroutines {
		states[g[strings.IndexByte(g, '['):strings.IndexByte(g, ']')+1]]++
	}
	if len(r.Goroutines) != 3 || states["[chan send]"] != 2 || states["[sync.WaitGroup.Wait]"] != 1 {
		t.Fatalf("goroutines %q; want two in chan send and one waiting for them", r.Goroutines)
	}
	// A program that cannot deadlock runs all its trials.
	r, err = runChild(context.Background(), labtest.Executable(t), "channel-deadlock+buffered", 1000, true)
	if err != nil {
		t.Fatal(err)
	}
	if r.Deadlock || r.Detector != "" || r.Trials != 1000 || r.Exit != "exit status 0" {
		t.Fatalf("report %+v", r)
	}
}

func TestRealExperiment(t *testing.T) {
	r := labtest.Run[RealReport](t, NewReal(labtest.Executable(t)), map[string]any{"program": "lock-order", "trials": 3000, "yield": true}, nil)
	sum := 0
	for _, row := range r.Rows {
		sum += row.Trials
	}
	if r.Trials != 3000 || sum != 3000 || r.Unexplained != 0 || len(r.Rows) != 2 {
		t.Fatalf("report %+v", r)
	}
	if r.Rows[0].ModelSchedules != 2 || r.Rows[0].Kind != KindDeadlock || r.Rows[1].ModelSchedules != 4 {
		t.Fatalf("rows %+v: want the deadlock (2 schedules of 6) first", r.Rows)
	}
	if r.Runtime == nil || r.Runtime.Exit == "" {
		t.Fatalf("no runtime report: %+v", r.Runtime)
	}
	if r.Runtime.Deadlock != (r.Runtime.Detector != "") {
		t.Fatalf("runtime report %+v", r.Runtime)
	}
	if n := testenv.ChildProcesses(t, os.Getpid()); n != 0 {
		t.Errorf("%d child processes left behind", n)
	}
}

// Cancelling a run stops it promptly and leaves no goroutine behind.
func TestRealRunStopsWhenCancelled(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	e := NewReal(labtest.Executable(t))
	params := map[string]any{"program": "philosophers", "trials": 1_000_000}
	p, err := lab.Resolve(e.Info().Params, params)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	err = e.Run(ctx, p, func(lab.Event) {})
	if err != context.Canceled {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("Run took %v to notice the cancellation", d)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines before, %d after", before, n)
	}
	if n := testenv.ChildProcesses(t, os.Getpid()); n != 0 {
		t.Errorf("%d child processes left behind", n)
	}
}

func TestModelExperiment(t *testing.T) {
	r := labtest.Run[Report](t, NewModel(), map[string]any{"program": "philosophers"}, nil)
	if r.Model.Failing == 0 || len(r.Failure) != 3 || r.Graph == nil || len(r.Fixes) != 1 || r.Fixes[0].Failing != 0 {
		t.Fatalf("report: failing %d, failure %q, graph %d states, fixes %+v", r.Model.Failing, r.Failure, len(r.Graph), r.Fixes)
	}
	// The shortest deadlock: each philosopher takes the left fork.
	for i, want := range []string{"P1: lock f1", "P2: lock f2", "P3: lock f3"} {
		if r.Failure[i] != want {
			t.Errorf("failure step %d = %q, want %q", i+1, r.Failure[i], want)
		}
	}
	custom := labtest.Run[Report](t, NewModel(), map[string]any{"source": "var x = 0\ncheck x == 2\ngo\n  fadd x 1\ngo\n  load r x\n  add r 1\n  store x r\n"}, nil)
	// G1's atomic add is lost when it falls between G2's load and store:
	// 2 of the C(4,1) = 4 schedules.
	if custom.Program != "custom" || custom.Model.Schedules != 4 || custom.Model.Failing != 2 {
		t.Fatalf("custom program: %+v", custom.Model)
	}
}
