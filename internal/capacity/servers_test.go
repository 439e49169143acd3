package capacity

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/load"
	"github.com/stampede-dev/stampede/internal/usl"
)

// Servers whose answer is known exactly, on loopback: the plan is held
// to the truth, not to a figure measured once.

// lawServer answers after n/X(n) seconds, n being the requests it holds
// at the time: its closed-model throughput is the law's X(N).
func lawServer(t *testing.T, law usl.Model) string {
	var inFlight atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := float64(inFlight.Add(1))
		defer inFlight.Add(-1)
		time.Sleep(time.Duration(n / law.X(n) * float64(time.Second)))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func targets(t *testing.T, raw string) []load.Target {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return []load.Target{{Method: "GET", URL: u}}
}

// TestPlanOnTheLawServer: a server that follows the Universal Scalability
// Law with σ 0.05 and κ 0.0005 (peak at 43.6 at once) is swept to 64. The
// fit gives back σ, κ and the peak; 200 users with no think time, within
// 4× the sweep, are extrapolated and said to collapse, and the prediction
// comes within 30 % of a real run of 200 users.
func TestPlanOnTheLawServer(t *testing.T) {
	// λ 50: 20 ms of service alone, so that the fixed cost of a request
	// on a loaded machine (about 1 ms under -race beside other tests)
	// is small beside it, as it is for a real service.
	law := usl.Model{Sigma: 0.05, Kappa: 0.0005, Lambda: 50}
	base := load.Config{Targets: targets(t, lawServer(t, law)), KeepAlive: true, Timeout: 20 * time.Second}
	points, err := load.Sweep(context.Background(), base, load.SweepOptions{
		Levels: []int{1, 2, 4, 8, 16, 32, 48, 64}, Step: time.Second, Warmup: 300 * time.Millisecond, Repeats: 2})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Analyze(points)
	if err != nil {
		t.Fatal(err)
	}
	m := *c.Model
	t.Logf("fit σ %.4f [%.4f–%.4f] κ %.6f [%.6f–%.6f] λ %.1f R² %.3f peak %.1f (law: σ %g κ %g peak %.1f)",
		m.Sigma, c.SigmaCI[0], c.SigmaCI[1], m.Kappa, c.KappaCI[0], c.KappaCI[1], m.Lambda, m.R2, c.PeakN, law.Sigma, law.Kappa, law.Peak())
	if !within(m.Sigma, law.Sigma, 0.35) || !within(m.Kappa, law.Kappa, 0.35) || !within(c.PeakN, law.Peak(), 0.2) {
		t.Errorf("fit σ %g, κ %g, peak %.1f; want σ %g, κ %g, peak %.1f (points %+v)", m.Sigma, m.Kappa, c.PeakN, law.Sigma, law.Kappa, law.Peak(), points)
	}
	p := c.Plan(Target{Users: 200}, nil)
	run := base
	run.Users, run.Duration, run.Warmup = 200, 3*time.Second, time.Second
	res, err := load.Run(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	got := res.Report()
	t.Logf("200 at once: predicted %.1f/s [%.1f–%.1f], %.3fs (%s, %s); measured %.1f/s, %.3fs; the law says %.1f/s",
		p.RPS, p.RPSCI[0], p.RPSCI[1], p.LatencySeconds, p.Basis, p.Verdict, got.RPS, got.Latency.Mean, law.X(200))
	if p.Verdict != Collapses || p.Basis != BasisExtrapolated || !within(p.RPS, got.RPS, 0.3) || !within(p.LatencySeconds, got.Latency.Mean, 0.3) {
		t.Errorf("plan for 200: %s, %s, %.1f/s, %.3fs; want collapses, extrapolated, within 30%% of the run's %.1f/s and %.3fs",
			p.Verdict, p.Basis, p.RPS, p.LatencySeconds, got.RPS, got.Latency.Mean)
	}
	if p.RPS < p.RPSCI[0] || p.RPS > p.RPSCI[1] || p.RPSCI[0] >= p.RPSCI[1] {
		t.Errorf("the extrapolated %.1f/s lies outside its own interval [%.1f–%.1f]", p.RPS, p.RPSCI[0], p.RPSCI[1])
	}
	if p := c.Plan(Target{Users: 100000}, nil); p.Basis != BasisBound || p.Verdict != Collapses {
		t.Errorf("100,000 after a sweep to 64: %s, %s; want bound, collapses", p.Basis, p.Verdict)
	}
	for _, pt := range points {
		if !pt.Sound() {
			t.Errorf("point %d flagged on a server that follows the law: %v", pt.Concurrency, pt.Flags)
		}
	}
}
