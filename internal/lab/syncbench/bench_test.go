package syncbench

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkPrimitive runs each primitive with 1, 4 and 16 goroutines for
// a fixed 200 ms per iteration and reports the inverse of its throughput
// and Jain's fairness index. bench/lab.sh prints medians and ratios to
// Mutex.
func BenchmarkPrimitive(b *testing.B) {
	for _, p := range Primitives() {
		for _, g := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("%s/g=%d", p.ID, g), func(b *testing.B) {
				var ns, jain float64
				for range b.N {
					pt := measure(context.Background(), p.ID, g, config{runs: 1, reads: 90, permits: 4, dur: 200 * time.Millisecond})
					if !pt.Correct || pt.Ops == 0 {
						b.Fatalf("%+v", pt)
					}
					ns += pt.NsPerOp
					jain += pt.Jain
				}
				b.ReportMetric(ns/float64(b.N), "ns/op")
				b.ReportMetric(jain/float64(b.N), "jain")
			})
		}
	}
}
