package capacity

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/stampede-dev/stampede/internal/load"
	"github.com/stampede-dev/stampede/internal/usl"
)

// Target is the crowd a plan is for: Users people, each waiting for an
// answer and then thinking Think seconds before the next request (the
// closed model); or requests arriving at Rate a second whatever happens
// to them (the open model).
type Target struct {
	Users int
	Think float64 // seconds
	Rate  float64
}

func (t Target) open() bool { return t.Rate > 0 }

// How a plan's figures are known.
const (
	// BasisMeasured: the target itself was run (--confirm).
	BasisMeasured = "measured"
	// BasisInterpolated: the service held no more requests at once than
	// the sweep measured; read off the measured points.
	BasisInterpolated = "interpolated"
	// BasisExtrapolated: up to ExtrapolationLimit times the largest
	// concurrency measured; the fitted law, with its interval.
	BasisExtrapolated = "extrapolated"
	// BasisBound: further out; only the operational laws' bounds.
	BasisBound = "bound"
)

// Verdicts.
const (
	// Holds: the target is below saturation and within any SLO.
	Holds = "holds"
	// Saturates: throughput flat at capacity, latency growing linearly
	// with users (or the SLO broken below capacity).
	Saturates = "saturates"
	// Collapses: past the peak, throughput falling as users grow, or the
	// service failing (errors) at the load the target brings.
	Collapses = "collapses"
)

// Plan is what the curve says of a target.
type Plan struct {
	Users        int     `json:"users,omitempty"`
	ThinkSeconds float64 `json:"think_seconds"`
	Rate         float64 `json:"rate,omitempty"`
	// RequiredRPS is what the target asks for if never kept waiting:
	// users / (D + Z), or the rate.
	RequiredRPS   float64    `json:"required_rps"`
	CapacityRPS   float64    `json:"capacity_rps"`
	CapacityRPSCI [2]float64 `json:"capacity_rps_ci"`
	// RPS and LatencySeconds are the prediction (the mean response time),
	// or with basis "bound" the bound: throughput at most, latency at
	// least.
	RPS            float64    `json:"rps"`
	RPSCI          [2]float64 `json:"rps_ci"`
	LatencySeconds float64    `json:"latency_seconds"`
	LatencyCI      [2]float64 `json:"latency_seconds_ci"`
	// InService is how many requests the service holds at once at the
	// target, by Little's law (on the bounds, where only bounds are known).
	InService float64 `json:"in_service"`
	Basis     string  `json:"basis"`
	Verdict   string  `json:"verdict"`
	SLOMet    *bool   `json:"slo_met,omitempty"`
	SLO       []Check `json:"slo,omitempty"`
	// HoldsUsers (closed) or HoldsRPS (open) is the most the service
	// holds below saturation and within the SLO; Copies is how many
	// copies of the service the target would need if copies shared
	// nothing, which is an assumption.
	HoldsUsers int     `json:"holds_users,omitempty"`
	HoldsRPS   float64 `json:"holds_rps,omitempty"`
	Copies     int     `json:"copies,omitempty"`
	// Confirmed is the target's own run, when --confirm ran it.
	Confirmed *Confirmation `json:"confirmed,omitempty"`
	Lines     []string      `json:"explanation"`
}

// Confirmation puts the prediction beside a run of the target itself.
type Confirmation struct {
	PredictedRPS     float64     `json:"predicted_rps"`
	PredictedLatency float64     `json:"predicted_latency_seconds"`
	PredictedBasis   string      `json:"predicted_basis"`
	Report           load.Report `json:"run"`
}

// prediction is the plan's core: throughput and mean response time at a
// target, and how they are known.
type prediction struct {
	n        float64 // requests in the service at once (0 for a bound)
	x, r     float64
	xci, rci [2]float64
	basis    string
}

// predict works out the target against the curve.
func (c *Curve) predict(t Target) prediction {
	d, z := c.Lone, t.Think
	if t.open() {
		return c.predictOpen(t.Rate)
	}
	users := float64(t.Users)
	// With think time, users are either waiting for an answer (n of
	// them, in the service) or thinking (X·Z of them): n + Z·X(n) = N.
	top := math.Min(users, ExtrapolationLimit*float64(c.MaxN))
	if c.Model == nil {
		top = math.Min(users, float64(c.MaxN))
	}
	g := func(n float64) float64 {
		x, _, _, _ := c.throughput(n)
		return n + z*x - users
	}
	if g(top) >= 0 {
		// The largest root: the pessimistic one, where a curve that falls
		// past its peak could hold the service in two states.
		lo, hi := 0.0, top
		for i := 1; i <= 512; i++ {
			n := top * float64(512-i) / 512
			if g(n) < 0 {
				lo, hi = n, top*float64(512-i+1)/512
				break
			}
		}
		for range 60 {
			mid := (lo + hi) / 2
			if g(mid) < 0 {
				lo = mid
			} else {
				hi = mid
			}
		}
		n := hi
		x, xci, basis, _ := c.throughput(n)
		if x > 0 {
			return prediction{n: n, x: x, r: n / x, xci: xci, rci: [2]float64{n / xci[1], n / xci[0]}, basis: basis}
		}
	}
	// Past what the fit may say: the operational laws' bounds.
	xmax := c.Xmax()
	x := math.Min(users/(d+z), xmax)
	r := d
	if !math.IsInf(xmax, 1) {
		r = math.Max(d, users/xmax-z)
	}
	return prediction{x: x, r: r, xci: [2]float64{x, x}, rci: [2]float64{r, r}, basis: BasisBound}
}

// predictOpen finds the fewest requests in service at which the curve
// answers rate a second; past the curve, the service falls behind and
// the queue grows for as long as the rate lasts.
func (c *Curve) predictOpen(rate float64) prediction {
	top := float64(c.MaxN)
	if c.Model != nil {
		top *= ExtrapolationLimit
	}
	prev := 0.0
	for i := 1; i <= 2048; i++ {
		n := top * float64(i) / 2048
		x, _, _, _ := c.throughput(n)
		if x >= rate {
			lo, hi := prev, n
			for range 60 {
				mid := (lo + hi) / 2
				if xm, _, _, _ := c.throughput(mid); xm >= rate {
					hi = mid
				} else {
					lo = mid
				}
			}
			_, xci, basis, _ := c.throughput(hi)
			r := math.Max(hi/rate, c.Lone)
			return prediction{n: hi, x: rate, r: r, xci: [2]float64{math.Min(rate, xci[0]), rate},
				rci: [2]float64{r, r}, basis: basis}
		}
		prev = n
	}
	xmax := math.Min(c.Xmax(), rate)
	return prediction{x: xmax, r: c.Lone, xci: [2]float64{xmax, xmax}, rci: [2]float64{c.Lone, c.Lone}, basis: BasisBound}
}

// required is what the target asks for when never kept waiting.
func (c *Curve) required(t Target) float64 {
	if t.open() {
		return t.Rate
	}
	return float64(t.Users) / (c.Lone + t.Think)
}

// Utilization is the share of its capacity a target may ask of a service
// that holds it: past it, queues are long (the knee of the curve).
const Utilization = 0.9

// shape names the verdict's shape, before the SLO, and why.
func (c *Curve) shape(t Target, p prediction) (string, string) {
	req := c.required(t)
	switch {
	case c.FailedAt > 0 && (p.basis == BasisBound || p.n >= float64(c.FailedAt)):
		return Collapses, fmt.Sprintf("at %d requests at once the service failed (more than %.0f%% errors), and the target brings at least as many", c.FailedAt, 100*load.MaxErrorRate)
	case req <= Utilization*c.Shown() && p.x >= Utilization*req && !(t.open() && p.basis == BasisBound):
		return Holds, fmt.Sprintf("below saturation: it asks for %.0f%% of what the service was shown to answer", 100*req/c.Shown())
	}
	// Collapse is seen in the measurements, or foretold by a fit whose
	// peak the measurements past it bear out (and whose κ is surely above
	// zero), for a target past that peak.
	collapse := c.Falls
	if c.PeakN > 0 && c.KappaCI[0] > 0 && c.fitHoldsPastPeak() {
		if p.basis == BasisBound {
			collapse = collapse || c.PeakN <= ExtrapolationLimit*float64(c.MaxN)
		} else {
			collapse = collapse || (p.n > c.PeakN && p.x < 0.9*c.PeakRPS)
		}
	}
	if collapse {
		return Collapses, "past the peak, throughput falls as users are added"
	}
	if !c.Saturated {
		return Saturates, fmt.Sprintf("it asks for %s× the most the service was shown to answer, and the curve was still rising at the top of the sweep: where it saturates is not known; sweep higher",
			num(req/c.Shown()))
	}
	return Saturates, "throughput is flat at capacity and each user added lengthens every wait"
}

// checkSLO judges the prediction against the SLO: percentiles scaled from
// the mean by their ratio at the measured point nearest the prediction
// (an estimate: the shape of the distribution is assumed to hold), the
// error share of that point.
func (c *Curve) checkSLO(s SLO, p prediction) []Check {
	n := p.n
	if p.basis == BasisBound {
		n = float64(c.MaxN)
	}
	return s.judge(func(o Objective) float64 {
		switch o.Metric {
		case "errors":
			if c.FailedAt > 0 && (p.basis == BasisBound || n >= float64(c.FailedAt)) {
				return math.Max(c.errorRate(float64(c.FailedAt)), c.errorRate(n))
			}
			return c.errorRate(n)
		case "rps":
			return p.x
		case "mean":
			return p.r
		}
		return p.r * c.latencyRatio(n, func(l load.Percentiles) float64 { return percentile(o.Metric, l) })
	})
}

// Plan says what the curve makes of target t under slo (which may be
// empty).
func (c *Curve) Plan(t Target, slo SLO) Plan {
	p := c.predict(t)
	pl := Plan{
		Users: t.Users, ThinkSeconds: t.Think, Rate: t.Rate,
		RequiredRPS: round(c.required(t)), CapacityRPS: round(c.Capacity), CapacityRPSCI: c.CapacityCI,
		RPS: round(p.x), RPSCI: p.xci, LatencySeconds: p.r, LatencyCI: p.rci, InService: round(p.n), Basis: p.basis,
	}
	if p.basis == BasisBound {
		pl.InService = round(p.x * p.r) // Little's law on the bounds
	}
	shape, why := c.shape(t, p)
	pl.Verdict = shape
	if len(slo) > 0 {
		pl.SLO = c.checkSLO(slo, p)
		met := Met(pl.SLO)
		pl.SLOMet = &met
		if !met && shape == Holds {
			pl.Verdict, why = Saturates, "below its capacity, but not within the SLO"
		}
	}
	c.holds(&pl, t, slo)
	pl.Lines = c.explain(pl, t, p, why)
	return pl
}

// holds finds the most users (or the highest rate) the service takes
// below saturation and within the SLO, and the copies the target needs.
func (c *Curve) holds(pl *Plan, t Target, slo SLO) {
	ok := func(u Target) bool {
		p := c.predict(u)
		shape, _ := c.shape(u, p)
		return shape == Holds && (len(slo) == 0 || Met(c.checkSLO(slo, p)))
	}
	if t.open() {
		lo, hi := 0.0, math.Max(c.Shown(), math.Max(c.Capacity, 1))
		for range 40 {
			mid := (lo + hi) / 2
			if ok(Target{Rate: mid}) {
				lo = mid
			} else {
				hi = mid
			}
		}
		pl.HoldsRPS = round(lo)
		if lo > 0 && t.Rate > lo {
			pl.Copies = int(math.Ceil(t.Rate / lo))
		}
		return
	}
	lo, hi := 0, 1
	for hi < load.MaxUsers && ok(Target{Users: hi, Think: t.Think}) {
		lo, hi = hi, hi*2
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if ok(Target{Users: mid, Think: t.Think}) {
			lo = mid
		} else {
			hi = mid
		}
	}
	pl.HoldsUsers = lo
	if lo > 0 && t.Users > lo {
		pl.Copies = (t.Users + lo - 1) / lo
	}
}

// explain writes the plan in a few sentences.
func (c *Curve) explain(pl Plan, t Target, p prediction, why string) []string {
	var out []string
	if t.open() {
		out = append(out, fmt.Sprintf("Target: %s requests arriving each second, whatever happens to them (open model).", num(t.Rate)))
	} else {
		think := "with no pause between requests"
		if t.Think > 0 {
			think = "each thinking " + seconds(t.Think) + " between requests"
		}
		out = append(out, fmt.Sprintf("Target: %s users %s; never kept waiting they would ask for %s requests/s (the lone request takes %s).",
			num(float64(t.Users)), think, num(pl.RequiredRPS), seconds(c.Lone)))
	}
	switch p.basis {
	case BasisInterpolated:
		between := fmt.Sprintf("between the measurements, up to %d at once", c.MaxN)
		if low := c.sound[0].Concurrency; p.n < float64(low) {
			between = fmt.Sprintf("between an idle service and the %d at once measured", low)
		}
		out = append(out, fmt.Sprintf("Prediction (interpolated %s: %s requests in service at once): %s requests/s, %s a request on average.",
			between, num(p.n), num(p.x), seconds(p.r)))
	case BasisExtrapolated:
		out = append(out, fmt.Sprintf("Prediction (extrapolated by the fitted law to %s requests in service at once, past the %d measured; 90%% interval in brackets): %s requests/s [%s–%s], %s a request [%s–%s].",
			num(p.n), c.MaxN, num(p.x), num(p.xci[0]), num(p.xci[1]), seconds(p.r), seconds(p.rci[0]), seconds(p.rci[1])))
	default:
		if t.open() {
			out = append(out, fmt.Sprintf("Bound: the service answers at most %s requests/s; the rest queue, and the wait grows for as long as the rate lasts. No prediction is made past %d× the %d measured.",
				num(p.x), ExtrapolationLimit, c.MaxN))
		} else {
			out = append(out, fmt.Sprintf("Bounds only (the target would hold more requests in service than %d× the %d measured, where no fit is trusted): at most %s requests/s, at least %s a request.",
				ExtrapolationLimit, c.MaxN, num(p.x), seconds(p.r)))
		}
	}
	capLine := fmt.Sprintf("Capacity measured: %s requests/s at %d at once (runs %s–%s)", num(c.Capacity), c.CapacityAt, num(c.CapacityCI[0]), num(c.CapacityCI[1]))
	if !c.Saturated {
		capLine += "; throughput was still rising at the top of the sweep, so the service may hold more: sweep higher"
	}
	out = append(out, capLine+".")
	verdict := fmt.Sprintf("Verdict: %s (%s).", strings.ToUpper(pl.Verdict), why)
	if pl.Verdict == Saturates && !t.open() && c.Xmax() > 0 && !math.IsInf(c.Xmax(), 1) {
		verdict += fmt.Sprintf(" Past saturation each user adds about %s to every request's wait.", seconds(1/c.Xmax()))
	}
	out = append(out, verdict)
	if pl.SLO != nil {
		out = append(out, "SLO: "+Describe(pl.SLO)+" (percentiles scaled from the mean as measured at the nearest step).")
	}
	switch {
	case t.open() && pl.HoldsRPS > 0:
		out = append(out, fmt.Sprintf("It holds about %s requests/s%s.", num(pl.HoldsRPS), withinSLO(pl)))
	case !t.open() && pl.HoldsUsers > 0:
		out = append(out, fmt.Sprintf("It holds about %s such users%s.", num(float64(pl.HoldsUsers)), withinSLO(pl)))
	}
	if pl.Copies > 1 {
		out = append(out, fmt.Sprintf("The target would need %d copies of the service, if copies shared nothing: an assumption, since copies that share a database, a cache or a lock do not add up.", pl.Copies))
	}
	return out
}

func withinSLO(pl Plan) string {
	if pl.SLO != nil {
		return " below saturation and within the SLO"
	}
	return " below saturation"
}

// Describe writes what the curve says on its own, without a target.
func (c *Curve) Describe() []string {
	var out []string
	out = append(out, fmt.Sprintf("Measured capacity: %s requests/s at %d at once (runs %s–%s); a lone request takes %s.",
		num(c.Capacity), c.CapacityAt, num(c.CapacityCI[0]), num(c.CapacityCI[1]), seconds(c.Lone)))
	if c.FailedAt > 0 {
		out = append(out, fmt.Sprintf("At %d at once the service failed: more than %.0f%% of its requests were errors.", c.FailedAt, 100*load.MaxErrorRate))
	}
	if c.Model == nil {
		out = append(out, "Too few sound concurrencies to fit the law: the plan interpolates between them and bounds beyond them.")
	}
	if m := c.Model; m != nil {
		line := fmt.Sprintf("Fitted law: σ %.3g [%.3g–%.3g] (contention), κ %.3g [%.3g–%.3g] (coherency), R² %.3f.",
			m.Sigma, c.SigmaCI[0], c.SigmaCI[1], m.Kappa, c.KappaCI[0], c.KappaCI[1], m.R2)
		if c.PeakN > 0 {
			hi := "no peak"
			if c.PeakNCI[1] > 0 {
				hi = num(c.PeakNCI[1])
			}
			line += fmt.Sprintf(" It peaks at %s at once [%s–%s], %s requests/s.", num(c.PeakN), num(c.PeakNCI[0]), hi, num(c.PeakRPS))
			if c.PeakN > ExtrapolationLimit*float64(c.MaxN) {
				line += " That peak lies far past the sweep: measure higher before trusting it."
			}
		} else {
			line += " It finds no peak: throughput levels off rather than falls."
		}
		if m.R2 < 0.9 {
			line += " The law fits these points loosely: something else shapes them."
		}
		out = append(out, line)
	}
	var left []string
	for _, p := range c.Points {
		if !p.Sound() {
			left = append(left, fmt.Sprintf("%d (%s)", p.Concurrency, strings.Join(p.Flags, "; ")))
		}
	}
	if len(left) > 0 {
		out = append(out, "Left out of the fit: "+strings.Join(left, ", ")+".")
	}
	var noted []string
	for _, p := range c.Points {
		if len(p.Notes) > 0 {
			noted = append(noted, fmt.Sprintf("%d (%s)", p.Concurrency, strings.Join(p.Notes, "; ")))
		}
	}
	if len(noted) > 0 {
		out = append(out, "Latency understated at: "+strings.Join(noted, ", ")+".")
	}
	return out
}

func round(v float64) float64 { return math.Round(v*10) / 10 }

// num writes a number as a person would read it: 49, 1,250, 24.6k.
func num(v float64) string { return usl.Count(v) }

// seconds writes a time in seconds as a rounded duration.
func seconds(s float64) string {
	if math.IsInf(s, 0) || math.IsNaN(s) {
		return "∞"
	}
	d := time.Duration(s * float64(time.Second))
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// ErrCannotConfirm says this machine cannot bring the target's crowd.
var ErrCannotConfirm = errors.New("cannot run the target here")

// Confirm runs the target itself, with cfg's requests, and puts the run
// beside the plan's prediction: the plan's figures become the measured
// ones (basis "measured") and the SLO is judged on the run. A crowd
// needs a connection a user, so it must fit this process's open-file
// limit (load's CheckFiles); where it does not, or the run could not be
// made (load's Check), Confirm says so and runs nothing. The run
// warms up for two of the predicted cycles (response plus think time) and
// measures three, within the bounds of step and warmup.
func (c *Curve) Confirm(ctx context.Context, cfg load.Config, t Target, pl *Plan, slo SLO, step, warmup time.Duration) error {
	cycle := time.Duration((pl.LatencySeconds + t.Think) * float64(time.Second))
	cfg.Warmup = min(max(warmup, 2*cycle), time.Minute)
	cfg.Duration = min(max(step, 3*cycle), 2*time.Minute)
	cfg.Users, cfg.Rate, cfg.Think, cfg.Stages, cfg.Requests, cfg.Tick = t.Users, t.Rate, time.Duration(t.Think*float64(time.Second)), nil, 0, nil
	if t.open() {
		// Room for the requests in flight at the predicted wait, twice over.
		cfg.Users = 0
		cfg.MaxInFlight = max(cfg.MaxInFlight, int(math.Ceil(t.Rate*math.Max(pl.LatencySeconds, c.Lone)*2)))
	}
	if err := cfg.Check(); err != nil {
		return fmt.Errorf("%w: %v", ErrCannotConfirm, err)
	}
	if err := cfg.CheckFiles(); err != nil {
		return fmt.Errorf("%w: %v", ErrCannotConfirm, err)
	}
	res, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	rep := res.Report()
	pl.Confirmed = &Confirmation{PredictedRPS: pl.RPS, PredictedLatency: pl.LatencySeconds, PredictedBasis: pl.Basis, Report: rep}
	pl.Basis, pl.RPS, pl.LatencySeconds = BasisMeasured, rep.RPS, rep.Latency.Mean
	pl.RPSCI, pl.LatencyCI = [2]float64{rep.RPS, rep.RPS}, [2]float64{rep.Latency.Mean, rep.Latency.Mean}
	if len(slo) > 0 {
		pl.SLO = slo.Judge(rep)
		met := Met(pl.SLO)
		pl.SLOMet = &met
	}
	predicted := pl.Verdict
	for i, l := range pl.Lines {
		if rest, ok := strings.CutPrefix(l, "Verdict: "); ok {
			pl.Lines[i] = "Predicted verdict: " + rest
		}
	}
	switch {
	case rep.ErrorRate > load.MaxErrorRate:
		pl.Verdict = Collapses
	case rep.RPS >= Utilization*pl.RequiredRPS && (pl.SLOMet == nil || *pl.SLOMet):
		pl.Verdict = Holds
	case pl.Verdict == Holds:
		pl.Verdict = Saturates
	}
	line := fmt.Sprintf("The run of the target: %s requests/s, %s a request on average, p99 %s; verdict on the run: %s",
		num(rep.RPS), seconds(rep.Latency.Mean), seconds(rep.Latency.P99), strings.ToUpper(pl.Verdict))
	if rep.RPS >= Utilization*pl.RequiredRPS && pl.Verdict == Saturates {
		line += " (it answered what was asked, but not within the SLO)"
	}
	if pl.Verdict != predicted {
		line += fmt.Sprintf(" (the prediction said %s)", strings.ToUpper(predicted))
	}
	line += "."
	if len(pl.SLO) > 0 {
		line += " SLO on the run: " + Describe(pl.SLO) + "."
	}
	if pl.Verdict != Holds && !t.open() && pl.HoldsUsers >= t.Users {
		line += fmt.Sprintf(" The %s users the prediction said it holds do not stand: it holds fewer than the %s of this run.", num(float64(pl.HoldsUsers)), num(float64(t.Users)))
		pl.HoldsUsers, pl.Copies = 0, 0
	}
	if pl.Verdict != Holds && t.open() && pl.HoldsRPS >= t.Rate {
		line += fmt.Sprintf(" The %s requests/s the prediction said it holds do not stand: it holds less than the %s of this run.", num(pl.HoldsRPS), num(t.Rate))
		pl.HoldsRPS, pl.Copies = 0, 0
	}
	pl.Lines = append(pl.Lines, line)
	for _, n := range rep.Notes() {
		pl.Lines = append(pl.Lines, "Note on that run: "+n+".")
	}
	return nil
}
