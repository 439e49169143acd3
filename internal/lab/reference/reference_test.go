package reference

import (
	"strings"
	"testing"

	"github.com/stampede-dev/stampede/internal/lab/costs"
	"github.com/stampede-dev/stampede/internal/lab/ipc"
	"github.com/stampede-dev/stampede/internal/lab/syncbench"
)

// TestBuild fills the tables from known results and checks the verdict
// of each judged cell.
func TestBuild(t *testing.T) {
	c := costs.Result{
		Creations: []costs.Creation{
			{Kind: "goroutine", RSSEach: 2800},
			{Kind: "thread", RSSEach: 16 << 10, KernelEach: 20 << 10, StackReserved: 8 << 20},
			{Kind: "process", PrivateEach: 2 << 20, SharedEach: 14 << 20},
		},
		Switches: []costs.Switch{
			{Kind: "goroutine", Cores: 1, NsPerSwap: 150, MinNs: 140, MaxNs: 310, KernelSwitches: 0.01},
			{Kind: "thread", Cores: 1, NsPerSwap: 1300, MinNs: 1200, MaxNs: 1500, KernelSwitches: 2.02},
			{Kind: "process", Cores: 1, NsPerSwap: 4500, MinNs: 4400, MaxNs: 4800, KernelSwitches: 2.1},
		},
	}
	pt := func(id string, g int, mops, jain float64) syncbench.Point {
		return syncbench.Point{Primitive: id, Goroutines: g, OpsPerSec: mops * 1e6, Jain: jain, Correct: true}
	}
	s := syncbench.Result{Counts: []int{1, 8}, Points: []syncbench.Point{
		pt("mutex", 1, 80, 1), pt("mutex", 8, 14, 0.97), pt("rwmutex", 8, 60, 0.9),
		pt("spin", 1, 75, 1), pt("spin", 8, 5, 0.6), pt("cond", 8, 1.4, 1),
		pt("semaphore", 8, 2, 0.97), pt("chan-sem", 8, 6, 0.9), pt("atomic", 8, 70, 0.9),
		pt("queue-ring", 8, 18, 0.7), pt("queue-chan", 8, 8, 1),
	}, Primitives: syncbench.Primitives()}
	r := Build(c, ipc.Result{Rows: []ipc.Row{{Mechanism: "pipe", Placement: "one core", Trips: 10, MedianUS: 13.5, P99US: 50}}}, s, 2)
	if len(r.Tables) != 4 {
		t.Fatalf("%d tables, want 4", len(r.Tables))
	}
	kinds := func(tb Table, label string) string {
		for _, row := range tb.Rows {
			if row.Label == label {
				var k []string
				for _, cell := range row.Cells {
					k = append(k, cell.Kind)
				}
				return strings.Join(k, " ")
			}
		}
		return "no row " + label
	}
	for _, c := range []struct {
		table int
		row   string
		want  string
	}{
		{0, "Switch overhead", "cheaper matches inconclusive"},
		{0, "Memory footprint", "cheaper cheaper matches"},
		{0, "Scheduler", "agrees agrees agrees"},
		{0, "Crash impact", "unmeasured unmeasured unmeasured"},
		{1, "pipe (two, one each way)", "unmeasured measured unmeasured unmeasured"},
		{2, "Mutex", "agrees agrees"},
		{2, "RWLock", "agrees unmeasured"},
		{2, "Spinlock", "agrees agrees"},
		{2, "Atomic operations", "agrees unmeasured"},
		{2, "Lock-free queue", "agrees unmeasured"},
		{3, "Web service gateway", "unmeasured agrees"},
		{3, "Scientific computing", "unmeasured agrees"},
	} {
		if got := kinds(r.Tables[c.table], c.row); got != c.want {
			t.Errorf("%s / %s: %s, want %s", r.Tables[c.table].ID, c.row, got, c.want)
		}
	}
	// The claims turn when the figures do: a spinlock that beats the
	// mutex in a crowd, a ring slower than the channel, one core.
	s.Points[4].OpsPerSec, s.Points[9].OpsPerSec = 20e6, 5e6
	r = Build(c, ipc.Result{}, s, 1)
	if got := kinds(r.Tables[2], "Spinlock"); got != "agrees disagrees" {
		t.Errorf("spinlock faster than a mutex in a crowd: %s", got)
	}
	if got := kinds(r.Tables[2], "Lock-free queue"); got != "disagrees unmeasured" {
		t.Errorf("ring slower than a channel: %s", got)
	}
	if got := kinds(r.Tables[3], "Scientific computing"); got != "unmeasured disagrees" {
		t.Errorf("one core: %s", got)
	}
	mem := r.Tables[0].Rows[1].Cells[1]
	if mem.Measured != "36.0 KiB resident, kernel memory included; its stack mapping reserves 8.0 MiB of address space" {
		t.Errorf("thread memory: %q", mem.Measured)
	}
}
