package sched

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/stampede-dev/stampede/internal/lab"
)

// Experiment runs the simulator for the lab.
type Experiment struct{}

// New returns the experiment.
func New() *Experiment { return &Experiment{} }

var _ lab.Experiment = (*Experiment)(nil)

// Info describes the experiment.
func (*Experiment) Info() lab.Info {
	return lab.Info{
		ID: "sched", Chapter: 2, Simulation: true,
		Title:   "CPU scheduling algorithms, simulated tick by tick",
		Summary: "Plays a workload through FCFS, SJF, SRTF, priority, round robin, MLFQ or lottery and records every tick.",
		Params: []lab.Param{
			{Name: "algorithm", Label: "Algorithm", Kind: lab.Choice, Default: RoundRobin, Choices: Algorithms()},
			{Name: "compare", Label: "Compare with", Kind: lab.Choice, Default: "none", Choices: append([]string{"none"}, Algorithms()...)},
			{Name: "workload", Label: "Workload", Help: "one task per line: name arrival burst [priority [tickets [io-every io-time]]]; empty generates one from the seed",
				Kind: lab.Text, Default: "", MaxLen: 2000, Check: func(s string) error {
					if strings.TrimSpace(s) == "" {
						return nil
					}
					_, err := Parse(s)
					return err
				}},
			{Name: "tasks", Label: "Tasks to generate", Kind: lab.Int, Default: 5, Min: 1, Max: MaxTasks},
			{Name: "seed", Label: "Seed", Help: "of the generated workload and the lottery", Kind: lab.Int, Default: 1, Min: 0, Max: 1e9},
			{Name: "quantum", Label: "Quantum (rr, lottery)", Unit: "ticks", Kind: lab.Int, Default: 2, Min: 1, Max: 50},
			{Name: "aging", Label: "Aging (priority)", Help: "ticks in the ready queue per priority step; 0 is off", Unit: "ticks", Kind: lab.Int, Default: 0, Min: 0, Max: 100},
			{Name: "quanta", Label: "MLFQ allotments", Help: "per level, top first, comma-separated: the time a task may use at a level, over any number of runs, before it moves down", Kind: lab.Text, Default: "2,4,8", MaxLen: 40,
				Check: func(s string) error { _, err := ParseQuanta(s); return err }},
			{Name: "slice", Label: "MLFQ time slice", Help: "how long a task runs before the next of its level gets a turn; 0: until its allotment is spent", Unit: "ticks", Kind: lab.Int, Default: 0, Min: 0, Max: 100},
			{Name: "boost", Label: "MLFQ boost period", Help: "0 is off", Unit: "ticks", Kind: lab.Int, Default: 0, Min: 0, Max: 1000},
		},
	}
}

// ParseQuanta reads MLFQ allotments such as "2,4,8": 1 to 8 levels of 1
// to 100 ticks.
func ParseQuanta(s string) ([]int, error) {
	parts := strings.Split(s, ",")
	if len(parts) < 1 || len(parts) > 8 {
		return nil, fmt.Errorf("1 to 8 levels, got %d", len(parts))
	}
	out := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 || n > 100 {
			return nil, fmt.Errorf("allotment %q: a whole number of ticks from 1 to 100", strings.TrimSpace(p))
		}
		out[i] = n
	}
	return out, nil
}

// Report is the experiment's result: the workload and one or two runs.
type Report struct {
	Workload string   `json:"workload"`
	Tasks    []Task   `json:"tasks"`
	Runs     []Result `json:"runs"`
}

// Run simulates.
func (*Experiment) Run(ctx context.Context, p lab.Values, emit func(lab.Event)) error {
	var tasks []Task
	if text := p.String("workload"); strings.TrimSpace(text) != "" {
		var err error
		if tasks, err = Parse(text); err != nil {
			return err
		}
	} else {
		tasks = Generate(uint64(p.Int("seed")), p.Int("tasks"))
	}
	quanta, err := ParseQuanta(p.String("quanta"))
	if err != nil {
		return err
	}
	algs := []string{p.String("algorithm")}
	if c := p.String("compare"); c != "none" {
		algs = append(algs, c)
	}
	rep := Report{Workload: Format(tasks), Tasks: tasks}
	for _, alg := range algs {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := Simulate(tasks, Config{Algorithm: alg, Quantum: p.Int("quantum"), Aging: p.Int("aging"),
			Quanta: quanta, Boost: p.Int("boost"), Slice: p.Int("slice"), Seed: uint64(p.Int("seed"))})
		if err != nil {
			return err
		}
		rep.Runs = append(rep.Runs, r)
	}
	emit(lab.Result(rep))
	return nil
}

// WriteText prints the Gantt chart as text and the times per task.
func (r Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "Simulation (not a measurement). Workload:\n%s\n", r.Workload)
	for _, run := range r.Runs {
		fmt.Fprintf(w, "%s: ", run.Config.Algorithm)
		for _, s := range run.Slices {
			name := s.Task
			if name == "" {
				name = "idle"
			}
			fmt.Fprintf(w, "[%d %s %d]", s.Start, name, s.End)
		}
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "task\tarrival\tburst\tfirst run\tfinish\twaiting\tturnaround\tresponse\t")
		for _, s := range run.Tasks {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", s.Name, s.Arrival, s.Burst, s.FirstRun, s.Finish, s.Waiting, s.Turnaround, s.Response)
		}
		fmt.Fprintf(tw, "average\t\t\t\t\t%.2f\t%.2f\t%.2f\t\n", run.AvgWaiting, run.AvgTurnaround, run.AvgResponse)
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "context switches: %d\n\n", run.Switches)
	}
	return nil
}
