package load

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Stage ramps the target (virtual users, or requests per second in the
// open model) linearly from the previous stage's target to Target over
// Duration, as k6 stages do. The first stage ramps from zero.
type Stage struct {
	Duration time.Duration
	Target   float64
}

// ParseStages reads "10s:1000,30s:5000,10s:0".
func ParseStages(s string) ([]Stage, error) {
	var out []Stage
	for part := range strings.SplitSeq(s, ",") {
		d, t, ok := strings.Cut(strings.TrimSpace(part), ":")
		dur, err := time.ParseDuration(d)
		if !ok || err != nil || dur <= 0 {
			return nil, fmt.Errorf("stage %q: want DURATION:TARGET, as in 10s:1000", part)
		}
		target, err := strconv.ParseFloat(t, 64)
		if err != nil || !(target >= 0 && target <= MaxRate) { // NaN fails both
			return nil, fmt.Errorf("stage %q: target must be a number from 0 to %d", part, MaxRate)
		}
		out = append(out, Stage{Duration: dur, Target: target})
	}
	if len(out) == 0 {
		return nil, errors.New("no stages")
	}
	return out, nil
}

// profile is a target that changes with time: constant, or stages.
type profile struct {
	constant float64
	stages   []Stage
}

// total is how long the profile lasts; zero for a constant one.
func (p profile) total() time.Duration {
	var d time.Duration
	for _, s := range p.stages {
		d += s.Duration
	}
	return d
}

// at returns the target at time t since the start.
func (p profile) at(t time.Duration) float64 {
	if p.stages == nil {
		return p.constant
	}
	from := 0.0
	for _, s := range p.stages {
		if t < s.Duration {
			return from + (s.Target-from)*float64(t)/float64(s.Duration)
		}
		t -= s.Duration
		from = s.Target
	}
	return from
}

// pacer hands out the intended send times of an open-model run: request i
// is due when the integral of the rate reaches i. Times come from the
// schedule, never from when a request could actually be sent, so a stalled
// server cannot slow the clock that latency is measured against: this is
// what keeps the open model free of coordinated omission.
type pacer struct {
	rate profile
	end  time.Duration // zero: no end
	t    time.Duration // the last time handed out
	n    int64         // requests handed out
}

// step is the resolution at which a changing rate is integrated.
const step = 100 * time.Microsecond

// next returns the intended offset of the next request, or false when the
// schedule has ended.
func (p *pacer) next() (time.Duration, bool) {
	if p.rate.stages == nil {
		if p.rate.constant <= 0 {
			return 0, false
		}
		p.t = time.Duration(float64(p.n) * float64(time.Second) / p.rate.constant)
		p.n++
		return p.t, p.end == 0 || p.t < p.end
	}
	// Integrate the rate from p.t until one more request is due.
	need := 1.0
	for t := p.t; p.end == 0 || t < p.end; t += step {
		r := p.rate.at(t)
		owe := r * step.Seconds()
		if owe >= need {
			p.t = t + time.Duration(need/r*float64(time.Second))
			return p.t, p.end == 0 || p.t < p.end
		}
		need -= owe
	}
	return 0, false
}
