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
// every finished operation exactly once.
func TestEveryPrimitiveIsCorrect(t *testing.T) {
	g0 := runtime.NumGoroutine()
	var points int
	res := labtest.Run[Result](t, New(), map[string]any{"goroutines": "32", "ops": "20000", "ms": "5000"}, func(ev lab.Event) {
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
		if pt.Complete && pt.Ops != 20000 {
			t.Errorf("%s with %d goroutines: complete with %d ops", pt.Primitive, pt.Goroutines, pt.Ops)
		}
		if pt.Ops > 0 && pt.NsPerOp <= 0 {
			t.Errorf("%+v has no time", pt)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > g0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left, had %d", runtime.NumGoroutine(), g0)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The time limit stops a point early and the count stays exact.
func TestTimeLimitCutsShort(t *testing.T) {
	pt := measure(context.Background(), "cond", 8, config{ops: 10_000_000, permits: 1, limit: 50 * time.Millisecond})
	if pt.Complete || !pt.Correct || pt.Ops == 0 {
		t.Fatalf("cond cut short: %+v", pt)
	}
	// 1,000 turns do not divide among 6 goroutines: each gets 166.
	pt = measure(context.Background(), "cond", 6, config{ops: 1000, permits: 1, limit: time.Minute})
	if !pt.Complete || !pt.Correct || pt.Ops != 996 {
		t.Fatalf("cond with 6 goroutines: %+v, want 996 turns, complete", pt)
	}
	pt = measure(context.Background(), "queue-ring", 4, config{ops: 100_000_000, limit: 50 * time.Millisecond})
	if pt.Complete || !pt.Correct || pt.Ops == 0 {
		t.Fatalf("ring cut short: %+v", pt)
	}
}

func TestCancel(t *testing.T) {
	e := New()
	p, _ := lab.Resolve(e.Info().Params, map[string]any{"ops": "10000000", "ms": "5000"})
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
