// Package async is the lab's chapter 5 experiment on waiting without
// blocking. N tasks each fetch from a small HTTP server inside the lab that
// answers after a delay the learner sets, run three ways: one after another,
// all at once (errgroup), and at most L at a time (errgroup.SetLimit). Every
// task's start, request, response and end are real timestamps. Then the
// CPU-bound trap: in a child process with one P (GOMAXPROCS=1), one
// goroutine spins while others wait on timers; with Go's asynchronous
// preemption the sleepers wake about on time, without it (as in an event
// loop, where a callback runs until it returns) they wait for the spin.
package async

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stampede-dev/stampede/internal/lab"
)

// Experiment runs the tasks and the trap. New gives it the binary to start
// the trap's child from.
type Experiment struct {
	exe string
}

// New returns the experiment; exe is the stampede binary, started as the
// trap's child ("" leaves the trap out).
func New(exe string) *Experiment { return &Experiment{exe: exe} }

var _ lab.Experiment = (*Experiment)(nil)

// Info describes the experiment.
func (*Experiment) Info() lab.Info {
	return lab.Info{
		ID: "async", Chapter: 5,
		Title:   "Waiting without blocking: one after another, all at once, a few at a time",
		Summary: "N tasks fetch from a server that answers after a delay: sequentially, with errgroup, and with errgroup.SetLimit; then one spinning goroutine on one P.",
		Params: []lab.Param{
			{Name: "tasks", Label: "Tasks", Kind: lab.Int, Default: 8, Min: 1, Max: 200},
			{Name: "delay", Label: "Server delay, shortest", Unit: "ms", Kind: lab.Int, Default: 100, Min: 1, Max: 2000},
			{Name: "spread", Label: "Server delay, longest minus shortest", Unit: "ms", Kind: lab.Int, Default: 200, Min: 0, Max: 2000,
				Help: "task i waits delay + spread × i/(tasks−1): the tasks do not all take as long"},
			{Name: "limit", Label: "At most at a time (limited run)", Kind: lab.Int, Default: 3, Min: 1, Max: 200},
			{Name: "spin", Label: "The trap: one goroutine spins for", Unit: "ms", Kind: lab.Int, Default: 300, Min: 0, Max: 2000,
				Help: "0 leaves the trap out"},
		},
	}
}

// Task is one task's timeline, in milliseconds since its run started.
type Task struct {
	Index   int     `json:"index"`
	DelayMS int     `json:"delayMs"` // what the server was asked to wait
	Start   float64 `json:"start"`   // the task began
	Sent    float64 `json:"sent"`    // the request was written
	Answer  float64 `json:"answer"`  // the response arrived
	End     float64 `json:"end"`     // the task finished
}

// Run is one way of running the tasks.
type Run struct {
	Mode    string  `json:"mode"`    // "sequential", "all", "limited"
	Limit   int     `json:"limit"`   // for "limited"
	TotalMS float64 `json:"totalMs"` // wall time of the whole run
	Tasks   []Task  `json:"tasks"`
}

// Result is the experiment's result.
type Result struct {
	SumMS     int    `json:"sumMs"`     // the delays added up: what one after another must take
	SlowestMS int    `json:"slowestMs"` // the longest delay: what all at once can take at best
	Runs      []Run  `json:"runs"`
	Trap      []Trap `json:"trap,omitempty"`
	// Pipeline is the guide's producer/consumer template, fixed, as run
	// here.
	Pipeline PipelineRun `json:"pipeline"`
}

// PipelineRun is one run of Pipeline with its source, for the page.
type PipelineRun struct {
	Source    string  `json:"source"`
	Producers int     `json:"producers"`
	Consumers int     `json:"consumers"`
	Each      int     `json:"each"`
	Received  int     `json:"received"`
	Sum       int     `json:"sum"`
	WantSum   int     `json:"wantSum"`
	ElapsedMS float64 `json:"elapsedMs"`
}

//go:embed pipeline.go
var pipelineSource string

// Run runs the three ways, then the trap.
func (e *Experiment) Run(ctx context.Context, p lab.Values, emit func(lab.Event)) error {
	n, base, spread, limit := p.Int("tasks"), p.Int("delay"), p.Int("spread"), p.Int("limit")
	delays := make([]int, n)
	res := &Result{}
	for i := range delays {
		delays[i] = base
		if n > 1 {
			delays[i] += spread * i / (n - 1)
		}
		res.SumMS += delays[i]
		res.SlowestMS = max(res.SlowestMS, delays[i])
	}
	srv, url, err := startServer()
	if err != nil {
		return err
	}
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200, DisableCompression: true}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	modes := []struct {
		name  string
		limit int
	}{{"sequential", 1}, {"all", -1}, {"limited", limit}}
	for i, m := range modes {
		emit(lab.Progress("running "+m.name, int64(i), int64(len(modes)+1)))
		r, err := runTasks(ctx, client, url, delays, m.limit)
		if err != nil {
			return err
		}
		r.Mode = m.name
		if m.name == "limited" {
			r.Limit = limit
		}
		res.Runs = append(res.Runs, r)
		emit(lab.Point("total", float64(i), r.TotalMS))
	}
	if spin := p.Int("spin"); spin > 0 && e.exe != "" {
		emit(lab.Progress("the trap: one goroutine spins on one P", int64(len(modes)), int64(len(modes)+1)))
		for _, preempt := range []bool{true, false} {
			t, err := runTrap(ctx, e.exe, preempt, spin)
			if err != nil {
				return err
			}
			res.Trap = append(res.Trap, t)
		}
	}
	began := time.Now()
	pr := PipelineRun{Source: pipelineSource, Producers: 2, Consumers: 2, Each: 5}
	pr.Received, pr.Sum = Pipeline(ctx, pr.Producers, pr.Consumers, pr.Each, 100*time.Millisecond)
	if err := ctx.Err(); err != nil {
		return err
	}
	pr.ElapsedMS = float64(time.Since(began).Microseconds()) / 1000
	values := pr.Producers * pr.Each
	pr.WantSum = values * (values - 1) / 2
	res.Pipeline = pr
	emit(lab.Result(res))
	return nil
}

// startServer serves GET /wait?ms=N: an answer after N milliseconds, on a
// loopback port of its own.
func startServer() (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /wait", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 || ms > 10_000 {
			http.Error(w, "ms must be from 0 to 10000", http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "ok\n")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return srv, "http://" + ln.Addr().String() + "/wait?ms=", nil
}

// runTasks runs one task per delay with errgroup: limit 1 is one after
// another, -1 all at once, otherwise at most limit at a time.
func runTasks(ctx context.Context, client *http.Client, url string, delays []int, limit int) (Run, error) {
	r := Run{Tasks: make([]Task, len(delays))}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	start := time.Now()
	ms := func() float64 { return float64(time.Since(start).Microseconds()) / 1000 }
	for i, d := range delays {
		g.Go(func() error {
			t := &r.Tasks[i]
			t.Index, t.DelayMS, t.Start = i, d, ms()
			req, err := http.NewRequestWithContext(gctx, "GET", url+strconv.Itoa(d), nil)
			if err != nil {
				return err
			}
			t.Sent = ms()
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("task %d: %w", i, err)
			}
			t.Answer = ms()
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			t.End = ms()
			return err
		})
	}
	err := g.Wait()
	r.TotalMS = ms()
	if err != nil && ctx.Err() != nil {
		return r, ctx.Err()
	}
	return r, err
}

// WriteText prints the runs and the trap for `stampede bench async`.
func (r *Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "run\ttotal\tagainst the sum of delays (%d ms)\tagainst the slowest (%d ms)\n", r.SumMS, r.SlowestMS)
	for _, run := range r.Runs {
		name := run.Mode
		if run.Mode == "limited" {
			name = fmt.Sprintf("limited to %d", run.Limit)
		}
		fmt.Fprintf(tw, "%s\t%.0f ms\t%.2f×\t%.2f×\n", name, run.TotalMS, run.TotalMS/float64(r.SumMS), run.TotalMS/float64(r.SlowestMS))
	}
	tw.Flush()
	for _, t := range r.Trap {
		fmt.Fprintf(w, "\n%s\n", t.Summary())
	}
	return nil
}

// errNoChild is a trap child that said nothing.
var errNoChild = errors.New("the trap's child process gave no answer")

// decode reads the child's one JSON line.
func decode(out []byte, t *Trap) error {
	if len(out) == 0 {
		return errNoChild
	}
	return json.Unmarshal(out, t)
}

// childCommand builds the trap's child: this binary in trap mode, with one P.
func childCommand(ctx context.Context, exe string, preempt bool, spinMS int) *exec.Cmd {
	cmd := exec.CommandContext(ctx, exe)
	env := append(os.Environ(), childEnv+"="+strconv.Itoa(spinMS), "GOMAXPROCS=1")
	if !preempt {
		env = append(env, "GODEBUG=asyncpreemptoff=1")
	}
	cmd.Env = env
	cmd.WaitDelay = time.Second
	return cmd
}
