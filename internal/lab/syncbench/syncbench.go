// Package syncbench is the lab's third chapter: synchronisation
// primitives under contention, measured. For each primitive and each
// number of goroutines it runs a fixed number of operations through a
// critical section and reports nanoseconds per operation, and it checks
// that no operation was lost. It also holds the lock-free ring that the
// queue comparison pits against a channel.
package syncbench

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
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
		Summary: "ns per operation against the number of goroutines, for locks, semaphores, atomics and two queues.",
		Params: []lab.Param{
			{Name: "primitive", Label: "Primitive", Kind: lab.Choice, Default: "all", Choices: ids},
			{Name: "goroutines", Label: "Up to goroutines", Help: "measured at 1, 2, 4, … up to this", Kind: lab.Int, Default: 16, Min: 1, Max: 256},
			{Name: "ops", Label: "Operations per point", Kind: lab.Int, Default: 1_000_000, Min: 1_000, Max: 10_000_000},
			{Name: "reads", Label: "RWMutex reads", Unit: "%", Kind: lab.Int, Default: 90, Min: 0, Max: 100},
			{Name: "permits", Label: "Semaphore permits", Kind: lab.Int, Default: 4, Min: 1, Max: 64},
			{Name: "ms", Label: "Time limit per point", Unit: "ms", Kind: lab.Int, Default: 1000, Min: 50, Max: 5000},
		},
	}
}

// Point is one measurement.
type Point struct {
	Primitive  string  `json:"primitive"`
	Goroutines int     `json:"goroutines"`
	Ops        int64   `json:"ops"`
	NsPerOp    float64 `json:"nsPerOp"`
	// Complete is false when the time limit cut the point short; NsPerOp
	// is then over the operations that did finish.
	Complete bool `json:"complete"`
	// Correct says the shared state shows every finished operation once.
	Correct bool `json:"correct"`
}

// Result is the experiment's result.
type Result struct {
	Primitives []Primitive `json:"primitives"`
	Counts     []int       `json:"counts"`
	Points     []Point     `json:"points"`
}

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
	res := Result{Primitives: prims, Counts: Counts(p.Int("goroutines"))}
	cfg := config{ops: int64(p.Int("ops")), reads: p.Int("reads"), permits: p.Int("permits"), limit: time.Duration(p.Int("ms")) * time.Millisecond}
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
			emit(lab.Point(pr.ID, float64(g), pt.NsPerOp))
		}
	}
	emit(lab.Result(res))
	return nil
}

type config struct {
	ops     int64
	reads   int
	permits int
	limit   time.Duration
}

// spinlock is a test-and-set lock on one word.
type spinlock struct {
	state atomic.Int32
	yield bool
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

// measure runs cfg.ops operations of primitive id split over g goroutines
// and checks the shared state afterwards.
func measure(ctx context.Context, id string, g int, cfg config) Point {
	var stop atomic.Bool
	timer := time.AfterFunc(cfg.limit, func() { stop.Store(true) })
	defer timer.Stop()
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()

	if id == "queue-chan" || id == "queue-ring" {
		return measureQueue(id, g, cfg.ops, &stop)
	}
	var (
		counter int64 // guarded by the primitive under test
		atom    atomic.Int64
		done    atomic.Int64 // operations finished, counted outside it
		reads   atomic.Int64 // of which RWMutex reads
		mu      sync.Mutex
		rw      sync.RWMutex
		spin    = &spinlock{yield: id == "spin-yield"}
		sem     = semaphore.NewWeighted(int64(cfg.permits))
		chsem   = make(chan struct{}, cfg.permits)
		cond    = sync.NewCond(&mu)
		turn    int64
	)
	// op does one operation and says what it did: opNone (a cond waiter
	// released by the clock), opWrite or opRead. It is chosen once, so the
	// measured loop pays one indirect call and nothing else of ours.
	var op func(worker int, i int64) int
	switch id {
	case "mutex":
		op = func(int, int64) int {
			mu.Lock()
			counter++
			mu.Unlock()
			return opWrite
		}
	case "rwmutex":
		op = func(_ int, i int64) int {
			if int(i%100) < cfg.reads {
				rw.RLock()
				_ = counter
				rw.RUnlock()
				return opRead
			}
			rw.Lock()
			counter++
			rw.Unlock()
			return opWrite
		}
	case "spin", "spin-yield":
		op = func(int, int64) int {
			spin.Lock()
			counter++
			spin.Unlock()
			return opWrite
		}
	case "semaphore":
		op = func(int, int64) int {
			_ = sem.Acquire(context.Background(), 1)
			atom.Add(1) // several permits: the guarded add must be atomic
			sem.Release(1)
			return opWrite
		}
	case "chan-sem":
		op = func(int, int64) int {
			chsem <- struct{}{}
			atom.Add(1)
			<-chsem
			return opWrite
		}
	case "atomic":
		op = func(int, int64) int {
			atom.Add(1)
			return opWrite
		}
	case "cond":
		op = func(worker int, _ int64) int {
			mu.Lock()
			defer mu.Unlock()
			for turn%int64(g) != int64(worker) && !stop.Load() {
				cond.Wait()
			}
			mine := turn%int64(g) == int64(worker)
			if mine {
				turn++
				counter++
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
	per := cfg.ops / int64(g)
	total := cfg.ops
	if id == "cond" {
		// Strict turns need the same number for everyone: a worker with
		// extra turns would wait for partners that have left.
		total = per * int64(g)
	}
	var wg sync.WaitGroup
	gate := make(chan struct{}) // everyone starts together
	for w := range g {
		n := per
		if w == 0 {
			n += total - per*int64(g)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Counted here and added once: a shared counter bumped per
			// operation would be a second contended word in every figure.
			var did, read int64
			defer func() { done.Add(did); reads.Add(read) }()
			<-gate
			for i := range n {
				if stop.Load() {
					return
				}
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
	start := time.Now()
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
				time.Sleep(5 * time.Millisecond)
			}
			mu.Lock()
			cond.Broadcast()
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stop.Store(true)
	<-wakerDone
	finished := done.Load()
	pt := Point{Primitive: id, Goroutines: g, Ops: finished, Complete: finished == total}
	if finished > 0 {
		pt.NsPerOp = float64(elapsed.Nanoseconds()) / float64(finished)
	}
	switch id {
	case "mutex", "spin", "spin-yield", "cond":
		pt.Correct = counter == finished
	case "rwmutex":
		pt.Correct = counter+reads.Load() == finished
	case "semaphore", "chan-sem", "atomic":
		pt.Correct = atom.Load() == finished
	}
	return pt
}

// measureQueue moves ops items from g/2 producers to g/2 consumers (at
// least one of each) and checks that every item arrived once: the sum of
// what was received equals the sum of what was sent.
func measureQueue(id string, g int, ops int64, stop *atomic.Bool) Point {
	prods, cons := max(1, g/2), max(1, g-g/2)
	if g == 1 {
		prods, cons = 1, 1
	}
	ch := make(chan int64, 1024)
	ring := NewRing[int64](1024)
	var sent, sentSum, recv, recvSum atomic.Int64
	var pw, cw sync.WaitGroup
	var producersDone atomic.Bool
	gate := make(chan struct{})
	per := ops / int64(prods)
	for p := range prods {
		n := per
		if p == 0 {
			n += ops % int64(prods)
		}
		pw.Add(1)
		go func() {
			defer pw.Done()
			<-gate
			var s, sum int64
			for i := range n {
				if i&255 == 0 && stop.Load() {
					break
				}
				v := int64(p)<<40 | i
				if id == "queue-chan" {
					ch <- v
				} else {
					ring.Push(v) // consumers drain until producers are done

				}
				s++
				sum += v
			}
			sent.Add(s)
			sentSum.Add(sum)
		}()
	}
	for range cons {
		cw.Add(1)
		go func() {
			defer cw.Done()
			var r, sum int64
			defer func() { recv.Add(r); recvSum.Add(sum) }()
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
	start := time.Now()
	close(gate)
	pw.Wait()
	producersDone.Store(true)
	close(ch)
	cw.Wait()
	elapsed := time.Since(start)
	pt := Point{Primitive: id, Goroutines: g, Ops: recv.Load(), Complete: recv.Load() == ops,
		Correct: recv.Load() == sent.Load() && recvSum.Load() == sentSum.Load()}
	if pt.Ops > 0 {
		pt.NsPerOp = float64(elapsed.Nanoseconds()) / float64(pt.Ops)
	}
	return pt
}

// WriteText prints ns/op per primitive and goroutine count.
func (r Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "ns/op\t")
	for _, g := range r.Counts {
		fmt.Fprintf(tw, "%d\t", g)
	}
	fmt.Fprintln(tw)
	for _, pr := range r.Primitives {
		fmt.Fprintf(tw, "%s\t", pr.Name)
		for _, g := range r.Counts {
			i := slices.IndexFunc(r.Points, func(p Point) bool { return p.Primitive == pr.ID && p.Goroutines == g })
			mark := ""
			if !r.Points[i].Complete {
				mark = "*"
			}
			if !r.Points[i].Correct {
				mark += "!"
			}
			fmt.Fprintf(tw, "%.0f%s\t", r.Points[i].NsPerOp, mark)
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\n* the time limit cut the point short; ! an operation was lost (never expected)")
	for _, pr := range r.Primitives {
		fmt.Fprintf(w, "\n%s\n  + %s\n  - %s\n", pr.Name, pr.Pros, pr.Cons)
	}
	return nil
}
