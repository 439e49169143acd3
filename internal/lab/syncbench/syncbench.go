// Package syncbench is the lab's third chapter: synchronisation
// primitives under contention, measured. For each primitive and each
// number of goroutines, every goroutine runs operations through a
// critical section until a shared stop, a fixed time later; the run
// counts each goroutine's operations, so it reports throughput and how
// fairly the primitive shared it out (the fewest and most of one
// goroutine, and Jain's index), and checks that no operation was lost.
// Each point is run several times and reported as the median with the
// range. It also holds the lock-free ring that the queue comparison pits
// against a channel.
package syncbench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/stampede-dev/stampede/internal/lab"
)

// Primitive describes one contender.
type Primitive struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Pros string `json:"pros"`
	Cons string `json:"cons"`
}

// Primitives lists the contenders in the order they are measured.
func Primitives() []Primitive {
	return []Primitive{
		{"mutex", "sync.Mutex", "simple; spins briefly, then parks waiters so they use no CPU; starvation mode bounds the wait", "one holder at a time; readers exclude each other"},
		{"rwmutex", "sync.RWMutex", "readers share the lock, so a read-heavy mix scales", "dearer than Mutex for each operation; writers wait for every reader"},
		{"spin", "CAS spinlock", "cheapest when the holder is short and running on another core", "waiters burn CPU; with more goroutines than cores a waiter can spin while the holder is descheduled"},
		{"spin-yield", "CAS spinlock + Gosched", "gives the core away while waiting, so the holder can run", "still polls; no fairness; the yield is a trip through the scheduler"},
		{"cond", "sync.Cond hand-off (strict turns)", "expresses \"wait until the state is right\"; no busy waiting", "Broadcast wakes every waiter, and all but one go back to sleep: cost grows with the crowd"},
		{"semaphore", "semaphore.Weighted", "bounds how many run at once, with weights and a context to give up", "a mutex inside plus a FIFO list of waiters: dearer than a channel"},
		{"chan-sem", "buffered channel as semaphore", "idiomatic, no dependency, works in select", "weights of one only; no way to ask how many are free"},
		{"atomic", "atomic.Int64 add", "one instruction, never blocks", "only for one word; contended cache lines still bounce between cores"},
		{"queue-chan", "channel (queue of 1,024)", "blocking send and receive, select, close: all built in", "a lock inside; producers and consumers contend on it"},
		{"queue-ring", "lock-free ring (queue of 1,024)", "no lock: positions are claimed with CAS; nobody is parked", "no blocking: a full or empty ring must be polled; bounded and fixed in size"},
	}
}

// Experiment measures the primitives.
type Experiment struct{}

// New returns the experiment.
func New() *Experiment { return &Experiment{} }

var _ lab.Experiment = (*Experiment)(nil)

// Info describes the experiment.
func (*Experiment) Info() lab.Info {
	ids := []string{"all"}
	for _, p := range Primitives() {
		ids = append(ids, p.ID)
	}
	return lab.Info{
		ID: "sync", Chapter: 3, Heavy: true,
		Title:   "Synchronisation primitives under contention",
		Summary: "Throughput and fairness against the number of goroutines, for locks, semaphores, atomics and two queues.",
		Params: []lab.Param{
			{Name: "primitive", Label: "Primitive", Kind: lab.Choice, Default: "all", Choices: ids},
			{Name: "goroutines", Label: "Up to goroutines", Help: "measured at 1, 2, 4, … up to this", Kind: lab.Int, Default: 16, Min: 1, Max: 256},
			{Name: "ms", Label: "Time per run", Help: "every goroutine works until this time is up", Unit: "ms", Kind: lab.Int, Default: 150, Min: 10, Max: 5000},
			{Name: "runs", Label: "Runs per point", Help: "the median is reported, with the range", Kind: lab.Int, Default: 3, Min: 1, Max: 9},
			{Name: "hold", Label: "Work inside the critical section", Help: "busy work done while holding the lock (or the permit, or between queue operations), calibrated on this machine",
				Kind: lab.Choice, Default: "0", Choices: holdChoices},
			{Name: "reads", Label: "RWMutex reads", Unit: "%", Kind: lab.Int, Default: 90, Min: 0, Max: 100},
			{Name: "permits", Label: "Semaphore permits", Kind: lab.Int, Default: 4, Min: 1, Max: 64},
		},
	}
}

// Point is one primitive at one number of goroutines, run Runs times.
type Point struct {
	Primitive  string `json:"primitive"`
	Goroutines int    `json:"goroutines"`
	Runs       int    `json:"runs"`
	// Ops is the operations of the median run (by throughput).
	Ops int64 `json:"ops"`
	// OpsPerSec is the median throughput of the runs, MinOpsPerSec and
	// MaxOpsPerSec the lowest and highest.
	OpsPerSec    float64 `json:"opsPerSec"`
	MinOpsPerSec float64 `json:"minOpsPerSec"`
	MaxOpsPerSec float64 `json:"maxOpsPerSec"`
	// NsPerOp is the inverse of the median throughput: wall time per
	// operation of the whole crowd, not the time one operation takes.
	// Flat as goroutines are added means the primitive does not scale
	// (the operations run one after another); falling means it does.
	NsPerOp float64 `json:"nsPerOp"`
	// Fairness of the median run: the fewest and the most operations one
	// goroutine did, as a fraction of an equal share, and Jain's index
	// (1 when every goroutine did the same, 1/goroutines when one did all).
	MinShare float64 `json:"minShare"`
	MaxShare float64 `json:"maxShare"`
	Jain     float64 `json:"jain"`
	// CPUNsPerOp is the CPU time this process spent (user and system,
	// every thread, from getrusage) per operation in the median run:
	// where NsPerOp is what the crowd got done, this is what it cost. A
	// spinning waiter costs CPU and gets nothing done; a parked one costs
	// neither.
	CPUNsPerOp float64 `json:"cpuNsPerOp"`
	// MaxWriteWaitNs is, for RWMutex, the longest a writer waited for
	// Lock in the median run: whether readers starve writers.
	MaxWriteWaitNs float64 `json:"maxWriteWaitNs,omitempty"`
	// Correct says that in every run the shared state shows every
	// finished operation once.
	Correct bool `json:"correct"`
}

// Result is the experiment's result.
type Result struct {
	Primitives []Primitive `json:"primitives"`
	Counts     []int       `json:"counts"`
	// Hold is the work asked for inside each critical section, and
	// HoldNs what the calibrated loop took for it, alone on a core.
	Hold   string  `json:"hold"`
	HoldNs float64 `json:"holdNs"`
	Reads  int     `json:"reads"` // RWMutex: the share of reads, in %
	Points []Point `json:"points"`
}

// holdChoices are the critical sections' lengths a run may ask for.
var holdChoices = []string{"0", "100ns", "1us", "10us"}

// Counts returns 1, 2, 4, … up to and including max.
func Counts(max int) []int {
	var out []int
	for n := 1; n < max; n *= 2 {
		out = append(out, n)
	}
	return append(out, max)
}

// Run measures.
func (*Experiment) Run(ctx context.Context, p lab.Values, emit func(lab.Event)) error {
	var prims []Primitive
	for _, pr := range Primitives() {
		if id := p.String("primitive"); id == "all" || id == pr.ID {
			prims = append(prims, pr)
		}
	}
	res := Result{Primitives: prims, Counts: Counts(p.Int("goroutines")), Hold: p.String("hold"), Reads: p.Int("reads")}
	cfg := config{runs: p.Int("runs"), reads: p.Int("reads"), permits: p.Int("permits"), dur: time.Duration(p.Int("ms")) * time.Millisecond}
	if hold, err := time.ParseDuration(res.Hold); err == nil && hold > 0 {
		cfg.spins, res.HoldNs = calibrate(hold)
	}
	total := int64(len(prims) * len(res.Counts))
	for i, pr := range prims {
		for j, g := range res.Counts {
			if err := ctx.Err(); err != nil {
				return err
			}
			emit(lab.Progress(fmt.Sprintf("%s with %d goroutines", pr.Name, g), int64(i*len(res.Counts)+j), total))
			pt := measure(ctx, pr.ID, g, cfg)
			if err := ctx.Err(); err != nil {
				return err
			}
			res.Points = append(res.Points, pt)
			emit(lab.Point(pr.ID, float64(g), pt.OpsPerSec))
		}
	}
	emit(lab.Result(res))
	return nil
}

type config struct {
	runs    int
	reads   int
	permits int
	dur     time.Duration // of one run
	spins   int           // iterations of busyWork inside each critical section
}

// busyWork does n steps of a xorshift, work the compiler cannot drop: it
// stands for what a program does while it holds a lock.
func busyWork(n int) {
	if n == 0 {
		return // an empty critical section: nothing added, not even the sink
	}
	x := uint64(n) | 1
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	// A xorshift of a non-zero seed is never zero: the store never
	// happens, but the compiler cannot know it and must do the work. (A
	// store on every call would be one more contended word.)
	if x == 0 {
		workSink.Store(x)
	}
}

var workSink atomic.Uint64

// calibrate finds how many steps of busyWork take d on this machine,
// alone on a core, and what they took: the fastest of several timings of
// a long loop, so that a busy machine's interruptions do not count.
func calibrate(d time.Duration) (spins int, took float64) {
	const probe = 1 << 20
	best := time.Duration(math.MaxInt64)
	for range 5 {
		t0 := time.Now()
		busyWork(probe)
		best = min(best, time.Since(t0))
	}
	perStep := float64(best) / probe
	spins = max(1, int(float64(d)/perStep+0.5))
	return spins, float64(spins) * perStep
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// spinlock is a test-and-set lock on one word.
type spinlock struct {
	state atomic.Int32
	yield bool
}

// cacheLine is the padding between hot words, so that two of them never
// share a cache line and one's writes do not slow the other's readers
// (false sharing). 128 bytes covers the adjacent-line prefetch of x86.
const cacheLine = 128

// hot holds the words a run contends on, each on its own cache line.
type hot struct {
	_       [cacheLine]byte
	counter int64 // guarded by the primitive under test
	_       [cacheLine - 8]byte
	atom    atomic.Int64
	_       [cacheLine - 8]byte
	mu      sync.Mutex
	_       [cacheLine - 8]byte
	rw      sync.RWMutex
	_       [cacheLine - 24]byte
	spin    spinlock
	_       [cacheLine - 8]byte
	turn    int64
	_       [cacheLine - 8]byte
	stop    atomic.Bool
	_       [cacheLine - 4]byte
}

func (l *spinlock) Lock() {
	for !l.state.CompareAndSwap(0, 1) {
		if l.yield {
			runtime.Gosched()
		}
	}
}

func (l *spinlock) Unlock() { l.state.Store(0) }

// What one operation of measure did.
const (
	opNone = iota
	opWrite
	opRead
)

// measure runs primitive id with g goroutines cfg.runs times and reports
// the median run, the range of throughput and whether every run counted
// every operation once. It stops early when ctx ends.
func measure(ctx context.Context, id string, g int, cfg config) Point {
	runs := make([]run, 0, cfg.runs)
	correct := true
	for range max(cfg.runs, 1) {
		if ctx.Err() != nil {
			break
		}
		var r run
		if id == "queue-chan" || id == "queue-ring" {
			r = runQueue(ctx, id, g, cfg.dur, cfg.spins)
		} else {
			r = runOnce(ctx, id, g, cfg)
		}
		correct = correct && r.correct
		runs = append(runs, r)
	}
	pt := Point{Primitive: id, Goroutines: g, Runs: len(runs), Correct: correct}
	if len(runs) == 0 {
		return pt
	}
	slices.SortFunc(runs, func(a, b run) int { return cmp.Compare(a.opsPerSec(), b.opsPerSec()) })
	mid := runs[len(runs)/2]
	pt.Ops, pt.OpsPerSec = mid.ops(), mid.opsPerSec()
	pt.MinOpsPerSec, pt.MaxOpsPerSec = runs[0].opsPerSec(), runs[len(runs)-1].opsPerSec()
	if pt.OpsPerSec > 0 {
		pt.NsPerOp = 1e9 / pt.OpsPerSec
	}
	pt.MinShare, pt.MaxShare, pt.Jain = fairness(mid.counts)
	if mid.ops() > 0 {
		pt.CPUNsPerOp = float64(mid.cpu) / float64(mid.ops())
	}
	pt.MaxWriteWaitNs = float64(mid.maxWriteWait)
	return pt
}

// run is one timed run: each goroutine's operations, their total, and
// how long the crowd took from the start to the last goroutine's end.
type run struct {
	counts       []int64
	total        int64
	elapsed      time.Duration
	cpu          time.Duration // the process's, over the run
	maxWriteWait time.Duration // RWMutex: a writer's longest wait for Lock
	correct      bool
}

func (r run) ops() int64 { return r.total }

func (r run) opsPerSec() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops()) / r.elapsed.Seconds()
}

// fairness returns the fewest and most operations of one goroutine as a
// fraction of an equal share, and Jain's index (Σx)² / (n·Σx²).
func fairness(counts []int64) (minShare, maxShare, jain float64) {
	var sum, sq float64
	for _, c := range counts {
		sum += float64(c)
		sq += float64(c) * float64(c)
	}
	if sum == 0 || len(counts) == 0 {
		return 0, 0, 0
	}
	equal := sum / float64(len(counts))
	return float64(slices.Min(counts)) / equal, float64(slices.Max(counts)) / equal, sum * sum / (float64(len(counts)) * sq)
}

// runOnce runs primitive id with g goroutines, each looping until the
// shared stop cfg.dur after they were released together, and checks the
// shared state afterwards.
func runOnce(ctx context.Context, id string, g int, cfg config) run {
	var st hot
	stop := &st.stop
	timer := time.AfterFunc(cfg.dur, func() { stop.Store(true) })
	defer timer.Stop()
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()
	st.spin.yield = id == "spin-yield"
	var (
		sem   = semaphore.NewWeighted(int64(cfg.permits))
		chsem = make(chan struct{}, cfg.permits)
		cond  = sync.NewCond(&st.mu)
		reads atomic.Int64 // RWMutex reads, added once per goroutine
	)
	// op does one operation and says what it did: opNone (a cond waiter
	// released by the clock), opWrite or opRead. It is chosen once, so the
	// measured loop pays one indirect call and nothing else of ours.
	var op func(worker int, i int64) int
	spins := cfg.spins
	// A writer's longest wait for the RWMutex, each goroutine's own, merged
	// at the end.
	writeWaits := make([]time.Duration, g)
	switch id {
	case "mutex":
		op = func(int, int64) int {
			st.mu.Lock()
			busyWork(spins)
			st.counter++
			st.mu.Unlock()
			return opWrite
		}
	case "rwmutex":
		op = func(w int, i int64) int {
			if int(i%100) < cfg.reads {
				st.rw.RLock()
				busyWork(spins)
				_ = st.counter
				st.rw.RUnlock()
				return opRead
			}
			t0 := time.Now()
			st.rw.Lock()
			if d := time.Since(t0); d > writeWaits[w] {
				writeWaits[w] = d
			}
			busyWork(spins)
			st.counter++
			st.rw.Unlock()
			return opWrite
		}
	case "spin", "spin-yield":
		op = func(int, int64) int {
			st.spin.Lock()
			busyWork(spins)
			st.counter++
			st.spin.Unlock()
			return opWrite
		}
	case "semaphore":
		op = func(int, int64) int {
			_ = sem.Acquire(context.Background(), 1)
			busyWork(spins)
			st.atom.Add(1) // several permits: the guarded add must be atomic
			sem.Release(1)
			return opWrite
		}
	case "chan-sem":
		op = func(int, int64) int {
			chsem <- struct{}{}
			busyWork(spins)
			st.atom.Add(1)
			<-chsem
			return opWrite
		}
	case "atomic":
		op = func(int, int64) int {
			busyWork(spins) // the work is outside: an atomic guards one word
			st.atom.Add(1)
			return opWrite
		}
	case "cond":
		op = func(worker int, _ int64) int {
			st.mu.Lock()
			defer st.mu.Unlock()
			for st.turn%int64(g) != int64(worker) && !stop.Load() {
				cond.Wait()
			}
			mine := st.turn%int64(g) == int64(worker) && !stop.Load()
			if mine {
				busyWork(spins)
				st.turn++
				st.counter++
			}
			cond.Broadcast()
			if !mine {
				return opNone
			}
			return opWrite
		}
	default:
		panic("syncbench: no primitive " + id)
	}
	counts := make([]int64, g)
	var wg sync.WaitGroup
	gate := make(chan struct{}) // everyone starts together
	for w := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Counted in a local and stored once: a shared counter bumped
			// per operation would be a second contended word in every
			// figure.
			var did, read int64
			defer func() { counts[w] = did; reads.Add(read) }()
			<-gate
			for i := int64(0); !stop.Load(); i++ {
				switch op(w, i) {
				case opRead:
					read++
					did++
				case opWrite:
					did++
				}
			}
		}()
	}
	cpu0, start := cpuTime(), time.Now()
	close(gate)
	wakerDone := make(chan struct{})
	if id != "cond" {
		close(wakerDone)
	} else {
		// When the clock runs out, waiters must not sleep on for a turn
		// that will never come: wake them.
		go func() {
			defer close(wakerDone)
			for !stop.Load() {
				time.Sleep(time.Millisecond)
			}
			st.mu.Lock()
			cond.Broadcast()
			st.mu.Unlock()
		}()
	}
	wg.Wait()
	r := run{counts: counts, elapsed: time.Since(start), cpu: cpuTime() - cpu0, maxWriteWait: slices.Max(writeWaits)}
	stop.Store(true)
	<-wakerDone
	for _, n := range counts {
		r.total += n
	}
	finished := r.total
	switch id {
	case "mutex", "spin", "spin-yield", "cond":
		r.correct = st.counter == finished
	case "rwmutex":
		r.correct = st.counter+reads.Load() == finished
	case "semaphore", "chan-sem", "atomic":
		r.correct = st.atom.Load() == finished
	}
	return r
}

// runQueue moves items from g/2 producers to g/2 consumers (at least one
// of each) for dur, and checks that every item arrived once: the sum of
// what was received equals the sum of what was sent. A producer's count
// is what it sent, a consumer's what it received.
func runQueue(ctx context.Context, id string, g int, dur time.Duration, spins int) run {
	var stop atomic.Bool
	timer := time.AfterFunc(dur, func() { stop.Store(true) })
	defer timer.Stop()
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()
	prods, cons := max(1, g/2), max(1, g-g/2)
	if g == 1 {
		prods, cons = 1, 1
	}
	ch := make(chan int64, 1024)
	ring := NewRing[int64](1024)
	counts := make([]int64, prods+cons)
	var sentSum, recvSum atomic.Int64
	var pw, cw sync.WaitGroup
	var producersDone atomic.Bool
	gate := make(chan struct{})
	for p := range prods {
		pw.Add(1)
		go func() {
			defer pw.Done()
			<-gate
			var s, sum int64
			for i := int64(0); !stop.Load(); i++ {
				v := int64(p)<<40 | i
				busyWork(spins) // making the item
				if id == "queue-chan" {
					ch <- v
				} else if !ring.TryPush(v) {
					runtime.Gosched() // full: let a consumer run
					continue
				}
				s++
				sum += v
			}
			counts[p] = s
			sentSum.Add(sum)
		}()
	}
	for c := range cons {
		cw.Add(1)
		go func() {
			defer cw.Done()
			var r, sum int64
			defer func() { counts[prods+c] = r; recvSum.Add(sum) }()
			<-gate
			if id == "queue-chan" {
				for v := range ch {
					r++
					sum += v
				}
				return
			}
			for {
				if v, ok := ring.TryPop(); ok {
					r++
					sum += v
					continue
				}
				if producersDone.Load() {
					// Producers are finished: drain what is left, then go.
					for {
						v, ok := ring.TryPop()
						if !ok {
							return
						}
						r++
						sum += v
					}
				}
				runtime.Gosched()
			}
		}()
	}
	cpu0, start := cpuTime(), time.Now()
	close(gate)
	pw.Wait()
	producersDone.Store(true)
	close(ch)
	cw.Wait()
	elapsed := time.Since(start)
	var sent, recv int64
	for i, n := range counts {
		if i < prods {
			sent += n
		} else {
			recv += n
		}
	}
	// An operation is an item moved, sent by one goroutine and received
	// by another: the total is what arrived.
	return run{counts: counts, total: recv, elapsed: elapsed, cpu: cpuTime() - cpu0, correct: recv == sent && recvSum.Load() == sentSum.Load()}
}

// WriteText prints throughput per primitive and goroutine count, then
// fairness.
func (r Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	row := func(title string, cell func(Point) string) {
		fmt.Fprintf(tw, "%s\t", title)
		for _, g := range r.Counts {
			fmt.Fprintf(tw, "%d\t", g)
		}
		fmt.Fprintln(tw)
		for _, pr := range r.Primitives {
			fmt.Fprintf(tw, "%s\t", pr.Name)
			for _, g := range r.Counts {
				i := slices.IndexFunc(r.Points, func(p Point) bool { return p.Primitive == pr.ID && p.Goroutines == g })
				mark := ""
				if !r.Points[i].Correct {
					mark = "!"
				}
				fmt.Fprintf(tw, "%s%s\t", cell(r.Points[i]), mark)
			}
			fmt.Fprintln(tw)
		}
		fmt.Fprintln(tw)
	}
	row("Mops/s (median)", func(p Point) string { return fmt.Sprintf("%.2f", p.OpsPerSec/1e6) })
	row("range (Mops/s)", func(p Point) string { return fmt.Sprintf("%.2f-%.2f", p.MinOpsPerSec/1e6, p.MaxOpsPerSec/1e6) })
	row("CPU ns/op", func(p Point) string { return fmt.Sprintf("%.0f", p.CPUNsPerOp) })
	row("Jain's index", func(p Point) string { return fmt.Sprintf("%.2f", p.Jain) })
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.HoldNs > 0 {
		fmt.Fprintf(w, "each critical section holds %s of work (%.0f ns measured alone on a core)\n", r.Hold, r.HoldNs)
	}
	for _, p := range r.Points {
		if p.Primitive == "rwmutex" && p.Goroutines == r.Counts[len(r.Counts)-1] && p.MaxWriteWaitNs > 0 {
			fmt.Fprintf(w, "RWMutex with %d goroutines: a writer waited at most %.1f µs for Lock\n", p.Goroutines, p.MaxWriteWaitNs/1e3)
		}
	}
	fmt.Fprintln(w, "throughput is operations per second of the whole crowd; flat as goroutines are added means the operations run one after another")
	fmt.Fprintln(w, "CPU ns/op is the CPU time the process spent per operation (every thread, from getrusage): a waiter that spins spends it, a parked one does not; in the lab, runs going on beside this one count too")
	fmt.Fprintln(w, "Jain's index: 1 when every goroutine did as many operations, 1/goroutines when one did them all; ! an operation was lost (never expected)")
	for _, pr := range r.Primitives {
		fmt.Fprintf(w, "\n%s\n  + %s\n  - %s\n", pr.Name, pr.Pros, pr.Cons)
	}
	return nil
}
