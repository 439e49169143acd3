package capacity

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/stampede-dev/stampede/internal/load"
)

// queuePoints is what a sweep of an ideal queue measures: c workers, each
// request D seconds of one worker, reached through one FIFO queue. With N
// users and no think time X(N) = min(N/D, c/D) and R(N) = N/X(N). Each
// concurrency gets three runs, ±1 %.
func queuePoints(c int, d float64, levels ...int) []load.SweepPoint {
	var out []load.SweepPoint
	for _, n := range levels {
		x := math.Min(float64(n)/d, float64(c)/d)
		r := float64(n) / x
		out = append(out, load.SweepPoint{
			Concurrency: n, RPS: x, RPSRuns: []float64{0.99 * x, x, 1.01 * x},
			Latency:     load.Percentiles{Mean: r, P50: r, P90: 1.05 * r, P95: 1.07 * r, P99: 1.1 * r, P999: 1.2 * r},
			LittleUsers: float64(n),
		})
	}
	return out
}

func within(got, want, tol float64) bool { return math.Abs(got-want) <= tol*math.Abs(want) }

// TestPlanOnAQueue holds the plan to the queue's known laws: capacity c/D,
// and for N users thinking Z well past saturation R = N·D/c − Z.
func TestPlanOnAQueue(t *testing.T) {
	c, err := Analyze(queuePoints(4, 0.010, 1, 2, 4, 8, 16, 32, 64))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Saturated || c.Falls || c.Capacity != 400 || c.CapacityCI != [2]float64{396, 404} || c.MaxN != 64 || c.Lone != 0.010 {
		t.Fatalf("curve: saturated %v falls %v capacity %v %v maxN %d lone %v", c.Saturated, c.Falls, c.Capacity, c.CapacityCI, c.MaxN, c.Lone)
	}
	slo, err := ParseSLO("p99<1s")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		target       Target
		basis, shape string
		rps, latency float64 // the truth
		sloMet       bool
	}{
		// 2,000 users thinking 1 s ask for 1,980/s: saturated, R = 2000/400 − 1.
		{"2000 thinking 1s", Target{Users: 2000, Think: 1}, BasisBound, Saturates, 400, 4, false},
		// 100,000 users with no think time, past 4× the 64 measured.
		{"100000 at once", Target{Users: 100000}, BasisBound, Saturates, 400, 250, false},
		// 20 users thinking 1 s: 19.8/s, a fifth of one worker.
		{"20 thinking 1s", Target{Users: 20, Think: 1}, BasisInterpolated, Holds, 20 / 1.01, 0.010, true},
		// 48 at once: inside the sweep, saturated, R = 48/400.
		{"48 at once", Target{Users: 48}, BasisInterpolated, Saturates, 400, 0.12, true},
		// Open model: 200/s is half the capacity; 1,000/s is past it.
		{"rate 200", Target{Rate: 200}, BasisInterpolated, Holds, 200, 0.010, true},
		{"rate 1000", Target{Rate: 1000}, BasisBound, Saturates, 400, 0.010, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := c.Plan(tc.target, slo)
			t.Logf("%+v", p)
			if p.Basis != tc.basis || p.Verdict != tc.shape || !within(p.RPS, tc.rps, 0.02) || !within(p.LatencySeconds, tc.latency, 0.02) ||
				p.SLOMet == nil || *p.SLOMet != tc.sloMet {
				t.Errorf("basis %s, verdict %s, %.1f/s, %.4fs, slo met %v; want %s, %s, %.1f/s, %.4fs, %v",
					p.Basis, p.Verdict, p.RPS, p.LatencySeconds, *p.SLOMet, tc.basis, tc.shape, tc.rps, tc.latency, tc.sloMet)
			}
			if _, err := json.Marshal(p); err != nil {
				t.Errorf("plan does not encode: %v", err)
			}
		})
	}
	// Thinking 1 s, users ask 1/1.01 s each: the queue holds those who ask
	// for at most 90 % of its 400/s, 0.9 × 400 × 1.01 ≈ 363.
	p := c.Plan(Target{Users: 2000, Think: 1}, nil)
	if p.HoldsUsers < 360 || p.HoldsUsers > 366 || p.Copies != (2000+p.HoldsUsers-1)/p.HoldsUsers {
		t.Errorf("holds %d users, %d copies for 2,000; want about 363, and the copies that make 2,000", p.HoldsUsers, p.Copies)
	}
}

// TestFailedLoadCollapses: a point where more than 1 % failed is left out
// of the fit, and a target that brings at least that load collapses.
func TestFailedLoadCollapses(t *testing.T) {
	pts := queuePoints(4, 0.010, 1, 2, 4, 8, 16, 32)
	pts = append(pts, load.SweepPoint{Concurrency: 64, RPS: 150, RPSRuns: []float64{150}, ErrorRate: 0.3, Failed: true,
		Flags: []string{"30% failed"}, Latency: load.Percentiles{Mean: 0.1}})
	c, err := Analyze(pts)
	if err != nil {
		t.Fatal(err)
	}
	if c.FailedAt != 64 || c.MaxN != 32 {
		t.Fatalf("failed at %d, largest sound %d; want 64 and 32", c.FailedAt, c.MaxN)
	}
	if p := c.Plan(Target{Users: 1000}, nil); p.Verdict != Collapses {
		t.Errorf("1,000 at once past a failure at 64: %s", p.Verdict)
	}
	if p := c.Plan(Target{Users: 2}, nil); p.Verdict != Holds {
		t.Errorf("2 at once, below the failure: %s", p.Verdict)
	}
	var b strings.Builder
	rep, _ := NewReport(pts, &Target{Users: 1000}, nil)
	rep.WriteText(&b)
	for _, want := range []string{"At 64 at once the service failed", "Left out of the fit: 64 (30% failed)", "Verdict: COLLAPSES"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
}

// TestFitPastItsPeakCollapses: points that follow a law with a peak, and
// keep following it past the peak, make a target past it collapse.
func TestFitPastItsPeakCollapses(t *testing.T) {
	var pts []load.SweepPoint
	for _, n := range []int{1, 2, 4, 8, 16, 32, 64} {
		nf := float64(n)
		x := 50 * nf / (1 + 0.05*(nf-1) + 0.0005*nf*(nf-1))
		pts = append(pts, load.SweepPoint{Concurrency: n, RPS: x, RPSRuns: []float64{0.98 * x, x, 1.02 * x},
			Latency: load.Percentiles{Mean: nf / x, P99: 1.2 * nf / x}, LittleUsers: nf})
	}
	c, err := Analyze(pts)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Plan(Target{Users: 200}, nil)
	truth := 50 * 200 / (1 + 0.05*199 + 0.0005*200*199)
	if p.Verdict != Collapses || p.Basis != BasisExtrapolated || !within(p.RPS, truth, 0.1) || p.RPS < p.RPSCI[0] || p.RPS > p.RPSCI[1] {
		t.Errorf("200 at once: %s, %s, %.1f/s [%.1f–%.1f]; want collapses, extrapolated, %.1f/s inside its interval",
			p.Verdict, p.Basis, p.RPS, p.RPSCI[0], p.RPSCI[1], truth)
	}
	if p := c.Plan(Target{Users: 100000}, nil); p.Basis != BasisBound || p.Verdict != Collapses {
		t.Errorf("100,000 at once after a sweep to 64: %s, %s; want bound, collapses", p.Basis, p.Verdict)
	}
}

func TestParseSLO(t *testing.T) {
	s, err := ParseSLO("p99<300ms, errors<0.1%,rps>100,p99.9<1s,mean<50ms")
	if err != nil {
		t.Fatal(err)
	}
	want := []Objective{{"p99", "<", 0.3, "p99<300ms"}, {"errors", "<", 0.001, "errors<0.1%"}, {"rps", ">", 100, "rps>100"},
		{"p99.9", "<", 1, "p99.9<1s"}, {"mean", "<", 0.05, "mean<50ms"}}
	if len(s) != len(want) {
		t.Fatalf("%+v", s)
	}
	for i := range want {
		if s[i] != want[i] {
			t.Errorf("objective %d: %+v, want %+v", i, s[i], want[i])
		}
	}
	for _, bad := range []string{"p99>300ms", "p99<fast", "errors<1", "rps<5", "latency<1s", "p99", "", "errors<200%"} {
		if _, err := ParseSLO(bad); err == nil {
			t.Errorf("ParseSLO(%q) took it", bad)
		}
	}
	rep := load.Report{RPS: 150, ErrorRate: 0.002, Latency: load.Percentiles{P99: 0.25, P999: 1.5, Mean: 0.04}}
	checks := s.Judge(rep)
	got := []bool{checks[0].Met, checks[1].Met, checks[2].Met, checks[3].Met, checks[4].Met}
	if got[0] != true || got[1] != false || got[2] != true || got[3] != false || got[4] != true || Met(checks) {
		t.Errorf("judged %v", got)
	}
	if d := Describe(checks); d != "p99<300ms met (250ms); errors<0.1% NOT met (0.20%); rps>100 met (150.0 req/s); p99.9<1s NOT met (1.5s); mean<50ms met (40ms)" {
		t.Errorf("described %q", d)
	}
}

// TestStillRisingIsNoProof: a sweep that never saw the service saturate
// (throughput still growing with every user) cannot say a crowd far past
// it holds: that crowd saturates somewhere not yet measured.
func TestStillRisingIsNoProof(t *testing.T) {
	c, err := Analyze(queuePoints(1000, 0.001, 1, 2, 4, 8)) // 1,000/s a user, up to 1,000,000/s
	if err != nil {
		t.Fatal(err)
	}
	if c.Saturated {
		t.Fatal("a curve rising at its top called saturated")
	}
	p := c.Plan(Target{Users: 100000}, nil)
	if p.Basis != BasisBound || p.Verdict != Saturates || !strings.Contains(strings.Join(p.Lines, " "), "still rising") {
		t.Errorf("100,000 at once past a rising sweep to 8: %s, %s\n%s", p.Basis, p.Verdict, strings.Join(p.Lines, "\n"))
	}
	if p := c.Plan(Target{Users: 20, Think: 1}, nil); p.Verdict != Holds || p.Basis != BasisInterpolated {
		t.Errorf("20 users thinking 1 s, 20/s against 8,000/s shown: %s, %s", p.Verdict, p.Basis)
	}
	// 10,000/s: past the 8,000 measured, within what the fit extrapolates
	// up to 4× the sweep. Holding it, it needs no second copy.
	if p := c.Plan(Target{Rate: 10000}, nil); p.Verdict != Holds || p.Basis != BasisExtrapolated || p.HoldsRPS < 10000 || p.Copies != 0 {
		t.Errorf("10,000/s on a curve still rising past 8,000: %s, %s, holds %.0f/s, %d copies", p.Verdict, p.Basis, p.HoldsRPS, p.Copies)
	}
}

// TestTooFewToFit: with two sound concurrencies the law is not fitted,
// yet the plan still interpolates inside them and bounds beyond, and
// never extrapolates.
func TestTooFewToFit(t *testing.T) {
	pts := queuePoints(4, 0.010, 1, 2, 4)
	pts[2].Flags = []string{"the load generator was busy"}
	c, err := Analyze(pts)
	if err != nil || c.Model != nil || c.MaxN != 2 {
		t.Fatalf("two sound points: %v, model %v, largest %d", err, c.Model, c.MaxN)
	}
	if p := c.Plan(Target{Users: 1}, nil); p.Basis != BasisInterpolated || !within(p.RPS, 100, 0.02) {
		t.Errorf("1 user: %s %.1f/s", p.Basis, p.RPS)
	}
	if p := c.Plan(Target{Users: 6}, nil); p.Basis != BasisBound {
		t.Errorf("6 users past a sweep to 2 with no fit: %s, want bound", p.Basis)
	}
	if _, err := Analyze(pts[2:]); err != ErrNoSound {
		t.Errorf("no sound point: %v", err)
	}
}
