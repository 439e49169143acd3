// Package flashsale is the lab's chapter 8: the flash sale, live. It runs
// the real shop (this binary's `shop`, on a temporary SQLite file) with
// the strategy and processes the learner picks, brings the buyers with the
// load engine, optionally kills a worker or the whole shop halfway, and
// then checks the books as `stampede verify` does: oversold or not, every
// acknowledged order stored, limits held, the stock linearizable.
package flashsale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/stampede-dev/stampede/internal/lab"
	"github.com/stampede-dev/stampede/internal/verify"
)

// Experiment runs a sale. Its zero value cannot run: New gives it the
// binary that serves the shop.
type Experiment struct {
	exe string
}

// New returns the experiment; exe is the stampede binary whose `shop`
// subcommand the sale runs against.
func New(exe string) *Experiment { return &Experiment{exe: exe} }

var _ lab.Experiment = (*Experiment)(nil)

// Strategies the page offers: those that run on the embedded store
// without Redis. reserve in more than one process needs Redis, which the
// shop refuses to do without; the page says so when asked.
var strategies = []string{"naive", "mutex", "atomic", "row-lock", "buckets", "reserve"}

// Info describes the experiment.
func (*Experiment) Info() lab.Info {
	return lab.Info{
		ID: "flashsale", Chapter: 8, Heavy: true,
		Title:   "The flash sale, live: does the shop oversell?",
		Summary: "The real shop, a crowd of buyers from the load engine, an optional crash, and the books checked afterwards.",
		Params: []lab.Param{
			{Name: "strategy", Label: "Strategy", Kind: lab.Choice, Choices: strategies, Default: "reserve"},
			{Name: "procs", Label: "Shop processes", Kind: lab.Int, Default: 1, Min: 1, Max: 8,
				Help: "worker processes sharing one port; a lock inside one process does not reach the others"},
			{Name: "gap", Label: "Work between read and write", Unit: "ms", Kind: lab.Int, Default: 0, Min: 0, Max: 100,
				Help: "naive and mutex pause this long between reading the stock and writing the order, as real work would; it widens the race"},
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
	// Oversold is how many units were sold beyond the stock (0 if none).
	Oversold int64          `json:"oversold"`
	Report   *verify.Report `json:"report"`
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
	if cfg.Strategy == "reserve" && cfg.Procs > 1 {
		return errors.New("reserve keeps its stock in one process's memory: in more than one process it needs Redis (stampede verify --redis private), which the lab's sale does not start")
	}
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
	res := &Result{Strategy: cfg.Strategy, Procs: cfg.Procs, Initial: int64(cfg.Stock), Report: rep}
	if over := int64(rep.Outcomes.Stored) - int64(cfg.Stock); over > 0 {
		res.Oversold = over
	}
	emit(lab.Result(res))
	return nil
}

// WriteText prints the verdict as stampede verify does.
func (r *Result) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "strategy %s in %d process(es), %d units\n\n", r.Strategy, r.Procs, r.Initial)
	return verify.WriteText(w, r.Report)
}
