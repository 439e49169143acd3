// Package usl fits Gunther's Universal Scalability Law to measured
// throughput and says where a system peaks:
//
//	X(N) = λN / (1 + σ(N−1) + κN(N−1))
//
// N is the concurrency (users, threads, connections), X the throughput. σ
// is contention (the share of the work that queues on something serial),
// κ coherency (the cost of keeping shared state agreed, which grows with
// every pair of users), λ the throughput of one user alone. With κ > 0
// throughput peaks at N* = √((1−σ)/κ) and falls beyond it.
package usl

import (
	"errors"
	"fmt"
	"math"
)

// Point is one measurement: throughput X at concurrency N.
type Point struct {
	N, X float64
}

// Model is a fitted law.
type Model struct {
	Sigma  float64 `json:"sigma"`
	Kappa  float64 `json:"kappa"`
	Lambda float64 `json:"lambda"`
	R2     float64 `json:"r2"`
}

// X is the throughput the model predicts at concurrency n.
func (m Model) X(n float64) float64 {
	return m.Lambda * n / (1 + m.Sigma*(n-1) + m.Kappa*n*(n-1))
}

// Peak is the concurrency of the highest throughput, at least 1: +Inf
// when κ is 0 and σ below 1 (throughput only flattens towards λ/σ), and 1
// when a second user already adds nothing (σ of 1 or more, as when
// throughput falls from the first measurement on).
func (m Model) Peak() float64 {
	switch {
	case m.Sigma >= 1:
		return 1
	case m.Kappa <= 0:
		return math.Inf(1)
	}
	return math.Max(1, math.Sqrt((1-m.Sigma)/m.Kappa))
}

// Latency is the time each of n users waits per request at the predicted
// throughput, by Little's law (closed model, no think time): R = N / X.
func (m Model) Latency(n float64) float64 { return n / m.X(n) }

// Errors Fit returns for data it cannot fit.
var (
	ErrTooFew = errors.New("need at least 3 measurements at 3 different concurrencies")
	ErrBad    = errors.New("concurrency must be at least 1 and throughput above 0")
)

// Fit finds σ, κ ≥ 0 and λ > 0 that minimise the squared error of X, by
// Levenberg–Marquardt from a linearised start: with λ taken from the lowest
// concurrency, λN/X − 1 = σ(N−1) + κN(N−1) is linear in σ and κ.
func Fit(points []Point) (Model, error) {
	if err := check(points); err != nil {
		return Model{}, err
	}
	return levenberg(points, start(points)), nil
}

// FitLinear is Gunther's textbook method, and Fit's starting point: λ is
// the throughput at the lowest concurrency (X(1) when one user was
// measured), and σ and κ come from least squares on the deviation from
// linearity, λN/X − 1 = σ(N−1) + κN(N−1), which is linear in them. It
// needs no search, but the error it minimises is not X's: Fit's is
// smaller.
func FitLinear(points []Point) (Model, error) {
	if err := check(points); err != nil {
		return Model{}, err
	}
	p := start(points)
	return finish(points, p, sumSquares(points, p)), nil
}

func check(points []Point) error {
	distinct := map[float64]bool{}
	for _, p := range points {
		if !(p.N >= 1) || !(p.X > 0) || math.IsInf(p.N, 0) || math.IsInf(p.X, 0) {
			return fmt.Errorf("%w (got N=%g, X=%g)", ErrBad, p.N, p.X)
		}
		distinct[p.N] = true
	}
	if len(points) < 3 || len(distinct) < 3 {
		return ErrTooFew
	}
	return nil
}

// levenberg minimises the squared error of X from p.
func levenberg(points []Point, p [3]float64) Model {
	sse := sumSquares(points, p)
	mu := 1e-3
	for iter := 0; iter < 500; iter++ {
		var jtj [3][3]float64
		var jtr [3]float64
		for _, pt := range points {
			j, r := jacobian(pt, p)
			for a := range 3 {
				jtr[a] += j[a] * r
				for b := range 3 {
					jtj[a][b] += j[a] * j[b]
				}
			}
		}
		improved := false
		for tries := 0; tries < 30 && !improved; tries++ {
			var m [3][3]float64
			for a := range 3 {
				m[a] = jtj[a]
				m[a][a] += mu * math.Max(jtj[a][a], 1e-300)
			}
			d, ok := solve3(m, jtr)
			if !ok {
				mu *= 10
				continue
			}
			next := [3]float64{p[0] + d[0], math.Max(0, p[1]+d[1]), math.Max(0, p[2]+d[2])}
			if next[0] <= 0 {
				mu *= 10
				continue
			}
			if s := sumSquares(points, next); s < sse {
				change := math.Abs(sse-s) / math.Max(sse, 1e-300)
				p, sse, improved = next, s, true
				mu = math.Max(mu/10, 1e-12)
				if change < 1e-15 {
					return finish(points, p, sse)
				}
			} else {
				mu *= 10
			}
		}
		if !improved {
			break
		}
	}
	return finish(points, p, sse)
}

// start is the linearised first guess (λ, σ, κ): see FitLinear.
func start(points []Point) [3]float64 {
	low := points[0]
	for _, p := range points {
		if p.N < low.N {
			low = p
		}
	}
	lambda := low.X / low.N // exact when the lowest N is 1
	// Least squares without intercept on x1 = N−1, x2 = N(N−1).
	var s11, s12, s22, s1y, s2y float64
	for _, p := range points {
		x1, x2 := p.N-1, p.N*(p.N-1)
		y := lambda*p.N/p.X - 1
		s11 += x1 * x1
		s12 += x1 * x2
		s22 += x2 * x2
		s1y += x1 * y
		s2y += x2 * y
	}
	det := s11*s22 - s12*s12
	sigma, kappa := 0.0, 0.0
	if det != 0 {
		sigma = (s1y*s22 - s2y*s12) / det
		kappa = (s2y*s11 - s1y*s12) / det
	}
	return [3]float64{lambda, math.Max(0, sigma), math.Max(0, kappa)}
}

// jacobian returns ∂X/∂(λ, σ, κ) at pt and the residual X − model.
func jacobian(pt Point, p [3]float64) ([3]float64, float64) {
	n := pt.N
	d := 1 + p[1]*(n-1) + p[2]*n*(n-1)
	f := p[0] * n / d
	return [3]float64{n / d, -p[0] * n * (n - 1) / (d * d), -p[0] * n * n * (n - 1) / (d * d)}, pt.X - f
}

func sumSquares(points []Point, p [3]float64) float64 {
	m := Model{Lambda: p[0], Sigma: p[1], Kappa: p[2]}
	s := 0.0
	for _, pt := range points {
		r := pt.X - m.X(pt.N)
		s += r * r
	}
	return s
}

func finish(points []Point, p [3]float64, sse float64) Model {
	mean := 0.0
	for _, pt := range points {
		mean += pt.X
	}
	mean /= float64(len(points))
	sst := 0.0
	for _, pt := range points {
		sst += (pt.X - mean) * (pt.X - mean)
	}
	r2 := 1.0
	if sst > 0 {
		r2 = 1 - sse/sst
	}
	return Model{Lambda: p[0], Sigma: p[1], Kappa: p[2], R2: r2}
}

// solve3 solves m·x = b by Gaussian elimination with partial pivoting.
func solve3(m [3][3]float64, b [3]float64) ([3]float64, bool) {
	for c := range 3 {
		piv := c
		for r := c + 1; r < 3; r++ {
			if math.Abs(m[r][c]) > math.Abs(m[piv][c]) {
				piv = r
			}
		}
		if m[piv][c] == 0 {
			return b, false
		}
		m[c], m[piv] = m[piv], m[c]
		b[c], b[piv] = b[piv], b[c]
		for r := c + 1; r < 3; r++ {
			f := m[r][c] / m[c][c]
			for k := c; k < 3; k++ {
				m[r][k] -= f * m[c][k]
			}
			b[r] -= f * b[c]
		}
	}
	var x [3]float64
	for r := 2; r >= 0; r-- {
		s := b[r]
		for k := r + 1; k < 3; k++ {
			s -= m[r][k] * x[k]
		}
		x[r] = s / m[r][r]
	}
	return x, true
}
