package usl

import (
	"errors"
	"math"
	"testing"
)

// sig rounds v to three significant figures, as the R package usl prints.
func sig(v float64) float64 {
	if v == 0 {
		return 0
	}
	p := math.Pow(10, 2-math.Floor(math.Log10(math.Abs(v))))
	return math.Round(v*p) / p
}

// TestReferenceFit: the R package usl's own coefficient test (tests/coef.R)
// fits this data to σ = 0.02, κ = 0.02 and γ (λ) = 1.00 at three
// significant figures.
func TestReferenceFit(t *testing.T) {
	data := []Point{{1, 1}, {2, 1.8868}, {4, 3.0769}, {6, 3.5294}, {8, 3.5398}, {10, 3.3557}}
	m, err := Fit(data)
	if err != nil {
		t.Fatal(err)
	}
	if sig(m.Sigma) != 0.02 || sig(m.Kappa) != 0.02 || sig(m.Lambda) != 1 || m.R2 < 0.9999 {
		t.Errorf("fit %+v; want σ 0.0200, κ 0.0200, λ 1.00", m)
	}
	// N* = √((1−0.02)/0.02) = 7.0
	if sig(m.Peak()) != 7 {
		t.Errorf("peak %v, want 7.00", m.Peak())
	}
}

// TestRecoversKnownLaw: noisy measurements of a known law (±3 %, fixed
// pattern) give back σ and κ within 35 % and the peak within 20 %, even
// when the linearised start is far off: with no measurement below N = 8,
// the start takes λ as X(8)/8, a quarter too low, and the least-squares
// search must correct it.
func TestRecoversKnownLaw(t *testing.T) {
	want := Model{Sigma: 0.05, Kappa: 0.0004, Lambda: 1000}
	noise := []float64{0.03, -0.02, 0.01, -0.03, 0.02, 0, -0.01, 0.03, -0.02, 0.01}
	var data []Point
	for i, n := range []float64{8, 12, 16, 24, 32, 48, 64, 96, 128, 160} {
		data = append(data, Point{n, want.X(n) * (1 + noise[i%len(noise)])})
	}
	m, err := Fit(data)
	if err != nil {
		t.Fatal(err)
	}
	within := func(got, want, tol float64) bool { return math.Abs(got-want) <= tol*want }
	if s := start(data); within(s[1], want.Sigma, 0.35) && within(s[2], want.Kappa, 0.35) {
		t.Fatalf("the start %v is already close; the test proves nothing of the search", s)
	}
	if !within(m.Sigma, want.Sigma, 0.35) || !within(m.Kappa, want.Kappa, 0.35) || !within(m.Peak(), want.Peak(), 0.2) ||
		!within(m.Lambda, want.Lambda, 0.1) {
		t.Errorf("fit %+v (peak %.1f); want σ %g, κ %g, peak %.1f", m, m.Peak(), want.Sigma, want.Kappa, want.Peak())
	}
}

func TestFitRefuses(t *testing.T) {
	for _, tc := range []struct {
		data []Point
		want error
	}{
		{[]Point{{1, 1}, {2, 2}}, ErrTooFew},
		{[]Point{{1, 1}, {2, 2}, {2, 2.1}}, ErrTooFew},
		{[]Point{{0, 1}, {2, 2}, {3, 3}}, ErrBad},
		{[]Point{{1, 1}, {2, -2}, {3, 3}}, ErrBad},
		{[]Point{{1, 1}, {2, math.NaN()}, {3, 3}}, ErrBad},
	} {
		if _, err := Fit(tc.data); !errors.Is(err, tc.want) {
			t.Errorf("Fit(%v) = %v, want %v", tc.data, err, tc.want)
		}
	}
}

// specSDM91 is the SPEC SDM91 benchmark of a 16-CPU Sun SPARCcenter 2000
// (October 1994): simulated users and scripts per hour, the example of
// Gunther's Guerrilla Capacity Planning and of the R package usl.
var specSDM91 = []Point{{1, 64.9}, {18, 995.9}, {36, 1652.4}, {72, 1853.2}, {108, 1828.9}, {144, 1775.0}, {216, 1702.2}}

// TestSPECSDM91 checks both fits against the R package usl on the same
// data, to the digits it prints. Gunther's linear method, which its early
// versions used, gives σ = 1.705e-02, κ = 7.892e-05 and R² = 0.9624 (its
// README); its least-squares fit gives σ = 2.773e-02, κ = 1.044e-04,
// λ = 9.000e+01 and R² = 0.9896 (tests/summary.Rout.save) and a peak of
// 97 users (2 digits, tests/peak-scalability.Rout.save).
func TestSPECSDM91(t *testing.T) {
	round := func(x float64, digits int) float64 {
		p := math.Pow(10, float64(digits-1)-math.Floor(math.Log10(math.Abs(x))))
		return math.Round(x*p) / p
	}
	lin, err := FitLinear(specSDM91)
	if err != nil {
		t.Fatal(err)
	}
	if round(lin.Sigma, 4) != 1.705e-02 || round(lin.Kappa, 4) != 7.892e-05 || round(lin.R2, 4) != 0.9624 || lin.Lambda != 64.9 {
		t.Errorf("linear fit %+v; want σ 1.705e-02, κ 7.892e-05, R² 0.9624, λ 64.9", lin)
	}
	free, err := Fit(specSDM91)
	if err != nil {
		t.Fatal(err)
	}
	if round(free.Sigma, 4) != 2.773e-02 || round(free.Kappa, 4) != 1.044e-04 || round(free.Lambda, 4) != 90.00 ||
		round(free.R2, 4) != 0.9896 || round(free.Peak(), 2) != 97 {
		t.Errorf("fit %+v, peak %.2f; want σ 2.773e-02, κ 1.044e-04, λ 90.00, R² 0.9896, peak 97", free, free.Peak())
	}
}

// Throughput that falls from the first measurement on (a sweep of a
// saturated shop: 5,900, 4,963 and 4,257 orders/s at 1, 2 and 4 buyers)
// peaks at one user; the report says so in numbers JSON can carry, not
// the square root of a negative number.
func TestFallingThroughputPeaksAtOne(t *testing.T) {
	data := []Point{{1, 5900}, {2, 4963}, {4, 4257}}
	m, err := Fit(data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Peak() != 1 {
		t.Errorf("fit %+v: peak %v, want 1", m, m.Peak())
	}
	r := Judge(m, data, 100_000)
	for name, v := range map[string]float64{"peak concurrency": r.PeakConcurrency, "peak rps": r.PeakRPS,
		"predicted rps": r.Predicted.RPS, "latency": r.Predicted.LatencySeconds} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("%s is %v", name, v)
		}
	}
	if r.PeakConcurrency != 1 || math.Abs(r.PeakRPS-m.X(1)) > 1e-9 {
		t.Errorf("report peaks at %v users, %v/s; want 1 and X(1) = %v", r.PeakConcurrency, r.PeakRPS, m.X(1))
	}
	for _, k := range []Model{{Sigma: 1.2, Kappa: 0, Lambda: 1}, {Sigma: 0.5, Kappa: 10, Lambda: 1}} {
		if p := k.Peak(); p != 1 {
			t.Errorf("%+v: peak %v, want 1", k, p)
		}
	}
}
