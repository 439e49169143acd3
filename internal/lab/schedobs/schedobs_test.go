package schedobs

import (
	"math"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/lab/labtest"
)

func TestBusyThreadsAreAccounted(t *testing.T) {
	n := runtime.NumCPU() + 2 // more threads than cores
	procs := runtime.GOMAXPROCS(0)
	g0 := runtime.NumGoroutine()
	res := labtest.Run[Result](t, New(), map[string]any{"threads": float64(n), "ms": "400"}, nil)
	if runtime.GOMAXPROCS(0) != procs {
		t.Errorf("GOMAXPROCS left at %d, was %d", runtime.GOMAXPROCS(0), procs)
	}
	if len(res.Threads) != n {
		t.Fatalf("%d threads reported, want %d", len(res.Threads), n)
	}
	seen := map[int]bool{}
	var total int64
	for _, th := range res.Threads {
		if seen[th.TID] || th.TID <= 0 {
			t.Errorf("thread id %d repeated or invalid", th.TID)
		}
		seen[th.TID] = true
		if th.RunNs <= 0 || th.Slices <= 0 || th.Loops <= 0 {
			t.Errorf("thread %+v did not run", th)
		}
		total += th.RunNs
	}
	// n busy threads on fewer cores cannot run more than cores × wall time.
	if limit := int64(res.Cores) * res.WallNs * 11 / 10; total > limit {
		t.Errorf("threads ran %d ns in all, more than %d cores × %d ns allow", total, res.Cores, res.WallNs)
	}
	if !strings.HasPrefix(res.Summary, strconv.Itoa(n)+" busy threads on ") {
		t.Errorf("summary %q", res.Summary)
	}
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > g0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left, had %d", runtime.NumGoroutine(), g0)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The machine's busy fraction less the threads' own: 2 cores for 1 s,
// /proc/stat saw 150 of 200 ticks busy, the threads ran 1 s in all (half
// the machine), so others took 25 %.
func TestOthersPercent(t *testing.T) {
	got := othersPercent(cpuTimes{busy: 1000, total: 5000}, cpuTimes{busy: 1150, total: 5200}, int64(time.Second), 2, time.Second)
	if math.Abs(got-25) > 1e-9 {
		t.Fatalf("others %v%%, want 25%%", got)
	}
	// Never below zero (tick rounding), never above 100.
	if got := othersPercent(cpuTimes{0, 0}, cpuTimes{100, 200}, int64(2*time.Second), 2, time.Second); got != 0 {
		t.Fatalf("others %v%%, want 0", got)
	}
}

// TestParseCPUMax: a cgroup's cpu.max as CPUs; none is 0.
func TestParseCPUMax(t *testing.T) {
	for in, want := range map[string]float64{"max 100000\n": 0, "150000 100000\n": 1.5, "50000 100000": 0.5, "": 0, "x 100000": 0, "100000 0": 0} {
		if got := parseCPUMax(in); got != want {
			t.Errorf("parseCPUMax(%q) = %v, want %v", in, got, want)
		}
	}
}
