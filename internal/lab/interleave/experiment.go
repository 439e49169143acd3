package interleave

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stampede-dev/stampede/internal/lab"
)

// Model is the experiment that enumerates every interleaving of a program
// and hands the page its states for the step-by-step game.
type Model struct{}

// NewModel returns the model-check experiment.
func NewModel() *Model { return &Model{} }

var _ lab.Experiment = (*Model)(nil)

func programParam() lab.Param {
	return lab.Param{Name: "program", Label: "Program", Help: "a built-in program, or one of its fixes (NAME+FIX)",
		Kind: lab.Choice, Default: Builtins[0].ID, Choices: ProgramIDs()}
}

// Info describes the experiment.
func (*Model) Info() lab.Info {
	return lab.Info{
		ID: "interleave", Chapter: 7, Simulation: true,
		Title:   "Every interleaving of a small concurrent program, enumerated",
		Summary: "Runs a program of two to four goroutines step by step in a model and counts how every possible schedule ends: updates lost, stock oversold, deadlocks.",
		Params: []lab.Param{
			programParam(),
			{Name: "source", Label: "Your own program", Help: "replaces the built-in one when not empty; see the language above",
				Kind: lab.Text, Default: "", MaxLen: MaxSource, Check: func(s string) error {
					if strings.TrimSpace(s) == "" {
						return nil
					}
					_, err := Parse(s)
					return err
				}},
		},
	}
}

// FixCheck is a fix's model check in brief.
type FixCheck struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Why       string `json:"why"`
	Schedules uint64 `json:"schedules"`
	Failing   uint64 `json:"failing"`
}

// Report is the model experiment's result.
type Report struct {
	Program    string      `json:"program"` // a built-in ID, or "custom"
	Title      string      `json:"title"`
	About      string      `json:"about"`
	Source     string      `json:"source"`
	Shared     []string    `json:"shared"`
	Locks      []string    `json:"locks"`
	Chans      []string    `json:"chans"`
	Caps       []int       `json:"caps"`
	Checks     []string    `json:"checks"`
	Goroutines []Goroutine `json:"goroutines"`
	Model      ModelCheck  `json:"model"`
	// Failure is the shortest failing schedule, step by step; empty when
	// no schedule fails.
	Failure []string `json:"failure"`
	// Graph is every state, for the game; nil when there are too many.
	Graph []Node     `json:"graph"`
	Fixes []FixCheck `json:"fixes"`
}

// Run checks the program.
func (*Model) Run(ctx context.Context, params lab.Values, emit func(lab.Event)) error {
	id, src := params.String("program"), params.String("source")
	var b Builtin
	if strings.TrimSpace(src) == "" {
		src, b, _ = lookup(id)
	} else {
		id = "custom"
	}
	rep, err := check(ctx, id, src)
	if err != nil {
		return err
	}
	if id != "custom" {
		rep.Title, rep.About = b.Title, b.About
		if strings.Contains(id, "+") {
			rep.Title += " (fixed)"
		}
		for _, f := range b.Fixes {
			if err := ctx.Err(); err != nil {
				return err
			}
			fp, err := Parse(f.Source)
			if err != nil {
				return err
			}
			mc, err := fp.Enumerate(ctx)
			if err != nil {
				return err
			}
			rep.Fixes = append(rep.Fixes, FixCheck{ID: f.ID, Name: f.Name, Why: f.Why, Schedules: mc.Schedules, Failing: mc.Failing})
		}
	}
	emit(lab.Result(rep))
	return nil
}

// check parses and enumerates one program.
func check(ctx context.Context, id, src string) (Report, error) {
	p, err := Parse(src)
	if err != nil {
		return Report{}, err
	}
	mc, err := p.Enumerate(ctx)
	if err != nil {
		return Report{}, err
	}
	// Empty lists are sent as [], not null: the page maps over them.
	rep := Report{Program: id, Source: src, Shared: orEmpty(p.Shared), Locks: orEmpty(p.Locks), Chans: orEmpty(p.Chans),
		Caps: orEmpty(p.Caps), Checks: []string{}, Goroutines: p.G, Model: mc}
	for i := range rep.Goroutines {
		rep.Goroutines[i].Steps = orEmpty(rep.Goroutines[i].Steps)
	}
	for _, c := range p.Checks {
		rep.Checks = append(rep.Checks, c.Text)
	}
	if mc.ShortestFailure >= 0 {
		rep.Failure = p.Describe(mc.Outcomes[mc.ShortestFailure].Shortest)
	}
	if g, ok := p.Graph(); ok {
		rep.Graph = g
	}
	return rep, nil
}

// WriteText prints the outcome counts.
func (r Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "Model check of %s (a model: every schedule of its steps, sequentially consistent memory).\n", r.Program)
	fmt.Fprintf(w, "%d schedules over %d states; %d fail (%.1f %%).\n\n", r.Model.Schedules, r.Model.States, r.Model.Failing,
		percent(r.Model.Failing, r.Model.Schedules))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "outcome\tkind\tschedules\tshare\tshortest")
	for _, o := range r.Model.Outcomes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f %%\t%d steps\n", o.Label, o.Kind, o.Schedules, percent(o.Schedules, r.Model.Schedules), len(o.Shortest))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Failure) > 0 {
		fmt.Fprintln(w, "\nThe shortest schedule that fails:")
		for i, s := range r.Failure {
			fmt.Fprintf(w, "%3d  %s\n", i+1, s)
		}
	}
	for _, f := range r.Fixes {
		fmt.Fprintf(w, "\nfix %q: %d schedules, %d fail. %s\n", f.Name, f.Schedules, f.Failing, f.Why)
	}
	return nil
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func percent(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// Real is the experiment that runs a program with real goroutines, trial
// after trial, and, for a program that can deadlock, lets Go's runtime
// catch it in a child process.
type Real struct{ exe string }

// NewReal returns the real-run experiment; exe is this binary, started
// as the deadlock child ("" leaves the child out).
func NewReal(exe string) *Real { return &Real{exe: exe} }

var _ lab.Experiment = (*Real)(nil)

// Info describes the experiment.
func (*Real) Info() lab.Info {
	return lab.Info{
		ID: "interleave-real", Chapter: 7, Heavy: true,
		Title:   "The same program, run by real goroutines",
		Summary: "Runs a built-in program many times with real goroutines released together and counts how each run ended, beside the model's count of schedules; Go's runtime reports a deadlock from a child process.",
		Params: []lab.Param{
			programParam(),
			{Name: "trials", Label: "Trials", Kind: lab.Int, Default: 20_000, Min: 100, Max: 1_000_000},
			{Name: "yield", Label: "Yield after every step", Help: "runtime.Gosched between steps, as if each did more work",
				Kind: lab.Bool, Default: false},
		},
	}
}

// Row is one outcome: how often the real trials ended so, and how many
// of the model's schedules do.
type Row struct {
	Label          string  `json:"label"`
	Kind           string  `json:"kind"`
	Trials         int     `json:"trials"`
	Share          float64 `json:"share"` // of the trials, in percent
	ModelSchedules uint64  `json:"modelSchedules"`
	ModelShare     float64 `json:"modelShare"`
}

// RealReport is the real experiment's result.
type RealReport struct {
	Program    string  `json:"program"`
	Trials     int     `json:"trials"`
	Yield      bool    `json:"yield"`
	GOMAXPROCS int     `json:"gomaxprocs"`
	ElapsedMS  float64 `json:"elapsedMs"`
	Rows       []Row   `json:"rows"`
	// Failed is how many trials failed; Unexplained how many ended in an
	// outcome the model says no schedule reaches (always 0 unless the
	// model is wrong).
	Failed      int `json:"failed"`
	Unexplained int `json:"unexplained"`
	// Runtime is Go's own report, for a program the model says can
	// deadlock.
	Runtime *RuntimeReport `json:"runtime,omitempty"`
}

// Run runs the trials.
func (e *Real) Run(ctx context.Context, params lab.Values, emit func(lab.Event)) error {
	id, n, yield := params.String("program"), params.Int("trials"), params.Bool("yield")
	src, _, _ := lookup(id)
	p, err := Parse(src)
	if err != nil {
		return err
	}
	mc, err := p.Enumerate(ctx)
	if err != nil {
		return err
	}
	began := time.Now()
	step := max(1, n/50)
	tallies, ran := Trials(ctx, p, n, yield, func(done int) {
		if done%step == 0 {
			emit(lab.Progress("trials", int64(done), int64(n)))
		}
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	rep := RealReport{Program: id, Trials: ran, Yield: yield, GOMAXPROCS: runtime.GOMAXPROCS(0), ElapsedMS: float64(time.Since(began).Microseconds()) / 1000}
	rows := map[string]*Row{}
	var order []string
	add := func(label, kind string) *Row {
		if r, ok := rows[label]; ok {
			return r
		}
		rows[label] = &Row{Label: label, Kind: kind}
		order = append(order, label)
		return rows[label]
	}
	deadlocks := false
	for _, o := range mc.Outcomes {
		r := add(o.Label, o.Kind)
		r.ModelSchedules, r.ModelShare = o.Schedules, percent(o.Schedules, mc.Schedules)
		deadlocks = deadlocks || o.Kind == KindDeadlock
	}
	for _, t := range tallies {
		r := add(t.Label, t.Kind)
		r.Trials, r.Share = t.Trials, 100*float64(t.Trials)/float64(ran)
		if t.Failed() {
			rep.Failed += t.Trials
		}
		if r.ModelSchedules == 0 {
			rep.Unexplained += t.Trials
		}
	}
	for _, l := range order {
		rep.Rows = append(rep.Rows, *rows[l])
	}
	if deadlocks && e.exe != "" {
		emit(lab.Progress("Go's runtime, in a child process", int64(ran), int64(n)))
		rr, err := runChild(ctx, e.exe, id, min(n, 100_000), yield)
		if err != nil {
			return err
		}
		rep.Runtime = &rr
	}
	emit(lab.Result(rep))
	return nil
}

// WriteText prints the trials beside the model.
func (r RealReport) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "%s: %d trials with real goroutines (GOMAXPROCS %d, yield %v) in %.0f ms; %d failed.\n\n",
		r.Program, r.Trials, r.GOMAXPROCS, r.Yield, r.ElapsedMS, r.Failed)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "outcome\tkind\ttrials\tshare\tmodel schedules\tmodel share")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f %%\t%d\t%.1f %%\n", row.Label, row.Kind, row.Trials, row.Share, row.ModelSchedules, row.ModelShare)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if rt := r.Runtime; rt != nil {
		fmt.Fprintf(w, "\nGo's runtime, with sync.Mutex and channels, in a child process: %d trials, %s.\n", rt.Trials, rt.Exit)
		switch rt.Detector {
		case "runtime":
			fmt.Fprintln(w, "The runtime found the deadlock itself.")
		case "sigquit":
			fmt.Fprintln(w, "The child hung, and this binary links cgo, so the runtime never reports a deadlock; the lab sent SIGQUIT for a dump.")
		default:
			fmt.Fprintln(w, "No trial deadlocked.")
		}
		if rt.Fatal != "" {
			fmt.Fprintln(w, rt.Fatal)
			for _, g := range rt.Goroutines {
				fmt.Fprintln(w, "  "+g)
			}
		}
	}
	return nil
}
