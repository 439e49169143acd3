package costs

import (
	"context"
	"fmt"
	"testing"

	"github.com/stampede-dev/stampede/internal/lab"
)

// BenchmarkSwitch times one context switch (half a ping-pong round trip,
// less the cost of passing the token with no switch) of each kind, on one
// core and on two. bench/lab.sh prints medians and
// ratios to the goroutine's.
func BenchmarkSwitch(b *testing.B) {
	for _, kind := range []string{"goroutine", "thread", "process"} {
		for _, cores := range coreSettings() {
			b.Run(fmt.Sprintf("%s/cores=%d", kind, cores), func(b *testing.B) {
				sw, err := pingPong(context.Background(), kind, cores, max(b.N, 100))
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(sw.NsPerSwap, "ns/switch")
				b.ReportMetric(sw.BaseNs, "ns/base")
				b.ReportMetric(0, "ns/op") // the figure is per switch, not per b.N
			})
		}
	}
}

// BenchmarkCreate creates and holds a fixed number of each kind per
// iteration (run it with -benchtime 1x) and reports time and resident
// memory per item (private memory for processes).
func BenchmarkCreate(b *testing.B) {
	for _, c := range []struct {
		kind string
		n    int
		fn   func(context.Context, int, func(lab.Event)) (Creation, error)
	}{
		{"goroutine", 100_000, createGoroutines},
		{"thread", 1_000, createThreads},
		{"process", 50, createProcesses},
	} {
		b.Run(c.kind, func(b *testing.B) {
			var ns, rss float64
			for range b.N {
				cr, err := c.fn(context.Background(), c.n, func(lab.Event) {})
				if err != nil {
					b.Fatal(err)
				}
				ns += cr.EachNs
				if cr.PrivateEach > 0 { // processes share pages: count what each holds alone
					rss += cr.PrivateEach
				} else {
					rss += cr.RSSEach
				}
			}
			b.ReportMetric(ns/float64(b.N), "ns/item")
			b.ReportMetric(rss/float64(b.N), "B/item")
			b.ReportMetric(0, "ns/op")
		})
	}
}
