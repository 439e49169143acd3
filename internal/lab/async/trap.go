package async

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// childEnv starts this binary as the trap's child; its value is the spin
// in milliseconds.
const childEnv = "STAMPEDE_ASYNC_TRAP"

// Trap is one run of the CPU-bound trap: on one P, sleepers that should
// wake at set times while one goroutine spins.
type Trap struct {
	Preemption bool      `json:"preemption"` // asynchronous preemption on (Go's default)
	SpinMS     float64   `json:"spinMs"`     // how long the spin really ran
	Sleepers   []Sleeper `json:"sleepers"`
	// WorstLateMS is the longest any sleeper woke after its time.
	WorstLateMS float64 `json:"worstLateMs"`
}

// Sleeper is one goroutine that slept until a set time after the spin
// began, and when it woke; both in milliseconds.
type Sleeper struct {
	WantMS float64 `json:"wantMs"`
	GotMS  float64 `json:"gotMs"`
}

// Summary says what the run showed, in one sentence.
func (t Trap) Summary() string {
	mode := "with asynchronous preemption (Go's default)"
	if !t.Preemption {
		mode = "without asynchronous preemption (GODEBUG=asyncpreemptoff=1), as a callback on an event loop"
	}
	return fmt.Sprintf("GOMAXPROCS=1, one goroutine spinning for %.0f ms %s: the %d sleepers woke at worst %.1f ms late.",
		t.SpinMS, mode, len(t.Sleepers), t.WorstLateMS)
}

// runTrap runs the trap in a child process with one P.
func runTrap(ctx context.Context, exe string, preempt bool, spinMS int) (Trap, error) {
	out, err := childCommand(ctx, exe, preempt, spinMS).Output()
	if ctx.Err() != nil {
		return Trap{}, ctx.Err()
	}
	if err != nil {
		return Trap{}, fmt.Errorf("the trap's child process: %w", err)
	}
	var t Trap
	if err := decode(out, &t); err != nil {
		return Trap{}, err
	}
	t.Preemption = preempt
	return t, nil
}

// sink keeps the spin's result alive, so the loop is not optimised away.
var sink int

// spin runs n iterations of a loop with no function call in it: only
// asynchronous preemption (a signal from the runtime) can take the P from
// it before it ends.
//
//go:noinline
func spin(n int) int {
	x := 0
	for i := 0; i < n; i++ {
		x += i ^ (x >> 3)
	}
	return x
}

// perMS measures how many iterations of spin take a millisecond here.
func perMS() int {
	n := 1 << 20
	for {
		t := time.Now()
		sink += spin(n)
		if d := time.Since(t); d > 20*time.Millisecond {
			return max(1, int(float64(n)/(float64(d)/float64(time.Millisecond))))
		}
		n *= 2
	}
}

// ChildMain runs the trap when this process was started as its child, and
// then exits; it reports false at once otherwise. Call it first in main.
func ChildMain() bool {
	v := os.Getenv(childEnv)
	if v == "" {
		return false
	}
	spinMS, err := strconv.Atoi(v)
	if err != nil || spinMS < 1 || spinMS > 10_000 {
		fmt.Fprintln(os.Stderr, "trap: bad spin", v)
		os.Exit(2)
	}
	iters := perMS() * spinMS
	const sleepers = 5
	t := Trap{Sleepers: make([]Sleeper, sleepers)}
	start := time.Now().Add(5 * time.Millisecond) // every sleeper is asleep by then
	var armed, woke sync.WaitGroup
	armed.Add(sleepers)
	woke.Add(sleepers)
	for i := range sleepers {
		want := time.Duration(spinMS) * time.Millisecond * time.Duration(i+1) / (sleepers + 1)
		go func() {
			defer woke.Done()
			armed.Done()
			time.Sleep(time.Until(start.Add(want)))
			t.Sleepers[i] = Sleeper{WantMS: ms(want), GotMS: ms(time.Since(start))}
		}()
	}
	armed.Wait()
	time.Sleep(time.Until(start))
	began := time.Now()
	sink += spin(iters)
	t.SpinMS = ms(time.Since(began))
	woke.Wait()
	for _, s := range t.Sleepers {
		t.WorstLateMS = max(t.WorstLateMS, s.GotMS-s.WantMS)
	}
	json.NewEncoder(os.Stdout).Encode(t)
	os.Exit(0)
	return true
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
