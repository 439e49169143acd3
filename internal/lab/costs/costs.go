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
	// KernelEach is kernel memory per item (kernel stacks and page
	// tables), or -1 when it cannot be read.
	KernelEach float64 `json:"kernelEach"`
	// LatenciesUs holds each process's start-up time, for the histogram.
	LatenciesUs []float64 `json:"latenciesUs,omitempty"`
	Note        string    `json:"note"`
}

// Switch is one ping-pong measurement.
type Switch struct {
	Kind       string  `json:"kind"`
	Cores      int     `json:"cores"`
	RoundTrips int     `json:"roundTrips"`
	NsPerSwap  float64 `json:"nsPerSwitch"`
}

// Claim is a textbook figure beside the measured one.
type Claim struct {
	Claim    string  `json:"claim"`
	Low      float64 `json:"low"`
	High     float64 `json:"high"`
	Unit     string  `json:"unit"` // "ns" or "bytes"
	Measured float64 `json:"measured"`
	Verdict  string  `json:"verdict"`
}

// Users is the "what if 100,000 users each got one" line.
type Users struct {
	Users          int     `json:"users"`
	ThreadBytes    float64 `json:"threadBytes"`
	GoroutineBytes float64 `json:"goroutineBytes"`
	ProcessBytes   float64 `json:"processBytes"`
	SavedBytes     float64 `json:"savedBytes"`
	SavedPercent   float64 `json:"savedPercent"`
	Sentence       string  `json:"sentence"`
}

// Result is the experiment's result.
type Result struct {
	Creations []Creation `json:"creations"`
	Switches  []Switch   `json:"switches"`
	Claims    []Claim    `json:"claims"`
	Users     Users      `json:"users"`
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
				ns, err := pingPong(ctx, kind, cores, rt)
				if err != nil {
					return err
				}
				res.Switches = append(res.Switches, Switch{Kind: kind, Cores: cores, RoundTrips: rt, NsPerSwap: ns})
				emit(lab.Point(kind, float64(cores), ns))
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
	res.Users = users(res, 100_000)
	emit(lab.Result(res))
	return nil
}

// coreSettings is one core, then all of them (once, on a 1-core machine).
func coreSettings() []int {
	if n := runtime.NumCPU(); n > 1 {
		return []int{1, n}
	}
	return []int{1}
}

func (r Result) creation(kind string) Creation {
	for _, c := range r.Creations {
		if c.Kind == kind {
			return c
		}
	}
	return Creation{}
}

// switchNs is the one-core switch time of kind.
func (r Result) switchNs(kind string) float64 {
	for _, s := range r.Switches {
		if s.Kind == kind && s.Cores == 1 {
			return s.NsPerSwap
		}
	}
	return math.NaN()
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
				return Creation{}, err
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
	after, err := readStatus("self")
	if err != nil {
		return Creation{}, fmt.Errorf("read memory: %w", err)
	}
	runtime.ReadMemStats(&ms1)
	emit(lab.Progress("creating goroutines", int64(n), int64(n)))
	return Creation{
		Kind: "goroutine", N: n, TotalNs: total.Nanoseconds(), EachNs: float64(total.Nanoseconds()) / float64(n),
		RSSEach:    perItem(after.RSS, before.RSS, n),
		VirtEach:   perItem(after.Virt, before.Virt, n),
		StackEach:  perItem(int64(ms1.StackInuse), int64(ms0.StackInuse), n),
		KernelEach: 0,
		Note:       "the kernel knows nothing of goroutines: no kernel memory, and memory grows only as stacks are used",
	}, nil
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
	var rss, pss, virt, pte, threads int64
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
	}
	c := Creation{
		Kind: "process", N: n, TotalNs: total.Nanoseconds(), EachNs: float64(total.Nanoseconds()) / float64(n),
		RSSEach:     float64(rss) / float64(n),
		PSSEach:     float64(pss) / float64(n),
		VirtEach:    float64(virt) / float64(n),
		KernelEach:  -1,
		LatenciesUs: lat,
		Note: fmt.Sprintf("each child is this binary (a Go runtime, GOMAXPROCS=1, %.1f threads on average), started with fork+exec and waited for until it answers",
			float64(threads)/float64(n)),
	}
	if kAfter, err := kernelStack(); err == nil && kerr == nil {
		c.KernelEach = perItem(kAfter, kBefore, n) + float64(pte)/float64(n)
	}
	emit(lab.Progress("starting processes", int64(n), int64(n)))
	return c, nil
}

// pingPong times rt round trips between two goroutines, two OS threads or
// two processes and returns nanoseconds per switch (half a round trip).
// cores 1 means GOMAXPROCS 1 for goroutines and CPU 0 for both threads or
// processes.
func pingPong(ctx context.Context, kind string, cores, rt int) (float64, error) {
	var stop atomic.Bool
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()
	var elapsed time.Duration
	var err error
	switch kind {
	case "goroutine":
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(cores))
		elapsed = channelPingPong(rt, &stop)
	case "thread":
		elapsed, err = threadPingPong(rt, cores, &stop)
	case "process":
		done := make(chan struct{})
		go func() {
			defer close(done)
			runtime.LockOSThread()
			cpu := -1
			if cores == 1 {
				cpu = 0
				pinCPU(0)
			}
			elapsed, err = pipePingPong(rt, cpu, &stop)
		}()
		<-done
	default:
		return 0, fmt.Errorf("unknown kind %q", kind)
	}
	if err != nil {
		return 0, err
	}
	if stop.Load() {
		return 0, ctx.Err()
	}
	return float64(elapsed.Nanoseconds()) / float64(2*rt), nil
}

func pinCPU(cpu int) {
	var set unix.CPUSet
	set.Set(cpu)
	_ = unix.SchedSetaffinity(0, &set)
}

// channelPingPong passes a token back and forth over two unbuffered
// channels between two goroutines.
func channelPingPong(rt int, stop *atomic.Bool) time.Duration {
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
	start := time.Now()
	for i := range rt {
		ping <- struct{}{}
		<-pong
		if i&1023 == 1023 && stop.Load() {
			break
		}
	}
	elapsed := time.Since(start)
	close(ping)
	<-done
	return elapsed
}

// threadPingPong passes a byte between two OS threads of this process
// over two pipes, with blocking system calls, as the process ping-pong
// does, so the two differ only in what the kernel switches. (A Go channel
// between two locked goroutines would add the runtime's hand-off of its
// scheduler context, several times the kernel's own cost.)
func threadPingPong(rt, cores int, stop *atomic.Bool) (time.Duration, error) {
	aR, aW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	bR, bW, err := os.Pipe()
	if err != nil {
		aR.Close()
		aW.Close()
		return 0, err
	}
	defer func() {
		for _, f := range []*os.File{aR, aW, bR, bW} {
			f.Close()
		}
	}()
	// Fd puts each end in blocking mode.
	toPartner, fromPartner := int(aW.Fd()), int(bR.Fd())
	partnerIn, partnerOut := int(aR.Fd()), int(bW.Fd())
	lock := func() {
		runtime.LockOSThread() // never unlocked: the thread ends with its goroutine
		if cores == 1 {
			pinCPU(0)
		}
	}
	partnerDone := make(chan struct{})
	go func() {
		defer close(partnerDone)
		lock()
		b := make([]byte, 1)
		for {
			if n, err := unix.Read(partnerIn, b); n != 1 {
				if err == unix.EINTR {
					continue
				}
				return
			}
			if writeByte(partnerOut, b) != nil {
				return
			}
		}
	}()
	var elapsed time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		lock()
		elapsed, err = timeTrips(rt, toPartner, fromPartner, stop)
	}()
	<-done
	aW.Close() // the partner reads EOF and returns
	<-partnerDone
	return elapsed, err
}

// timeTrips sends one byte on out and reads it back from in, once to see
// the partner is up and then rt times under the clock.
func timeTrips(rt, out, in int, stop *atomic.Bool) (time.Duration, error) {
	b := []byte{7}
	trip := func() error {
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
	if err := trip(); err != nil {
		return 0, err
	}
	start := time.Now()
	for i := range rt {
		if err := trip(); err != nil {
			return 0, err
		}
		if i&255 == 255 && stop.Load() {
			break
		}
	}
	return time.Since(start), nil
}

func writeByte(fd int, b []byte) error {
	for {
		_, err := unix.Write(fd, b)
		if err != unix.EINTR {
			return err
		}
	}
}

// pipePingPong sends one byte to an echo child and reads it back, rt
// times, with blocking system calls on the calling (locked) thread.
func pipePingPong(rt, cpu int, stop *atomic.Bool) (time.Duration, error) {
	c, err := startChild("echo", cpu)
	if err != nil {
		return 0, err
	}
	defer c.stop()
	// One trip under a deadline first, so a child that never answers is an
	// error and not a hang; then blocking system calls, without Go's poller.
	if err := c.out.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return 0, err
	}
	b := []byte{7}
	if _, err := c.in.Write(b); err != nil {
		return 0, fmt.Errorf("echo child: %w", err)
	}
	if _, err := io.ReadFull(c.out, b); err != nil {
		return 0, fmt.Errorf("echo child did not answer: %w", err)
	}
	return timeTrips(rt, int(c.in.Fd()), int(c.out.Fd()), stop) // Fd makes them blocking
}

// claims sets the measured figures beside the textbook's.
func claims(r Result) []Claim {
	g, t := r.creation("goroutine"), r.creation("thread")
	cs := []Claim{
		{Claim: "A process context switch takes about 1–10 ms", Low: 1e6, High: 1e7, Unit: "ns", Measured: r.switchNs("process")},
		{Claim: "A thread context switch takes about 1–10 µs", Low: 1e3, High: 1e4, Unit: "ns", Measured: r.switchNs("thread")},
		{Claim: "A coroutine switch takes about 100 ns", Low: 50, High: 200, Unit: "ns", Measured: r.switchNs("goroutine")},
		{Claim: "A thread's stack takes about 1 MB", Low: 512 << 10, High: 2 << 20, Unit: "bytes", Measured: t.RSSEach},
		{Claim: "A coroutine's stack takes about 2 KB", Low: 1 << 10, High: 4 << 10, Unit: "bytes", Measured: g.RSSEach},
	}
	for i := range cs {
		cs[i].Verdict = verdict(cs[i])
	}
	if len(cs) > 3 && t.VirtEach > 0 {
		cs[3].Verdict += fmt.Sprintf("; the address space reserved per thread is %s, which is where the figure comes from", Bytes(t.VirtEach))
	}
	return cs
}

func verdict(c Claim) string {
	m := c.Measured
	switch {
	case math.IsNaN(m) || m <= 0:
		return "not measured"
	case m < c.Low:
		return fmt.Sprintf("cheaper than claimed: %s here, %.0f× below the low end", format(m, c.Unit), c.Low/m)
	case m > c.High:
		return fmt.Sprintf("dearer than claimed: %s here, %.1f× above the high end", format(m, c.Unit), m/c.High)
	}
	return fmt.Sprintf("matches: %s here", format(m, c.Unit))
}

func format(v float64, unit string) string {
	if unit == "bytes" {
		return Bytes(v)
	}
	return Duration(v)
}

// users computes memory for n users with one thread, goroutine or process
// each, from the measured resident memory per item.
func users(r Result, n int) Users {
	u := Users{
		Users:          n,
		ThreadBytes:    r.creation("thread").RSSEach * float64(n),
		GoroutineBytes: r.creation("goroutine").RSSEach * float64(n),
		ProcessBytes:   r.creation("process").PSSEach * float64(n),
	}
	switch {
	case u.ThreadBytes <= 0 || u.GoroutineBytes <= 0:
		u.Sentence = "Not enough was measured to compare."
	case u.GoroutineBytes < u.ThreadBytes:
		u.SavedBytes = u.ThreadBytes - u.GoroutineBytes
		u.SavedPercent = 100 * u.SavedBytes / u.ThreadBytes
		u.Sentence = fmt.Sprintf("%s users with a thread each would hold %s of memory; with a goroutine each, %s: goroutines save %s (%.0f%%).",
			Count(n), Bytes(u.ThreadBytes), Bytes(u.GoroutineBytes), Bytes(u.SavedBytes), u.SavedPercent)
	default:
		u.Sentence = fmt.Sprintf("%s users with a goroutine each would hold %s, %s more than with a thread each (%s): no saving on this machine.",
			Count(n), Bytes(u.GoroutineBytes), Bytes(u.GoroutineBytes-u.ThreadBytes), Bytes(u.ThreadBytes))
	}
	if u.ProcessBytes > 0 {
		u.Sentence += fmt.Sprintf(" A process each would hold %s.", Bytes(u.ProcessBytes))
	}
	return u
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
		if c.PSSEach > 0 {
			res += " (PSS " + Bytes(c.PSSEach) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Kind, Count(c.N), Duration(c.EachNs), res, Bytes(c.VirtEach), kernel)
	}
	fmt.Fprintln(tw, "\nswitch\tcores\tround trips\tper switch")
	for _, s := range r.Switches {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", s.Kind, s.Cores, Count(s.RoundTrips), Duration(s.NsPerSwap))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, c := range r.Claims {
		fmt.Fprintf(w, "%s: %s\n", c.Claim, c.Verdict)
	}
	_, err := fmt.Fprintf(w, "\n%s\n", r.Users.Sentence)
	return err
}
