// Package reference is the lab's reference page: the guide's tables (the
// cost of a process, a thread and a coroutine; the ways between processes;
// the synchronisation primitives; the selection guide), each cell set
// beside what this machine measured and given a verdict. It runs short
// versions of the costs, ipc and sync experiments and reads their results.
package reference

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/stampede-dev/stampede/internal/lab"
	"github.com/stampede-dev/stampede/internal/lab/costs"
	"github.com/stampede-dev/stampede/internal/lab/ipc"
	"github.com/stampede-dev/stampede/internal/lab/syncbench"
)

// Experiment measures and fills the tables.
type Experiment struct {
	costs, ipc, sync lab.Experiment
}

// New returns the experiment; exe is the binary the ipc and costs
// children run.
func New(exe string) *Experiment {
	return &Experiment{costs: costs.New(), ipc: ipc.New(exe), sync: syncbench.New()}
}

var _ lab.Experiment = (*Experiment)(nil)

// Info describes the experiment.
func (*Experiment) Info() lab.Info {
	return lab.Info{
		ID: "reference", Chapter: 9, Heavy: true,
		Title:   "The guide's tables, measured here",
		Summary: "Short runs of the costs, ipc and sync experiments, and the guide's four tables with this machine's figure and a verdict in every cell.",
	}
}

// Cell is one cell of a guide's table: what the guide says, what was
// measured here, and the verdict.
type Cell struct {
	Guide    string `json:"guide"`
	Measured string `json:"measured"`
	// Kind is matches, cheaper or dearer (a figure against the guide's
	// band), inconclusive, agrees or disagrees (a claim against what was
	// measured), or unmeasured (shown elsewhere, or not measurable).
	Kind    string `json:"kind"`
	Verdict string `json:"verdict"`
}

// Row is a row of a table: its label and one cell per column.
type Row struct {
	Label string `json:"label"`
	Cells []Cell `json:"cells"`
}

// Table is one of the guide's tables.
type Table struct {
	ID      string   `json:"id"`
	Title   string   `json:"title"`
	Columns []string `json:"columns"`
	Rows    []Row    `json:"rows"`
	Notes   []string `json:"notes,omitempty"`
}

// Result is the four tables.
type Result struct {
	Tables []Table `json:"tables"`
}

// The short runs: enough to rank and to judge, quick enough for a page.
var (
	costsParams = map[string]any{"goroutines": 20_000, "threads": 200, "processes": 10, "roundtrips": 10_000}
	ipcParams   = map[string]any{"trips": 5_000, "mib": 32, "limit": 500}
	syncParams  = map[string]any{"goroutines": 8, "ms": 50, "runs": 3}
)

// Run runs the three experiments and builds the tables.
func (e *Experiment) Run(ctx context.Context, _ lab.Values, emit func(lab.Event)) error {
	var c costs.Result
	var i ipc.Result
	var s syncbench.Result
	for _, step := range []struct {
		exp    lab.Experiment
		params map[string]any
		into   func(any) bool
	}{
		{e.costs, costsParams, func(d any) bool { r, ok := d.(costs.Result); c = r; return ok }},
		{e.ipc, ipcParams, func(d any) bool { r, ok := d.(ipc.Result); i = r; return ok }},
		{e.sync, syncParams, func(d any) bool { r, ok := d.(syncbench.Result); s = r; return ok }},
	} {
		id := step.exp.Info().ID
		values, err := lab.Resolve(step.exp.Info().Params, step.params)
		if err != nil {
			return err
		}
		got := false
		err = step.exp.Run(ctx, values, func(ev lab.Event) {
			switch ev.Kind {
			case lab.KindResult:
				got = step.into(ev.Data)
			case lab.KindProgress:
				ev.Message = id + ": " + ev.Message
				emit(ev)
			}
		})
		if err != nil {
			return err
		}
		if !got {
			return fmt.Errorf("the %s experiment gave no result", id)
		}
	}
	emit(lab.Result(Build(c, i, s, runtime.NumCPU())))
	return nil
}

// Build fills the guide's tables from the three results; cores is this
// machine's.
func Build(c costs.Result, i ipc.Result, s syncbench.Result, cores int) Result {
	return Result{Tables: []Table{costTable(c), ipcTable(i), syncTable(s), selectionTable(c, cores)}}
}

func creation(r costs.Result, kind string) costs.Creation {
	for _, c := range r.Creations {
		if c.Kind == kind {
			return c
		}
	}
	return costs.Creation{}
}

func oneCPU(r costs.Result, kind string) costs.Switch {
	for _, s := range r.Switches {
		if s.Kind == kind && s.Cores == 1 {
			return s
		}
	}
	return costs.Switch{NsPerSwap: math.NaN()}
}

// figure judges a measured figure (or a range) against a band.
func figure(guide string, low, high, measured, lo, hi float64, unit string) Cell {
	kind, verdict := costs.Verdict(costs.Claim{Low: low, High: high, Unit: unit, Measured: measured, MinMeasured: lo, MaxMeasured: hi})
	f := costs.Duration
	if unit == "bytes" {
		f = costs.Bytes
	}
	m := f(measured)
	if lo != hi {
		m += fmt.Sprintf(" (%s to %s)", f(lo), f(hi))
	}
	if kind == "unmeasured" {
		m = ""
	}
	return Cell{Guide: guide, Measured: m, Kind: kind, Verdict: verdict}
}

// claim judges one of the guide's sentences by a condition measured here.
func claim(guide, measured string, holds bool, why string) Cell {
	if holds {
		return Cell{Guide: guide, Measured: measured, Kind: "agrees", Verdict: "agrees: " + why}
	}
	return Cell{Guide: guide, Measured: measured, Kind: "disagrees", Verdict: "disagrees: " + why}
}

func elsewhere(guide, verdict string) Cell {
	return Cell{Guide: guide, Kind: "unmeasured", Verdict: verdict}
}

// costTable is the guide's comparison of a process, a thread and a
// coroutine.
func costTable(r costs.Result) Table {
	t := Table{ID: "costs", Title: "Process, thread and coroutine (the guide's comparison table)", Columns: []string{"", "Process", "Thread", "Coroutine (goroutine)"}}
	switchCell := func(kind, guide string, low, high float64) Cell {
		s := oneCPU(r, kind)
		return figure(guide, low, high, s.NsPerSwap, s.MinNs, s.MaxNs, "ns")
	}
	t.Rows = append(t.Rows, Row{Label: "Switch overhead", Cells: []Cell{
		switchCell("process", "~1–10 ms", 1e6, 1e7),
		switchCell("thread", "~1–10 µs", 1e3, 1e4),
		switchCell("goroutine", "~100 ns", 50, 200),
	}})
	p, th, g := creation(r, "process"), creation(r, "thread"), creation(r, "goroutine")
	proc := figure("~10 MB+", 10<<20, math.Inf(1), p.PrivateEach, 0, 0, "bytes")
	if proc.Kind != "unmeasured" {
		proc.Measured += fmt.Sprintf(" private, and %s shared with every other copy", costs.Bytes(p.SharedEach))
	}
	thread := figure("~1 MB", 512<<10, 2<<20, th.RSSEach+math.Max(th.KernelEach, 0), 0, 0, "bytes")
	if th.StackReserved > 0 {
		thread.Measured += fmt.Sprintf(" resident, kernel memory included; its stack mapping reserves %s of address space", costs.Bytes(float64(th.StackReserved)))
	}
	t.Rows = append(t.Rows, Row{Label: "Memory footprint", Cells: []Cell{proc, thread, figure("~2 KB", 1<<10, 4<<10, g.RSSEach, 0, 0, "bytes")}})
	kernel := func(kind, guide string, byKernel bool) Cell {
		s := oneCPU(r, kind)
		m := fmt.Sprintf("%.2f kernel switches per round trip", s.KernelSwitches)
		if byKernel {
			return claim(guide, m, s.KernelSwitches >= 1, "the kernel switched them itself")
		}
		return claim(guide, m, s.KernelSwitches < 0.5, "the kernel saw almost no switch: Go's runtime switched them")
	}
	t.Rows = append(t.Rows, Row{Label: "Scheduler", Cells: []Cell{
		kernel("process", "OS", true), kernel("thread", "OS", true), kernel("goroutine", "user program / runtime", false),
	}})
	t.Rows = append(t.Rows, Row{Label: "Crash impact", Cells: []Cell{
		elsewhere("this process only", "chapter 4 (isolation) shows it: the other children finish while one dies of SIGSEGV"),
		elsewhere("entire process", "chapter 4 shows it for goroutines: one unrecovered panic ends the process"),
		elsewhere("controllable", "not in Go: chapter 4 shows one goroutine's unrecovered panic ending the whole process; only recover in that goroutine contains it"),
	}})
	return t
}

// ipcTable is the guide's table of ways between processes.
func ipcTable(r ipc.Result) Table {
	t := Table{ID: "ipc", Title: "Ways between processes (the guide's IPC table)", Columns: []string{"Method", "Speed (guide)", "Round trip, one core", "Round trip, two cores", "Stream, two cores"}}
	row := func(id, place string) ipc.Row {
		for _, x := range r.Rows {
			if x.Mechanism == id && x.Placement == place {
				return x
			}
		}
		return ipc.Row{}
	}
	for _, m := range ipc.Mechanisms {
		one, two := row(m.ID, "one core"), row(m.ID, "two cores")
		cell := func(x ipc.Row, stream bool) Cell {
			switch {
			case x.Trips == 0:
				return Cell{Kind: "unmeasured", Verdict: "not measured"}
			case stream && x.MiBps == 0:
				return Cell{Kind: "unmeasured", Verdict: "carries no data"}
			case stream:
				return Cell{Measured: fmt.Sprintf("%.0f MiB/s", x.MiBps), Kind: "measured"}
			}
			return Cell{Measured: fmt.Sprintf("%.1f µs median, p99 %.1f µs", x.MedianUS, x.P99US), Kind: "measured"}
		}
		t.Rows = append(t.Rows, Row{Label: m.Name, Cells: []Cell{{Guide: m.Claim, Kind: "unmeasured"}, cell(one, false), cell(two, false), cell(two, true)}})
	}
	t.Notes = r.Verdicts
	return t
}

// syncTable is the guide's table of synchronisation mechanisms, each
// claim judged by the sync experiment's throughput and fairness.
func syncTable(r syncbench.Result) Table {
	t := Table{ID: "sync", Title: "Synchronisation mechanisms (the guide's table)", Columns: []string{"Mechanism", "Pros (guide)", "Cons (guide)"}}
	most := slices.Max(r.Counts)
	at := func(id string, g int) syncbench.Point {
		for _, p := range r.Points {
			if p.Primitive == id && p.Goroutines == g {
				return p
			}
		}
		return syncbench.Point{}
	}
	mops := func(p syncbench.Point) string { return fmt.Sprintf("%.1f Mops/s", p.OpsPerSec/1e6) }
	crowd := fmt.Sprintf("%d goroutines", most)
	mu1, muN := at("mutex", 1), at("mutex", most)
	rwN, spin1, spinN := at("rwmutex", most), at("spin", 1), at("spin", most)
	condN, semN, chN := at("cond", most), at("semaphore", most), at("chan-sem", most)
	atomN, ringN, qchN := at("atomic", most), at("queue-ring", most), at("queue-chan", most)
	best := ""
	for _, p := range r.Points {
		if p.Goroutines == most && (best == "" || p.OpsPerSec > at(best, most).OpsPerSec) {
			best = p.Primitive
		}
	}
	ratio := func(a, b syncbench.Point) float64 { return a.OpsPerSec / math.Max(b.OpsPerSec, 1) }
	t.Rows = []Row{
		{Label: "Mutex", Cells: []Cell{
			claim("simple to implement", "", true, "sync.Mutex is a value you need not set up"),
			claim("poor performance under heavy contention", fmt.Sprintf("%s alone, %s with %s", mops(mu1), mops(muN), crowd),
				muN.OpsPerSec < mu1.OpsPerSec, fmt.Sprintf("%s get %.2f× the throughput of one", crowd, ratio(muN, mu1))),
		}},
		{Label: "RWLock", Cells: []Cell{
			claim("efficient for read-heavy workloads", fmt.Sprintf("%s with %s, 90 %% reads; Mutex %s", mops(rwN), crowd, mops(muN)),
				rwN.OpsPerSec > muN.OpsPerSec, fmt.Sprintf("%.2f× Mutex's throughput", ratio(rwN, muN))),
			elsewhere("complex, risk of write starvation", "not measured: Go's RWMutex makes new readers wait once a writer does"),
		}},
		{Label: "Spinlock", Cells: []Cell{
			claim("efficient when the wait is short", fmt.Sprintf("alone %s; Mutex %s", mops(spin1), mops(mu1)),
				spin1.OpsPerSec >= 0.9*mu1.OpsPerSec, fmt.Sprintf("with nobody to wait for, %.2f× Mutex", ratio(spin1, mu1))),
			claim("wastes CPU when the wait is long", fmt.Sprintf("%s with %s; Mutex %s; fairness %.2f", mops(spinN), crowd, mops(muN), spinN.Jain),
				spinN.OpsPerSec < muN.OpsPerSec, fmt.Sprintf("in a crowd, %.2f× Mutex's throughput, and Jain's index %.2f", ratio(spinN, muN), spinN.Jain)),
		}},
		{Label: "Condition variable", Cells: []Cell{
			elsewhere("avoids busy-waiting", "true by construction: waiters sleep in Wait"),
			claim("must be used with a lock", fmt.Sprintf("strict turns: %s with %s, Jain %.2f", mops(condN), crowd, condN.Jain),
				true, fmt.Sprintf("sync.Cond takes a Locker; and every Broadcast wakes all %d to let one run, %.2f× Mutex", most, ratio(condN, muN))),
		}},
		{Label: "Semaphore", Cells: []Cell{
			claim("can limit concurrency", fmt.Sprintf("semaphore.Weighted %s, a channel %s with %s", mops(semN), mops(chN), crowd),
				semN.Correct && chN.Correct, "every operation counted once with 4 permits"),
			elsewhere("error-prone if misused", "not measurable: a release without an acquire panics in Go"),
		}},
		{Label: "Atomic operations", Cells: []Cell{
			claim("lock-free, highest performance", fmt.Sprintf("%s with %s", mops(atomN), crowd),
				best == "atomic", fmt.Sprintf("the highest throughput with %s was %s's", crowd, name(r, best))),
			elsewhere("only for simple data types", "true: one word"),
		}},
		{Label: "Lock-free queue", Cells: []Cell{
			claim("excellent performance under high concurrency", fmt.Sprintf("ring %s, channel %s with %s", mops(ringN), mops(qchN), crowd),
				ringN.OpsPerSec > qchN.OpsPerSec, fmt.Sprintf("%.2f× the channel's throughput; fairness %.2f against %.2f", ratio(ringN, qchN), ringN.Jain, qchN.Jain)),
			elsewhere("complex, ABA problem", "this ring's positions only grow, so a position is never reused while a goroutine holds it: no ABA"),
		}},
	}
	t.Notes = []string{fmt.Sprintf("Throughput is operations per second of all the goroutines together, the median of %d runs of 50 ms.", syncParams["runs"])}
	return t
}

func name(r syncbench.Result, id string) string {
	for _, p := range r.Primitives {
		if p.ID == id {
			return p.Name
		}
	}
	return id
}

// selectionTable is the guide's selection guide with what this machine
// says about each rationale.
func selectionTable(c costs.Result, cores int) Table {
	g, th := creation(c, "goroutine"), creation(c, "thread")
	thread := th.RSSEach + math.Max(th.KernelEach, 0)
	mem := fmt.Sprintf("a goroutine held %s here, a thread %s", costs.Bytes(g.RSSEach), costs.Bytes(thread))
	light := g.RSSEach > 0 && g.RSSEach < thread
	why := fmt.Sprintf("a goroutine per connection costs %.0f× less memory than a thread", thread/math.Max(g.RSSEach, 1))
	par := fmt.Sprintf("%d cores here", cores)
	parWhy := fmt.Sprintf("CPU-bound work gains at most %d× from threads or processes on this machine (chapter 6 measures it)", cores)
	t := Table{ID: "selection", Title: "Which model for which job (the guide's selection guide)", Columns: []string{"Scenario", "Recommended model (guide)", "Rationale (guide)"}}
	t.Rows = []Row{
		{Label: "Web service gateway", Cells: []Cell{{Guide: "coroutine + async I/O", Kind: "unmeasured"}, claim("high concurrent connections, low memory footprint", mem, light, why)}},
		{Label: "Real-time communication", Cells: []Cell{{Guide: "coroutine + long connections", Kind: "unmeasured"}, claim("maintain many WebSocket connections", mem, light, why+"; chapter 5 measures an idle connection's memory")}},
		{Label: "Data processing pipelines", Cells: []Cell{{Guide: "multi-process + coroutines", Kind: "unmeasured"}, claim("use multi-core, I/O non-blocking", par, cores > 1, parWhy)}},
		{Label: "Scientific computing", Cells: []Cell{{Guide: "multi-threaded / multi-process", Kind: "unmeasured"}, claim("CPU-intensive, needs parallel computation", par, cores > 1, parWhy+"; in Go, goroutines already run on every core")}},
		{Label: "Microservice architecture", Cells: []Cell{{Guide: "multi-process + coroutines", Kind: "unmeasured"}, elsewhere("isolation between services, high concurrency inside", "chapter 4 shows the isolation, chapter 8 the processes of one service")}},
		{Label: "Embedded systems", Cells: []Cell{{Guide: "coroutine / single-threaded", Kind: "unmeasured"}, elsewhere("resource-constrained, deterministic scheduling", "not measurable on this machine")}},
	}
	return t
}

// WriteText prints the tables.
func (r Result) WriteText(w io.Writer) error {
	for _, t := range r.Tables {
		fmt.Fprintf(w, "%s\n\n", t.Title)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(t.Columns, "\t"))
		for _, row := range t.Rows {
			cells := []string{row.Label}
			for _, c := range row.Cells {
				s := c.Guide
				if c.Measured != "" {
					s = strings.TrimSpace(s + " | " + c.Measured)
				}
				if c.Verdict != "" {
					s += " | " + c.Verdict
				}
				cells = append(cells, s)
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, n := range t.Notes {
			fmt.Fprintln(w, n)
		}
		fmt.Fprintln(w)
	}
	return nil
}
