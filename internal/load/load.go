// Package load is stampede's load generator: a closed model (virtual users
// that each wait for their last answer) or an open model (a fixed arrival
// rate, latency measured from each request's intended send time), over a
// lean HTTP/1.1 client that reuses its buffers, with HdrHistogram latency
// and the flash-sale scenario's correctness bookkeeping.
package load

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Target is one request to send.
type Target struct {
	Method string
	URL    *url.URL
	Header http.Header
	Body   []byte
}

// FlashSale is the scenario that buys from a stampede shop: purchase k goes
// to user (k*Slices + Slice) mod Users with its own Idempotency-Key, kept
// across retries. Slices splits the users between the processes of one
// run (--procs): process i of n buys only for users i, i+n, i+2n, …, so no
// two processes buy for one user and a per-user limit sees each user once.
type FlashSale struct {
	ProductID string // as a JSON literal: 7 or "abc"
	Users     int
	Quantity  int
	RunID     string // keys are RunID-k, so runs do not replay each other
	Slice     int    // this process's share of the users, from 0
	Slices    int    // shares in all; 0 or 1: every user is this process's
	// Shuffled draws each purchase's user from a fixed pseudo-random
	// sequence instead of taking turns, so that a user may come back
	// before every other user has bought: a per-user limit is met while
	// stock remains. It needs Slices of 0 or 1.
	Shuffled bool
	// Record, if not nil, is called once per purchase when it has its final
	// answer, from the goroutine that made it: a checker's history
	// (stampede verify). It must be safe for concurrent use and quick.
	Record func(Purchase)
}

// Purchase is one buyer's purchase as the flash sale saw it, from the
// first attempt to the final answer, retries included.
type Purchase struct {
	Key      string // the Idempotency-Key, the same on every attempt
	User     string
	Quantity int
	// Start is taken before the first attempt is sent and End after the
	// final answer was read: the purchase took effect, if at all, between.
	Start, End time.Time
	Attempts   int
	Status     int     // the final HTTP status; 0 after a transport error
	Outcome    Outcome // what the final answer settled
	OrderID    string  // the order, when acknowledged
}

// Outcome is what a purchase's final answer settled.
type Outcome int

const (
	// Other is an answer that settles nothing the sale knows (a 500, a 404).
	Other Outcome = iota
	// Acknowledged is a 201, or a 200 replaying the stored order.
	Acknowledged
	// SoldOut is a 409 sold_out.
	SoldOut
	// LimitExceeded is a 409 limit_exceeded.
	LimitExceeded
	// Unsettled is a 503, a 504 or a transport error still unanswered when the
	// timeout passed: the order may or may not have been taken.
	Unsettled
)

var outcomeNames = [...]string{"other", "acknowledged", "sold_out", "limit_exceeded", "unsettled"}

func (o Outcome) String() string { return outcomeNames[o] }

// user is the user purchase k buys for.
func (s *FlashSale) user(k int64) int64 {
	if s.Shuffled {
		return int64(mix(uint64(k)) % uint64(s.Users))
	}
	n := int64(max(s.Slices, 1))
	return (k*n + int64(s.Slice)) % int64(s.Users)
}

// mix is splitmix64's finaliser: a fixed permutation of the integers whose
// outputs look random.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// Config describes a run. Set either Rate (open model) or Users (closed).
type Config struct {
	Targets     []Target
	Users       int           // closed model: virtual users
	Rate        float64       // open model: requests per second
	MaxInFlight int           // open model: requests in flight at most
	Stages      []Stage       // ramp Users or Rate instead of holding it
	Duration    time.Duration // stop after this long (0: by Requests or stages)
	// Warmup runs the load this long before Duration starts: what
	// completes in it is not counted, and the users and their connections
	// are already at work when the measured time begins.
	Warmup      time.Duration
	Requests    int64         // stop after this many requests (0: by time)
	Think       time.Duration // closed model: pause between a user's requests
	Timeout     time.Duration // per request
	KeepAlive   bool
	Connections int      // cap on open connections (0: one per user or in-flight request)
	SourceIPs   []net.IP // local addresses to spread connections over
	Insecure    bool     // accept any TLS certificate
	Sale        *FlashSale
	// Engine chooses how requests are sent: EngineAuto (the default),
	// EngineEpoll or EngineGoroutines.
	Engine string
	// Tick, if not nil, is called once a second with the second just ended.
	Tick func(elapsed time.Duration, s Second)
}

// Errors a Config can have.
var (
	ErrNoTarget = errors.New("no target")
	ErrNoStop   = errors.New("set -d, -n or --stages, or the run never ends")
)

// Check says what is wrong with c, or nil; Run checks it too.
func (c *Config) Check() error {
	switch {
	case len(c.Targets) == 0:
		return ErrNoTarget
	case c.Duration == 0 && c.Requests == 0 && c.Stages == nil:
		return ErrNoStop
	case c.Rate < 0 || c.Users < 0 || c.Requests < 0 || c.Duration < 0:
		return errors.New("rates, users, counts and durations must not be negative")
	case !(c.Rate <= MaxRate) || c.Users > MaxUsers || c.MaxInFlight > MaxUsers: // NaN fails <=
		return fmt.Errorf("at most %d requests/s and %d users or requests in flight", MaxRate, MaxUsers)
	case c.Rate == 0 && c.Users == 0 && c.Stages == nil:
		return errors.New("set -c users (closed model) or --rate (open model)")
	case c.Warmup > 0 && c.Stages != nil:
		return errors.New("--warmup with --stages: let the first stage ramp up instead")
	case c.Warmup < 0:
		return errors.New("warmup must not be negative")
	}
	for _, st := range c.Stages {
		if !(st.Target >= 0 && st.Target <= MaxRate) || (c.Rate == 0 && st.Target > MaxUsers) {
			return fmt.Errorf("stage target %g: at most %d users, or %d requests/s with --rate", st.Target, MaxUsers, MaxRate)
		}
	}
	for _, t := range c.Targets {
		if t.URL.Scheme != "http" && t.URL.Scheme != "https" {
			return fmt.Errorf("target %s: only http and https URLs", t.URL)
		}
	}
	switch c.Engine {
	case EngineAuto, EngineGoroutines:
	case EngineEpoll:
		if err := reactorFits(c); err != nil {
			return fmt.Errorf("the epoll engine cannot run %v; leave --engine out", err)
		}
	default:
		return fmt.Errorf("engine %q: epoll or goroutines", c.Engine)
	}
	return nil
}

// CheckFiles says whether this process may open a connection for every
// user (or request in flight) at once, or nil; Run checks it too. A run
// spread over processes checks each process's share.
func (c *Config) CheckFiles() error {
	need := c.connectionsNeeded()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil && need > 0 && uint64(need)+64 > lim.Cur {
		return fmt.Errorf("%d users need a connection each, and this process may open %d files: raise ulimit -n (up to %d here), cap --connections, or spread them over processes with --procs", need, lim.Cur, lim.Max)
	}
	return nil
}

// connectionsNeeded is how many connections the closed model holds at
// once at most: one a user, up to --connections.
func (c *Config) connectionsNeeded() int {
	if c.open() {
		// The open model opens connections as the service falls behind,
		// up to --max-inflight: running out is reported as it happens
		// (too_many_open_files), not assumed.
		return 0
	}
	n := c.Users
	for _, st := range c.Stages {
		if !c.open() {
			n = max(n, int(st.Target+0.5))
		}
	}
	if c.Connections > 0 {
		n = min(n, c.Connections)
	}
	return n
}

// reactor reports whether the run goes through the epoll reactor.
func (c *Config) reactor() bool {
	return c.Engine != EngineGoroutines && reactorFits(c) == nil
}

// open reports whether the run uses the open model.
func (c *Config) open() bool { return c.Rate > 0 }

// Run runs the load until the duration, the request count or the stages
// end, or ctx is cancelled (which still returns the result so far).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if err := cfg.CheckFiles(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Warmup < 0 {
		return nil, errors.New("warmup must not be negative")
	}
	e := &engine{cfg: cfg, res: NewResult()}
	e.res.Mode, e.res.Target = "closed", cfg.Targets[0].URL.String()
	if cfg.open() {
		e.res.Mode = "open"
	}
	e.shards = make([]*shard, 16)
	for i := range e.shards {
		e.shards[i] = &shard{w: newWindow()}
	}
	e.dial = (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: -1}).DialContext
	e.std = &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: cfg.Insecure},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: max(cfg.Users, cfg.MaxInFlight, 100),
		MaxConnsPerHost:     cfg.Connections,
		DisableKeepAlives:   !cfg.KeepAlive,
		DialContext:         e.dialContext,
	}}
	if cfg.Connections > 0 {
		e.connSlots = make(chan struct{}, cfg.Connections)
	}
	e.reqs = make([][]byte, len(cfg.Targets))
	e.last = make([]bool, len(cfg.Targets))
	e.retry = make([]bool, len(cfg.Targets))
	for i, t := range cfg.Targets {
		e.reqs[i] = buildRequest(t, cfg.KeepAlive)
		e.last[i] = !cfg.KeepAlive || asksClose(t.Header)
		e.retry[i] = cfg.Sale != nil || idempotent(t.Method)
	}
	return e.run(ctx)
}

// shard is a share of the recording; workers spread over shards so that
// neither one lock nor one histogram per worker (c can be 100,000) is needed.
type shard struct {
	mu sync.Mutex
	w  *window
}

type engine struct {
	cfg       Config
	res       *Result
	shards    []*shard
	reqs      [][]byte
	last      []bool // per target: the request asks to close its connection
	retry     []bool // per target: may be sent again when a reused connection had closed
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	std       *http.Client
	connSlots chan struct{}
	issued    atomic.Int64
	unsent    atomic.Int64 // open model: slots due by the hard end and never sent
	purchases atomic.Int64
	srcNext   atomic.Uint64
	start     time.Time
	// measureFrom is when the warmup ends and counting starts; hardEnd,
	// unless zero, is when the run ends: a request unanswered then is
	// unfinished, neither an answer nor an error.
	measureFrom, hardEnd time.Time
	// reactorDone is closed when every reactor loop has returned.
	reactorDone chan struct{}
}

func (e *engine) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if len(e.cfg.SourceIPs) == 0 {
		return e.dial(ctx, network, addr)
	}
	ip := e.cfg.SourceIPs[e.srcNext.Add(1)%uint64(len(e.cfg.SourceIPs))]
	d := net.Dialer{Timeout: e.cfg.Timeout, KeepAlive: -1, LocalAddr: &net.TCPAddr{IP: ip}, Control: bindNoPort}
	return d.DialContext(ctx, network, addr)
}

// bindNoPort sets IP_BIND_ADDRESS_NO_PORT on a socket bound to a source
// address before it connects: the kernel then picks the local port at
// connect time, per destination, instead of at bind time among ports free
// for every destination. With 100,000 connections, many of them lingering
// in TIME_WAIT, bind-first would search long and run out of ports early.
func bindNoPort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	return errors.Join(err, serr)
}

// take claims the next request slot, or reports the run is over by count.
func (e *engine) take() bool {
	return e.cfg.Requests == 0 || e.issued.Add(1) <= e.cfg.Requests
}

func (e *engine) run(ctx context.Context) (*Result, error) {
	end := e.cfg.Duration
	if end == 0 && e.cfg.Stages != nil {
		end = profile{stages: e.cfg.Stages}.total()
	}
	e.start = time.Now()
	e.measureFrom = e.start.Add(e.cfg.Warmup)
	runCtx, cancel := context.WithCancel(ctx)
	// io is the context requests under way run on: the user's, and with a
	// duration the run's end too. The flash sale's purchases are let
	// finish past the end instead, since its books count each of them.
	io := ctx
	if end > 0 {
		stopAt := e.measureFrom.Add(end)
		runCtx, cancel = context.WithDeadline(ctx, stopAt)
		if e.cfg.Sale == nil {
			e.hardEnd = stopAt
			var cancelIO context.CancelFunc
			io, cancelIO = context.WithDeadline(ctx, stopAt)
			defer cancelIO()
		}
	}
	defer cancel()

	e.res.Started = e.measureFrom
	var wg sync.WaitGroup
	// runCtx stops the closed model's users from starting new requests;
	// io ends those under way (at the hard end, or when the user stops).
	switch {
	case e.cfg.open():
		e.runOpen(io, cancel, e.cfg.Warmup+end, &wg)
	case e.cfg.reactor():
		e.reactorDone = make(chan struct{})
		if err := e.runReactor(runCtx, io, cancel, &wg); err != nil {
			return nil, err
		}
	default:
		e.runClosed(runCtx, io, cancel, &wg)
	}

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	warm := time.NewTimer(time.Until(e.measureFrom))
	defer warm.Stop()
	var tick <-chan time.Time
	var busy0 threadTimes
	for running := true; running; {
		select {
		case <-warm.C:
			busy0 = readThreadTimes()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			tick = t.C
		case <-tick:
			e.collect(false)
		case <-done:
			running = false
		}
	}
	e.res.Duration = time.Since(e.measureFrom)
	byCount := e.cfg.Requests > 0 && e.issued.Load() >= e.cfg.Requests
	if !e.hardEnd.IsZero() && ctx.Err() == nil && (!byCount || e.res.Duration > end) {
		// Nothing that came after the end was counted: the measured time
		// is the duration asked for, even when the last answers came a
		// moment before it. (A run that -n ended sooner keeps its own
		// time.)
		e.res.Duration = end
	} else if e.cfg.Sale != nil && end > 0 && e.res.Duration > end && ctx.Err() == nil {
		// A sale's last purchases finish past the end: their wait is in
		// their latency, not in the rate.
		e.res.Duration = end
	}
	if e.res.Duration < 0 {
		e.res.Duration = 0
	}
	if tick != nil {
		e.res.Generator = busy0.until(readThreadTimes(), time.Since(e.measureFrom), e.generatorCap())
	}
	e.collect(true)
	e.res.Unfinished += e.unsent.Load()
	if e.cfg.open() {
		e.res.TargetRPS = e.cfg.Rate
	}
	if !e.cfg.open() {
		e.res.Users, e.res.ThinkSeconds = e.cfg.Users, e.cfg.Think.Seconds()
	}
	return e.res, nil
}

// generatorCap is how many threads the run can keep busy at most: one a
// user or request in flight, up to GOMAXPROCS (the CPUs the process may
// use).
func (e *engine) generatorCap() int {
	n := runtime.GOMAXPROCS(0)
	switch {
	case e.cfg.open():
		n = min(n, max(e.cfg.MaxInFlight, 1))
	case e.cfg.Users > 0 && e.cfg.Stages == nil:
		n = min(n, e.cfg.Users)
	}
	return max(n, 1)
}

// collect moves every shard's window into the result as one second.
func (e *engine) collect(last bool) {
	sec := Second{Latency: newHistogram()}
	for _, sh := range e.shards {
		sh.mu.Lock()
		w := sh.w
		sec.Latency.Merge(w.hist)
		for code, n := range w.status {
			if n > 0 {
				e.res.Status[code] += n
			}
		}
		for k, n := range w.errors {
			e.res.Errors[k] += n
			sec.Errors += n
		}
		e.res.BytesIn += w.bytesIn
		e.res.BytesOut += w.bytesOut
		e.res.Unfinished += w.unfinished
		e.res.UnfinishedMicros += w.unfinishedUS
		e.res.OldestUnfinishedMicros = max(e.res.OldestUnfinishedMicros, w.oldestUS)
		e.res.Completions += w.completions
		e.res.BusyMicros += w.busyUS
		if e.cfg.Sale != nil {
			if e.res.Sale == nil {
				e.res.Sale = &SaleCounts{}
			}
			e.res.Sale.add(w.sale)
			for _, id := range w.orders {
				e.res.Orders[id] = true
			}
		}
		w.reset()
		sh.mu.Unlock()
	}
	sec.Requests = sec.Latency.TotalCount() + sec.Errors
	if last && sec.Requests == 0 && len(e.res.Seconds) > 0 {
		return
	}
	e.res.Latency.Merge(sec.Latency)
	e.res.Seconds = append(e.res.Seconds, sec)
	if e.res.Sale != nil {
		e.res.Sale.Acknowledged = int64(len(e.res.Orders))
	}
	if e.cfg.Tick != nil {
		e.cfg.Tick(time.Since(e.measureFrom), sec)
	}
}

// runClosed starts one goroutine per virtual user. With stages, users
// above the current target wait.
func (e *engine) runClosed(ctx, io context.Context, stop context.CancelFunc, wg *sync.WaitGroup) {
	users := e.cfg.Users
	prof := profile{constant: float64(users)}
	if e.cfg.Stages != nil {
		prof = profile{stages: e.cfg.Stages}
		for _, s := range e.cfg.Stages {
			users = max(users, int(s.Target+0.5))
		}
	}
	for u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := e.newWorker(u)
			defer w.close()
			// Users who think start spread over one think time, as people
			// who arrived at random would, not all in the same instant.
			if e.cfg.Think > 0 && e.cfg.Stages == nil {
				sleep(ctx, rand.N(e.cfg.Think))
			}
			for ctx.Err() == nil && (e.hardEnd.IsZero() || time.Now().Before(e.hardEnd)) {
				if e.cfg.Stages != nil && float64(u) >= prof.at(time.Since(e.start)) {
					sleep(ctx, 10*time.Millisecond)
					continue
				}
				if !e.take() {
					stop()
					return
				}
				w.do(io, time.Now())
				if e.cfg.Think > 0 {
					sleep(ctx, e.cfg.Think)
				}
			}
		}()
	}
}

// runOpen sends requests at their scheduled times. Each goes to an idle
// worker, the most recently idle first so that connections are reused, or
// to a new worker while fewer than MaxInFlight exist; otherwise it waits for
// one. A request that waits keeps its scheduled time, so the wait counts in
// its latency.
func (e *engine) runOpen(io context.Context, stop context.CancelFunc, end time.Duration, wg *sync.WaitGroup) {
	p := &pacer{rate: profile{constant: e.cfg.Rate}, end: end}
	if e.cfg.Stages != nil {
		p.rate = profile{stages: e.cfg.Stages}
	}
	limit := e.cfg.MaxInFlight
	if limit <= 0 {
		limit = 10000
	}
	var mu sync.Mutex
	var idle []chan time.Time
	freed := make(chan struct{}, 1)
	var all []chan time.Time
	spawn := func() chan time.Time {
		ch := make(chan time.Time, 1)
		all = append(all, ch)
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			w := e.newWorker(id)
			defer w.close()
			for intended := range ch {
				w.do(io, intended)
				mu.Lock()
				idle = append(idle, ch)
				mu.Unlock()
				select {
				case freed <- struct{}{}:
				default:
				}
			}
		}(len(all))
		return ch
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			for _, ch := range all {
				close(ch)
			}
		}()
		// The run's hard end (io's deadline) stops the schedule: the
		// slots already due and not yet sent are counted as unfinished,
		// as the requests in flight are, since their users had arrived
		// and were not served.
		unsent := func(off time.Duration, ok bool) {
			if e.hardEnd.IsZero() {
				return
			}
			now := time.Now()
			var n int64
			if ok && p.rate.stages == nil {
				// A constant rate: slot i is due at i/rate, so the slots
				// due by now and not handed out are counted, not walked
				// (at 10 million a second, walking them took seconds).
				due := int64(math.Ceil(min(now.Sub(e.start), p.end).Seconds() * p.rate.constant))
				from := max(p.n-1, int64(math.Ceil(e.cfg.Warmup.Seconds()*p.rate.constant)))
				n = max(due-from, 0)
				if e.cfg.Requests > 0 {
					n = min(n, max(e.cfg.Requests-e.issued.Load()+1, 0))
				}
				e.unsent.Add(n)
				return
			}
			for ; ok && e.start.Add(off).Before(now); off, ok = p.next() {
				if !e.start.Add(off).Before(e.measureFrom) {
					n++
				}
				if !e.take() {
					break
				}
			}
			e.unsent.Add(n)
		}
		for {
			off, ok := p.next()
			if !ok || !e.take() {
				stop()
				return
			}
			if io.Err() != nil {
				unsent(off, ok)
				stop()
				return
			}
			due := e.start.Add(off)
			if d := time.Until(due); d > 0 && !sleep(io, d) {
				unsent(off, ok)
				return
			}
			for {
				mu.Lock()
				var ch chan time.Time
				if n := len(idle); n > 0 {
					ch, idle = idle[n-1], idle[:n-1]
				}
				mu.Unlock()
				if ch == nil && len(all) < limit {
					ch = spawn()
				}
				if ch != nil {
					ch <- due
					break
				}
				select {
				case <-freed:
				case <-io.Done():
					unsent(off, ok)
					return
				}
			}
		}
	}()
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// worker sends requests one at a time over its own connection.
type worker struct {
	e      *engine
	id     int
	sh     *shard
	c      *conn
	target int
	buf    []byte // the flash sale's request, rebuilt per purchase
	sale   bool
}

func (e *engine) newWorker(id int) *worker {
	return &worker{e: e, id: id, sh: e.shards[id%len(e.shards)], target: id % len(e.reqs), sale: e.cfg.Sale != nil}
}

func (w *worker) close() {
	if w.c != nil && w.c.nc != nil {
		w.c.nc.Close()
		if w.e.connSlots != nil {
			<-w.e.connSlots
		}
	}
}

// do sends one request (one purchase, with retries, in the flash sale)
// and records it against intended.
func (w *worker) do(ctx context.Context, intended time.Time) {
	if w.sale {
		w.purchase(ctx, intended)
		return
	}
	i := w.target
	w.target = (w.target + 1) % len(w.e.reqs)
	req := w.e.reqs[i]
	status, in, err := w.send(ctx, i, w.e.cfg.Targets[i], req)
	w.record(intended, status, in, int64(len(req)), err)
}

// send performs one request to target i over the lean client, or
// net/http for https. A request on a connection that has served before
// and that the server closed while it was idle (keep-alive timeouts,
// nginx's keepalive_requests) is not the server's answer: it goes again,
// once, on a new connection, when it may be sent twice (an idempotent
// method, or a purchase with its Idempotency-Key, RFC 9112 section 9.3.1).
// Other requests are held back instead when the connection has been idle
// and the server has already closed it.
func (w *worker) send(ctx context.Context, i int, t Target, req []byte) (int, int64, error) {
	now := time.Now()
	deadline := now.Add(w.e.cfg.Timeout)
	if he := w.e.hardEnd; !he.IsZero() {
		if !now.Before(he) {
			return 0, 0, errNotSent
		}
		deadline = minTime(deadline, he)
	}
	if t.URL.Scheme == "https" {
		return w.sendStd(ctx, t)
	}
	for attempt := 0; ; attempt++ {
		if c := w.c; c != nil && c.nc != nil && c.served > 0 && !w.e.retry[i] &&
			time.Since(c.idleSince) >= time.Millisecond && peerClosed(c) {
			w.drop()
		}
		if w.c == nil || w.c.nc == nil {
			if err := w.connect(ctx, t); err != nil {
				return 0, 0, err
			}
		}
		reused := w.c.served > 0
		status, n, err := w.c.roundTrip(req, deadline, w.sale, w.e.last[i])
		switch {
		case err != nil && w.c.nc != nil:
			w.drop()
		case w.c.nc == nil: // the answer ended the connection
			w.release()
		}
		if err != nil && reused && n == 0 && attempt == 0 && w.e.retry[i] && closedUnanswered(err) {
			continue
		}
		return status, n, err
	}
}

// connect dials a new connection for the worker, within the cap on
// connections.
func (w *worker) connect(ctx context.Context, t Target) error {
	if w.e.connSlots != nil {
		select {
		case w.e.connSlots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	nc, err := w.e.dialContext(ctx, "tcp", hostPort(t.URL))
	if err != nil {
		if w.e.connSlots != nil {
			<-w.e.connSlots
		}
		return err
	}
	switch {
	case w.c == nil:
		w.c = &conn{r: bufio.NewReaderSize(nc, 16<<10), keepAlive: w.e.cfg.KeepAlive}
	case w.c.r == nil: // made for https, which net/http reads
		w.c.r, w.c.keepAlive = bufio.NewReaderSize(nc, 16<<10), w.e.cfg.KeepAlive
	default:
		w.c.r.Reset(nc)
	}
	w.c.nc, w.c.served = nc, 0
	return nil
}

// drop closes the worker's connection and gives back its slot.
func (w *worker) drop() {
	w.c.nc.Close()
	w.c.nc = nil
	w.release()
}

// release gives back the slot of a connection that has been closed.
func (w *worker) release() {
	if w.e.connSlots != nil {
		<-w.e.connSlots
	}
}

// closedUnanswered reports whether err says the connection ended before a
// byte of the answer came.
func closedUnanswered(err error) bool {
	return errors.Is(err, errClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// peerClosed reports whether the server has closed c's connection (or sent
// something unasked): a look at the socket that takes nothing from it.
func peerClosed(c *conn) bool {
	if c.r.Buffered() > 0 {
		return true
	}
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var b [1]byte
	raw.Read(func(fd uintptr) bool {
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		closed = (n == 0 && err == nil) || (err != nil && err != unix.EAGAIN) || n > 0
		return true
	})
	return closed
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// idempotent reports whether a request with this method may be sent
// twice with the effect of once (RFC 9110, section 9.2.2).
func idempotent(method string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// asksClose reports whether a request's headers ask the server to close
// the connection after answering.
func asksClose(h http.Header) bool {
	for _, v := range h.Values("Connection") {
		if closes, _ := connectionTokens([]byte(v)); closes {
			return true
		}
	}
	return false
}

// sendStd sends t through net/http (TLS, and HTTP/2 where offered); raw
// is only the lean client's rendering of the same request.
func (w *worker) sendStd(ctx context.Context, t Target) (int, int64, error) {
	req, err := http.NewRequestWithContext(ctx, t.Method, t.URL.String(), bytes.NewReader(t.Body))
	if err != nil {
		return 0, 0, err
	}
	for k, v := range t.Header {
		req.Header[k] = v
	}
	resp, err := w.e.std.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if w.c == nil {
		w.c = &conn{}
	}
	// Through a fixed buffer: what the server sends, however long, costs
	// no memory, and the client's timeout ends a body that never ends.
	w.c.body = w.c.body[:0]
	if w.c.buf == nil {
		w.c.buf = make([]byte, 16<<10)
	}
	var n int64
	for {
		m, err := resp.Body.Read(w.c.buf)
		if w.sale && len(w.c.body) < maxKeptBody {
			w.c.body = append(w.c.body, w.c.buf[:min(m, maxKeptBody-len(w.c.body))]...)
		}
		n += int64(m)
		if err == io.EOF {
			return resp.StatusCode, n, nil
		}
		if err != nil {
			return resp.StatusCode, n, err
		}
	}
}

func (w *worker) record(intended time.Time, status int, in, out int64, err error) {
	w.e.record(w.sh, intended, status, in, out, err)
}

// record counts one request in sh's window: its latency from intended and
// its status, or its error's class, and the bytes each way. What completes
// in the warmup is not counted; a request cut off by the run's hard end is
// counted as unfinished, as is one due before the end and never sent.
func (e *engine) record(sh *shard, intended time.Time, status int, in, out int64, err error) {
	now := time.Now()
	if now.Before(e.measureFrom) || (err == errNotSent && !e.cfg.open()) {
		// A closed-model user who would have started a request as the
		// run ended had not yet asked for anything.
		return
	}
	us := now.Sub(intended).Microseconds()
	unfinished := !e.hardEnd.IsZero() && !now.Before(e.hardEnd)
	sh.mu.Lock()
	win := sh.w
	switch {
	case unfinished:
		// Its time in the run still counts for Little's law; its age
		// says whether the slowest requests were left out of the latency.
		age := e.hardEnd.Sub(intended)
		win.unfinished++
		win.unfinishedUS += min(age, e.hardEnd.Sub(e.measureFrom)).Microseconds()
		win.oldestUS = max(win.oldestUS, age.Microseconds())
	case err != nil:
		win.errors[classify(err)]++
	default:
		win.hist.RecordValue(min(max(us, minLatencyUS), maxLatencyUS))
		win.status[status]++
	}
	if !unfinished {
		// Only its time within the measured run counts for Little's law.
		win.completions++
		win.busyUS += max(min(us, now.Sub(e.measureFrom).Microseconds()), 0)
	}
	win.bytesIn += in
	win.bytesOut += out
	sh.mu.Unlock()
}

// Reachable dials u's host once, so that a wrong address is one clear
// error before any load starts.
func Reachable(ctx context.Context, u *url.URL, timeout time.Duration) error {
	host := hostPort(u)
	d := net.Dialer{Timeout: min(timeout, 5*time.Second)}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err
		}
		return fmt.Errorf("cannot connect to %s: %v", host, err)
	}
	return c.Close()
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// buildRequest renders a target as HTTP/1.1 bytes, once.
func buildRequest(t Target, keepAlive bool) []byte {
	var b bytes.Buffer
	uri := t.URL.RequestURI()
	b.WriteString(t.Method + " " + uri + " HTTP/1.1\r\nHost: " + t.URL.Host + "\r\nUser-Agent: stampede\r\n")
	for k, vs := range t.Header {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	if len(t.Body) > 0 || t.Method == "POST" || t.Method == "PUT" || t.Method == "PATCH" {
		b.WriteString("Content-Length: " + strconv.Itoa(len(t.Body)) + "\r\n")
	}
	if !keepAlive {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	b.Write(t.Body)
	return b.Bytes()
}
