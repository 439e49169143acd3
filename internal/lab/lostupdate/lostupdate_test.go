package lostupdate

import (
	"testing"

	"github.com/stampede-dev/stampede/internal/lab/labtest"
)

func run(t *testing.T, raw map[string]any) Result {
	t.Helper()
	return labtest.Run[Result](t, New(), raw, nil)
}

func TestLostUpdate(t *testing.T) {
	// Yielding between the read and the write loses updates on any number
	// of cores; the mutex and the atomic never do.
	res := run(t, map[string]any{"goroutines": "8", "increments": "2000", "yield": "true"})
	if len(res.Counters) != 3 {
		t.Fatalf("%d counters", len(res.Counters))
	}
	plain, mutex, atomic := res.Counters[0], res.Counters[1], res.Counters[2]
	if plain.Expected != 16000 || plain.Lost <= 0 || plain.Got+plain.Lost != 16000 || plain.LostPercent <= 0 {
		t.Errorf("read-then-write: %+v, want updates lost", plain)
	}
	for _, c := range []Counter{mutex, atomic} {
		if c.Got != 16000 || c.Lost != 0 || c.ZeroTrials != 5 || c.MaxLost != 0 || len(c.LostByTrial) != 5 {
			t.Errorf("%s: %+v, want exactly 16000 in each of 5 trials", c.Method, c)
		}
	}
	// The median trial is reported, and the spread around it.
	if len(plain.LostByTrial) != 5 || plain.MinLost > plain.Lost || plain.Lost > plain.MaxLost || plain.ZeroTrials != count0(plain.LostByTrial) {
		t.Errorf("read-then-write trials: %+v", plain)
	}
	// Without the yield the loss depends on cores and timing; the safe
	// counters stay exact.
	res = run(t, map[string]any{"goroutines": "64", "increments": "5000"})
	if res.Counters[0].Got > 320000 || res.Counters[1].Got != 320000 || res.Counters[2].Got != 320000 {
		t.Errorf("no yield: %+v", res.Counters)
	}
}

func count0(xs []int64) int {
	n := 0
	for _, x := range xs {
		if x == 0 {
			n++
		}
	}
	return n
}
