// Package schedobs watches the real kernel scheduler, beside chapter 2's
// simulation: it keeps N threads busy and reads what Linux reports for
// each in /proc/self/task/TID/schedstat (time on the CPU, time runnable
// but waiting, number of timeslices) and status (involuntary switches).
package schedobs

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stampede-dev/stampede/internal/lab"
)

// Experiment keeps threads busy and reads the kernel's accounting.
type Experiment struct{}

// New returns the experiment.
func New() *Experiment { return &Experiment{} }

var _ lab.Experiment = (*Experiment)(nil)

// Info describes the experiment.
func (*Experiment) Info() lab.Info {
	return lab.Info{
		ID: "schedstat", Chapter: 2, Heavy: true,
		Title:   "The real scheduler: N busy threads and what the kernel reports",
		Summary: "Spins N OS threads for a while and reads each one's run time, wait time and timeslices from /proc.",
		Params: []lab.Param{
			{Name: "threads", Label: "Busy threads", Kind: lab.Int, Default: min(64, 2*runtime.NumCPU()), Min: 1, Max: 64},
			{Name: "ms", Label: "Duration", Unit: "ms", Kind: lab.Int, Default: 1000, Min: 100, Max: 5000},
		},
	}
}

// Thread is what the kernel reported for one busy thread over the run.
type Thread struct {
	TID          int     `json:"tid"`
	RunNs        int64   `json:"runNs"`
	WaitNs       int64   `json:"waitNs"`
	Slices       int64   `json:"slices"`
	Involuntary  int64   `json:"involuntary"`
	AvgSliceNs   float64 `json:"avgSliceNs"`
	SharePercent float64 `json:"sharePercent"`
	Loops        int64   `json:"loops"`
}

// Result is the experiment's result.
type Result struct {
	Threads  []Thread `json:"threads"`
	WallNs   int64    `json:"wallNs"`
	Cores    int      `json:"cores"`
	Expected float64  `json:"expectedSharePercent"` // 100 × min(1, cores/N)
	// OthersPercent is the share of the machine's CPU time that went to
	// everything but these threads during the run: the fair share above
	// assumes it is zero.
	OthersPercent float64 `json:"othersPercent"`
	// CgroupCPUs is the CPU limit of this process's cgroup (cpu.max), or
	// 0 when it has none; the fair share counts it when it is below Cores.
	CgroupCPUs float64 `json:"cgroupCpus"`
	// LoadBefore is the one-minute load average when the run began.
	LoadBefore float64 `json:"loadBefore"`
	Summary    string  `json:"summary"`
}

// cgroupCPUs reads the CPU limit of this process's cgroup: quota over
// period, from cpu.max (cgroup version 2) or cpu.cfs_quota_us and
// cpu.cfs_period_us (version 1), or 0 when there is none or it cannot be
// read.
func cgroupCPUs() float64 {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			if m, err := os.ReadFile("/sys/fs/cgroup" + f[2] + "/cpu.max"); err == nil {
				return parseCPUMax(string(m))
			}
			continue
		}
		if slices.Contains(strings.Split(f[1], ","), "cpu") {
			dir := "/sys/fs/cgroup/" + f[1] + f[2]
			q, err1 := os.ReadFile(dir + "/cpu.cfs_quota_us")
			p, err2 := os.ReadFile(dir + "/cpu.cfs_period_us")
			if err1 == nil && err2 == nil && strings.TrimSpace(string(q)) != "-1" {
				return parseCPUMax(strings.TrimSpace(string(q)) + " " + strings.TrimSpace(string(p)))
			}
		}
	}
	return 0
}

// parseCPUMax reads cpu.max ("max 100000", or "150000 100000" for 1.5
// CPUs) as CPUs, 0 for no limit.
func parseCPUMax(s string) float64 {
	f := strings.Fields(s)
	if len(f) != 2 || f[0] == "max" {
		return 0
	}
	quota, err1 := strconv.ParseFloat(f[0], 64)
	period, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil || period <= 0 || quota <= 0 {
		return 0
	}
	return quota / period
}

// loadAverage is the one-minute load average, or 0.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// cpuTimes is the first line of /proc/stat: the machine's CPU time, busy
// and in all, in clock ticks.
type cpuTimes struct{ busy, total int64 }

func readCPU() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("/proc/stat: unexpected %q", line)
	}
	var c cpuTimes
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest time is counted in user already
			break
		}
		c.total += n
		if i != 3 && i != 4 { // idle, iowait
			c.busy += n
		}
	}
	return c, nil
}

// othersPercent is how much of the machine's CPU time between before and
// after went to anything but ours (the threads' run time, ns) on cores
// over wall: the busy fraction /proc/stat saw, less the threads' own.
func othersPercent(before, after cpuTimes, oursNs int64, cores int, wall time.Duration) float64 {
	total := after.total - before.total
	if total <= 0 || wall <= 0 {
		return 0
	}
	busy := float64(after.busy-before.busy) / float64(total)
	ours := float64(oursNs) / (float64(cores) * float64(wall.Nanoseconds()))
	return 100 * min(1, max(0, busy-ours))
}

type schedstat struct{ run, wait, slices, involuntary int64 }

func read(tid int) (schedstat, error) {
	var s schedstat
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/schedstat", tid))
	if err != nil {
		return s, fmt.Errorf("read schedstat: %w (the kernel needs CONFIG_SCHED_INFO)", err)
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return s, fmt.Errorf("schedstat of thread %d: unexpected %q", tid, b)
	}
	s.run, _ = strconv.ParseInt(f[0], 10, 64)
	s.wait, _ = strconv.ParseInt(f[1], 10, 64)
	s.slices, _ = strconv.ParseInt(f[2], 10, 64)
	if st, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/status", tid)); err == nil {
		for line := range strings.Lines(string(st)) {
			if v, ok := strings.CutPrefix(line, "nonvoluntary_ctxt_switches:"); ok {
				s.involuntary, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
	}
	return s, nil
}

// Run spins the threads. Each busy goroutine has a P of its own
// (GOMAXPROCS is raised for the run), so it is the kernel, not Go's
// scheduler, that decides which thread runs.
func (*Experiment) Run(ctx context.Context, p lab.Values, emit func(lab.Event)) error {
	n, dur := p.Int("threads"), time.Duration(p.Int("ms"))*time.Millisecond
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), n+1)))
	var stop atomic.Bool
	tids := make(chan int, n)
	loops := make([]atomic.Int64, n)
	var wg sync.WaitGroup
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			tids <- unix.Gettid()
			var k int64
			for !stop.Load() {
				for range 1000 {
					k++
				}
				loops[i].Store(k)
			}
		}()
	}
	ids := make([]int, n)
	for i := range ids {
		select {
		case ids[i] = <-tids:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	before := make([]schedstat, n)
	for i, tid := range ids {
		var err error
		if before[i], err = read(tid); err != nil {
			return err
		}
	}
	cpu0, err := readCPU()
	if err != nil {
		return err
	}
	load := loadAverage()
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Since(start) < dur {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		el := time.Since(start)
		emit(lab.Progress("threads busy", el.Milliseconds(), dur.Milliseconds()))
		for i, tid := range ids {
			if s, err := read(tid); err == nil {
				emit(lab.Point(fmt.Sprintf("T%d", i+1), float64(el.Milliseconds()), float64(s.run-before[i].run)/1e6))
			}
		}
	}
	wall := time.Since(start)
	cpu1, err := readCPU()
	if err != nil {
		return err
	}
	res := Result{WallNs: wall.Nanoseconds(), Cores: runtime.NumCPU(), CgroupCPUs: cgroupCPUs(), LoadBefore: load}
	usable := float64(res.Cores)
	if res.CgroupCPUs > 0 {
		usable = min(usable, res.CgroupCPUs)
	}
	res.Expected = 100 * min(1, usable/float64(n))
	var minShare, maxShare float64 = 101, -1
	for i, tid := range ids {
		after, err := read(tid)
		if err != nil {
			return err
		}
		t := Thread{TID: tid, RunNs: after.run - before[i].run, WaitNs: after.wait - before[i].wait,
			Slices: after.slices - before[i].slices, Involuntary: after.involuntary - before[i].involuntary, Loops: loops[i].Load()}
		if t.Slices > 0 {
			t.AvgSliceNs = float64(t.RunNs) / float64(t.Slices)
		}
		t.SharePercent = 100 * float64(t.RunNs) / float64(wall.Nanoseconds())
		minShare, maxShare = min(minShare, t.SharePercent), max(maxShare, t.SharePercent)
		res.Threads = append(res.Threads, t)
	}
	var ours int64
	for _, t := range res.Threads {
		ours += t.RunNs
	}
	res.OthersPercent = othersPercent(cpu0, cpu1, ours, res.Cores, wall)
	res.Summary = fmt.Sprintf("%d busy threads on %d cores: each got %.0f%% to %.0f%% of a core (a fair share is %.0f%%); the rest of the time each sat runnable, waiting for a core.",
		n, res.Cores, minShare, maxShare, res.Expected)
	if res.CgroupCPUs > 0 && res.CgroupCPUs < float64(res.Cores) {
		res.Summary += fmt.Sprintf(" This process's cgroup may use %.2g CPUs (cpu.max), so the fair share is of those, not of the %d cores.", res.CgroupCPUs, res.Cores)
	}
	if res.LoadBefore >= 0.5*usable {
		res.Summary += fmt.Sprintf(" The load average was %.2f when the run began: other work was already waiting for the cores.", res.LoadBefore)
	}
	if res.OthersPercent >= 10 {
		res.Summary += fmt.Sprintf(" The machine was not idle: %.0f%% of its CPU time went to other work meanwhile, so the shares fall short of a fair one (and Linux's autogroup shares CPU between sessions, not threads).", res.OthersPercent)
	}
	emit(lab.Result(res))
	return nil
}

// WriteText prints the per-thread table.
func (r Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "thread\ttid\ton CPU ms\twaiting ms\ttimeslices\tavg slice µs\tinvoluntary\tshare %\t")
	for i, t := range r.Threads {
		fmt.Fprintf(tw, "%d\t%d\t%.1f\t%.1f\t%d\t%.0f\t%d\t%.1f\t\n", i+1, t.TID, float64(t.RunNs)/1e6, float64(t.WaitNs)/1e6, t.Slices, t.AvgSliceNs/1e3, t.Involuntary, t.SharePercent)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\n"+r.Summary)
	return err
}
