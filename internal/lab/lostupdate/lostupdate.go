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
		},
	}
}

// Counter is one way of counting and what it came to.
type Counter struct {
	Method   string `json:"method"`
	Expected int64  `json:"expected"`
	Got      int64  `json:"got"`
	Lost     int64  `json:"lost"`
	// LostPercent is Lost as a share of Expected.
	LostPercent float64 `json:"lostPercent"`
	Ns          int64   `json:"ns"`
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
		// demo run, which changes nothing about the lost update.
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
	for i, m := range methods {
		emit(lab.Progress(m.name, int64(i), int64(len(methods))))
		var c atomic.Int64
		var mu sync.Mutex
		var stop atomic.Bool
		cancel := context.AfterFunc(ctx, func() { stop.Store(true) })
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				for j := range k {
					if j&1023 == 0 && stop.Load() {
						return
					}
					m.inc(&c, &mu)
				}
			}()
		}
		start := time.Now()
		close(gate)
		wg.Wait()
		elapsed := time.Since(start)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		want := int64(n) * k
		got := c.Load()
		res.Counters = append(res.Counters, Counter{Method: m.name, Expected: want, Got: got, Lost: want - got,
			LostPercent: 100 * float64(want-got) / float64(want), Ns: elapsed.Nanoseconds()})
		emit(lab.Point("lost", float64(i), float64(want-got)))
	}
	emit(lab.Result(res))
	return nil
}

// WriteText prints the three totals.
func (r Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "method\texpected\tgot\tlost\tlost %\ttime ms\t")
	for _, c := range r.Counters {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f\t%.1f\t\n", c.Method, c.Expected, c.Got, c.Lost, c.LostPercent, float64(c.Ns)/1e6)
	}
	return tw.Flush()
}
