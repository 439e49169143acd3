package load

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// SweepOptions says how a sweep steps through its concurrencies.
type SweepOptions struct {
	Levels  []int         // concurrencies, each a closed-model run of that many users
	Step    time.Duration // each run's measured time
	Warmup  time.Duration // each run's unmeasured start
	Repeats int           // runs at each concurrency (0: DefaultRepeats)
	// Progress, if not nil, hears of each run as it ends, with the
	// concurrency's point so far.
	Progress func(p SweepPoint, run, runs int)
}

// DefaultRepeats is how many times a sweep measures each concurrency.
const DefaultRepeats = 3

// SweepPoint is what one concurrency of a sweep measured over its runs.
type SweepPoint struct {
	Concurrency int `json:"concurrency"`
	// RPS is the median of the runs' answers per second; RPSRuns each
	// run's, in the order they ran.
	RPS     float64   `json:"rps"`
	RPSRuns []float64 `json:"rps_runs"`
	// Latency is over every answer of every run.
	Latency    Percentiles `json:"latency_seconds"`
	Errors     int64       `json:"errors"` // transport errors, all runs
	Unfinished int64       `json:"unfinished"`
	ErrorRate  float64     `json:"error_rate"` // transport errors and 5xx over finished requests
	// LittleUsers is the median over the runs of throughput × (mean
	// response time + think time): it should equal Concurrency.
	LittleUsers float64       `json:"little_users"`
	Generator   GeneratorLoad `json:"generator"` // the busiest run's
	// Flags say why the point is not fit to stand for the service's
	// capacity at this concurrency; a point with flags is left out of the
	// fit.
	Flags []string `json:"flags,omitempty"`
	// Notes say what makes the point's latency doubtful without touching
	// its throughput: the point is still fitted.
	Notes []string `json:"notes,omitempty"`
	// Failed is set when the service failed at this load (more than
	// MaxErrorRate of the requests).
	Failed bool `json:"failed,omitempty"`
}

// Sound reports whether the point can be fitted.
func (p SweepPoint) Sound() bool { return len(p.Flags) == 0 }

// Sweep runs the closed model with no think time (each user is one
// request in the service at all times) at each concurrency in turn, Repeats
// passes over all of them so that a drift in the machine spreads over
// every concurrency rather than bending the curve, and checks each point:
// too many errors, Little's law broken, or a saturated generator flag it.
// It stops early, with what it has, when ctx ends.
func Sweep(ctx context.Context, cfg Config, opt SweepOptions) ([]SweepPoint, error) {
	if len(opt.Levels) < 3 {
		return nil, errors.New("a sweep needs at least 3 concurrencies")
	}
	if opt.Step <= 0 {
		return nil, errors.New("a sweep needs a step duration")
	}
	repeats := opt.Repeats
	if repeats <= 0 {
		repeats = DefaultRepeats
	}
	for i, n := range opt.Levels {
		if n < 1 || n > MaxUsers {
			return nil, fmt.Errorf("concurrency %d: want 1 to %d", n, MaxUsers)
		}
		if slices.Contains(opt.Levels[:i], n) {
			return nil, fmt.Errorf("concurrency %d is in the sweep twice", n)
		}
	}
	runs := make([][]*Result, len(opt.Levels))
	total, done := repeats*len(opt.Levels), 0
	for r := range repeats {
		for i, n := range opt.Levels {
			c := cfg
			c.Users, c.Rate, c.Stages, c.Requests, c.Tick, c.Think = n, 0, nil, 0, nil, 0
			c.Duration, c.Warmup = opt.Step, opt.Warmup
			if cfg.Sale != nil { // each run buys with keys of its own
				sale := *cfg.Sale
				sale.RunID += "c" + strconv.Itoa(n) + "r" + strconv.Itoa(r)
				c.Sale = &sale
			}
			res, err := Run(ctx, c)
			if err != nil {
				return points(opt.Levels, runs), err
			}
			if ctx.Err() != nil {
				return points(opt.Levels, runs), nil
			}
			runs[i] = append(runs[i], res)
			done++
			if opt.Progress != nil {
				opt.Progress(point(n, runs[i]), done, total)
			}
		}
	}
	return points(opt.Levels, runs), nil
}

func points(levels []int, runs [][]*Result) []SweepPoint {
	var out []SweepPoint
	for i, n := range levels {
		if len(runs[i]) > 0 {
			out = append(out, point(n, runs[i]))
		}
	}
	return out
}

// point sums up the runs at concurrency n and flags what makes them
// unsound.
func point(n int, runs []*Result) SweepPoint {
	p := SweepPoint{Concurrency: n}
	all := NewResult()
	var little []float64
	reps := make([]Report, len(runs))
	for i, r := range runs {
		rep := r.Report()
		reps[i] = rep
		p.RPSRuns = append(p.RPSRuns, rep.RPS)
		little = append(little, rep.LittleUsers)
		if rep.Generator.Busy >= p.Generator.Busy {
			p.Generator = rep.Generator
		}
		all.Merge(r)
	}
	p.RPS = Median(p.RPSRuns)
	p.LittleUsers = Median(little)
	rep := all.Report()
	rep.Users = n // merged runs add their users up; the point is one crowd
	p.Latency, p.Unfinished, p.ErrorRate = rep.Latency, rep.Unfinished, rep.ErrorRate
	p.Errors = rep.Requests - rep.Answered
	switch {
	case p.RPS == 0:
		p.Flags = append(p.Flags, "no answer in the time given")
	case rep.ErrorRate > MaxErrorRate:
		p.Failed = true
		p.Flags = append(p.Flags, fmt.Sprintf("%.1f%% of the requests failed: the service did not hold this load", 100*rep.ErrorRate))
	}
	if rep.Stuck() {
		p.Notes = append(p.Notes, fmt.Sprintf("requests unanswered at a run's end had waited up to %s against a p99 of %s: the slowest are in no percentile",
			time.Duration(rep.OldestUnfinishedSeconds*1e9).Round(time.Millisecond), time.Duration(rep.Latency.P99*1e9).Round(time.Microsecond)))
	}
	if p.Generator.Saturated() {
		p.Flags = append(p.Flags, fmt.Sprintf("the load generator was busy %.0f%% of the time it could use: it, not the service, may have been the limit", 100*p.Generator.Busy))
	}
	// Little's law, on the median run: N = X·(R + Z).
	mid := reps[0]
	for _, rr := range reps[1:] {
		if math.Abs(rr.LittleUsers-p.LittleUsers) < math.Abs(mid.LittleUsers-p.LittleUsers) {
			mid = rr
		}
	}
	if p.RPS > 0 && p.LittleUsers > 0 && !mid.LittleHolds() {
		p.Flags = append(p.Flags, fmt.Sprintf("Little's law does not hold: throughput × (response + think time) is %.1f users, not %d (tolerance %.0f%%)",
			p.LittleUsers, n, 100*mid.LittleTolerance()))
	}
	return p
}

// Median is the middle of xs (the mean of the two middle values for an
// even count), or 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}
