package async

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/lab"
	"github.com/stampede-dev/stampede/internal/lab/labtest"
)

// TestMain lets this test binary be the trap's child, as the stampede
// binary is in the lab.
func TestMain(m *testing.M) { labtest.Main(m, ChildMain) }

// TestTasks pins what cannot be otherwise, whatever the machine's speed:
// every answer comes no sooner than its delay after its request, one after
// another takes at least the sum of the delays, all at once at least the
// slowest, and the limited run never has more than its limit in flight.
func TestTasks(t *testing.T) {
	exe := labtest.Executable(t)
	res := labtest.Run[*Result](t, New(exe), map[string]any{"tasks": 6, "delay": 20, "spread": 50, "limit": 2, "spin": 0}, nil)
	if res.SumMS != 20+30+40+50+60+70 || res.SlowestMS != 70 || len(res.Runs) != 3 || len(res.Trap) != 0 {
		t.Fatalf("result %+v", res)
	}
	if pl := res.Pipeline; pl.Received != 10 || pl.Sum != 45 || pl.WantSum != 45 || !strings.Contains(pl.Source, "func Pipeline(") {
		t.Errorf("pipeline %+v", pl)
	}
	for _, r := range res.Runs {
		for _, tk := range r.Tasks {
			if tk.Answer-tk.Sent < float64(tk.DelayMS) || tk.Start > tk.Sent || tk.Answer > tk.End || tk.End > r.TotalMS {
				t.Errorf("%s: task %+v out of order or answered before its delay", r.Mode, tk)
			}
		}
		switch r.Mode {
		case "sequential":
			if r.TotalMS < float64(res.SumMS) {
				t.Errorf("one after another took %.1f ms, less than the sum %d", r.TotalMS, res.SumMS)
			}
			for i := 1; i < len(r.Tasks); i++ {
				if r.Tasks[i].Start < r.Tasks[i-1].End {
					t.Errorf("task %d started before task %d ended", i, i-1)
				}
			}
		case "all":
			if r.TotalMS < float64(res.SlowestMS) {
				t.Errorf("all at once took %.1f ms, less than the slowest %d", r.TotalMS, res.SlowestMS)
			}
		case "limited":
			if r.Limit != 2 {
				t.Errorf("limited run's limit %d", r.Limit)
			}
			for _, a := range r.Tasks {
				inFlight := 0
				for _, b := range r.Tasks {
					if b.Start <= a.Start && a.Start < b.End {
						inFlight++
					}
				}
				if inFlight > 2 {
					t.Errorf("%d tasks in flight when task %d started, limit 2", inFlight, a.Index)
				}
			}
		}
	}
}

// TestTrapWithoutPreemption: on one P with asynchronous preemption off,
// a sleeper due during the spin cannot run before the spin has ended,
// however fast the machine.
func TestTrapWithoutPreemption(t *testing.T) {
	exe := labtest.Executable(t)
	tr, err := runTrap(context.Background(), exe, false, 120)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Sleepers) != 5 || tr.Preemption {
		t.Fatalf("trap %+v", tr)
	}
	for i, s := range tr.Sleepers {
		if s.GotMS < s.WantMS {
			t.Errorf("sleeper %d woke at %.2f ms, before its time %.2f", i, s.GotMS, s.WantMS)
		}
		if s.WantMS < tr.SpinMS && s.GotMS < tr.SpinMS-0.01 {
			t.Errorf("sleeper %d, due at %.2f ms, woke at %.2f ms, during the %.2f ms spin that held the only P", i, s.WantMS, s.GotMS, tr.SpinMS)
		}
	}
	on, err := runTrap(context.Background(), exe, true, 120)
	if err != nil {
		t.Fatal(err)
	}
	if !on.Preemption || len(on.Sleepers) != 5 {
		t.Fatalf("trap with preemption %+v", on)
	}
}

func TestStopEndsTheRun(t *testing.T) {
	exe := labtest.Executable(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	p, _ := lab.Resolve(New(exe).Info().Params, map[string]any{"tasks": 3, "delay": 2000, "spread": 0})
	start := time.Now()
	err := New(exe).Run(ctx, p, func(lab.Event) {})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("a stopped run returned %v after %v", err, time.Since(start))
	}
}
