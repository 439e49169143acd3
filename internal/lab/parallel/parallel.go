// Package parallel is the lab's chapter 6 experiment on concurrency and
// parallelism: the same tasks run with GOMAXPROCS 1, 2, … in child
// processes of this binary. CPU-bound tasks (hashing) finish faster only
// with more Ps, up to the cores, and Amdahl's law is fitted to the
// speed-ups; tasks that wait finish together at any GOMAXPROCS, because
// waiting needs no core. A runtime/trace of each run, read with
// golang.org/x/exp/trace, shows which goroutine ran on which P.
package parallel

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/stampede-dev/stampede/internal/lab"
)

// Kinds of work.
const (
	KindCPU  = "cpu"  // hashing: needs a core the whole time
	KindWait = "wait" // sleeping on a timer, as a task waits for an answer
)

// Experiment runs the workloads. New gives it the binary to start as the
// child.
type Experiment struct{ exe string }

// New returns the experiment; exe is this binary.
func New(exe string) *Experiment { return &Experiment{exe: exe} }

var _ lab.Experiment = (*Experiment)(nil)

// Info describes the experiment.
func (*Experiment) Info() lab.Info {
	cores := runtime.NumCPU()
	return lab.Info{
		ID: "parallel", Chapter: 6, Heavy: true,
		Title:   "Concurrency is not parallelism: the same tasks at GOMAXPROCS 1, 2, …",
		Summary: "Runs CPU-bound tasks and waiting tasks in child processes with 1 to N Ps, times them, fits Amdahl's law, and draws a runtime trace of each run, one lane per P.",
		Params: []lab.Param{
			{Name: "tasks", Label: "Tasks", Kind: lab.Int, Default: 8, Min: 1, Max: 64},
			{Name: "work", Label: "Work per task", Help: "CPU time of one task's hashing on one core, and the wait of a waiting task", Unit: "ms",
				Kind: lab.Int, Default: 40, Min: 1, Max: 500},
			{Name: "procs", Label: "Up to GOMAXPROCS", Help: fmt.Sprintf("this machine has %d cores; beyond them, more Ps share the same cores", cores),
				Kind: lab.Int, Default: cores, Min: 1, Max: float64(max(4, 2*cores))},
			{Name: "rounds", Label: "Rounds", Help: "each timing is the median of this many runs", Kind: lab.Int, Default: 3, Min: 1, Max: 9},
			{Name: "serial", Label: "Serial part", Help: "the share of the CPU-bound work done alone, on one goroutine, before the tasks start: the s of Amdahl's law, set",
				Kind: lab.Float, Default: 0.0, Min: 0, Max: 0.9},
		},
	}
}

// Point is one kind of work at one GOMAXPROCS.
type Point struct {
	Kind   string  `json:"kind"`
	Procs  int     `json:"procs"`
	WallMS float64 `json:"wallMs"` // median over the rounds
	// Speedup is the wall time at GOMAXPROCS 1 over this one.
	Speedup float64 `json:"speedup"`
	// Amdahl is the speed-up the fitted law predicts here (CPU-bound
	// work only; 0 otherwise).
	Amdahl float64 `json:"amdahl"`
	// Tasks is the wall time in units of one task's work: about the
	// number of tasks when they run one after another, 1 when all run at
	// once.
	Tasks float64 `json:"tasks"`
	// SerialMS is the median time of the serial part, run alone before
	// the tasks; ParallelSpeedup is the speed-up of the rest, the tasks
	// alone: below the Ps, even with no serial part, it measures what the
	// cores lose to each other (shared caches, memory bandwidth, a
	// virtual machine's neighbours) and to uneven shares.
	SerialMS        float64 `json:"serialMs"`
	ParallelSpeedup float64 `json:"parallelSpeedup"`
	// Ceiling is what the tasks' granularity allows at this many Ps on
	// this machine's cores: tasks ÷ ⌈tasks ÷ min(Ps, cores)⌉ (8 tasks on 3
	// Ps: the last round runs 2 of 3, so at most 2.67×).
	Ceiling float64 `json:"ceiling"`
	Lanes   Lanes   `json:"lanes"`
}

// Fit is Amdahl's law fitted to the CPU-bound speed-ups: S(p) = 1 / (s +
// (1 − s)/p), with s the serial fraction.
type Fit struct {
	Kind string `json:"kind"`
	// Set is the serial part the run asked for.
	Set float64 `json:"set"`
	// Serial is s fitted to the whole run's speed-ups, as the law is
	// usually applied: everything that keeps the speed-up below p counts
	// as serial, interference and uneven shares included.
	Serial float64 `json:"serial"`
	// SerialOfWork is s fitted with the tasks' own measured speed-up in
	// place of an ideal p: S = 1 / (s + (1 − s)/P) with P the parallel
	// part's speed-up. It recovers the serial part of the work itself.
	// Absent (nil) when no point allowed the fit (the tasks went no
	// faster).
	SerialOfWork *float64 `json:"serialOfWork"`
	// Limit is the most any number of cores could give, 1/s.
	Limit  float64 `json:"limit"`
	Points int     `json:"points"` // speed-ups the fit used (p > 1)
}

// Result is the experiment's result.
type Result struct {
	Cores  int     `json:"cores"`
	Tasks  int     `json:"tasks"`
	WorkMS int     `json:"workMs"`
	Serial float64 `json:"serial"` // the serial part set
	Points []Point `json:"points"`
	Fits   []Fit   `json:"fits"`
}

// Run times each kind at each GOMAXPROCS, then traces one run of each.
func (e *Experiment) Run(ctx context.Context, p lab.Values, emit func(lab.Event)) error {
	if e.exe == "" {
		return fmt.Errorf("the parallel experiment needs this binary to start its children, and it could not be found")
	}
	tasks, work, maxProcs, rounds, serial := p.Int("tasks"), p.Int("work"), p.Int("procs"), p.Int("rounds"), p.Float("serial")
	// One task's work at GOMAXPROCS 1 is work ms in all; the serial part
	// takes its share of the whole, and each task hashes the rest.
	perMS := itersPerMS()
	iters := max(1, int(float64(perMS*work)*(1-serial)))
	serialIters := int(float64(perMS*work*tasks) * serial)
	dir, err := os.MkdirTemp("", "stampede-parallel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	res := Result{Cores: runtime.NumCPU(), Tasks: tasks, WorkMS: work, Serial: serial}
	total := int64(2 * maxProcs * (rounds + 1))
	var done int64
	for _, kind := range []string{KindCPU, KindWait} {
		for procs := 1; procs <= maxProcs; procs++ {
			var walls, serials []float64
			si := serialIters
			if kind != KindCPU {
				si = 0
			}
			for range rounds {
				emit(lab.Progress(fmt.Sprintf("%s-bound tasks, GOMAXPROCS %d", kind, procs), done, total))
				r, err := e.child(ctx, kind, procs, tasks, iters, work, "-", si)
				if err != nil {
					return err
				}
				walls = append(walls, float64(r.WallNs)/1e6)
				serials = append(serials, float64(r.SerialNs)/1e6)
				done++
			}
			slices.Sort(walls)
			slices.Sort(serials)
			pt := Point{Kind: kind, Procs: procs, WallMS: walls[len(walls)/2], Tasks: walls[len(walls)/2] / float64(work),
				SerialMS: serials[len(serials)/2]}
			if kind == KindCPU {
				pt.Ceiling = Ceiling(tasks, min(procs, res.Cores))
			}
			traceFile := filepath.Join(dir, fmt.Sprintf("%s-%d.trace", kind, procs))
			if _, err := e.child(ctx, kind, procs, tasks, iters, work, traceFile, si); err != nil {
				return err
			}
			done++
			f, err := os.Open(traceFile)
			if err != nil {
				return err
			}
			pt.Lanes, err = ReadLanes(f, procs)
			f.Close()
			if err != nil {
				return err
			}
			res.Points = append(res.Points, pt)
			emit(lab.Point(kind, float64(procs), pt.WallMS))
		}
	}
	// Amdahl's law is for work that needs a core; waiting tasks get a
	// speed-up but no fit.
	for _, kind := range []string{KindCPU, KindWait} {
		var base, baseParallel float64
		var pts []*Point
		for i := range res.Points {
			if res.Points[i].Kind == kind {
				pts = append(pts, &res.Points[i])
				if res.Points[i].Procs == 1 {
					base, baseParallel = res.Points[i].WallMS, res.Points[i].WallMS-res.Points[i].SerialMS
				}
			}
		}
		var ps, ss, es []float64
		for _, pt := range pts {
			pt.Speedup = base / pt.WallMS
			if par := pt.WallMS - pt.SerialMS; par > 0 {
				pt.ParallelSpeedup = baseParallel / par
			}
			// Past the cores, more Ps take turns on the same cores: that
			// ceiling is the machine's, not a serial part of the work, so
			// the law is fitted to the points within the cores and
			// predicts the rest.
			if pt.Procs <= res.Cores {
				ps, ss, es = append(ps, float64(pt.Procs)), append(ss, pt.Speedup), append(es, pt.ParallelSpeedup)
			}
		}
		if kind != KindCPU {
			continue
		}
		fit := FitAmdahl(ps, ss)
		fit.Kind, fit.Set = kind, serial
		if w := FitAmdahl(es, ss); w.Points > 0 {
			fit.SerialOfWork = &w.Serial
		}
		for _, pt := range pts {
			pt.Amdahl = fit.Speedup(float64(pt.Procs))
		}
		res.Fits = append(res.Fits, fit)
	}
	emit(lab.Result(res))
	return nil
}

// child runs one workload in a child process with procs Ps.
func (e *Experiment) child(ctx context.Context, kind string, procs, tasks, iters, waitMS int, traceFile string, serialIters int) (childResult, error) {
	cmd := exec.CommandContext(ctx, e.exe)
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(procs),
		fmt.Sprintf("%s=%s %d %d %d %s %d", childEnv, kind, tasks, iters, waitMS, traceFile, serialIters))
	cmd.WaitDelay = time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return childResult{}, ctx.Err()
	}
	if err != nil {
		return childResult{}, fmt.Errorf("the workload's child process: %v %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	var r childResult
	if err := json.Unmarshal(out, &r); err != nil {
		return childResult{}, fmt.Errorf("the workload's child process said %q: %w", out, err)
	}
	if r.GOMAXPROCS != procs {
		return childResult{}, fmt.Errorf("the child ran with GOMAXPROCS %d, not %d", r.GOMAXPROCS, procs)
	}
	return r, nil
}

// Ceiling is the most n equal tasks can be sped up on p cores, their
// granularity allowed for: they run in ⌈n/p⌉ rounds, so n ÷ ⌈n/p⌉.
func Ceiling(n, p int) float64 {
	return float64(n) / math.Ceil(float64(n)/float64(p))
}

// FitAmdahl fits the serial fraction s of Amdahl's law to speed-ups ss at
// ps Ps by least squares (ps may be the parallel part's measured speed-ups
// rather than the number of Ps: the same algebra). The law rearranged, 1/S − 1/p = s (1 − 1/p), is
// linear in s through the origin, so s = Σxy / Σx² with x = 1 − 1/p and
// y = 1/S − 1/p; points at p = 1 carry no information and are skipped. s
// is kept within [0, 1].
func FitAmdahl(ps, ss []float64) Fit {
	var sxy, sxx float64
	n := 0
	for i, p := range ps {
		if p <= 1 || ss[i] <= 0 {
			continue
		}
		x, y := 1-1/p, 1/ss[i]-1/p
		sxy += x * y
		sxx += x * x
		n++
	}
	f := Fit{Serial: 1, Points: n}
	if n > 0 {
		f.Serial = min(1, max(0, sxy/sxx))
	}
	f.Limit = math.Inf(1)
	if f.Serial > 0 {
		f.Limit = 1 / f.Serial
	}
	return f
}

// Speedup is what the fitted law predicts at p Ps.
func (f Fit) Speedup(p float64) float64 { return 1 / (f.Serial + (1-f.Serial)/p) }

// MarshalJSON writes an unbounded limit as null.
func (f Fit) MarshalJSON() ([]byte, error) {
	type plain Fit
	var limit *float64
	if !math.IsInf(f.Limit, 0) {
		limit = &f.Limit
	}
	return json.Marshal(struct {
		plain
		Limit *float64 `json:"limit"`
	}{plain(f), limit})
}

// WriteText prints the timings and the fits.
func (r Result) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "%d tasks of %d ms each, on %d cores.\n\n", r.Tasks, r.WorkMS, r.Cores)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "work\tGOMAXPROCS\twall ms\tserial ms\tspeed-up\ttasks' speed-up\tgranularity ceiling\tAmdahl\t× one task\ttasks that moved P\t")
	for _, p := range r.Points {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t\n", p.Kind, p.Procs, p.WallMS, p.SerialMS, p.Speedup, p.ParallelSpeedup, p.Ceiling, p.Amdahl, p.Tasks, p.Lanes.Moved)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range r.Fits {
		limit := "no limit"
		if !math.IsInf(f.Limit, 0) {
			limit = fmt.Sprintf("at most %.1f× on any number of cores", f.Limit)
		}
		own := "no fit: the tasks went no faster"
		if f.SerialOfWork != nil {
			own = fmt.Sprintf("%.3f", *f.SerialOfWork)
		}
		fmt.Fprintf(w, "\n%s: serial part set %.3f; fitted to the speed-ups %.3f from %d speed-up(s) (interference and uneven shares count as serial there), %s; fitted with the tasks' own speed-up %s.",
			f.Kind, f.Set, f.Serial, f.Points, limit, own)
	}
	fmt.Fprintln(w)
	return nil
}
