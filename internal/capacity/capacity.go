// Package capacity turns a sweep of a service (its throughput and
// response time measured at several concurrencies) into a plan for a
// target crowd: whether the service holds it, saturates or collapses.
//
// It joins two kinds of knowledge. Inside the measured range the
// measurements themselves answer, interpolated. A little beyond it (up to
// ExtrapolationLimit times the largest concurrency measured) the
// Universal Scalability Law fitted to them answers, with an interval from
// a bootstrap over the repeated runs. Further out only the operational
// laws of closed systems (Denning and Buzen; Gunther, Guerrilla Capacity
// Planning) still hold, and they give bounds, not predictions:
//
//	X(N) ≤ min(N / (D + Z), Xmax)        R(N) ≥ max(D, N/Xmax − Z)
//
// N users, each thinking Z between requests; D the response time of a
// request alone; Xmax the most the service can answer per second.
package capacity

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/stampede-dev/stampede/internal/load"
	"github.com/stampede-dev/stampede/internal/usl"
)

// ExtrapolationLimit is how far past the largest measured concurrency the
// fitted law is trusted to predict, with its interval.
const ExtrapolationLimit = 4

// bootstraps is how many refits the intervals are drawn from.
const bootstraps = 200

// Curve is what a sweep says of a service on its own: the measured points,
// the law fitted to the sound ones with its intervals, and its capacity.
type Curve struct {
	Points []load.SweepPoint `json:"points"`
	// Model is the fitted law, or nil where it could not be fitted.
	Model *usl.Model `json:"usl,omitempty"`
	// Intervals (5th to 95th percentile of the bootstrap's refits).
	SigmaCI   [2]float64 `json:"sigma_ci"`
	KappaCI   [2]float64 `json:"kappa_ci"`
	PeakN     float64    `json:"peak_concurrency"`    // 0: no peak (κ = 0)
	PeakNCI   [2]float64 `json:"peak_concurrency_ci"` // a 0: some refits had no peak
	PeakRPS   float64    `json:"peak_rps"`
	PeakRPSCI [2]float64 `json:"peak_rps_ci"`
	// Capacity is the highest median throughput measured at a sound
	// point, CapacityCI the lowest and highest of that point's runs.
	Capacity   float64    `json:"capacity_rps"`
	CapacityCI [2]float64 `json:"capacity_rps_ci"`
	// CapacityAt is the concurrency it was measured at.
	CapacityAt int `json:"capacity_concurrency"`
	// Lone is D: the response time at the lowest concurrency measured
	// (one user, if the sweep began at 1), by Little's law from its
	// median throughput.
	Lone float64 `json:"lone_seconds"`
	// MaxN is the largest sound concurrency measured.
	MaxN int `json:"measured_concurrency_max"`
	// FailedAt is the lowest concurrency at which the service failed
	// (too many errors), or 0.
	FailedAt int `json:"failed_at,omitempty"`
	// Saturated says the measured curve reached its capacity and stayed
	// there or fell: the top of the sweep and another sound point are
	// within 5 % of capacity, or the curve falls past its highest point.
	Saturated bool `json:"saturated"`
	// Falls says throughput fell by more than a tenth past its highest
	// measured point.
	Falls bool `json:"falls"`

	sound []load.SweepPoint
	boot  []usl.Model
}

// ErrNoSound is Analyze's error for a sweep none of whose points can stand
// for the service.
var ErrNoSound = errors.New("no concurrency was measured soundly: see each point's flags")

// Analyze fits the sound points of a sweep and bounds what it cannot fit.
// It fails only when no point is sound; with fewer than 3 the law is not
// fitted and Model is nil.
func Analyze(points []load.SweepPoint) (*Curve, error) {
	c := &Curve{Points: points}
	for _, p := range points {
		if p.Failed && (c.FailedAt == 0 || p.Concurrency < c.FailedAt) {
			c.FailedAt = p.Concurrency
		}
		if p.Sound() {
			c.sound = append(c.sound, p)
		}
	}
	slices.SortFunc(c.sound, func(a, b load.SweepPoint) int { return a.Concurrency - b.Concurrency })
	if len(c.sound) == 0 {
		return c, ErrNoSound
	}
	// D, by Little's law on the lowest sound point's median run: N/X.
	// (The mean of every run's latency would let one slow run pull it
	// apart from the throughput the plan interpolates.)
	c.Lone = float64(c.sound[0].Concurrency) / c.sound[0].RPS
	c.MaxN = c.sound[len(c.sound)-1].Concurrency
	for _, p := range c.sound {
		if p.RPS > c.Capacity {
			c.Capacity, c.CapacityAt = p.RPS, p.Concurrency
			c.CapacityCI = [2]float64{slices.Min(p.RPSRuns), slices.Max(p.RPSRuns)}
		}
	}
	// A plateau: the top of the sweep and at least one point below it
	// within 5 % of the capacity.
	near := 0
	for _, p := range c.sound {
		if p.Concurrency > c.CapacityAt && p.RPS < 0.9*c.Capacity {
			c.Falls = true
		}
		if p.RPS >= 0.95*c.Capacity {
			near++
		}
	}
	top := c.sound[len(c.sound)-1]
	c.Saturated = c.Falls || (near >= 2 && top.RPS >= 0.95*c.Capacity)
	// With fewer than 3 sound concurrencies the law cannot be fitted: the
	// plan then interpolates and bounds, and never extrapolates.
	m, err := usl.Fit(c.data())
	if err != nil {
		return c, nil
	}
	c.Model = &m
	c.bootstrap()
	if peak := m.Peak(); !math.IsInf(peak, 1) {
		c.PeakN, c.PeakRPS = peak, m.X(peak)
	}
	return c, nil
}

// data is the sound points' medians, as the law is fitted to them.
func (c *Curve) data() []usl.Point {
	out := make([]usl.Point, len(c.sound))
	for i, p := range c.sound {
		out[i] = usl.Point{N: float64(p.Concurrency), X: p.RPS}
	}
	return out
}

// bootstrap refits the law to resampled data: at each concurrency one of
// its runs drawn at random (or, with one run each, the fit plus a
// relative residual drawn at random), and keeps the refits for the
// intervals. The draws are seeded: the same sweep gives the same plan.
func (c *Curve) bootstrap() {
	rng := rand.New(rand.NewPCG(1, 2))
	m := *c.Model
	var resid []float64
	repeats := false
	for _, p := range c.sound {
		resid = append(resid, p.RPS/m.X(float64(p.Concurrency))-1)
		repeats = repeats || len(p.RPSRuns) > 1
	}
	data := make([]usl.Point, len(c.sound))
	for range bootstraps {
		for i, p := range c.sound {
			x := p.RPS
			if repeats {
				x = p.RPSRuns[rng.IntN(len(p.RPSRuns))]
			} else {
				x = m.X(float64(p.Concurrency)) * (1 + resid[rng.IntN(len(resid))])
			}
			data[i] = usl.Point{N: float64(p.Concurrency), X: math.Max(x, 1e-9)}
		}
		if b, err := usl.Fit(data); err == nil {
			c.boot = append(c.boot, b)
		}
	}
	c.SigmaCI = c.interval(func(b usl.Model) float64 { return b.Sigma })
	c.KappaCI = c.interval(func(b usl.Model) float64 { return b.Kappa })
	// A refit without a peak (κ = 0) has it at infinity: the interval's
	// top is then written as 0, "no peak".
	c.PeakNCI = c.interval(func(b usl.Model) float64 { return b.Peak() })
	for i, v := range c.PeakNCI {
		if math.IsInf(v, 1) {
			c.PeakNCI[i] = 0
		}
	}
	c.PeakRPSCI = c.interval(func(b usl.Model) float64 { return b.X(math.Min(b.Peak(), 1e12)) })
}

// interval is the 5th and 95th percentiles of f over the refits.
func (c *Curve) interval(f func(usl.Model) float64) [2]float64 {
	if len(c.boot) == 0 {
		return [2]float64{}
	}
	v := make([]float64, len(c.boot))
	for i, b := range c.boot {
		v[i] = f(b)
	}
	slices.Sort(v)
	at := func(q float64) float64 { return v[min(len(v)-1, int(q*float64(len(v))))] }
	return [2]float64{at(0.05), at(0.95)}
}

// Xmax is the most the service can answer per second, as far as the
// sweep shows: the capacity measured where the curve flattened or fell;
// where it was still rising, the most the fitted law allows, at the top
// of its interval (possibly +Inf: no ceiling was seen).
func (c *Curve) Xmax() float64 {
	if c.Saturated || c.Model == nil {
		return c.Capacity
	}
	m := *c.Model
	ceiling := math.Inf(1)
	switch {
	case m.Kappa > 0:
		ceiling = math.Max(c.PeakRPS, c.PeakRPSCI[1])
	case m.Sigma > 0:
		ceiling = m.Lambda / m.Sigma
	}
	return math.Max(c.Capacity, ceiling)
}

// Shown is the most the service was shown to answer per second: the
// capacity measured or, where the curve was still rising, the lower end
// of the fit's interval at its best point within the extrapolation limit.
// A target that asks for less than most of it holds; what it asks beyond
// it is not known to be answerable.
func (c *Curve) Shown() float64 {
	x := c.Capacity
	if c.Saturated || c.Model == nil {
		return x
	}
	for _, n := range xs(float64(c.MaxN), ExtrapolationLimit*float64(c.MaxN)) {
		ci := c.interval(func(b usl.Model) float64 { return b.X(n) })
		x = math.Max(x, math.Min(ci[0], c.Model.X(n)))
	}
	return x
}

// throughput is X at in-service concurrency n, and how it is known:
// interpolated between sound points, extrapolated by the fit (with its
// interval), or not at all (ok false) past the extrapolation limit.
func (c *Curve) throughput(n float64) (x float64, ci [2]float64, basis string, ok bool) {
	if n <= float64(c.MaxN) {
		x := c.interpolate(n)
		return x, [2]float64{x, x}, BasisInterpolated, true
	}
	if c.Model == nil || n > ExtrapolationLimit*float64(c.MaxN) {
		return 0, ci, BasisBound, false
	}
	x = c.Model.X(n)
	ci = c.interval(func(b usl.Model) float64 { return b.X(n) })
	return x, ci, BasisExtrapolated, true
}

// interpolate reads X at n off the sound points, linearly between them
// and from the origin below the first.
func (c *Curve) interpolate(n float64) float64 {
	prevN, prevX := 0.0, 0.0
	for _, p := range c.sound {
		pn := float64(p.Concurrency)
		if n <= pn {
			return prevX + (p.RPS-prevX)*(n-prevN)/(pn-prevN)
		}
		prevN, prevX = pn, p.RPS
	}
	return prevX
}

// latencyRatio is how a percentile of response time compares with the
// mean at the sound point nearest n (at or below the top of the sweep).
func (c *Curve) latencyRatio(n float64, pick func(load.Percentiles) float64) float64 {
	best := c.sound[0]
	for _, p := range c.sound {
		if math.Abs(float64(p.Concurrency)-n) < math.Abs(float64(best.Concurrency)-n) {
			best = p
		}
	}
	if best.Latency.Mean <= 0 {
		return 1
	}
	return pick(best.Latency) / best.Latency.Mean
}

// errorRate is the share of failed requests at the point nearest n.
func (c *Curve) errorRate(n float64) float64 {
	best := c.Points[0]
	for _, p := range c.Points {
		if math.Abs(float64(p.Concurrency)-n) < math.Abs(float64(best.Concurrency)-n) {
			best = p
		}
	}
	return best.ErrorRate
}

// MinR2 is how closely the law must fit for its fall past the peak to be
// believed.
const MinR2 = 0.95

// fitHoldsPastPeak reports whether the fitted peak lies inside the sweep,
// the law fits closely (R² of at least MinR2) and the measurements past
// the peak agree with it (within a tenth each): then its fall beyond them
// can be believed. A law bent to a sharp knee (a queue that saturates) puts a
// peak where the measurements past it do not fall.
func (c *Curve) fitHoldsPastPeak() bool {
	if c.Model == nil || c.PeakN == 0 || c.PeakN >= float64(c.MaxN) || c.Model.R2 < MinR2 {
		return false // no peak, one beyond what was measured, or a loose fit
	}
	for _, p := range c.sound {
		if n := float64(p.Concurrency); n > c.PeakN && math.Abs(c.Model.X(n)-p.RPS) > 0.1*p.RPS {
			return false
		}
	}
	return true
}
