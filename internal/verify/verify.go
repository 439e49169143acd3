// Package verify runs a flash sale against a real shop, injects faults on a
// schedule, records every operation, and then proves what the sale did, as
// Jepsen does for databases: the books balance, nothing is oversold, every
// acknowledged order is stored exactly once and nothing else is, per-user
// limits hold, nothing is undersold, retries replay their order, and the
// history of stock reads is linearizable (checked with porcupine).
//
// The shop is this binary's `shop` subcommand in processes of its own;
// when a fault needs control of a backend, verify starts a private one from
// the binaries on the machine (redis-server; initdb and pg_ctl).
package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stampede-dev/stampede/internal/backend"
	"github.com/stampede-dev/stampede/internal/load"
	"github.com/stampede-dev/stampede/internal/shop"
)

// Config is one verification. Zero values take the defaults of Defaults.
type Config struct {
	Exe      string // the stampede binary that serves `shop`
	Strategy string // the shop's --strategy; empty: the shop's default
	// Store is "sqlite" (a temporary file), "sqlite:PATH" (a file that
	// stays), "postgres" (a private cluster, which pg-pause needs) or a DSN
	// to use as it is.
	Store string
	// Redis is "" (none), "private" (a private redis-server, which
	// redis-restart needs) or a URL to use as it is.
	Redis string
	Procs int           // shop worker processes
	Gap   time.Duration // the shop's --gap: read-then-write strategies' race window

	Stock     int           // units on sale
	Limit     int           // per-user limit; 0: none
	Purchases int           // purchases in all, one unit each
	Users     int           // users they buy for, drawn at random for each purchase
	Duration  time.Duration // the purchases are spread evenly over this long
	InFlight  int           // purchases in flight at most
	Readers   int           // clients reading the stock throughout the sale
	Timeout   time.Duration // a purchase retries 503s and lost connections this long
	Faults    []Fault
	// MaxStall is the longest a purchase may wait for a definite answer,
	// outside the windows in which a fault holds the shop or a backend
	// down (a frozen PostgreSQL answers nobody); 0: not checked.
	MaxStall time.Duration

	// Progress, if not nil, hears one line per phase.
	Progress io.Writer
	// Live, if not nil, is called once a second of the sale with that
	// second's answers: for a live picture (the lab's flash sale).
	Live func(Live)
}

// Live is one second of the sale as it happens.
type Live struct {
	At            time.Duration `json:"at_ns"` // since the sale started
	Acknowledged  int           `json:"acknowledged"`
	SoldOut       int           `json:"sold_out"`
	LimitExceeded int           `json:"limit_exceeded"`
	Failed        int           `json:"failed"`   // unsettled or another answer
	Requests      int64         `json:"requests"` // HTTP answers and transport errors, retries included
	P50, P99      time.Duration `json:"-"`        // of this second's answers
	// Stock is the last stock a reader saw, if Read.
	Stock int64 `json:"stock"`
	Read  bool  `json:"read"`
}

// Defaults is a sale of 600 purchases by 200 users, each allowed 2 units,
// for 300 units: some users are refused for the limit while stock remains,
// and the stock sells out near the end of the 6 s.
func Defaults() Config {
	return Config{
		Store: "sqlite", Procs: 1,
		Stock: 300, Limit: 2, Purchases: 600, Users: 200,
		Duration: 6 * time.Second, InFlight: 256, Readers: 2, Timeout: 10 * time.Second,
		MaxStall: 2 * time.Second,
	}
}

// Errors of a configuration that cannot run.
var (
	ErrConfig = errors.New("invalid verification")
)

func (c *Config) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	switch {
	case c.Exe == "":
		return bad("no stampede binary to run the shop")
	case c.Procs < 1 || c.Procs > 64:
		return bad("--procs must be from 1 to 64")
	case c.Stock < 1 || c.Stock > 1_000_000:
		return bad("--stock must be from 1 to 1000000")
	case c.Limit < 0 || c.Limit > 1_000_000:
		return bad("--limit must be from 0 (none) to 1000000")
	case c.Purchases < 1 || c.Purchases > 1_000_000:
		return bad("--purchases must be from 1 to 1000000")
	case c.Users < 1 || c.Users > c.Purchases:
		return bad("--users must be from 1 to --purchases")
	case c.Duration < 100*time.Millisecond || c.Duration > time.Hour:
		return bad("-d must be from 100ms to 1h")
	case c.InFlight < 1 || c.InFlight > 10_000:
		return bad("--inflight must be from 1 to 10000")
	case c.Readers < 0 || c.Readers > 64:
		return bad("--readers must be from 0 to 64")
	case c.Timeout < 100*time.Millisecond || c.Timeout > 10*time.Minute:
		return bad("--timeout must be from 100ms to 10m")
	case c.Gap < 0 || c.Gap > 10*time.Second:
		return bad("--gap must be from 0 to 10s")
	case c.MaxStall < 0:
		return bad("--max-stall must not be negative")
	}
	// What the shop would refuse at its start is refused here, before a
	// backend or the shop is started.
	if _, ok := shop.LookupStrategy(c.Strategy); c.Strategy != "" && !ok {
		var names []string
		for _, s := range shop.Strategies() {
			names = append(names, s.Name)
		}
		return bad("--strategy %q: want one of %s", c.Strategy, strings.Join(names, ", "))
	}
	if c.Store != "sqlite" && c.Store != "postgres" && !strings.HasPrefix(c.Store, "sqlite:") && !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") {
		return bad("--store %q: want sqlite (a file of the run's own), sqlite:PATH (a file that stays), postgres (a private server) or a postgres:// DSN", c.Store)
	}
	if c.Redis != "" && c.Redis != "private" && !strings.HasPrefix(c.Redis, "redis://") && !strings.HasPrefix(c.Redis, "rediss://") {
		return bad("--redis %q: want private (a private server) or a redis:// URL", c.Redis)
	}
	for _, f := range c.Faults {
		switch {
		case f.Kind == KillWorker && c.Procs < 2:
			return bad("%s needs a shop of worker processes: --procs 2 or more", KillWorker)
		case f.Kind == RedisRestart && c.Redis != "private":
			return bad("%s needs a Redis that verify may kill: --redis private", RedisRestart)
		case f.Kind == PGPause && c.Store != "postgres":
			return bad("%s needs a PostgreSQL that verify may freeze: --store postgres", PGPause)
		case f.At >= c.Duration:
			return bad("fault %v comes after the sale's %v", f, c.Duration)
		}
	}
	return nil
}

// reachable dials the store and the Redis given as URLs, so that a wrong
// host or a server that is not running is said before anything starts,
// as a mistake in the command line (ErrConfig), not as a broken sale.
func (c *Config) reachable(ctx context.Context) error {
	for _, b := range []struct{ flag, url, port string }{
		{"--store", c.Store, "5432"}, {"--redis", c.Redis, "6379"},
	} {
		if !strings.Contains(b.url, "://") {
			continue // sqlite, a private server, or none
		}
		u, err := url.Parse(b.url)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrConfig, b.flag, err)
		}
		if strings.HasPrefix(u.Query().Get("host"), "/") {
			continue // a Unix socket: the shop says what it finds
		}
		host := u.Hostname()
		if host == "" || strings.Contains(u.Host, ",") || u.Query().Has("host") {
			continue // the driver's defaults, several hosts, or a host in the query: the shop says what it finds
		}
		port := u.Port()
		if port == "" {
			port = b.port
		}
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", net.JoinHostPort(host, port))
		cancel()
		if err != nil {
			return fmt.Errorf("%w: %s %s: cannot reach %s: %v", ErrConfig, b.flag, u.Redacted(), net.JoinHostPort(host, port), unwrapDial(err))
		}
		conn.Close()
	}
	return nil
}

// unwrapDial keeps the cause of a dial error, without the repeated address.
func unwrapDial(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// run is one verification under way.
type run struct {
	cfg   Config
	dir   string
	shop  *shopProc
	redis *backend.Redis
	pg    *backend.Postgres
	start time.Time // the sale's start, zero of every timestamp

	product int64
	initial int64

	mu        sync.Mutex
	purchases []load.Purchase
	during    []load.Purchase // the purchases as the sale left them, before settling
	reads     []read
}

// read is one stock read by a reader.
type read struct {
	Start, End time.Time
	Stock      int64
}

func (r *run) progress(format string, a ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "verify: "+format+"\n", a...)
	}
}

// Run starts the backends and the shop, runs the sale with its faults,
// settles it and checks it. The error is for a verification that could not
// run; a sale that broke an invariant is a Report that says so.
func Run(ctx context.Context, cfg Config) (_ *Report, err error) {
	r, done, err := begin(ctx, cfg, "stampede-verify-")
	if err != nil {
		return nil, err
	}
	defer done()
	r.progress("sale: %d purchases by %d users for %d units over %v, faults %v", cfg.Purchases, cfg.Users, cfg.Stock, cfg.Duration, cfg.Faults)
	events, res, err := r.sale(ctx)
	if ctx.Err() != nil {
		return nil, errors.New("interrupted: the sale was not checked; the shop and its backends are stopped")
	}
	if err != nil {
		return nil, err
	}
	r.during = slices.Clone(r.purchases)
	r.progress("settling: %d purchases recorded, %d stock reads", len(r.purchases), len(r.reads))
	st, err := r.settle(ctx)
	if err != nil {
		return nil, err
	}
	r.progress("checking")
	rep := r.check(st)
	r.checkRan(rep, events)
	rep.Events = events
	rep.Timeline = r.timeline(events)
	rep.History = r.historyOps()
	rep.Requests, rep.Errors = res.Latency.TotalCount(), 0
	for _, n := range res.Errors {
		rep.Errors += n
	}
	return rep, nil
}

// begin checks cfg, then starts its backends and the shop in a temporary
// directory named from prefix; done stops them and removes it.
func begin(ctx context.Context, cfg Config, prefix string) (r *run, done func(), err error) {
	if err := cfg.check(); err != nil {
		return nil, nil, err
	}
	if err := cfg.reachable(ctx); err != nil {
		return nil, nil, err
	}
	r = &run{cfg: cfg}
	if n := backend.SweepStale(); n > 0 {
		r.progress("removed %d folders (and any PostgreSQL in them) left by killed runs", n)
	}
	if r.dir, err = backend.TempDir(prefix); err != nil {
		return nil, nil, err
	}
	done = func() {
		r.close()
		backend.RemoveDir(r.dir)
	}
	if err := r.open(ctx); err != nil {
		done()
		return nil, nil, err
	}
	return r, done, nil
}

// open starts the private backends and the shop, and creates the product.
func (r *run) open(ctx context.Context) error {
	cfg := r.cfg
	store := cfg.Store
	switch store {
	case "sqlite":
		store = "sqlite:" + filepath.Join(r.dir, "shop.db")
	case "postgres":
		r.progress("starting a private PostgreSQL")
		pg, err := backend.StartPostgres(ctx)
		if err != nil {
			return err
		}
		r.pg, store = pg, pg.DSN
	}
	redisURL := cfg.Redis
	if redisURL == "private" {
		r.progress("starting a private Redis")
		rs, err := backend.StartRedis(ctx)
		if err != nil {
			return err
		}
		r.redis, redisURL = rs, rs.URL
	}
	port, err := backend.FreePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := []string{"shop", "--addr", addr, "--store", store, "--procs", strconv.Itoa(cfg.Procs),
		"--redis-prefix", "verify-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"}
	if cfg.Strategy != "" {
		args = append(args, "--strategy", cfg.Strategy)
	}
	if redisURL != "" {
		args = append(args, "--redis", redisURL)
	}
	if cfg.Gap > 0 {
		args = append(args, "--gap", cfg.Gap.String())
	}
	log, err := os.Create(filepath.Join(r.dir, "shop.log"))
	if err != nil {
		return err
	}
	r.shop = &shopProc{exe: cfg.Exe, args: args, base: "http://" + addr, http: newClient(), log: log}
	r.progress("starting the shop: stampede %s", strings.Join(args, " "))
	if err := r.shop.start(ctx); err != nil {
		return err
	}
	var p struct {
		ID    int64 `json:"id"`
		Stock int64 `json:"stock"`
	}
	body := fmt.Appendf(nil, `{"name":"verify","stock":%d,"per_user_limit":%d}`, cfg.Stock, cfg.Limit)
	status, err := r.shop.do(ctx, "POST", "/api/products", body, "", &p)
	if err != nil || status != 201 {
		return fmt.Errorf("create the product: status %d %v", status, err)
	}
	r.product, r.initial = p.ID, p.Stock
	return nil
}

func (r *run) close() {
	if r.shop != nil {
		r.shop.stop()
		r.shop.log.Close()
		r.shop.http.CloseIdleConnections()
	}
	if r.redis != nil {
		r.redis.Kill()
	}
	if r.pg != nil {
		r.pg.Close()
	}
}

// sale runs the buyers, the readers and the faults together.
func (r *run) sale(ctx context.Context) ([]Event, *load.Result, error) {
	cfg := r.cfg
	base, err := load.NewTarget("POST", r.shop.base, nil, nil)
	if err != nil {
		return nil, nil, err
	}
	lc := load.Config{
		Targets:     []load.Target{load.SaleTarget(base)},
		Rate:        float64(cfg.Purchases) / cfg.Duration.Seconds(),
		MaxInFlight: cfg.InFlight,
		Duration:    cfg.Duration,
		Requests:    int64(cfg.Purchases),
		Timeout:     cfg.Timeout,
		KeepAlive:   true,
		Sale: &load.FlashSale{
			ProductID: strconv.FormatInt(r.product, 10), Users: cfg.Users, Quantity: 1, Shuffled: true,
			RunID: "v" + strconv.FormatInt(time.Now().UnixNano(), 36),
			Record: func(p load.Purchase) {
				r.mu.Lock()
				r.purchases = append(r.purchases, p)
				r.mu.Unlock()
			},
		},
	}
	seen := 0 // purchases already counted in a Live second
	lc.Tick = func(elapsed time.Duration, sec load.Second) {
		r.mu.Lock()
		n := len(r.purchases)
		lv := Live{At: elapsed, Requests: sec.Requests}
		for _, p := range r.purchases[seen:] {
			switch p.Outcome {
			case load.Acknowledged:
				lv.Acknowledged++
			case load.SoldOut:
				lv.SoldOut++
			case load.LimitExceeded:
				lv.LimitExceeded++
			default:
				lv.Failed++
			}
		}
		seen = n
		if len(r.reads) > 0 {
			lv.Stock, lv.Read = r.reads[len(r.reads)-1].Stock, true
		}
		r.mu.Unlock()
		if sec.Latency.TotalCount() > 0 {
			lv.P50 = time.Duration(sec.Latency.ValueAtQuantile(50)) * time.Microsecond
			lv.P99 = time.Duration(sec.Latency.ValueAtQuantile(99)) * time.Microsecond
		}
		if cfg.Live != nil {
			cfg.Live(lv)
		}
		if s := elapsed.Round(time.Second); s%(5*time.Second) == 0 {
			r.progress("%v: %d of %d purchases answered", s, n, cfg.Purchases)
		}
	}
	saleDone := make(chan struct{})
	var wg sync.WaitGroup
	events := make([]Event, len(cfg.Faults))
	r.start = time.Now()
	for i, f := range cfg.Faults {
		wg.Go(func() { events[i] = r.inject(ctx, saleDone, f) })
	}
	readCtx, stopReads := context.WithCancel(ctx)
	for range cfg.Readers {
		wg.Go(func() { r.readStock(readCtx) })
	}
	res, err := load.Run(ctx, lc)
	close(saleDone)
	stopReads()
	wg.Wait()
	if err != nil {
		return nil, nil, fmt.Errorf("the sale: %w", err)
	}
	return events, res, ctx.Err()
}

// readStock reads the product's stock until ctx ends, recording each
// answer with the time it was asked and the time it came.
func (r *run) readStock(ctx context.Context) {
	u := "/api/products/" + strconv.FormatInt(r.product, 10)
	for ctx.Err() == nil {
		var p struct {
			Stock *int64 `json:"stock"`
		}
		start := time.Now()
		status, err := r.shop.get(ctx, u, &p)
		end := time.Now()
		if err == nil && status == 200 && p.Stock != nil {
			r.mu.Lock()
			r.reads = append(r.reads, read{Start: start, End: end, Stock: *p.Stock})
			r.mu.Unlock()
		}
		pause(ctx, 10*time.Millisecond)
	}
}

// settled is the sale as the shop holds it once it has settled.
type settled struct {
	stock, sold int64
	orders      []order
	replays     []replay // every acknowledged purchase sent again
}

type order struct {
	ID       string `json:"order_id"`
	User     string `json:"user_id"`
	Quantity int64  `json:"quantity"`
	Key      string `json:"idempotency_key"`
}

// replay is an acknowledged purchase sent again with its key.
type replay struct {
	key, want, got string
	status         int
	outcome        load.Outcome
}

// settleWait bounds the wait for the shop to be ready and for the
// unsettled purchases to be answered after the sale.
const settleWait = 60 * time.Second

// settle waits for the shop to be ready, sends every purchase still
// unsettled again with its key until it is answered (as its buyer would),
// sends every acknowledged purchase again to see its order replayed (again
// while the answer settles nothing), and reads the product and its orders.
func (r *run) settle(ctx context.Context) (settled, error) {
	var st settled
	deadline := time.Now().Add(settleWait)
	for {
		status, _ := r.shop.get(ctx, "/readyz", nil)
		if status == 200 {
			break
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("the shop was not ready within %v of the sale's end: %s", settleWait, r.shop.lastLogLine())
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return st, err
		}
	}
	for i := range r.purchases {
		p := &r.purchases[i]
		for p.Outcome == load.Unsettled && time.Now().Before(deadline) {
			r.resend(ctx, p)
			if p.Outcome == load.Unsettled {
				pause(ctx, 100*time.Millisecond)
			}
		}
	}
	for _, p := range r.purchases {
		if p.Outcome != load.Acknowledged {
			continue
		}
		// A replay answered 503 (a shop still rebuilding after Redis came
		// back) settles nothing: it is asked again, as a buyer would,
		// until it gets a definite answer or the settling time is up.
		q := p
		r.resend(ctx, &q)
		for q.Outcome == load.Unsettled && time.Now().Before(deadline) && pause(ctx, 100*time.Millisecond) == nil {
			r.resend(ctx, &q)
		}
		st.replays = append(st.replays, replay{key: p.Key, want: p.OrderID, got: q.OrderID, status: q.Status, outcome: q.Outcome})
	}
	id := strconv.FormatInt(r.product, 10)
	var prod struct{ Stock, Sold int64 }
	if status, err := r.shop.get(ctx, "/api/products/"+id, &prod); err != nil || status != 200 {
		return st, fmt.Errorf("read the product after the sale: status %d %v", status, err)
	}
	st.stock, st.sold = prod.Stock, prod.Sold
	orders, err := r.shop.orders(ctx, id)
	if err != nil {
		return st, err
	}
	st.orders = orders
	return st, ctx.Err()
}

// resend sends p again with its key and records the answer in p, read
// as the load engine reads the flash sale's answers.
func (r *run) resend(ctx context.Context, p *load.Purchase) {
	body := fmt.Appendf(nil, `{"product_id":%d,"user_id":%q,"quantity":%d}`, r.product, p.User, p.Quantity)
	status, answer, err := r.shop.raw(ctx, "POST", "/api/orders", body, p.Key)
	p.Attempts++
	p.End = time.Now()
	p.Status = status
	p.Outcome, p.OrderID = load.SaleOutcome(status, answer, err)
}

// historyOps lists the purchases and reads by call time.
func (r *run) historyOps() []Op {
	ops := make([]Op, 0, len(r.purchases)+len(r.reads))
	for _, p := range r.purchases {
		ops = append(ops, Op{Kind: "purchase", Call: p.Start.Sub(r.start), Return: p.End.Sub(r.start),
			Key: p.Key, User: p.User, Outcome: p.Outcome.String(), OrderID: p.OrderID, Attempts: p.Attempts})
	}
	for _, rd := range r.reads {
		ops = append(ops, Op{Kind: "read", Call: rd.Start.Sub(r.start), Return: rd.End.Sub(r.start), Stock: &rd.Stock})
	}
	slices.SortStableFunc(ops, func(a, b Op) int { return cmp.Compare(a.Call, b.Call) })
	return ops
}

// Sweep starts the backends and the shop as Run does, with a product of
// cfg.Stock units and cfg.Limit, and sweeps the shop's purchases with the
// load engine's closed model (load.Sweep with opt), every purchase a new
// user's. The stock must last the whole sweep, or the later steps measure
// sold_out answers.
func Sweep(ctx context.Context, cfg Config, opt load.SweepOptions) ([]load.SweepPoint, error) {
	r, done, err := begin(ctx, cfg, "stampede-sweep-")
	if err != nil {
		return nil, err
	}
	defer done()
	base, err := load.NewTarget("POST", r.shop.base, nil, nil)
	if err != nil {
		return nil, err
	}
	lc := load.Config{
		Targets: []load.Target{load.SaleTarget(base)}, Timeout: cfg.Timeout, KeepAlive: true,
		Sale: &load.FlashSale{ProductID: strconv.FormatInt(r.product, 10), Users: load.MaxUsers, Quantity: 1,
			RunID: "s" + strconv.FormatInt(time.Now().UnixNano(), 36)},
	}
	r.progress("sweep: %v, %v each, %d runs each", opt.Levels, opt.Step, max(opt.Repeats, 1))
	return load.Sweep(ctx, lc, opt)
}
