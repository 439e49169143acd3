package parallel

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/stampede-dev/stampede/internal/lab"
)

// GMP is the experiment that watches Go's scheduler at work on a workload
// made to show its moves: a burst of goroutines created on one P, system
// calls that block while other work waits, and a goroutine that spins
// past its time slice.
type GMP struct{ exe string }

// NewGMP returns the experiment; exe is this binary, started as the
// workload's child.
func NewGMP(exe string) *GMP { return &GMP{exe: exe} }

var _ lab.Experiment = (*GMP)(nil)

// Info describes the experiment.
func (*GMP) Info() lab.Info {
	cores := runtime.NumCPU()
	return lab.Info{
		ID: "gmp", Chapter: 6,
		Title:   "Go's scheduler at work: Gs, Ms and Ps in a real trace",
		Summary: "A child of this binary creates goroutines in a burst, blocks in system calls and spins, under runtime/trace and GODEBUG=schedtrace; the page draws each P's lane, the run queues over time, and counts what the scheduler did.",
		Params: []lab.Param{
			{Name: "procs", Label: "GOMAXPROCS", Kind: lab.Int, Default: cores, Min: 1, Max: float64(max(4, 2*cores))},
			{Name: "burst", Label: "Goroutines in the burst", Help: "created one after another by one goroutine, each hashing for about 1 ms",
				Kind: lab.Int, Default: 200, Min: 1, Max: 5000},
			{Name: "syscalls", Label: "Blocking system calls", Help: "each goroutine sleeps 20 ms in nanosleep(2) while the burst waits for a P",
				Kind: lab.Int, Default: 4, Min: 0, Max: 64},
			{Name: "spin", Label: "One goroutine spins for", Unit: "ms", Help: "a loop with no function call; 0 leaves it out",
				Kind: lab.Int, Default: 50, Min: 0, Max: 500},
		},
	}
}

// gmpChildEnv starts this binary as the workload: "BURST ITERS SYSCALLS
// SPIN-ITERS TRACE-FILE".
const gmpChildEnv = "STAMPEDE_GMP_CHILD"

// QueueSample is one line of GODEBUG=schedtrace: the run queues at a
// moment.
type QueueSample struct {
	MS      int   `json:"ms"`
	Global  int   `json:"global"`
	Local   []int `json:"local"` // one per P
	Threads int   `json:"threads"`
	IdlePs  int   `json:"idlePs"`
}

// GMPResult is the experiment's result.
type GMPResult struct {
	Procs    int     `json:"procs"`
	Burst    int     `json:"burst"`
	Syscalls int     `json:"syscalls"`
	SpinMS   int     `json:"spinMs"`
	WallMS   float64 `json:"wallMs"`
	// SpunMS is how long the spin really took, start to end, time off
	// its P included.
	SpunMS float64       `json:"spunMs"`
	Lanes  Lanes         `json:"lanes"`
	Queues []QueueSample `json:"queues"`
	// MaxGlobal and MaxLocal are the longest run queues schedtrace saw.
	MaxGlobal int `json:"maxGlobal"`
	MaxLocal  int `json:"maxLocal"`
	// SchedTrace is the start of what GODEBUG=schedtrace printed.
	SchedTrace string `json:"schedtrace"`
}

// Run runs the workload once in a child.
func (e *GMP) Run(ctx context.Context, p lab.Values, emit func(lab.Event)) error {
	if e.exe == "" {
		return fmt.Errorf("the gmp experiment needs this binary to start its child, and it could not be found")
	}
	procs, burst, syscalls, spin := p.Int("procs"), p.Int("burst"), p.Int("syscalls"), p.Int("spin")
	emit(lab.Progress("calibrating", 0, 2))
	hashPerMS, spinPerMS := itersPerMS(), spinItersPerMS()
	dir, err := os.MkdirTemp("", "stampede-gmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	traceFile := filepath.Join(dir, "gmp.trace")
	emit(lab.Progress("running the workload under runtime/trace", 1, 2))
	cmd := exec.CommandContext(ctx, e.exe)
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(procs), "GODEBUG=schedtrace=5",
		fmt.Sprintf("%s=%d %d %d %d %s", gmpChildEnv, burst, hashPerMS, syscalls, spin*spinPerMS, traceFile))
	cmd.WaitDelay = time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("the workload's child process: %v %s", err, lastLine(stderr.String()))
	}
	var cr childResult
	if err := json.Unmarshal(out, &cr); err != nil {
		return fmt.Errorf("the workload's child process said %q: %w", out, err)
	}
	res := GMPResult{Procs: procs, Burst: burst, Syscalls: syscalls, SpinMS: spin, WallMS: float64(cr.WallNs) / 1e6, SpunMS: float64(cr.SpinNs) / 1e6}
	f, err := os.Open(traceFile)
	if err != nil {
		return err
	}
	res.Lanes, err = ReadLanes(f, procs)
	f.Close()
	if err != nil {
		return err
	}
	res.Queues = ParseSchedTrace(stderr.String())
	for _, q := range res.Queues {
		res.MaxGlobal = max(res.MaxGlobal, q.Global)
		for _, n := range q.Local {
			res.MaxLocal = max(res.MaxLocal, n)
		}
	}
	res.SchedTrace = stderr.String()
	if len(res.SchedTrace) > 3000 {
		res.SchedTrace = res.SchedTrace[:3000] + "\n…"
	}
	emit(lab.Result(res))
	return nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

var schedRE = regexp.MustCompile(`(?m)^SCHED (\d+)ms: gomaxprocs=\d+ idleprocs=(\d+) threads=(\d+) .*runqueue=(\d+) \[([\d ]*)\]`)

// ParseSchedTrace reads the lines GODEBUG=schedtrace=N prints, such as
// "SCHED 10ms: gomaxprocs=2 idleprocs=0 threads=5 … runqueue=3 [12 0]":
// the global run queue, then each P's local one.
func ParseSchedTrace(s string) []QueueSample {
	var out []QueueSample
	for _, m := range schedRE.FindAllStringSubmatch(s, -1) {
		q := QueueSample{}
		q.MS, _ = strconv.Atoi(m[1])
		q.IdlePs, _ = strconv.Atoi(m[2])
		q.Threads, _ = strconv.Atoi(m[3])
		q.Global, _ = strconv.Atoi(m[4])
		for _, f := range strings.Fields(m[5]) {
			n, _ := strconv.Atoi(f)
			q.Local = append(q.Local, n)
		}
		out = append(out, q)
	}
	return out
}

// gmpChildMain runs the workload when this process was started as its
// child, and exits; it reports false at once otherwise.
func gmpChildMain() bool {
	v := os.Getenv(gmpChildEnv)
	if v == "" {
		return false
	}
	fail := func(err error) { die("gmp", err) }
	f := strings.Fields(v)
	if len(f) != 5 {
		fail(fmt.Errorf("bad %s=%q", gmpChildEnv, v))
	}
	var n [4]int
	for i := range n {
		var err error
		if n[i], err = strconv.Atoi(f[i]); err != nil || n[i] < 0 {
			fail(fmt.Errorf("bad %s=%q", gmpChildEnv, v))
		}
	}
	burst, hashPerMS, syscalls, spinIters := n[0], n[1], n[2], n[3]
	out, err := startTrace(f[4])
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	began := time.Now()
	var wg sync.WaitGroup
	var spinNs atomic.Int64
	// The spinner first, so it holds a P while the burst queues.
	if spinIters > 0 {
		wg.Go(func() {
			trace.WithRegion(ctx, "spin", func() {
				t := time.Now()
				sink.Add(uint64(spin(spinIters)))
				spinNs.Store(time.Since(t).Nanoseconds())
			})
		})
	}
	// The system calls: each holds its thread for 20 ms, and with work
	// waiting, the runtime's sysmon takes its P and hands it to another
	// thread.
	for range syscalls {
		wg.Go(func() {
			trace.WithRegion(ctx, "syscall", func() {
				ts := syscall.NsecToTimespec((20 * time.Millisecond).Nanoseconds())
				for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
				}
			})
		})
	}
	// The burst: one goroutine creates them all, so all are created on
	// its P; the other Ps must steal them.
	wg.Go(func() {
		trace.WithRegion(ctx, "creator", func() {
			for range burst {
				wg.Go(func() { trace.WithRegion(ctx, "burst", func() { hashWork(hashPerMS) }) })
			}
		})
	})
	wg.Wait()
	wall := time.Since(began)
	if err := stopTrace(out); err != nil {
		fail(err)
	}
	w := bufio.NewWriter(os.Stdout)
	json.NewEncoder(w).Encode(childResult{WallNs: wall.Nanoseconds(), GOMAXPROCS: runtime.GOMAXPROCS(0), SpinNs: spinNs.Load()})
	w.Flush()
	os.Exit(0)
	return true
}

// spin runs n iterations of a loop with no function call in it: only an
// asynchronous preemption can take its P before it ends.
//
//go:noinline
func spin(n int) int {
	x := 0
	for i := 0; i < n; i++ {
		x += i ^ (x >> 3)
	}
	return x
}

// spinItersPerMS measures how many iterations of spin take a millisecond
// here.
func spinItersPerMS() int { return perMS(func(n int) { sink.Add(uint64(spin(n))) }, 1<<16) }

// WriteText prints what the scheduler did.
func (r GMPResult) WriteText(w io.Writer) error {
	s := r.Lanes.Sched
	fmt.Fprintf(w, "GOMAXPROCS %d: %d goroutines in a burst, %d blocking system calls, a %d ms spin (%.1f ms start to end); %.1f ms in all.\n\n",
		r.Procs, r.Burst, r.Syscalls, r.SpinMS, r.SpunMS, r.WallMS)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "goroutines created\t%d\n", s.Created)
	fmt.Fprintf(tw, "first ran on another P than their creator's\t%d\n", s.RanElsewhere)
	fmt.Fprintf(tw, "changed P at some point\t%d\n", r.Lanes.Moved)
	fmt.Fprintf(tw, "system calls that lost their P\t%d\n", s.LostP)
	fmt.Fprintf(tw, "preempted for running too long\t%d\n", s.Preempted)
	for i, n := range s.PreemptedByTask {
		if n > 0 {
			fmt.Fprintf(tw, "  of them, %s\t%d\n", r.Lanes.Names[i], n)
		}
	}
	fmt.Fprintf(tw, "longest global run queue (schedtrace)\t%d\n", r.MaxGlobal)
	fmt.Fprintf(tw, "longest local run queue (schedtrace)\t%d\n", r.MaxLocal)
	return tw.Flush()
}
