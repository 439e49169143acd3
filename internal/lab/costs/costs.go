// Package costs is the lab's first chapter: what a goroutine, an OS
// thread and a process really cost on this machine. It creates N of each
// and measures the time and memory per item, then times context switches
// with ping-pong (goroutines over channels, OS-locked threads over
// channels, processes over pipes) on one core and on all of them, and
// sets the figures beside the textbook claims.
package costs

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
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

// Experiment measures creation, memory and switch costs.
type Experiment struct{}

// New returns the experiment.
func New() *Experiment { return &Experiment{} }

var _ lab.Experiment = (*Experiment)(nil)

// Hard bounds: a click can never ask for more than these.
const (
	MaxGoroutines = 1_000_000
	MaxThreads    = 10_000
	MaxProcesses  = 500
	MaxRoundTrips = 200_000
)

// Info describes the experiment.
func (*Experiment) Info() lab.Info {
	return lab.Info{
		ID: "costs", Chapter: 1, Heavy: true,
		Title:   "What a goroutine, a thread and a process really cost",
		Summary: "Creates N of each, measures time and memory per item, and times context switches with ping-pong on one core and on all.",
		Params: []lab.Param{
			{Name: "goroutines", Label: "Goroutines", Kind: lab.Int, Default: 100_000, Min: 1, Max: MaxGoroutines},
			{Name: "threads", Label: "OS threads", Kind: lab.Int, Default: 1_000, Min: 1, Max: MaxThreads},
			{Name: "processes", Label: "Processes", Kind: lab.Int, Default: 50, Min: 1, Max: MaxProcesses},
			{Name: "roundtrips", Label: "Ping-pong round trips", Help: "per kind and core setting; each round trip is two switches",
				Kind: lab.Int, Default: 20_000, Min: 100, Max: MaxRoundTrips},
		},
	}
}

// Creation is what creating N items of one kind cost.
type Creation struct {
	Kind string `json:"kind"` // goroutine, thread, process
	N    int    `json:"n"`
	// TotalNs is the wall time to create all N and see each running.
	TotalNs int64   `json:"totalNs"`
	EachNs  float64 `json:"eachNs"`
	// RSSEach is resident memory per item: for goroutines and threads the
	// growth of this process's RSS divided by N, for processes the average
	// RSS of one child.
	RSSEach float64 `json:"rssEach"`
	// PSSEach, for processes only, divides shared pages among sharers.
	PSSEach float64 `json:"pssEach,omitempty"`
	// VirtEach is address space reserved per item (not memory used).
	VirtEach float64 `json:"virtEach"`
	// StackEach, for goroutines, is Go's own count of stack bytes per item.
	StackEach float64 `json:"stackEach,omitempty"`
	// WarmEachNs, for goroutines, is the creation time of a second round
	// of N, which reuses the stacks the first round freed.
	WarmEachNs float64 `json:"warmEachNs,omitempty"`
	// StackReserved, for threads, is the size of each new thread's stack
	// mapping, and StackResident what of it is resident on average; both
	// 0 when the threads got no mapping of their own.
	StackReserved int64 `json:"stackReserved,omitempty"`
	StackResident int64 `json:"stackResident,omitempty"`
	// For processes: PrivateEach is the memory only one child maps, and
	// SharedEach what it shares with others (the binary's pages, counted
	// once however many children run). SpawnNs is the median time to
	// start and reap a program that does nothing but exit (SpawnWhat
	// says which), the kernel's part of a start-up.
	PrivateEach float64 `json:"privateEach,omitempty"`
	SharedEach  float64 `json:"sharedEach,omitempty"`
	SpawnNs     float64 `json:"spawnNs,omitempty"`
	SpawnWhat   string  `json:"spawnWhat,omitempty"`
	// MinimalPrivate, MinimalShared and MinimalKernel weigh the least a
	// process can be: a static program of a few dozen instructions that
	// waits on its input (no runtime, no initialisers), the same number of
	// copies; 0 where it cannot run (not amd64).
	MinimalPrivate float64 `json:"minimalPrivate,omitempty"`
	MinimalShared  float64 `json:"minimalShared,omitempty"`
	MinimalKernel  float64 `json:"minimalKernel,omitempty"`
	// KernelEach is kernel memory per item (kernel stacks and page
	// tables), or -1 when it cannot be read.
	KernelEach float64 `json:"kernelEach"`
	// LatenciesUs holds each process's start-up time, for the histogram.
	LatenciesUs []float64 `json:"latenciesUs,omitempty"`
	Note        string    `json:"note"`
}

// Switch is one ping-pong measurement: Rounds rounds of RoundTrips round
// trips each, a token passed back and forth between two goroutines, two
// threads or two processes.
type Switch struct {
	Kind  string `json:"kind"`
	Cores int    `json:"cores"`
	// What the figure is: a context switch when both run on one CPU; a
	// cross-CPU wake-up when each is pinned to a CPU of its own (each side
	// sleeps and is woken by the other; nobody switches to anybody); for
	// goroutines on two Ps, a hand-off through the Go scheduler.
	What       string `json:"what"`
	RoundTrips int    `json:"roundTrips"` // per round
	Rounds     int    `json:"rounds"`
	// NsPerSwap is the median over rounds of half a round trip, less
	// BaseNs (0 at the least); MinNs and MaxNs are the fewest and most of
	// the rounds.
	NsPerSwap float64 `json:"nsPerSwitch"`
	MinNs     float64 `json:"minNs"`
	MaxNs     float64 `json:"maxNs"`
	// RawNs is the median before BaseNs was taken off.
	RawNs float64 `json:"rawNs"`
	// BaseNs is what passing the token costs with no switch at all: one
	// thread writing a byte to a pipe and reading it back (threads and
	// processes), or one goroutine sending on a buffered channel and
	// receiving (goroutines), measured in the same rounds; the median of
	// the rounds. lmbench's lat_ctx subtracts the same.
	BaseNs float64 `json:"baseNs"`
	// KernelSwitches is how many context switches the kernel counted per
	// round trip on both sides (getrusage and /proc, voluntary and
	// involuntary): about 2 for threads and processes, about 0 for
	// goroutines, which the runtime switches without the kernel.
	KernelSwitches float64 `json:"kernelSwitchesPerTrip"`
}

// Claim is a textbook figure beside the measured one.
type Claim struct {
	Claim    string  `json:"claim"`
	Low      float64 `json:"low"`
	High     float64 `json:"high"`
	Unit     string  `json:"unit"` // "ns" or "bytes"
	Measured float64 `json:"measured"`
	// MinMeasured and MaxMeasured are the range over repeated rounds, or
	// both 0 for a figure measured once.
	MinMeasured float64 `json:"minMeasured,omitempty"`
	MaxMeasured float64 `json:"maxMeasured,omitempty"`
	// Kind is the verdict's kind, for the page: matches, cheaper, dearer,
	// inconclusive (the range lies across an edge of the band) or
	// unmeasured.
	Kind    string `json:"kind"`
	Verdict string `json:"verdict"`
}

// Users is the "what if 100,000 users each got one" line.
type Users struct {
	Users          int     `json:"users"`
	ThreadBytes    float64 `json:"threadBytes"`
	GoroutineBytes float64 `json:"goroutineBytes"`
	ProcessBytes   float64 `json:"processBytes"`
	SavedBytes     float64 `json:"savedBytes"`
	SavedPercent   float64 `json:"savedPercent"`
	// Limits are this machine's settings that n threads would exceed.
	Limits   []string `json:"limits"`
	Sentence string   `json:"sentence"`
}

// Result is the experiment's result.
type Result struct {
	Creations []Creation `json:"creations"`
	Switches  []Switch   `json:"switches"`
	Claims    []Claim    `json:"claims"`
	Users     Users      `json:"users"`
	limits    limits
}

// Generous guesses of memory per item, for the check before a run.
const (
	guessGoroutine = 8 << 10
	guessThread    = 64 << 10
	guessProcess   = 8 << 20
)

// Run measures. Everything it starts is gone when it returns.
func (e *Experiment) Run(ctx context.Context, p lab.Values, emit func(lab.Event)) error {
	need := max(int64(p.Int("goroutines"))*guessGoroutine, int64(p.Int("threads"))*guessThread, int64(p.Int("processes"))*guessProcess)
	if avail, err := memAvailable(); err == nil && need > avail/2 {
		return fmt.Errorf("these counts could need about %s of memory and only %s is available; ask for fewer", Bytes(float64(need)), Bytes(float64(avail)))
	}
	var res Result
	steps := []func() error{
		func() error {
			c, err := createGoroutines(ctx, p.Int("goroutines"), emit)
			res.Creations = append(res.Creations, c)
			return err
		},
		func() error {
			c, err := createThreads(ctx, p.Int("threads"), emit)
			res.Creations = append(res.Creations, c)
			return err
		},
		func() error {
			c, err := createProcesses(ctx, p.Int("processes"), emit)
			res.Creations = append(res.Creations, c)
			return err
		},
	}
	rt := p.Int("roundtrips")
	for _, kind := range []string{"goroutine", "thread", "process"} {
		for _, cores := range coreSettings() {
			steps = append(steps, func() error {
				emit(lab.Progress(fmt.Sprintf("ping-pong: %s pair on %d core(s)", kind, cores), 0, int64(rt)))
				sw, err := pingPong(ctx, kind, cores, rt)
				if err != nil {
					return err
				}
				res.Switches = append(res.Switches, sw)
				emit(lab.Point(kind, float64(cores), sw.NsPerSwap))
				return nil
			})
		}
	}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := step(); err != nil {
			return err
		}
	}
	res.Claims = claims(res)
	res.limits = readLimits()
	res.Users = users(res, 100_000)
	emit(lab.Result(res))
	return nil
}

// coreSettings is one CPU, then two (each side pinned to a CPU of its
// own) where this process may use two.
func coreSettings() []int {
	if len(usableCPUs()) > 1 {
		return []int{1, 2}
	}
	return []int{1}
}

// usableCPUs lists the CPUs this process may run on.
func usableCPUs() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return []int{0}
	}
	var cpus []int
	for c := 0; c < 1024 && len(cpus) < set.Count(); c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) == 0 {
		return []int{0}
	}
	return cpus
}

// sideCPUs says where the two sides of a ping-pong run: both on the first
// usable CPU for one core, on the first two for two.
func sideCPUs(cores int) (a, b int) {
	cpus := usableCPUs()
	if cores == 1 || len(cpus) < 2 {
		return cpus[0], cpus[0]
	}
	return cpus[0], cpus[1]
}

func (r Result) creation(kind string) Creation {
	for _, c := range r.Creations {
		if c.Kind == kind {
			return c
		}
	}
	return Creation{}
}

// switchOf is the one-core switch measurement of kind.
func (r Result) switchOf(kind string) Switch {
	for _, s := range r.Switches {
		if s.Kind == kind && s.Cores == 1 {
			return s
		}
	}
	return Switch{NsPerSwap: math.NaN()}
}

// settle collects garbage and returns freed memory to the OS, so a
// before/after reading of RSS sees only what the step added.
func settle() {
	runtime.GC()
	debug.FreeOSMemory()
}

func perItem(after, before int64, n int) float64 {
	d := float64(after-before) / float64(n)
	return math.Max(d, 0)
}

func createGoroutines(ctx context.Context, n int, emit func(lab.Event)) (Creation, error) {
	settle()
	before, err := readStatus("self")
	if err != nil {
		return Creation{}, fmt.Errorf("read memory: %w", err)
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	var after memInfo
	// Cold: the first round of n needs new stacks. Memory is read while
	// they all live.
	total, err := spawnGoroutines(ctx, n, emit, func() error {
		var err error
		after, err = readStatus("self")
		runtime.ReadMemStats(&ms1)
		return err
	})
	if err != nil {
		return Creation{}, err
	}
	// Warm: a second round, with the stacks the first freed.
	warm, err := spawnGoroutines(ctx, n, emit, func() error { return nil })
	if err != nil {
		return Creation{}, err
	}
	emit(lab.Progress("creating goroutines", int64(n), int64(n)))
	return Creation{
		Kind: "goroutine", N: n, TotalNs: total.Nanoseconds(), EachNs: float64(total.Nanoseconds()) / float64(n),
		WarmEachNs: float64(warm.Nanoseconds()) / float64(n),
		RSSEach:    perItem(after.RSS, before.RSS, n),
		VirtEach:   perItem(after.Virt, before.Virt, n),
		StackEach:  perItem(int64(ms1.StackInuse), int64(ms0.StackInuse), n),
		KernelEach: 0,
		Note:       "the kernel knows nothing of goroutines: no kernel memory, and memory grows only as stacks are used",
	}, nil
}

// spawnGoroutines starts n goroutines that wait, times until every one is
// running, calls alive while they all live, and lets them go.
func spawnGoroutines(ctx context.Context, n int, emit func(lab.Event), alive func() error) (time.Duration, error) {
	release := make(chan struct{})
	var started, exited sync.WaitGroup
	defer func() {
		close(release)
		exited.Wait()
	}()
	start := time.Now()
	for i := range n {
		if i%10_000 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			emit(lab.Progress("creating goroutines", int64(i), int64(n)))
		}
		started.Add(1)
		exited.Add(1)
		go func() {
			defer exited.Done()
			started.Done()
			<-release
		}()
	}
	started.Wait()
	total := time.Since(start)
	if err := alive(); err != nil {
		return 0, fmt.Errorf("read memory: %w", err)
	}
	return total, nil
}

func createThreads(ctx context.Context, n int, emit func(lab.Event)) (Creation, error) {
	// Go refuses to run more than 10,000 threads by default; leave room
	// for the runtime's own.
	defer debug.SetMaxThreads(debug.SetMaxThreads(n + 1000))
	settle()
	before, err := steadyThreads(ctx)
	if err != nil {
		return Creation{}, err
	}
	kBefore, kerr := kernelStack()
	maps0, merr := anonMappings()
	release := make(chan struct{})
	up := make(chan int)
	var exited sync.WaitGroup
	defer func() {
		close(release)
		exited.Wait()
	}()
	tids := make(map[int]bool, n)
	start := time.Now()
	for i := range n {
		if i%100 == 0 {
			if err := ctx.Err(); err != nil {
				return Creation{}, err
			}
			emit(lab.Progress("creating OS threads", int64(i), int64(n)))
		}
		exited.Add(1)
		go func() {
			defer exited.Done()
			// Returning while locked ends the thread: nothing is left.
			runtime.LockOSThread()
			up <- unix.Gettid()
			<-release
		}()
		// Each locked goroutine keeps the thread it runs on, so the
		// runtime starts a new one for everything else.
		tids[<-up] = true
	}
	total := time.Since(start)
	st, err := readStatus("self")
	if err != nil {
		return Creation{}, fmt.Errorf("read memory: %w", err)
	}
	c := Creation{
		Kind: "thread", N: n, TotalNs: total.Nanoseconds(), EachNs: float64(total.Nanoseconds()) / float64(n),
		RSSEach:    perItem(st.RSS, before.RSS, n),
		VirtEach:   perItem(st.Virt, before.Virt, n),
		KernelEach: -1,
		Note:       fmt.Sprintf("goroutines locked to their OS thread: %d distinct kernel threads, %d in the process now", len(tids), st.Threads),
	}
	if kAfter, err := kernelStack(); err == nil && kerr == nil {
		c.KernelEach = perItem(kAfter+st.PTE, kBefore+before.PTE, n)
	}
	if maps1, err := anonMappings(); err == nil && merr == nil {
		c.StackReserved, c.StackResident = stackMappings(maps0, maps1, n)
	}
	emit(lab.Progress("creating OS threads", int64(n), int64(n)))
	return c, nil
}

// steadyThreads waits (up to a second) until threads of an earlier run
// have finished exiting, so they do not blur the baseline, and returns it.
func steadyThreads(ctx context.Context) (memInfo, error) {
	prev, err := readStatus("self")
	if err != nil {
		return prev, fmt.Errorf("read memory: %w", err)
	}
	for range 50 {
		if err := ctx.Err(); err != nil {
			return prev, err
		}
		time.Sleep(20 * time.Millisecond)
		cur, err := readStatus("self")
		if err != nil {
			return cur, fmt.Errorf("read memory: %w", err)
		}
		if cur.Threads == prev.Threads {
			return cur, nil
		}
		prev = cur
	}
	return prev, nil
}

// child is a started child process and its pipe ends.
type child struct {
	cmd     *exec.Cmd
	in, out *os.File // our ends: we write to in, read from out
}

// startChild starts this binary in a child mode, its working thread
// pinned to cpu when cpu >= 0, and waits for nothing.
func startChild(mode string, cpu int) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "GOMAXPROCS=1")
	if cpu >= 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", cpuEnv, cpu))
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, nil
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("start child: %w", err)
	}
	return &child{cmd: cmd, in: inW, out: outR}, nil
}

// stop closes the child's stdin, which ends it, and reaps it; a child
// that does not go within a second is killed. No zombie is left.
func (c *child) stop() {
	c.in.Close()
	done := make(chan struct{})
	go func() {
		_ = c.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
	c.out.Close()
}

func createProcesses(ctx context.Context, n int, emit func(lab.Event)) (Creation, error) {
	kBefore, kerr := kernelStack()
	children := make([]*child, 0, n)
	defer func() {
		for _, c := range children {
			c.in.Close()
		}
		for _, c := range children {
			c.stop()
		}
	}()
	lat := make([]float64, 0, n)
	start := time.Now()
	var b [1]byte
	for i := range n {
		if err := ctx.Err(); err != nil {
			return Creation{}, err
		}
		if i%10 == 0 {
			emit(lab.Progress("starting processes", int64(i), int64(n)))
		}
		t0 := time.Now()
		c, err := startChild("hold", -1)
		if err != nil {
			return Creation{}, err
		}
		children = append(children, c)
		if err := c.out.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			return Creation{}, err
		}
		if _, err := io.ReadFull(c.out, b[:]); err != nil {
			return Creation{}, fmt.Errorf("child %d did not start: %w", c.cmd.Process.Pid, err)
		}
		lat = append(lat, float64(time.Since(t0).Nanoseconds())/1e3)
	}
	total := time.Since(start)
	var rss, pss, virt, pte, threads, private, shared int64
	for _, c := range children {
		pid := c.cmd.Process.Pid
		st, err := readStatus(fmt.Sprint(pid))
		if err != nil {
			return Creation{}, fmt.Errorf("read child memory: %w", err)
		}
		rss, virt, pte, threads = rss+st.RSS, virt+st.Virt, pte+st.PTE, threads+st.Threads
		if p, err := readPSS(pid); err == nil {
			pss += p
		}
		if p, sh, err := privateShared(pid); err == nil {
			private, shared = private+p, shared+sh
		}
	}
	c := Creation{
		Kind: "process", N: n, TotalNs: total.Nanoseconds(), EachNs: float64(total.Nanoseconds()) / float64(n),
		RSSEach:     float64(rss) / float64(n),
		PSSEach:     float64(pss) / float64(n),
		PrivateEach: float64(private) / float64(n),
		SharedEach:  float64(shared) / float64(n),
		VirtEach:    float64(virt) / float64(n),
		KernelEach:  -1,
		LatenciesUs: lat,
		Note: fmt.Sprintf("each child is this binary (a Go runtime, GOMAXPROCS=1, %.1f threads on average), started with fork+exec and waited for until it answers",
			float64(threads)/float64(n)),
	}
	if kAfter, err := kernelStack(); err == nil && kerr == nil {
		c.KernelEach = perItem(kAfter, kBefore, n) + float64(pte)/float64(n)
	}
	emit(lab.Progress("starting a program that only exits", int64(n), int64(n)))
	var err error
	if c.SpawnNs, c.SpawnWhat, err = spawnCost(ctx, min(n, 50)); err != nil {
		return Creation{}, err
	}
	emit(lab.Progress("weighing the least a process can be", int64(n), int64(n)))
	if c.MinimalPrivate, c.MinimalShared, c.MinimalKernel, _, err = minimalProcess(ctx, n); err != nil {
		return Creation{}, err
	}
	emit(lab.Progress("starting processes", int64(n), int64(n)))
	return c, nil
}

// switchRounds is how many rounds each switch figure is measured in; the
// median is reported, with the range.
const switchRounds = 5

// pingPong measures switches between two goroutines, two OS threads or
// two processes: switchRounds rounds, each timing rt/switchRounds round
// trips and, right after, as many passes of the token with no switch (the
// base cost, subtracted). With cores 1 both sides run on one CPU (one
// goroutine P); with 2, each side is pinned to a CPU of its own (two Ps,
// for goroutines).
func pingPong(ctx context.Context, kind string, cores, rt int) (Switch, error) {
	var stop atomic.Bool
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()
	per := max(rt/switchRounds, 20)
	sw := Switch{Kind: kind, Cores: cores, RoundTrips: per, Rounds: switchRounds}
	switch {
	case kind == "goroutine" && cores == 1:
		sw.What = "goroutine switch on one P"
	case kind == "goroutine":
		// Goroutines cannot be pinned: with two Ps the runtime may still
		// run both on one (the woken one goes to runnext), so this is not
		// a cross-CPU wake-up, and the page says so beside the kernel's
		// count of switches.
		sw.What = "channel ping-pong with GOMAXPROCS 2 (the runtime picks the Ps; often both on one)"
	case cores == 1:
		sw.What = "context switch on one CPU"
	default:
		sw.What = "cross-CPU wake-up (one side on each of two CPUs)"
	}
	if kind == "goroutine" {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(cores))
	}
	a, b := sideCPUs(cores)
	var raw, base, net []float64
	var switches float64
	for range switchRounds {
		var m measured
		var err error
		switch kind {
		case "goroutine":
			m = channelPingPong(per, &stop)
		case "thread":
			m, err = threadPingPong(per, a, b, &stop)
		case "process":
			m, err = onLockedThread(func() (measured, error) {
				pinCPU(a)
				return pipePingPong(per, b, &stop)
			})
		default:
			return sw, fmt.Errorf("unknown kind %q", kind)
		}
		if err != nil {
			return sw, err
		}
		if stop.Load() {
			return sw, ctx.Err()
		}
		raw = append(raw, float64(m.elapsed.Nanoseconds())/float64(2*per))
		base = append(base, float64(m.base.Nanoseconds())/float64(per))
		switches += m.switches / float64(per)
	}
	// The base is taken off as its median over the rounds: one round's
	// base slowed by the machine would otherwise push that round's figure
	// below zero.
	sw.RawNs, sw.BaseNs = median(raw), median(base)
	for _, r := range raw {
		net = append(net, max(r-sw.BaseNs, 0))
	}
	sw.NsPerSwap = median(net)
	sw.MinNs, sw.MaxNs = slices.Min(net), slices.Max(net)
	sw.KernelSwitches = switches / switchRounds
	return sw, nil
}

// measured is one round of a ping-pong: the time of its round trips, of as
// many passes with no switch, and the context switches the kernel counted
// during the round trips.
type measured struct {
	elapsed, base time.Duration
	switches      float64
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else if n > 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return math.NaN()
}

// onLockedThread runs f on a goroutine locked to a thread of its own,
// which ends with it (so a pinned thread is never reused).
func onLockedThread(f func() (measured, error)) (measured, error) {
	var m measured
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		m, err = f()
	}()
	<-done
	return m, err
}

func pinCPU(cpu int) {
	var set unix.CPUSet
	set.Set(cpu)
	_ = unix.SchedSetaffinity(0, &set)
}

// kernelSwitches is the context switches the kernel has counted for this
// process's threads, voluntary and involuntary.
func kernelSwitches() float64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Nvcsw + ru.Nivcsw)
}

// channelPingPong passes a token back and forth over two unbuffered
// channels between two goroutines; its base is one goroutine sending on a
// buffered channel and receiving from it.
func channelPingPong(rt int, stop *atomic.Bool) measured {
	ping, pong := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		defer close(done)
		close(ready)
		for range ping {
			pong <- struct{}{}
		}
	}()
	<-ready
	k0 := kernelSwitches()
	start := time.Now()
	for i := range rt {
		ping <- struct{}{}
		<-pong
		if i&1023 == 1023 && stop.Load() {
			break
		}
	}
	m := measured{elapsed: time.Since(start), switches: kernelSwitches() - k0}
	close(ping)
	<-done
	self := make(chan struct{}, 1)
	start = time.Now()
	for range rt {
		self <- struct{}{}
		<-self
	}
	m.base = time.Since(start)
	return m
}

// threadPingPong passes a byte between two OS threads of this process,
// the timing one on CPU a and its partner on CPU b, over two pipes, with
// blocking system calls, as the process ping-pong does, so the two differ
// only in what the kernel switches. (A Go channel between two locked
// goroutines would add the runtime's hand-off of its scheduler context,
// several times the kernel's own cost.)
func threadPingPong(rt, a, b int, stop *atomic.Bool) (measured, error) {
	aR, aW, err := os.Pipe()
	if err != nil {
		return measured{}, err
	}
	bR, bW, err := os.Pipe()
	if err != nil {
		aR.Close()
		aW.Close()
		return measured{}, err
	}
	defer func() {
		for _, f := range []*os.File{aR, aW, bR, bW} {
			f.Close()
		}
	}()
	// Fd puts each end in blocking mode.
	toPartner, fromPartner := int(aW.Fd()), int(bR.Fd())
	partnerIn, partnerOut := int(aR.Fd()), int(bW.Fd())
	partnerDone := make(chan struct{})
	go func() {
		defer close(partnerDone)
		runtime.LockOSThread() // never unlocked: the thread ends with its goroutine
		pinCPU(b)
		echo(partnerIn, partnerOut)
	}()
	m, err := onLockedThread(func() (measured, error) {
		pinCPU(a)
		return timeTrips(rt, toPartner, fromPartner, -1, stop)
	})
	aW.Close() // the partner reads EOF and returns
	<-partnerDone
	return m, err
}

// echo writes back every byte it reads from in, until in ends.
func echo(in, out int) {
	b := make([]byte, 1)
	for {
		if n, err := unix.Read(in, b); n != 1 {
			if err == unix.EINTR {
				continue
			}
			return
		}
		if writeByte(out, b) != nil {
			return
		}
	}
}

// timeTrips sends one byte on out and reads it back from in, once to see
// the partner is up and then rt times under the clock, counting the
// kernel's context switches in this process and, if partner is a pid, in
// the partner's main thread. Then it times rt passes of a byte through a
// pipe of its own, written and read back by this thread alone: the base.
func timeTrips(rt, out, in, partner int, stop *atomic.Bool) (measured, error) {
	b := []byte{7}
	trip := func(out, in int) error {
		if err := writeByte(out, b); err != nil {
			return err
		}
		for {
			n, err := unix.Read(in, b)
			if err == unix.EINTR {
				continue
			}
			if n != 1 {
				return fmt.Errorf("the partner stopped answering: %v", err)
			}
			return nil
		}
	}
	if err := trip(out, in); err != nil {
		return measured{}, err
	}
	p0 := partnerSwitches(partner)
	k0 := kernelSwitches()
	start := time.Now()
	for i := range rt {
		if err := trip(out, in); err != nil {
			return measured{}, err
		}
		if i&255 == 255 && stop.Load() {
			break
		}
	}
	m := measured{elapsed: time.Since(start), switches: kernelSwitches() - k0 + partnerSwitches(partner) - p0}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return m, err
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	start = time.Now()
	for range rt {
		if err := trip(p[1], p[0]); err != nil {
			return m, err
		}
	}
	m.base = time.Since(start)
	return m, nil
}

// partnerSwitches reads the context switches of process pid's main thread
// from /proc, or 0 for pid -1.
func partnerSwitches(pid int) float64 {
	if pid < 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	var n float64
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
			x, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			n += x
		}
	}
	return n
}

func writeByte(fd int, b []byte) error {
	for {
		_, err := unix.Write(fd, b)
		if err != unix.EINTR {
			return err
		}
	}
}

// pipePingPong sends one byte to an echo child (its thread pinned to
// cpu) and reads it back, rt times, with blocking system calls on the
// calling (locked) thread.
func pipePingPong(rt, cpu int, stop *atomic.Bool) (measured, error) {
	c, err := startChild("echo", cpu)
	if err != nil {
		return measured{}, err
	}
	defer c.stop()
	// One trip under a deadline first, so a child that never answers is an
	// error and not a hang; then blocking system calls, without Go's poller.
	if err := c.out.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return measured{}, err
	}
	b := []byte{7}
	if _, err := c.in.Write(b); err != nil {
		return measured{}, fmt.Errorf("echo child: %w", err)
	}
	if _, err := io.ReadFull(c.out, b); err != nil {
		return measured{}, fmt.Errorf("echo child did not answer: %w", err)
	}
	return timeTrips(rt, int(c.in.Fd()), int(c.out.Fd()), c.cmd.Process.Pid, stop) // Fd makes them blocking
}

// claims sets the measured figures beside the textbook's.
func claims(r Result) []Claim {
	g, t := r.creation("goroutine"), r.creation("thread")
	sw := func(c Claim, kind string) Claim {
		s := r.switchOf(kind)
		c.Measured, c.MinMeasured, c.MaxMeasured = s.NsPerSwap, s.MinNs, s.MaxNs
		return c
	}
	cs := []Claim{
		sw(Claim{Claim: "A process context switch takes about 1–10 ms", Low: 1e6, High: 1e7, Unit: "ns"}, "process"),
		sw(Claim{Claim: "A thread context switch takes about 1–10 µs", Low: 1e3, High: 1e4, Unit: "ns"}, "thread"),
		sw(Claim{Claim: "A coroutine switch takes about 100 ns", Low: 50, High: 200, Unit: "ns"}, "goroutine"),
		// What a stack takes is the memory it holds: the resident part of
		// its mapping; the reservation is address space.
		{Claim: "A thread's stack takes about 1 MB", Low: 512 << 10, High: 2 << 20, Unit: "bytes", Measured: float64(t.StackResident)},
		{Claim: "A coroutine's stack takes about 2 KB", Low: 1 << 10, High: 4 << 10, Unit: "bytes", Measured: g.StackEach},
	}
	for i := range cs {
		cs[i].Kind, cs[i].Verdict = Verdict(cs[i])
	}
	switch {
	case t.StackReserved > 0:
		cs[3].Verdict += fmt.Sprintf(": resident, of a stack mapping of %s reserved for each thread, address space that takes no memory until it is touched. "+
			"glibc reserves the stack size limit (ulimit -s, usually 8 MiB) for every thread it starts; "+
			"1 MB is the default of Windows and of the JVM", Bytes(float64(t.StackReserved)))
	case t.N > 0:
		cs[3].Kind, cs[3].Verdict = "unmeasured", "not measured: the threads got no stack mapping of their own "+
			"(a Go binary built without cgo gives each thread a 16 KiB stack from its own heap); "+
			"glibc would reserve the stack size limit, usually 8 MiB, and 1 MB is the default of Windows and of the JVM"
	}
	return cs
}

// Verdict compares a claim's measured figure, or its range when it was
// measured repeatedly, with the claimed band. A range across an edge of
// the band is inconclusive: some rounds agree and some do not.
func Verdict(c Claim) (kind, text string) {
	m := c.Measured
	lo, hi := c.MinMeasured, c.MaxMeasured
	if lo == 0 && hi == 0 {
		lo, hi = m, m
	}
	at := format(m, c.Unit) + " here"
	if lo != hi {
		at = fmt.Sprintf("%s here (median; %s to %s over the rounds)", format(m, c.Unit), format(lo, c.Unit), format(hi, c.Unit))
	}
	switch {
	case math.IsNaN(m) || m <= 0:
		return "unmeasured", "not measured"
	case hi < c.Low:
		return "cheaper", fmt.Sprintf("cheaper than claimed: %s, %s below the low end", at, times(c.Low/m))
	case lo > c.High:
		return "dearer", fmt.Sprintf("dearer than claimed: %s, %s above the high end", at, times(m/c.High))
	case lo >= c.Low && hi <= c.High:
		return "matches", "matches: " + at
	}
	return "inconclusive", fmt.Sprintf("inconclusive: %s, across an edge of the claimed %s to %s", at, format(c.Low, c.Unit), format(c.High, c.Unit))
}

// times formats a ratio: one decimal below 10, none above.
func times(r float64) string {
	if r < 10 {
		return fmt.Sprintf("%.1f×", r)
	}
	return fmt.Sprintf("%.0f×", r)
}

func format(v float64, unit string) string {
	if unit == "bytes" {
		return Bytes(v)
	}
	return Duration(v)
}

// users computes memory for n users with one thread, goroutine or process
// each, from what was measured: a thread's resident memory and its kernel
// memory (kernel stack, page tables), a goroutine's resident memory, and a
// process's private memory, with the memory processes share counted once.
// It names the limits of this machine that n threads would run into.
func users(r Result, n int) Users {
	t, g, p := r.creation("thread"), r.creation("goroutine"), r.creation("process")
	u := Users{
		Users:          n,
		ThreadBytes:    (t.RSSEach + max(t.KernelEach, 0)) * float64(n),
		GoroutineBytes: g.RSSEach * float64(n),
	}
	if p.PrivateEach > 0 {
		u.ProcessBytes = p.PrivateEach*float64(n) + p.SharedEach
	}
	switch {
	case u.ThreadBytes <= 0 || u.GoroutineBytes <= 0:
		u.Sentence = "Not enough was measured to compare."
	case u.GoroutineBytes < u.ThreadBytes:
		u.SavedBytes = u.ThreadBytes - u.GoroutineBytes
		u.SavedPercent = 100 * u.SavedBytes / u.ThreadBytes
		u.Sentence = fmt.Sprintf("%s users with a thread each would hold %s of memory (kernel memory included); with a goroutine each, %s: goroutines save %s (%.0f%%).",
			Count(n), Bytes(u.ThreadBytes), Bytes(u.GoroutineBytes), Bytes(u.SavedBytes), u.SavedPercent)
	default:
		u.Sentence = fmt.Sprintf("%s users with a goroutine each would hold %s, %s more than with a thread each (%s): no saving on this machine.",
			Count(n), Bytes(u.GoroutineBytes), Bytes(u.GoroutineBytes-u.ThreadBytes), Bytes(u.ThreadBytes))
	}
	if u.ProcessBytes > 0 {
		u.Sentence += fmt.Sprintf(" A process each would hold %s: what each holds alone, and once what they share.", Bytes(u.ProcessBytes))
		if p.MinimalPrivate > 0 {
			u.Sentence += fmt.Sprintf(" (Most of that is Go's runtime: the least a process can be would still hold %s, its own pages and the kernel's.)",
				Bytes((p.MinimalPrivate+p.MinimalKernel)*float64(n)+p.MinimalShared))
		}
	}
	u.Limits = threadLimits(n, r.limits)
	if len(u.Limits) > 0 {
		u.Sentence += fmt.Sprintf(" But %s threads cannot run here at all: %s.", Count(n), strings.Join(u.Limits, "; "))
	}
	return u
}

// limits are the machine's ceilings on threads.
type limits struct {
	PidMax, ThreadsMax, MaxMapCount int
}

func readLimits() limits {
	read := func(path string) int {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	return limits{
		PidMax:      read("/proc/sys/kernel/pid_max"),
		ThreadsMax:  read("/proc/sys/kernel/threads-max"),
		MaxMapCount: read("/proc/sys/vm/max_map_count"),
	}
}

// threadLimits names each limit that n threads in one process exceed.
func threadLimits(n int, l limits) []string {
	var out []string
	if l.PidMax > 0 && n > l.PidMax {
		out = append(out, fmt.Sprintf("kernel.pid_max is %s, and every thread takes an id", Count(l.PidMax)))
	}
	if l.ThreadsMax > 0 && n > l.ThreadsMax {
		out = append(out, fmt.Sprintf("kernel.threads-max is %s", Count(l.ThreadsMax)))
	}
	if l.MaxMapCount > 0 && 2*n > l.MaxMapCount {
		out = append(out, fmt.Sprintf("vm.max_map_count is %s mappings per process, and each thread's stack takes two (the stack and its guard)", Count(l.MaxMapCount)))
	}
	if n > 10_000 {
		out = append(out, "Go stops a program at 10,000 threads unless it raises the limit (debug.SetMaxThreads)")
	}
	return out
}

// Bytes formats a byte count with binary units.
func Bytes(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	}
	return fmt.Sprintf("%.0f B", v)
}

// Duration formats nanoseconds.
func Duration(ns float64) string {
	switch {
	case ns >= 1e9:
		return fmt.Sprintf("%.2f s", ns/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.2f µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

// Count formats n with thousands separators.
func Count(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// WriteText prints the result for `stampede bench costs`.
func (r Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "kind\tN\tcreate each\tresident each\treserved each\tkernel each")
	for _, c := range r.Creations {
		kernel := "unknown"
		if c.KernelEach >= 0 {
			kernel = Bytes(c.KernelEach)
		}
		res := Bytes(c.RSSEach)
		if c.PrivateEach > 0 {
			res += fmt.Sprintf(" (private %s, shared %s)", Bytes(c.PrivateEach), Bytes(c.SharedEach))
		}
		create := Duration(c.EachNs)
		if c.WarmEachNs > 0 {
			create += " cold, " + Duration(c.WarmEachNs) + " warm"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Kind, Count(c.N), create, res, Bytes(c.VirtEach), kernel)
	}
	fmt.Fprintln(tw, "\nswitch\tcores\twhat\tper switch (median)\trange\traw\tbase taken off\tkernel switches per round trip")
	for _, s := range r.Switches {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s to %s\t%s\t%s\t%.2f\n", s.Kind, s.Cores, s.What, Duration(s.NsPerSwap),
			Duration(s.MinNs), Duration(s.MaxNs), Duration(s.RawNs), Duration(s.BaseNs), s.KernelSwitches)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, c := range r.Creations {
		switch {
		case c.StackReserved > 0:
			fmt.Fprintf(w, "thread stacks: each thread has a stack mapping of %s, %s of it resident\n", Bytes(float64(c.StackReserved)), Bytes(float64(c.StackResident)))
		case c.SpawnNs > 0:
			fmt.Fprintf(w, "process start: %s for %s, %s for this binary's child (Go's start-up and its initialisers make the difference)\n",
				Duration(c.SpawnNs), c.SpawnWhat, Duration(c.EachNs))
			if c.MinimalPrivate > 0 {
				fmt.Fprintf(w, "the least a process can be (a static program that only waits): %s private, %s shared, %s of kernel memory; this binary's child: %s private\n",
					Bytes(c.MinimalPrivate), Bytes(c.MinimalShared), Bytes(c.MinimalKernel), Bytes(c.PrivateEach))
			}
		}
	}
	for _, c := range r.Claims {
		fmt.Fprintf(w, "%s: %s\n", c.Claim, c.Verdict)
	}
	_, err := fmt.Fprintf(w, "\n%s\n", r.Users.Sentence)
	return err
}
