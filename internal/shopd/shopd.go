// Package shopd assembles a running shop from its configuration: it opens
// the store named by a DSN, builds the chosen strategy, serves the HTTP API
// with timeouts and graceful shutdown, and runs several worker processes
// when asked to.
package shopd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stampede-dev/stampede/internal/prefork"
	"github.com/stampede-dev/stampede/internal/shop"
	"github.com/stampede-dev/stampede/internal/shop/api"
	"github.com/stampede-dev/stampede/internal/shop/postgres"
	"github.com/stampede-dev/stampede/internal/shop/redis"
	"github.com/stampede-dev/stampede/internal/shop/sqlite"
)

// Config is everything `stampede shop` can be told.
type Config struct {
	Addr        string // listen address
	Store       string // sqlite:PATH or postgres://…
	Redis       string // redis://… or empty
	RedisPrefix string // prefix of every Redis key
	Strategy    string // a name from shop.Strategies, or empty for the default
	Procs       int    // worker processes; 1 serves in this process
	Pool        int    // PostgreSQL connections per process; 0: fit the server's budget (see FitPool)
	Buckets     int    // rows per product for the buckets strategy
	// MaxInFlight bounds the orders placed at once before shedding. An
	// HTTP/1.1 connection carries one request at a time, so the default,
	// above the open files one process may hold, sheds nothing a crowd of
	// connected buyers sends: every buyer who got through the accept queue
	// is served.
	MaxInFlight  int
	OrderTimeout time.Duration // deadline of one order, store included
	BatchSize    int           // most orders in one group commit
	LockTTL      time.Duration // redis-lock expiry
	Gap          time.Duration // pause between read and write in read-then-write strategies
	// Ceiling replaces the API with a handler that answers every request
	// with a fixed 201 and touches nothing: the same server stack with no
	// work, to measure the most this machine can serve.
	Ceiling bool
}

// DefaultConfig is what `stampede shop` runs with no flags.
func DefaultConfig() Config {
	return Config{
		Addr:         "127.0.0.1:8081",
		Store:        "sqlite:stampede.db",
		RedisPrefix:  "stampede:",
		Procs:        1,
		Buckets:      8,
		MaxInFlight:  100000,
		OrderTimeout: 10 * time.Second,
		BatchSize:    512,
		LockTTL:      2 * time.Second,
	}
}

// Resolve checks c and fills in the default strategy. The warning, if not
// empty, is for the user: the configuration runs but will oversell.
func (c *Config) Resolve() (warning string, err error) {
	if _, _, err := splitStore(c.Store); err != nil {
		return "", err
	}
	if c.Procs < 1 || c.Procs > 64 {
		return "", fmt.Errorf("--procs must be from 1 to 64, not %d", c.Procs)
	}
	if c.Buckets < 1 || c.Buckets > 1024 {
		return "", fmt.Errorf("--buckets must be from 1 to 1024, not %d", c.Buckets)
	}
	if c.Pool < 0 || c.Pool > 10000 {
		return "", fmt.Errorf("--pool must be from 1 to 10000 (or 0 for as many as fit), not %d", c.Pool)
	}
	if c.MaxInFlight < 1 || c.BatchSize < 1 || c.OrderTimeout <= 0 || c.LockTTL <= 0 || c.Gap < 0 {
		return "", errors.New("--max-inflight, --batch, --order-timeout and --lock-ttl must be positive, --gap not negative")
	}
	if c.Strategy == "" {
		c.Strategy = "reserve"
		if c.Procs > 1 && c.Redis == "" {
			c.Strategy = "atomic"
		}
	}
	info, ok := shop.LookupStrategy(c.Strategy)
	if !ok {
		return "", fmt.Errorf("unknown strategy %q (see stampede shop --list-strategies)", c.Strategy)
	}
	if info.Redis && c.Redis == "" {
		return "", fmt.Errorf("strategy %s needs --redis redis://HOST:PORT", c.Strategy)
	}
	switch {
	case c.Strategy == "reserve" && c.Redis == "" && c.Procs > 1:
		return "", errors.New("strategy reserve without --redis keeps stock in one process's memory and would oversell with --procs > 1; add --redis, or use atomic, row-lock, buckets or redis-lock")
	case !info.Safe:
		return fmt.Sprintf("strategy %s is unsafe under concurrency and will oversell: it is here to show how", c.Strategy), nil
	case info.OneProcess && c.Procs > 1:
		return fmt.Sprintf("strategy %s is safe only in one process; with --procs %d it will oversell", c.Strategy, c.Procs), nil
	}
	return "", nil
}

func splitStore(dsn string) (kind, rest string, err error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		if rest = strings.TrimPrefix(dsn, "sqlite:"); rest == "" {
			return "", "", errors.New("--store sqlite: needs a path, as in sqlite:stampede.db")
		}
		return "sqlite", rest, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return "postgres", dsn, nil
	}
	return "", "", fmt.Errorf("--store %q: use sqlite:PATH or postgres://USER@HOST:PORT/DB", dsn)
}

// FitPool sizes the PostgreSQL pool of each of c.Procs processes so that
// together they never hold more connections than the server allows, less
// what superusers, other clients and operators need (postgres.Budget). A
// pool set by --pool or the DSN's pool_max_conns is checked, not changed;
// otherwise each process gets DefaultMaxConns or its share of the budget,
// whichever is smaller. It fails with one line saying what does not fit.
// SQLite needs nothing and returns at once.
func (c *Config) FitPool(ctx context.Context) error {
	kind, dsn, err := splitStore(c.Store)
	if err != nil || kind != "postgres" {
		return err
	}
	b, err := postgres.ReadBudget(ctx, dsn)
	if err != nil {
		return err
	}
	fromDSN, err := postgres.PoolSize(dsn)
	if err != nil {
		return err
	}
	const least = 2 // a writer and one reader
	want := c.Pool
	if want == 0 {
		want = fromDSN
	}
	if want > 0 {
		if c.Procs*want > b.Free() {
			return fmt.Errorf("%d process(es) × %d connections = %d, but %s; lower --procs or --pool, or raise max_connections",
				c.Procs, want, c.Procs*want, b)
		}
		c.Pool = want
		return nil
	}
	per := min(postgres.DefaultMaxConns, b.Free()/c.Procs)
	if per < least {
		return fmt.Errorf("%d process(es) need at least %d connections each, but %s; lower --procs or raise max_connections",
			c.Procs, least, b)
	}
	c.Pool = per
	return nil
}

// OpenStore opens the store a DSN names; pool bounds a PostgreSQL pool (0:
// the DSN's or the default).
func OpenStore(ctx context.Context, dsn string, pool int) (shop.Store, string, error) {
	kind, rest, err := splitStore(dsn)
	if err != nil {
		return nil, "", err
	}
	open := func(ctx context.Context, dsn string) (shop.Store, error) { return sqlite.Open(ctx, dsn) }
	if kind == "postgres" {
		open = func(ctx context.Context, dsn string) (shop.Store, error) { return postgres.Open(ctx, dsn, pool) }
	}
	s, err := open(ctx, rest)
	if err != nil {
		return nil, "", err // not a typed nil inside the interface
	}
	return s, kind, nil
}

// Server is one running shop process.
type Server struct {
	cfg      Config
	store    shop.Store
	rdb      *redis.Client
	strategy shop.Strategy
	http     *http.Server
	ln       net.Listener
}

// Open opens the stores, builds the strategy and binds the address; Serve
// starts answering. cfg must have been Resolved.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (_ *Server, err error) {
	s := &Server{cfg: cfg}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	var kind string
	if s.store, kind, err = OpenStore(ctx, cfg.Store, cfg.Pool); err != nil {
		return nil, err
	}
	if cfg.Redis != "" {
		if s.rdb, err = redis.Dial(ctx, cfg.Redis); err != nil {
			return nil, err
		}
	}
	if cfg.Strategy != "buckets" {
		if err := s.store.MergeBuckets(ctx); err != nil {
			return nil, err
		}
	}
	if s.strategy, err = s.newStrategy(ctx, log); err != nil {
		return nil, err
	}
	if s.ln, err = prefork.Listen(ctx, cfg.Addr); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	var h http.Handler = api.NewHandler(shop.NewService(s.store, s.strategy, cfg.MaxInFlight, cfg.OrderTimeout), kind, log)
	if cfg.Ceiling {
		h = ceiling{}
	}
	s.http = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      cfg.OrderTimeout + 5*time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

func (s *Server) newStrategy(ctx context.Context, log *slog.Logger) (shop.Strategy, error) {
	switch s.cfg.Strategy {
	case "naive":
		return shop.Naive{Store: s.store, Gap: s.cfg.Gap}, nil
	case "mutex":
		return &shop.Mutex{Store: s.store, Gap: s.cfg.Gap}, nil
	case "atomic":
		return shop.Atomic{Store: s.store}, nil
	case "row-lock":
		return shop.RowLock{Store: s.store}, nil
	case "buckets":
		return &shop.Buckets{Store: s.store, N: s.cfg.Buckets}, nil
	case "redis-lock":
		return redis.NewLock(s.rdb, s.store, s.cfg.RedisPrefix, s.cfg.LockTTL, s.cfg.Gap), nil
	case "reserve":
		if s.rdb != nil {
			return redis.NewReserve(ctx, s.rdb, s.store, s.cfg.RedisPrefix, s.cfg.BatchSize, log)
		}
		return shop.NewReserve(s.store, s.cfg.BatchSize, s.cfg.MaxInFlight), nil
	}
	return nil, fmt.Errorf("unknown strategy %q", s.cfg.Strategy)
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Strategy is the strategy the server runs.
func (s *Server) Strategy() string { return s.strategy.Name() }

// Serve answers requests until ctx ends, then stops taking new ones,
// finishes those in flight (up to grace), flushes the strategy's queue and
// closes the stores.
func (s *Server) Serve(ctx context.Context, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), grace)
		err = s.http.Shutdown(sctx)
		cancel()
		<-errc
	}
	return errors.Join(err, s.close())
}

func (s *Server) close() error {
	var err error
	if c, ok := s.strategy.(io.Closer); ok {
		err = c.Close()
	}
	if s.ln != nil && s.http == nil {
		s.ln.Close()
	}
	if s.rdb != nil {
		err = errors.Join(err, s.rdb.Close())
	}
	if s.store != nil {
		err = errors.Join(err, s.store.Close())
	}
	return err
}

// Run runs the shop as configured until ctx ends: in this process, or as
// cfg.Procs supervised workers that each call Run with Procs 1. ready, if
// not nil, is called with the address once it is being served.
func Run(ctx context.Context, cfg Config, args []string, log *slog.Logger, ready func(addr string)) error {
	if !prefork.IsWorker() {
		if err := cfg.FitPool(ctx); err != nil {
			return err
		}
	}
	if !prefork.IsWorker() && cfg.Strategy == "reserve" && cfg.Redis != "" {
		// Before any process takes an order: see redis.Reconcile.
		if err := reconcile(ctx, cfg, log); err != nil {
			return err
		}
	}
	if cfg.Procs > 1 && !prefork.IsWorker() {
		// Migrate once here, so workers start against a ready schema.
		st, _, err := OpenStore(ctx, cfg.Store, 1)
		if err != nil {
			return err
		}
		st.Close()
		ln, err := net.Listen("tcp", cfg.Addr) // fail here, not in N workers
		if err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
		}
		ln.Close()
		workerArgs := append(args, "--procs", "1", "--strategy", cfg.Strategy, "--pool", strconv.Itoa(cfg.Pool))
		return prefork.Supervise(ctx, cfg.Procs, workerArgs, 15*time.Second, log, func() {
			if ready != nil {
				ready(cfg.Addr)
			}
		})
	}
	raiseHeapFloor()
	s, err := Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	prefork.Ready()
	if ready != nil {
		ready(s.Addr())
	}
	return s.Serve(ctx, 15*time.Second)
}

// reconcile compares the Redis reserve's state with the store's and repairs
// it, at start.
func reconcile(ctx context.Context, cfg Config, log *slog.Logger) error {
	st, _, err := OpenStore(ctx, cfg.Store, 1)
	if err != nil {
		return err
	}
	defer st.Close()
	rc, err := redis.Dial(ctx, cfg.Redis)
	if err != nil {
		return fmt.Errorf("connect to redis: %w", err)
	}
	defer rc.Close()
	if _, err := redis.Reconcile(ctx, rc, st, cfg.RedisPrefix, log); err != nil {
		return fmt.Errorf("reconcile redis with the store: %w", err)
	}
	return nil
}

// ceiling is the trivial handler of Config.Ceiling.
type ceiling struct{}

var ceilingAnswer = []byte(`{"order_id":"ceiling"}` + "\n")

func (ceiling) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "23")
	w.WriteHeader(http.StatusCreated)
	w.Write(ceilingAnswer)
}

// heapFloor is live heap that takes no memory of its own: a pointer-free
// block the garbage collector need not scan, whose pages are never
// touched. See raiseHeapFloor.
var heapFloor []byte

// raiseHeapFloor keeps the collector from running every few milliseconds.
// A shop taking orders holds about 2 MiB of live heap and allocates several
// KiB an order (mostly net/http's), so at the default GOGC Go collects each
// time 4 MiB are allocated: about 100 times a second at 30,000 orders/s,
// 7 % of the CPU (gctrace). With heapFloor counted as live it collects
// about every 32 MiB: 50 times in 8 s of wrk instead of 673, and 5 to 10 %
// less CPU an order. The price is garbage: up to 32 MiB more heap between
// collections, whatever the crowd (the shop's peak RSS under wrk went from
// 40 to 75 MB). The workers of one shop share the 32 MiB, so that the
// price stays 32 MiB however many there are: with 12,500 connections each
// they hold enough heap to collect seldom anyway. (In the 100,000-buyer
// stampede the shop's peak was 9.2 KiB a connection so, 10.1 with a floor
// of 32 MiB in each of 8 workers and 9.9 with none: within the noise of
// a run.) A GOGC set by the user is left alone.
func raiseHeapFloor() {
	if n := heapFloorSize(prefork.Processes()); n > 0 && heapFloor == nil {
		heapFloor = make([]byte, n)
	}
}

// heapFloorSize is the floor raiseHeapFloor sets in each of procs
// processes: none under a GOGC of the user's.
func heapFloorSize(procs int) int {
	if os.Getenv("GOGC") != "" {
		return 0
	}
	return 32 << 20 / procs
}
