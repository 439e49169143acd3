package parallel

import (
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/lab/labtest"
	"github.com/stampede-dev/stampede/internal/testenv"
)

// TestMain lets this test binary be the workload's child, as the stampede
// binary is in the lab.
func TestMain(m *testing.M) { labtest.Main(m, ChildMain) }

// The fit recovers a known serial fraction from the law's own speed-ups,
// and the textbook figure: 5 % serial caps the speed-up at 20×.
func TestFitAmdahl(t *testing.T) {
	for _, s := range []float64{0, 0.05, 0.1, 0.5, 1} {
		var ps, ss []float64
		for p := 1.0; p <= 16; p++ {
			ps, ss = append(ps, p), append(ss, 1/(s+(1-s)/p))
		}
		f := FitAmdahl(ps, ss)
		if math.Abs(f.Serial-s) > 1e-12 || f.Points != 15 {
			t.Errorf("s = %v: fitted %+v", s, f)
		}
		if s == 0.05 && (math.Abs(f.Limit-20) > 1e-9 || math.Abs(f.Speedup(16)-1/(0.05+0.95/16)) > 1e-12) {
			t.Errorf("5 %% serial: limit %v, S(16) %v", f.Limit, f.Speedup(16))
		}
	}
	// Two cores, a speed-up of 1.6: 1/1.6 − 1/2 = s/2, so s = 0.25.
	if f := FitAmdahl([]float64{1, 2}, []float64{1, 1.6}); math.Abs(f.Serial-0.25) > 1e-12 || f.Points != 1 || math.Abs(f.Limit-4) > 1e-9 {
		t.Errorf("two cores: %+v", f)
	}
	// A slowdown is clamped to fully serial; no speed-up to fit, too.
	if f := FitAmdahl([]float64{1, 2}, []float64{1, 0.8}); f.Serial != 1 {
		t.Errorf("slowdown: %+v", f)
	}
	if f := FitAmdahl([]float64{1}, []float64{1}); f.Serial != 1 || f.Points != 0 {
		t.Errorf("one point: %+v", f)
	}
}

// The granularity ceiling: 8 tasks on 3 cores run in 3 rounds, 2.67×.
func TestCeiling(t *testing.T) {
	for _, c := range []struct {
		n, p int
		want float64
	}{{8, 3, 8.0 / 3}, {8, 2, 2}, {8, 8, 8}, {3, 8, 3}, {1, 2, 1}} {
		if got := Ceiling(c.n, c.p); got != c.want {
			t.Errorf("Ceiling(%d, %d) = %v, want %v", c.n, c.p, got, c.want)
		}
	}
}

func TestParallel(t *testing.T) {
	exe := labtest.Executable(t)
	r := labtest.Run[Result](t, New(exe), map[string]any{"tasks": 4, "work": 10, "procs": 2, "rounds": 1, "serial": 0.25}, nil)
	// The fit uses the speed-ups within the cores: GOMAXPROCS 2 only
	// where there are two.
	if len(r.Points) != 4 || len(r.Fits) != 1 || r.Fits[0].Kind != KindCPU || r.Fits[0].Set != 0.25 || r.Fits[0].Points != min(2, runtime.NumCPU())-1 {
		t.Fatalf("result %+v", r)
	}
	for i, want := range []struct {
		kind  string
		procs int
	}{{KindCPU, 1}, {KindCPU, 2}, {KindWait, 1}, {KindWait, 2}} {
		p := r.Points[i]
		if p.Kind != want.kind || p.Procs != want.procs || p.Lanes.Procs != want.procs || p.WallMS <= 0 {
			t.Fatalf("point %d: %+v, want %s at GOMAXPROCS %d", i, p, want.kind, want.procs)
		}
		if p.Procs == 1 && (p.Speedup != 1 || p.ParallelSpeedup != 1) {
			t.Errorf("point %d: speed-up %v, the tasks' %v at GOMAXPROCS 1", i, p.Speedup, p.ParallelSpeedup)
		}
		// The serial part runs before the CPU-bound tasks only, and takes
		// part of the wall time; the ceiling is the tasks' granularity.
		if cpu := p.Kind == KindCPU; (p.SerialMS > 0) != cpu || p.SerialMS >= p.WallMS ||
			(cpu && p.Ceiling != Ceiling(4, min(p.Procs, runtime.NumCPU()))) || (!cpu && p.Ceiling != 0) {
			t.Errorf("point %d: serial %.1f ms of %.1f, ceiling %v", i, p.SerialMS, p.WallMS, p.Ceiling)
		}
		// Every task ran, and only on the Ps the child had.
		tasks := map[int]bool{}
		ps := map[int]bool{}
		for _, s := range p.Lanes.Slices {
			if s.P < 0 || s.P >= want.procs || s.End < s.Start || s.Start < 0 || s.End > p.Lanes.SpanUS+1e-6 {
				t.Fatalf("point %d: slice %+v outside %d Ps or %v µs", i, s, want.procs, p.Lanes.SpanUS)
			}
			if s.Task >= 0 {
				tasks[s.Task] = true
				ps[s.P] = true
			}
		}
		// The tasks, and before the CPU-bound ones the serial part.
		if want := map[string]int{KindCPU: 5, KindWait: 4}[p.Kind]; len(tasks) != want {
			t.Errorf("point %d: the trace shows tasks %v, want %d", i, tasks, want)
		}
		// Four CPU-bound tasks of 10 ms on two Ps: both Ps run tasks.
		if p.Kind == KindCPU && len(ps) != want.procs {
			t.Errorf("point %d: tasks ran on Ps %v, want all %d", i, ps, want.procs)
		}
	}
	if n := testenv.ChildProcesses(t, os.Getpid()); n != 0 {
		t.Errorf("%d child processes left behind", n)
	}
}

// Stop ends the run within a second and leaves no child process behind.
func TestParallelStops(t *testing.T) {
	labtest.Stops(t, New(labtest.Executable(t)), map[string]any{"tasks": 64, "work": 500, "procs": 2, "rounds": 9}, 300*time.Millisecond, 3*time.Second)
}

func TestParseSchedTrace(t *testing.T) {
	in := "SCHED 0ms: gomaxprocs=2 idleprocs=1 threads=4 spinningthreads=0 needspinning=0 idlethreads=1 runqueue=0 [0 0]\n" +
		"noise\n" +
		"SCHED 5ms: gomaxprocs=2 idleprocs=0 threads=6 spinningthreads=1 needspinning=0 idlethreads=2 runqueue=7 [120 3]\n"
	got := ParseSchedTrace(in)
	if len(got) != 2 || got[1].MS != 5 || got[1].Global != 7 || len(got[1].Local) != 2 || got[1].Local[0] != 120 || got[1].Local[1] != 3 ||
		got[1].Threads != 6 || got[1].IdlePs != 0 || got[0].IdlePs != 1 {
		t.Fatalf("parsed %+v", got)
	}
}

// The real workload, traced: every burst goroutine is created and seen,
// the system calls and the spin appear, and GODEBUG=schedtrace was read.
// What the scheduler chose (which P, how many steals) is the machine's
// call and is shown, not asserted, except where the runtime's rules leave
// it no choice.
func TestGMP(t *testing.T) {
	exe := labtest.Executable(t)
	r := labtest.Run[GMPResult](t, NewGMP(exe), map[string]any{"procs": 2, "burst": 50, "syscalls": 2, "spin": 100}, nil)
	// The burst, the two system calls, the spinner and the creator.
	if r.Lanes.Sched.Created < 54 {
		t.Errorf("created %d goroutines, want at least 54", r.Lanes.Sched.Created)
	}
	names := strings.Join(r.Lanes.Names, ",")
	for _, n := range []string{"spin", "syscall", "creator", "burst"} {
		if !strings.Contains(names, n) {
			t.Errorf("regions %q lack %s", names, n)
		}
	}
	if len(r.Queues) < 2 || len(r.Queues[0].Local) != 2 {
		t.Errorf("schedtrace samples %+v", r.Queues)
	}
	// A loop with no call that runs 100 ms while other goroutines wait is
	// preempted at least once (every 10 ms, by sysmon's signal).
	spin := slices.Index(r.Lanes.Names, "spin")
	if spin < 0 || r.Lanes.Sched.PreemptedByTask[spin] < 1 {
		t.Errorf("the spin (%.1f ms) was not preempted: %+v", r.SpunMS, r.Lanes.Sched)
	}
	for _, s := range r.Lanes.Slices {
		if s.P < 0 || s.P >= 2 {
			t.Fatalf("slice on P%d with GOMAXPROCS 2", s.P)
		}
	}
	if n := testenv.ChildProcesses(t, os.Getpid()); n != 0 {
		t.Errorf("%d child processes left behind", n)
	}
}

// Stopping the scheduler run kills its child at once.
func TestGMPStops(t *testing.T) {
	labtest.Stops(t, NewGMP(labtest.Executable(t)), map[string]any{"procs": 2, "burst": 5000, "syscalls": 64, "spin": 500}, 300*time.Millisecond, 3*time.Second)
}
