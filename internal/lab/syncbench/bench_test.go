package syncbench

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkPrimitive runs b.N operations of each primitive split over 1,
// 4 and 16 goroutines. bench/lab.sh prints medians and ratios to Mutex.
func BenchmarkPrimitive(b *testing.B) {
	for _, p := range Primitives() {
		for _, g := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("%s/g=%d", p.ID, g), func(b *testing.B) {
				pt := measure(context.Background(), p.ID, g, config{ops: int64(max(b.N, g)), reads: 90, permits: 4, limit: time.Minute})
				if !pt.Correct || !pt.Complete {
					b.Fatalf("%+v", pt)
				}
				b.ReportMetric(pt.NsPerOp, "ns/op")
			})
		}
	}
}
