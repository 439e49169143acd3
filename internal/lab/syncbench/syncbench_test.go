package syncbench

import (
	"context"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/lab"
	"github.com/stampede-dev/stampede/internal/lab/labtest"
)

func TestCounts(t *testing.T) {
	for max, want := range map[int][]int{1: {1}, 2: {1, 2}, 6: {1, 2, 4, 6}, 16: {1, 2, 4, 8, 16}} {
		if got := Counts(max); !reflect.DeepEqual(got, want) {
			t.Errorf("Counts(%d) = %v, want %v", max, got, want)
		}
	}
}

// Every primitive, with up to 32 goroutines (more than the cores), counts
// every finished operation exactly once, in every run of every point, and
// reports the median run with the range and its fairness.
func TestEveryPrimitiveIsCorrect(t *testing.T) {
	g0 := runtime.NumGoroutine()
	var points int
	res := labtest.Run[Result](t, New(), map[string]any{"goroutines": "32", "ms": "20", "runs": "3"}, func(ev lab.Event) {
		if ev.Kind == lab.KindPoint {
			points++
		}
	})
	want := len(Primitives()) * len(Counts(32))
	if len(res.Points) != want || points != want {
		t.Fatalf("%d points in the result, %d streamed; want %d", len(res.Points), points, want)
	}
	for _, pt := range res.Points {
		if !pt.Correct {
			t.Errorf("%s with %d goroutines lost an operation: %+v", pt.Primitive, pt.Goroutines, pt)
		}
		if pt.Runs != 3 || pt.Ops <= 0 || pt.MinOpsPerSec > pt.OpsPerSec || pt.OpsPerSec > pt.MaxOpsPerSec ||
			pt.NsPerOp != 1e9/pt.OpsPerSec {
			t.Errorf("%+v: want 3 runs, the median within the range, ns/op its inverse", pt)
		}
		if pt.Jain <= 0 || pt.Jain > 1.0000001 || pt.MinShare > 1 || pt.MaxShare < 1 {
			t.Errorf("%s with %d goroutines: shares %.2f to %.2f, Jain %.3f", pt.Primitive, pt.Goroutines, pt.MinShare, pt.MaxShare, pt.Jain)
		}
		// Strict turns share exactly: every goroutine's count is within one
		// of the others'.
		if pt.Primitive == "cond" && pt.Goroutines > 1 && float64(pt.Ops) > 10*float64(pt.Goroutines) && pt.Jain < 0.99 {
			t.Errorf("cond with %d goroutines: Jain %.3f, want turns shared equally", pt.Goroutines, pt.Jain)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > g0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left, had %d", runtime.NumGoroutine(), g0)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFairness pins the definitions: shares of an equal share, and Jain's
// index from 1 (equal) down to 1/n (one did everything).
func TestFairness(t *testing.T) {
	for _, c := range []struct {
		counts        []int64
		lo, hi, index float64
	}{
		{[]int64{5, 5, 5, 5}, 1, 1, 1},
		{[]int64{20, 0, 0, 0}, 0, 4, 0.25},
		{[]int64{1, 3}, 0.5, 1.5, 0.8}, // 16 / (2 × 10)
		{[]int64{0, 0}, 0, 0, 0},
	} {
		lo, hi, j := fairness(c.counts)
		if lo != c.lo || hi != c.hi || j != c.index {
			t.Errorf("fairness(%v) = %v, %v, %v; want %v, %v, %v", c.counts, lo, hi, j, c.lo, c.hi, c.index)
		}
	}
}

// A run lasts its time, whatever the primitive: every goroutine loops
// until the shared stop, and the count stays exact.
func TestRunsForItsTime(t *testing.T) {
	for _, id := range []string{"cond", "queue-ring", "queue-chan", "mutex"} {
		start := time.Now()
		pt := measure(context.Background(), id, 6, config{runs: 1, permits: 1, reads: 90, dur: 50 * time.Millisecond})
		took := time.Since(start)
		if !pt.Correct || pt.Ops == 0 || took < 50*time.Millisecond || took > 10*time.Second {
			t.Errorf("%s: %+v after %v", id, pt, took)
		}
	}
}

func TestCancel(t *testing.T) {
	e := New()
	p, _ := lab.Resolve(e.Info().Params, map[string]any{"ms": "5000", "runs": "9"})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := e.Run(ctx, p, func(lab.Event) {})
	if err != context.Canceled {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancel took %v", d)
	}
}

// With work inside the critical section, every operation takes at least
// that long and costs at least that much CPU, whatever the machine's
// speed (a slower or busier machine only adds); every point reports its
// CPU time, and the RWMutex its writers' longest wait.
func TestHoldTimeAndCPU(t *testing.T) {
	res := labtest.Run[Result](t, New(), map[string]any{"goroutines": "2", "ms": "30", "runs": "1", "hold": "1us"}, nil)
	if res.Hold != "1us" || res.HoldNs < 900 || res.HoldNs > 1100 {
		t.Errorf("hold %q calibrated to %.0f ns, want 1us within a step of the loop", res.Hold, res.HoldNs)
	}
	for _, pt := range res.Points {
		if !pt.Correct || pt.CPUNsPerOp <= 0 {
			t.Errorf("%s with %d: correct %v, CPU %.0f ns/op", pt.Primitive, pt.Goroutines, pt.Correct, pt.CPUNsPerOp)
		}
		if pt.Goroutines == 1 && pt.Primitive != "queue-chan" && pt.Primitive != "queue-ring" && (pt.NsPerOp < 500 || pt.CPUNsPerOp < 500) {
			t.Errorf("%s alone with 1 µs of work an operation: %.0f ns/op, %.0f CPU ns/op; want at least 500 of each", pt.Primitive, pt.NsPerOp, pt.CPUNsPerOp)
		}
		if pt.Primitive == "rwmutex" && pt.MaxWriteWaitNs <= 0 {
			t.Errorf("rwmutex with %d: no writer's wait recorded", pt.Goroutines)
		}
	}
}
