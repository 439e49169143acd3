package load

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/stampede-dev/stampede/internal/usl"
)

// SweepPoint is what one step of a sweep measured.
type SweepPoint struct {
	Concurrency int         `json:"concurrency"`
	RPS         float64     `json:"rps"`
	Latency     Percentiles `json:"latency_seconds"`
	Errors      int64       `json:"errors"`
}

// Sweep runs the closed model at each concurrency in turn, each for step
// (after warmup, whose requests are not counted), and fits the Universal
// Scalability Law to the throughputs. progress, if not nil, hears of each
// step as it ends. It stops early, with what it has, when ctx ends.
func Sweep(ctx context.Context, cfg Config, levels []int, step, warmup time.Duration, progress func(SweepPoint)) ([]SweepPoint, *usl.Model, error) {
	if len(levels) < 3 {
		return nil, nil, errors.New("a sweep needs at least 3 concurrencies")
	}
	var points []SweepPoint
	for _, n := range levels {
		if n < 1 || n > MaxUsers {
			return nil, nil, fmt.Errorf("concurrency %d: want 1 to %d", n, MaxUsers)
		}
		c := cfg
		c.Users, c.Rate, c.Stages, c.Requests, c.Tick = n, 0, nil, 0, nil
		if cfg.Sale != nil { // each step buys with keys of its own
			sale := *cfg.Sale
			sale.RunID += "c" + strconv.Itoa(n)
			c.Sale = &sale
		}
		if warmup > 0 {
			c.Duration = warmup
			if _, err := Run(ctx, c); err != nil {
				return points, nil, err
			}
		}
		c.Duration = step
		res, err := Run(ctx, c)
		if err != nil {
			return points, nil, err
		}
		if ctx.Err() != nil {
			break
		}
		rep := res.Report()
		p := SweepPoint{Concurrency: n, RPS: rep.RPS, Latency: rep.Latency}
		for _, e := range rep.Errors {
			p.Errors += e
		}
		points = append(points, p)
		if progress != nil {
			progress(p)
		}
	}
	// A step that got no answer in its time (a server stalled, or a
	// machine too busy to send) measured nothing the law can fit; the
	// others still can.
	data := make([]usl.Point, 0, len(points))
	for _, p := range points {
		if p.RPS > 0 {
			data = append(data, usl.Point{N: float64(p.Concurrency), X: p.RPS})
		}
	}
	m, err := usl.Fit(data)
	if err != nil {
		return points, nil, err
	}
	return points, &m, nil
}
