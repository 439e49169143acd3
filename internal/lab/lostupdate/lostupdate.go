// Package lostupdate shows the lost update, the oldest concurrency bug:
// N goroutines add 1 to a shared counter K times each, and the total comes
// out short unless the read and the write are made one step, by a mutex
// or by an atomic add.
package lostupdate

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

	"github.com/stampede-dev/stampede/internal/lab"
)

// Experiment runs the three counters.
type Experiment struct{}

// New returns the experiment.
func New() *Experiment { return &Experiment{} }

var _ lab.Experiment = (*Experiment)(nil)

// Info describes the experiment.
func (*Experiment) Info() lab.Info {
	return lab.Info{
		ID: "lostupdate", Chapter: 3, Heavy: true,
		Title:   "The lost update: counting with and without a lock",
		Summary: "N goroutines increment one counter K times: as a separate read and write, under a mutex, and with an atomic add.",
		Params: []lab.Param{
			{Name: "goroutines", Label: "Goroutines", Kind: lab.Int, Default: 8, Min: 2, Max: 256},
			{Name: "increments", Label: "Increments each", Kind: lab.Int, Default: 100_000, Min: 1_000, Max: 1_000_000},
			{Name: "yield", Label: "Yield between read and write", Help: "stands for real work between them; loses updates even on one core",
				Kind: lab.Bool, Default: false},
			{Name: "trials", Label: "Trials", Help: "each way of counting runs this many times: a race that did not show in one run may in the next",
				Kind: lab.Int, Default: 5, Min: 1, Max: 50},
		},
	}
}

// Counter is one way of counting and what it came to: the trial that
// lost the median number of updates, and every trial's loss.
type Counter struct {
	Method   string `json:"method"`
	Expected int64  `json:"expected"`
	Got      int64  `json:"got"`
	Lost     int64  `json:"lost"`
	// LostPercent is Lost as a share of Expected.
	LostPercent float64 `json:"lostPercent"`
	Ns          int64   `json:"ns"` // the median trial's time
	// LostByTrial is each trial's loss, in order; ZeroTrials counts the
	// trials that lost nothing.
	LostByTrial []int64 `json:"lostByTrial"`
	ZeroTrials  int     `json:"zeroTrials"`
	MinLost     int64   `json:"minLost"`
	MaxLost     int64   `json:"maxLost"`
}

// Result is the experiment's result.
type Result struct {
	Counters []Counter `json:"counters"`
}

// Run counts three ways.
func (*Experiment) Run(ctx context.Context, p lab.Values, emit func(lab.Event)) error {
	n, k, yield := p.Int("goroutines"), int64(p.Int("increments")), p.Bool("yield")
	methods := []struct {
		name string
		inc  func(c *atomic.Int64, mu *sync.Mutex)
	}{
		// The read and the write are separate steps, as in x = x + 1; they
		// are atomic loads and stores only so the race detector lets the
		// demo run: the same race, though the atomic store (XCHG on
		// amd64) changes how often it loses an update.
		{"read, then write (x = x + 1)", func(c *atomic.Int64, _ *sync.Mutex) {
			v := c.Load()
			if yield {
				runtime.Gosched()
			}
			c.Store(v + 1)
		}},
		{"sync.Mutex around x = x + 1", func(c *atomic.Int64, mu *sync.Mutex) {
			mu.Lock()
			v := c.Load()
			if yield {
				runtime.Gosched()
			}
			c.Store(v + 1)
			mu.Unlock()
		}},
		{"atomic add", func(c *atomic.Int64, _ *sync.Mutex) { c.Add(1) }},
	}
	var res Result
	trials := p.Int("trials")
	for i, m := range methods {
		want := int64(n) * k
		c := Counter{Method: m.name, Expected: want, MinLost: want}
		var ns []int64
		for trial := range trials {
			emit(lab.Progress(fmt.Sprintf("%s, trial %d of %d", m.name, trial+1, trials), int64(i*trials+trial), int64(len(methods)*trials)))
			got, took := count(ctx, n, k, m.inc)
			if err := ctx.Err(); err != nil {
				return err
			}
			lost := want - got
			c.LostByTrial = append(c.LostByTrial, lost)
			ns = append(ns, took.Nanoseconds())
			c.MinLost, c.MaxLost = min(c.MinLost, lost), max(c.MaxLost, lost)
			if lost == 0 {
				c.ZeroTrials++
			}
			emit(lab.Point(m.name, float64(trial+1), float64(lost)))
		}
		sorted := slices.Clone(c.LostByTrial)
		slices.Sort(sorted)
		slices.Sort(ns)
		c.Lost, c.Ns = sorted[len(sorted)/2], ns[len(ns)/2]
		c.Got, c.LostPercent = want-c.Lost, 100*float64(c.Lost)/float64(want)
		res.Counters = append(res.Counters, c)
	}
	emit(lab.Result(res))
	return nil
}

// count runs n goroutines that each call inc k times on one counter,
// released together, and returns the count and the time it took. It stops
// early when ctx is done.
func count(ctx context.Context, n int, k int64, inc func(*atomic.Int64, *sync.Mutex)) (int64, time.Duration) {
	var c atomic.Int64
	var mu sync.Mutex
	var stop atomic.Bool
	cancel := context.AfterFunc(ctx, func() { stop.Store(true) })
	defer cancel()
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-gate
			for j := range k {
				if j&1023 == 0 && stop.Load() {
					return
				}
				inc(&c, &mu)
			}
		})
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	return c.Load(), time.Since(start)
}

// WriteText prints the three totals, the median trial's, with the spread.
func (r Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "method\texpected\tgot\tlost\tlost %\ttime ms\ttrials losing none\tlost, fewest–most\t")
	for _, c := range r.Counters {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f\t%.1f\t%d of %d\t%d–%d\t\n", c.Method, c.Expected, c.Got, c.Lost, c.LostPercent, float64(c.Ns)/1e6,
			c.ZeroTrials, len(c.LostByTrial), c.MinLost, c.MaxLost)
	}
	return tw.Flush()
}
