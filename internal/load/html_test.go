package load

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/usl"
)

// TestHTMLReportReadable: round ticks with units (60k req/s, not
// 6.027e+04), latencies in the unit that suits them (836 µs, not 0.001 s),
// and a last second that was only half a second drawn at its own rate
// instead of as a fall to half.
func TestHTMLReportReadable(t *testing.T) {
	r := NewResult()
	r.Mode, r.Duration = "closed", 2500*time.Millisecond
	for _, n := range []int{60270, 60000, 30100} { // the last is half a second's worth
		sec := Second{Latency: newHistogram(), Requests: int64(n)}
		for range 100 {
			sec.Latency.RecordValue(836)
			r.Latency.RecordValue(836)
		}
		r.Seconds = append(r.Seconds, sec)
	}
	var b strings.Builder
	if err := WriteHTML(&b, r, []string{"run.stl"}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{">836 µs<", ">20k<", ">40k<", ">60k<", ">80k<", ">latency (µs)<", ">req/s<", ">seconds<"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"e+0", "e-0", ">0.001<", ">8.669<"} {
		if strings.Contains(page, bad) {
			t.Errorf("page holds %q", bad)
		}
	}
	// The rate of the last half second is 60,200/s: its point sits level
	// with the others, not at half height.
	rps := page[strings.Index(page, `aria-label="requests per second"`):]
	rps = rps[strings.Index(rps, `points="`)+8:]
	pts := strings.Fields(rps[:strings.Index(rps, `"`)])
	if len(pts) != 3 {
		t.Fatalf("rps points %v, want 3", pts)
	}
	y := func(p string) float64 {
		v, err := strconv.ParseFloat(p[strings.Index(p, ",")+1:], 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if d := math.Abs(y(pts[2]) - y(pts[1])); d > 2 {
		t.Errorf("last point %s drawn %.1f px from %s; want level", pts[2], d, pts[1])
	}
}

// TestSweepPage: the sweep's page draws every measurement, the fitted
// curve and the peak, with the verdict above, and no number in
// scientific notation.
func TestSweepPage(t *testing.T) {
	law := usl.Model{Sigma: 0.05, Kappa: 0.002, Lambda: 16920}
	var points []SweepPoint
	var data []usl.Point
	for _, n := range []int{1, 2, 4, 8, 16, 32, 48} {
		points = append(points, SweepPoint{Concurrency: n, RPS: law.X(float64(n))})
		data = append(data, usl.Point{N: float64(n), X: law.X(float64(n))})
	}
	m, err := usl.Fit(data)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteSweepHTML(&b, points, usl.Judge(m, data, 100000)); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if n := strings.Count(page, `<circle class="dot" cx=`); n != len(points)+1 { // and the legend's
		t.Errorf("%d dots, want %d and the legend's", n-1, len(points))
	}
	for _, want := range []string{">peak: 21.8 users, ", "Throughput peaks at about 21.8 concurrent users", "λ 16920/s", `<polyline class="s0"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "e+0") {
		t.Error("page holds a number in scientific notation")
	}
}
