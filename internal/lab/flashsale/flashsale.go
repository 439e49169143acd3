// Package flashsale is the lab's chapter 8: the flash sale, live. It runs
// the real shop (this binary's `shop`, on a temporary SQLite file, or the
// PostgreSQL and Redis the lab was started with) with the strategy and
// processes the learner picks, brings the buyers with the load engine,
// optionally kills a worker or the whole shop halfway, and then checks the
// books as `stampede verify` does: oversold or not, every acknowledged
// order stored, limits held, the stock linearizable. A second experiment,
// flashsale-sweep, finds where a strategy peaks.
package flashsale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stampede-dev/stampede/internal/capacity"
	"github.com/stampede-dev/stampede/internal/lab"
	"github.com/stampede-dev/stampede/internal/load"
	"github.com/stampede-dev/stampede/internal/verify"
)

// Backends are what the lab was started with: a store (a PostgreSQL DSN;
// empty: a temporary SQLite file per sale) and a Redis URL (empty: a
// private redis-server, started for the sale, when a strategy needs one).
type Backends struct {
	Store string
	Redis string
}

// Experiment runs a sale. Its zero value cannot run: New gives it the
// binary that serves the shop.
type Experiment struct {
	exe string
	be  Backends
}

// New returns the experiment; exe is the stampede binary whose `shop`
// subcommand the sale runs against.
func New(exe string, be Backends) *Experiment { return &Experiment{exe: exe, be: be} }

var _ lab.Experiment = (*Experiment)(nil)

// Strategies the page offers. redis-lock, and reserve in more than one
// process, need Redis: the lab's, or a private one started for the sale.
var strategies = []string{"naive", "mutex", "redis-lock", "atomic", "row-lock", "buckets", "reserve"}

// needsRedis reports whether strategy in procs processes needs Redis.
func needsRedis(strategy string, procs int) bool {
	return strategy == "redis-lock" || (strategy == "reserve" && procs > 1)
}

// apply sets cfg's store and Redis for a sale of cfg's strategy in its
// processes.
func (be Backends) apply(cfg *verify.Config) {
	cfg.Store = "sqlite"
	if be.Store != "" {
		cfg.Store = be.Store
	}
	if needsRedis(cfg.Strategy, cfg.Procs) {
		cfg.Redis = "private"
		if be.Redis != "" {
			cfg.Redis = be.Redis
		}
	}
}

// The shop's settings, the same for a sale and a sweep.
var (
	strategyParam = lab.Param{Name: "strategy", Label: "Strategy", Kind: lab.Choice, Choices: strategies, Default: "reserve"}
	procsParam    = lab.Param{Name: "procs", Label: "Shop processes", Kind: lab.Int, Default: 1, Min: 1, Max: 8,
		Help: "worker processes sharing one port; a lock inside one process does not reach the others"}
	gapParam = lab.Param{Name: "gap", Label: "Work between read and write", Unit: "ms", Kind: lab.Int, Default: 0, Min: 0, Max: 100,
		Help: "naive, mutex and redis-lock pause this long between reading the stock and writing the order, as real work would; it widens the race"}
)

// Info describes the experiment.
func (*Experiment) Info() lab.Info {
	return lab.Info{
		ID: "flashsale", Chapter: 8, Heavy: true,
		Title:   "The flash sale, live: does the shop oversell?",
		Summary: "The real shop, a crowd of buyers from the load engine, an optional crash, and the books checked afterwards.",
		Params: []lab.Param{
			strategyParam, procsParam, gapParam,
			{Name: "stock", Label: "Units on sale", Kind: lab.Int, Default: 300, Min: 10, Max: 100_000},
			{Name: "buyers", Label: "Purchases", Kind: lab.Int, Default: 1200, Min: 10, Max: 100_000},
			{Name: "users", Label: "Distinct users", Kind: lab.Int, Default: 800, Min: 1, Max: 100_000,
				Help: "each purchase is for one of them, drawn at random: at most the number of purchases"},
			{Name: "limit", Label: "Per-user limit", Kind: lab.Int, Default: 2, Min: 0, Max: 1000, Help: "0: none"},
			{Name: "seconds", Label: "Sale length", Unit: "s", Kind: lab.Int, Default: 4, Min: 1, Max: 60},
			{Name: "fault", Label: "Crash halfway", Kind: lab.Choice, Choices: []string{"none", verify.KillWorker, verify.KillShop}, Default: "none",
				Help: "kill-worker: SIGKILL one worker process (needs 2 or more); kill-shop: SIGKILL every process, restart after 0.5 s"},
		},
	}
}

// Result is the sale and its verdict.
type Result struct {
	Strategy string `json:"strategy"`
	Procs    int    `json:"procs"`
	Initial  int64  `json:"initial"`
	// Redis says whether the sale ran with Redis.
	Redis bool `json:"redis"`
	// Oversold is how many units were sold beyond the stock (0 if none).
	Oversold int64 `json:"oversold"`
	// P50Ms and P99Ms are percentiles of the time from a purchase's first
	// attempt to its final answer, retries included, in milliseconds.
	P50Ms  float64        `json:"p50Ms"`
	P99Ms  float64        `json:"p99Ms"`
	Report *verify.Report `json:"report"`
}

// Run runs the sale and checks it.
func (e *Experiment) Run(ctx context.Context, p lab.Values, emit func(lab.Event)) error {
	if e.exe == "" {
		return errors.New("the lab was started without a shop to run")
	}
	cfg := verify.Defaults()
	cfg.Exe = e.exe
	cfg.Strategy = p.String("strategy")
	cfg.Procs = p.Int("procs")
	cfg.Gap = time.Duration(p.Int("gap")) * time.Millisecond
	cfg.Stock, cfg.Purchases, cfg.Users, cfg.Limit = p.Int("stock"), p.Int("buyers"), p.Int("users"), p.Int("limit")
	cfg.Duration = time.Duration(p.Int("seconds")) * time.Second
	cfg.Readers = 1
	// The shop and its buyers share this machine with the lab: a purchase
	// may wait longer here than verify's own 2 s allow before it counts as
	// a stall.
	cfg.MaxStall = 5 * time.Second
	if cfg.Users > cfg.Purchases {
		return fmt.Errorf("%d distinct users cannot be drawn from %d purchases: ask for at most as many users as purchases", cfg.Users, cfg.Purchases)
	}
	switch f := p.String("fault"); f {
	case verify.KillWorker:
		if cfg.Procs < 2 {
			return errors.New("kill-worker needs a shop of 2 or more processes: one process has no worker to lose")
		}
		fallthrough
	case verify.KillShop:
		cfg.Faults = []verify.Fault{{Kind: f, At: cfg.Duration / 2, For: 500 * time.Millisecond}}
		if f == verify.KillWorker {
			cfg.Faults[0].For = 0
		}
	}
	e.be.apply(&cfg)
	emit(lab.Progress("starting the shop", 0, int64(cfg.Purchases)))
	var answered int64
	cfg.Live = func(lv verify.Live) {
		answered += int64(lv.Acknowledged + lv.SoldOut + lv.LimitExceeded + lv.Failed)
		t := lv.At.Seconds()
		emit(lab.Point("acknowledged", t, float64(lv.Acknowledged)))
		emit(lab.Point("sold out", t, float64(lv.SoldOut)))
		emit(lab.Point("over the limit", t, float64(lv.LimitExceeded)))
		emit(lab.Point("failed", t, float64(lv.Failed)))
		if lv.Read {
			emit(lab.Point("stock", t, float64(lv.Stock)))
		}
		if lv.P50 > 0 {
			emit(lab.Point("p50", t, float64(lv.P50.Microseconds())/1000))
			emit(lab.Point("p99", t, float64(lv.P99.Microseconds())/1000))
		}
		emit(lab.Progress("selling", answered, int64(cfg.Purchases)))
	}
	rep, err := verify.Run(ctx, cfg)
	if err != nil {
		return err
	}
	res := &Result{Strategy: cfg.Strategy, Procs: cfg.Procs, Initial: int64(cfg.Stock), Report: rep, Redis: cfg.Redis != ""}
	if over := int64(rep.Outcomes.Stored) - int64(cfg.Stock); over > 0 {
		res.Oversold = over
	}
	res.P50Ms, res.P99Ms = purchaseLatency(rep.History)
	emit(lab.Result(res))
	return nil
}

// purchaseLatency is the median and 99th percentile of the purchases'
// times from first attempt to final answer, in milliseconds.
func purchaseLatency(ops []verify.Op) (p50, p99 float64) {
	var ms []float64
	for _, op := range ops {
		if op.Kind == "purchase" {
			ms = append(ms, float64((op.Return-op.Call).Microseconds())/1000)
		}
	}
	if len(ms) == 0 {
		return 0, 0
	}
	slices.Sort(ms)
	at := func(q float64) float64 { return ms[min(len(ms)-1, int(q*float64(len(ms))))] }
	return at(0.5), at(0.99)
}

// WriteText prints the verdict as stampede verify does.
func (r *Result) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "strategy %s in %d process(es), %d units; purchases answered in %.1f ms (median), %.1f ms (99th percentile)\n\n",
		r.Strategy, r.Procs, r.Initial, r.P50Ms, r.P99Ms)
	return verify.WriteText(w, r.Report)
}

// Sweep finds where a strategy peaks: the real shop, a product with stock
// for the whole sweep, and the load engine's closed model at each number
// of buyers in turn, then the Universal Scalability Law fitted to it.
type Sweep struct {
	exe string
	be  Backends
}

// NewSweep returns the sweep; exe and be as for New.
func NewSweep(exe string, be Backends) *Sweep { return &Sweep{exe: exe, be: be} }

var _ lab.Experiment = (*Sweep)(nil)

// MaxLevels bounds how many concurrencies one sweep may step through.
const MaxLevels = 12

// Info describes the sweep.
func (*Sweep) Info() lab.Info {
	return lab.Info{
		ID: "flashsale-sweep", Chapter: 8, Heavy: true,
		Title:   "Where does the strategy peak?",
		Summary: "The real shop under 1, 2, 4, … buyers at once, each step measured three times and checked, the Universal Scalability Law fitted with its interval, and a plan for a crowd: predicted within reach of the measurements, bounded beyond.",
		Params: []lab.Param{
			strategyParam, procsParam, gapParam,
			{Name: "levels", Label: "Buyers at once", Help: "comma-separated, at least 3, at most 1,024 each", Kind: lab.Text,
				Default: "1,2,4,8,16,32,64", MaxLen: 80, Check: func(s string) error { _, err := Levels(s); return err }},
			{Name: "step", Label: "Time per step", Unit: "ms", Kind: lab.Int, Default: 1000, Min: 300, Max: 20_000},
			{Name: "repeats", Label: "Runs per step", Kind: lab.Int, Default: load.DefaultRepeats, Min: 1, Max: 5},
			{Name: "target", Label: "Crowd to plan for", Unit: "buyers at once", Kind: lab.Int, Default: 100_000, Min: 1, Max: load.MaxUsers},
		},
	}
}

// Levels parses a comma-separated list of concurrencies.
func Levels(s string) ([]int, error) {
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("%q: want numbers of buyers from 1 to 1024, as 1,2,4,8", s)
		}
		out = append(out, n)
	}
	if len(out) < 3 || len(out) > MaxLevels {
		return nil, fmt.Errorf("%q: want from 3 to %d numbers of buyers", s, MaxLevels)
	}
	return out, nil
}

// SweepResult is the sweep, the curve fitted to it and the plan for the
// target crowd.
type SweepResult struct {
	Strategy string            `json:"strategy"`
	Procs    int               `json:"procs"`
	Points   []load.SweepPoint `json:"points"`
	// Curve is the analysis of the points, or nil when too few were
	// sound; Verdict then says why.
	Curve *capacity.Curve `json:"curve"`
	Plan  *capacity.Plan  `json:"plan"`
	// Pinned says whether the buyers and the shop had cores of their own.
	Pinned  bool     `json:"pinned"`
	Verdict []string `json:"verdict"`
}

// Run sweeps.
func (s *Sweep) Run(ctx context.Context, p lab.Values, emit func(lab.Event)) error {
	if s.exe == "" {
		return errors.New("the lab was started without a shop to run")
	}
	levels, err := Levels(p.String("levels"))
	if err != nil {
		return err
	}
	opt := load.SweepOptions{Levels: levels, Step: time.Duration(p.Int("step")) * time.Millisecond,
		Warmup: 200 * time.Millisecond, Repeats: p.Int("repeats")}
	cfg := verify.Defaults()
	cfg.Exe, cfg.Strategy, cfg.Procs = s.exe, p.String("strategy"), p.Int("procs")
	cfg.Gap = time.Duration(p.Int("gap")) * time.Millisecond
	cfg.Stock, cfg.Limit = 1_000_000, 0
	s.be.apply(&cfg)
	emit(lab.Progress("starting the shop", 0, int64(len(levels)*opt.Repeats)))
	opt.Progress = func(pt load.SweepPoint, run, runs int) {
		emit(lab.Point("orders/s", float64(pt.Concurrency), pt.RPSRuns[len(pt.RPSRuns)-1]))
		emit(lab.Progress(fmt.Sprintf("%d buyers at once: %.0f orders/s", pt.Concurrency, pt.RPSRuns[len(pt.RPSRuns)-1]), int64(run), int64(runs)))
	}
	points, err := verify.Sweep(ctx, cfg, opt)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, verify.ErrConfig) || (err != nil && len(points) == 0) {
		return err
	}
	res := &SweepResult{Strategy: cfg.Strategy, Procs: cfg.Procs, Points: points}
	curve, cerr := capacity.Analyze(points)
	if cerr != nil {
		res.Verdict = []string{"No plan: " + cerr.Error() + "."}
	} else {
		plan := curve.Plan(capacity.Target{Users: p.Int("target")}, nil)
		res.Curve, res.Plan = curve, &plan
		res.Verdict = append(curve.Describe(), plan.Lines...)
	}
	// The buyers run in this process, the shop in its own: nothing pins
	// them apart, so on a small machine the figures are the pair's.
	res.Verdict = append(res.Verdict, fmt.Sprintf("The buyers ran in the lab on the same %d cores as the shop, not pinned apart: the capacity is the shop's and its buyers' together (stampede load and bench/usl.sh pin them apart).", runtime.NumCPU()))
	emit(lab.Result(res))
	return nil
}

// WriteText prints the sweep and the fitted law.
func (r *SweepResult) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "strategy %s in %d process(es)\n\n%8s %12s %10s %10s\n", r.Strategy, r.Procs, "buyers", "orders/s", "p50", "p99")
	for _, p := range r.Points {
		fmt.Fprintf(w, "%8d %12.0f %9.1fms %9.1fms\n", p.Concurrency, p.RPS, p.Latency.P50*1e3, p.Latency.P99*1e3)
	}
	_, err := fmt.Fprintf(w, "\n%s\n", strings.Join(r.Verdict, "\n"))
	return err
}
