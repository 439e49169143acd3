package sched

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Workload bounds: they keep a simulation small enough to step through.
const (
	MaxTasks   = 20
	MaxArrival = 200
	MaxBurst   = 200
	MaxIOTime  = 50
	MaxPrio    = 20
	MaxTickets = 1000
)

// Validate checks a workload against the bounds.
func Validate(tasks []Task) error {
	if len(tasks) == 0 {
		return fmt.Errorf("the workload has no tasks")
	}
	if len(tasks) > MaxTasks {
		return fmt.Errorf("%d tasks: at most %d", len(tasks), MaxTasks)
	}
	seen := map[string]bool{}
	for _, t := range tasks {
		switch {
		case t.Name == "" || len(t.Name) > 8:
			return fmt.Errorf("task name %q: 1 to 8 characters", t.Name)
		case seen[t.Name]:
			return fmt.Errorf("task name %q is used twice", t.Name)
		case t.Arrival < 0 || t.Arrival > MaxArrival:
			return fmt.Errorf("task %s: arrival %d: allowed 0 to %d", t.Name, t.Arrival, MaxArrival)
		case t.Burst < 1 || t.Burst > MaxBurst:
			return fmt.Errorf("task %s: burst %d: allowed 1 to %d", t.Name, t.Burst, MaxBurst)
		case t.Priority < 0 || t.Priority > MaxPrio:
			return fmt.Errorf("task %s: priority %d: allowed 0 to %d", t.Name, t.Priority, MaxPrio)
		case t.Tickets < 1 || t.Tickets > MaxTickets:
			return fmt.Errorf("task %s: tickets %d: allowed 1 to %d", t.Name, t.Tickets, MaxTickets)
		case t.IOEvery < 0 || t.IOEvery > MaxBurst || t.IOTime < 0 || t.IOTime > MaxIOTime || (t.IOEvery > 0) != (t.IOTime > 0):
			return fmt.Errorf("task %s: I/O every %d for %d: both 0, or every 1 to %d for 1 to %d", t.Name, t.IOEvery, t.IOTime, MaxBurst, MaxIOTime)
		}
		seen[t.Name] = true
	}
	return nil
}

// Parse reads a workload, one task per line:
//
//	name arrival burst [priority [tickets [io-every io-time]]]
//
// Blank lines and lines starting with # are skipped. Priority defaults to
// 0, tickets to 1, and no I/O.
func Parse(text string) ([]Task, error) {
	var tasks []Task
	s := bufio.NewScanner(strings.NewReader(text))
	for line := 1; s.Scan(); line++ {
		f := strings.Fields(s.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 3 || len(f) == 6 || len(f) > 7 {
			return nil, fmt.Errorf("line %d: want name arrival burst [priority [tickets [io-every io-time]]], got %d fields", line, len(f))
		}
		nums := make([]int, 6)
		nums[3] = 1 // tickets
		for k, v := range f[1:] {
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("line %d: %q is not a whole number", line, v)
			}
			nums[k] = n
		}
		tasks = append(tasks, Task{Name: f[0], Arrival: nums[0], Burst: nums[1], Priority: nums[2], Tickets: nums[3], IOEvery: nums[4], IOTime: nums[5]})
	}
	if err := Validate(tasks); err != nil {
		return nil, err
	}
	return tasks, nil
}

// Format writes tasks in the form Parse reads.
func Format(tasks []Task) string {
	var b strings.Builder
	b.WriteString("# name arrival burst priority tickets io-every io-time\n")
	for _, t := range tasks {
		fmt.Fprintf(&b, "%s %d %d %d %d", t.Name, t.Arrival, t.Burst, t.Priority, t.Tickets)
		if t.IOEvery > 0 {
			fmt.Fprintf(&b, " %d %d", t.IOEvery, t.IOTime)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Generate makes n tasks from seed: the same seed, the same workload.
// About one in four does I/O.
func Generate(seed uint64, n int) []Task {
	rng := rand.New(rand.NewPCG(seed, 0x3a11))
	tasks := make([]Task, n)
	for i := range tasks {
		t := Task{
			Name:     string(rune('A' + i%26)),
			Arrival:  rng.IntN(3 * n),
			Burst:    1 + rng.IntN(10),
			Priority: rng.IntN(6),
			Tickets:  10 * (1 + rng.IntN(10)),
		}
		if rng.IntN(4) == 0 && t.Burst > 2 {
			t.IOEvery, t.IOTime = 1+rng.IntN(3), 1+rng.IntN(4)
		}
		tasks[i] = t
	}
	return tasks
}
