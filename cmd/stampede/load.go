package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stampede-dev/stampede/internal/capacity"
	"github.com/stampede-dev/stampede/internal/load"
)

// headers is a repeatable -H flag.
type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("load", "load [flags] URL", stderr)
	users := fs.Int("c", 0, "closed model: virtual users, each sending its next request when the last finished (default 50 unless --rate); the same as --users")
	crowd := fs.Int("users", 0, "the crowd: users, each waiting for an answer, then thinking --think before the next request (closed model); with --sweep, the target the plan is for")
	rate := fs.Float64("rate", 0, "open model: requests per second at a constant arrival rate; with --sweep, the target the plan is for")
	maxInFlight := fs.Int("max-inflight", 10000, "open model: requests in flight at most")
	stages := fs.String("stages", "", "ramp users (or the rate, with --rate) like k6: 10s:1000,30s:5000,10s:0")
	dur := fs.Duration("d", 0, "stop after this long (default 10s unless -n or --stages)")
	count := fs.Int64("n", 0, "stop after this many requests")
	think := fs.Duration("think", 0, "closed model: pause between a user's requests (with --sweep: the target's)")
	method := fs.String("m", "GET", "request method")
	var hdrs headers
	fs.Var(&hdrs, "H", "request header 'Name: value' (repeatable)")
	body := fs.String("b", "", "request body")
	bodyFile := fs.String("body-file", "", "read the request body from this file")
	timeout := fs.Duration("timeout", 30*time.Second, "per-request timeout")
	noKeepAlive := fs.Bool("no-keepalive", false, "open a new connection for every request")
	conns := fs.Int("connections", 0, "cap on open connections (default: one per user or in-flight request)")
	targetsFile := fs.String("targets", "", "file of targets, one 'METHOD URL [@bodyfile]' a line, sent round-robin")
	insecure := fs.Bool("insecure", false, "accept any TLS certificate")
	scenario := fs.String("scenario", "", "flash-sale: buy from a stampede shop (URL is the shop's base URL)")
	product := fs.String("product", "", "flash-sale: product id")
	saleUsers := fs.Int("user-ids", 100000, "flash-sale: distinct user ids")
	quantity := fs.Int("quantity", 1, "flash-sale: units per purchase")
	rid := fs.String("run-id", "", "flash-sale: prefix of the Idempotency-Keys (default: random per run)")
	check := fs.Bool("check", true, "flash-sale: read the product before and after, and say whether the shop oversold or lost orders (exit 1 if so)")
	slice := fs.String("user-slice", "", "flash-sale: buy only for users i, i+n, i+2n, … (given as i/n; --procs sets it for each process)")
	sourceIPs := fs.String("source-ips", "", "spread connections over local addresses, as 127.0.0.2-127.0.0.60")
	procs := fs.Int("procs", 1, "load worker processes, results merged (one process may hold only so many open files)")
	output := fs.String("output", "text", "report format: text or json")
	resultFile := fs.String("o", "", "write the result (series, histogram, order ids) to this .stl file")
	quiet := fs.Bool("quiet", false, "no live progress")
	allowErrors := fs.Bool("allow-errors", false, "exit 0 even when more than 1% of the requests failed (transport errors and 5xx); an --slo with errors<… sets its own bound")
	engine := fs.String("engine", "auto", "how requests are sent: epoll (the closed model over plain http, as wrk does), goroutines (one per user, over Go's net package), or auto (epoll where it can)")
	sweep := fs.String("sweep", "", "measure the service at each concurrency in turn, as 1,2,4,8,16 (closed model, no think time, each run -d long, default 3s), fit the Universal Scalability Law, and plan for the target (--users and --think, or --rate)")
	repeats := fs.Int("repeats", load.DefaultRepeats, "--sweep: runs at each concurrency; the plan reports their median and spread")
	warmup := fs.Duration("warmup", 0, "run this long before measuring (with --sweep: each run; default 500ms there)")
	confirm := fs.Bool("confirm", false, "--sweep: then run the target itself and print it beside the prediction")
	slo := fs.String("slo", "", "service-level objectives, as 'p99<300ms,errors<0.1%,rps>100' (p50 p90 p95 p99 p99.9 mean errors rps): exit status 3 when the run (or the plan) breaks them")
	sweepHTML := fs.String("html", "", "--sweep: write a page of the plan (points with their spread, the fit and its band, the bounds, the SLO, the target) to this file")
	for _, a := range args {
		if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && name == "predict" {
			return usageError{errors.New("there is no --predict: the plan's target is a crowd, --users N [--think Z], or an arrival rate, --rate R")}
		}
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	bad := func(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, c := range []struct {
		name   string
		v      float64
		lo, hi float64
	}{
		{"c", float64(*users), 1, load.MaxUsers},
		{"users", float64(*crowd), 1, load.MaxUsers},
		{"repeats", float64(*repeats), 1, 20},
		{"rate", *rate, 0.001, load.MaxRate},
		{"max-inflight", float64(*maxInFlight), 1, load.MaxUsers},
		{"n", float64(*count), 1, 1e12},
		{"connections", float64(*conns), 1, load.MaxUsers},
		{"user-ids", float64(*saleUsers), 1, 1e12},
		{"quantity", float64(*quantity), 1, 1e6},
	} {
		if set[c.name] && !(c.v >= c.lo && c.v <= c.hi) { // NaN fails both
			f := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
			return bad("-%s must be from %s to %s, not %s", c.name, f(c.lo), f(c.hi), f(c.v))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		zero bool // may be 0
	}{{"d", *dur, false}, {"think", *think, true}, {"timeout", *timeout, false}, {"warmup", *warmup, true}} {
		if set[d.name] && (d.v < 0 || (d.v == 0 && !d.zero)) {
			return bad("-%s must be a positive duration, not %v", d.name, d.v)
		}
	}
	if set["c"] && set["users"] {
		return bad("-c and --users both set the users: give one")
	}
	if set["users"] {
		*users = *crowd
	}
	var objectives capacity.SLO
	if *slo != "" {
		o, err := capacity.ParseSLO(*slo)
		if err != nil {
			return bad("--slo %v", err)
		}
		objectives = o
	}
	var levels []int
	sweepStep := 3 * time.Second
	for _, f := range []string{"html", "confirm", "repeats"} {
		if set[f] && *sweep == "" {
			return bad("--%s goes with --sweep (a run's page is stampede report --html)", f)
		}
	}
	if *sweep != "" {
		switch {
		case *stages != "" || *count > 0 || *procs > 1:
			return bad("--sweep runs the closed model by itself: not with --stages, -n or --procs")
		case *rate > 0 && (set["users"] || set["c"] || set["think"]):
			return bad("the plan's target is a crowd (--users, --think) or an arrival rate (--rate), not both")
		case *confirm && *rate == 0 && *users == 0:
			return bad("--confirm runs the target: give --users N [--think Z] or --rate R")
		}
		for part := range strings.SplitSeq(*sweep, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(part))
			if err != nil || n < 1 || n > load.MaxUsers {
				return bad("--sweep %q: want concurrencies from 1 to %d, as 1,2,4,8", *sweep, load.MaxUsers)
			}
			if slices.Contains(levels, n) {
				return bad("--sweep %q: %d is there twice", *sweep, n)
			}
			levels = append(levels, n)
		}
		if len(levels) < 3 {
			return bad("--sweep %q: want at least 3 concurrencies", *sweep)
		}
		if set["d"] {
			sweepStep = *dur
		}
	}
	if fs.NArg() != 1 && *targetsFile == "" {
		return bad("give one URL, or --targets FILE (run 'stampede load -h')")
	}
	if *output != "text" && *output != "json" && *output != "none" {
		return bad("--output must be text or json, not %q", *output)
	}
	if *procs < 1 || *procs > 64 {
		return bad("--procs must be from 1 to 64")
	}
	if *engine == "auto" {
		*engine = load.EngineAuto
	}
	cfg := load.Config{
		Users: *users, Rate: *rate, MaxInFlight: *maxInFlight, Duration: *dur, Requests: *count,
		Think: *think, Timeout: *timeout, KeepAlive: !*noKeepAlive, Connections: *conns, Insecure: *insecure,
		Engine: *engine, Warmup: *warmup,
	}
	if cfg.Rate == 0 && cfg.Users == 0 && *stages == "" {
		cfg.Users = 50
	}
	if *stages != "" {
		st, err := load.ParseStages(*stages)
		if err != nil {
			return bad("--stages: %v", err)
		}
		cfg.Stages = st
	}
	if cfg.Duration == 0 && cfg.Requests == 0 && cfg.Stages == nil {
		cfg.Duration = 10 * time.Second
	}
	if *sourceIPs != "" {
		ips, err := load.ParseIPRange(*sourceIPs)
		if err != nil {
			return bad("--source-ips: %v", err)
		}
		cfg.SourceIPs = ips
	}
	var err error
	if *targetsFile != "" {
		cfg.Targets, err = load.ReadTargets(*targetsFile, hdrs)
	} else {
		var b []byte
		if b, err = requestBody(*body, *bodyFile); err == nil {
			var t load.Target
			t, err = load.NewTarget(*method, fs.Arg(0), hdrs, b)
			cfg.Targets = []load.Target{t}
		}
	}
	if err != nil {
		return usageError{err}
	}
	var saleBase string // the shop's URL, for reading the product
	switch *scenario {
	case "":
	case "flash-sale":
		if *product == "" {
			return bad("--scenario flash-sale needs --product ID")
		}
		saleBase = cfg.Targets[0].URL.String()
		cfg.Targets = []load.Target{load.SaleTarget(cfg.Targets[0])}
		if *rid == "" {
			*rid = runID()
		}
		cfg.Sale = &load.FlashSale{ProductID: load.ProductLiteral(*product), Users: *saleUsers, Quantity: *quantity, RunID: *rid}
		if *slice != "" {
			i, n, ok := strings.Cut(*slice, "/")
			si, err1 := strconv.Atoi(i)
			sn, err2 := strconv.Atoi(n)
			if !ok || err1 != nil || err2 != nil || sn < 1 || si < 0 || si >= sn || sn > *saleUsers {
				return bad("--user-slice %q: want i/n with 0 <= i < n <= --user-ids", *slice)
			}
			cfg.Sale.Slice, cfg.Sale.Slices = si, sn
		}
	default:
		return bad("unknown --scenario %q (there is flash-sale)", *scenario)
	}
	if err := cfg.Check(); err != nil {
		return usageError{err}
	}
	files := cfg // a sweep holds its largest level's connections; its target runs only with --confirm, which checks
	if levels != nil {
		files.Users, files.Rate = 0, 0
	}
	for _, n := range levels {
		files.Users = max(files.Users, n)
	}
	if err := files.CheckFiles(); err != nil && *procs == 1 {
		return usageError{err}
	}
	if err := load.Reachable(ctx, cfg.Targets[0].URL, *timeout); err != nil {
		return usageError{err}
	}
	var before load.Stock
	if cfg.Sale != nil && *check {
		base := saleBase
		if before, err = load.ReadStock(ctx, base, cfg.Sale.ProductID, *insecure, *timeout); err != nil {
			if errors.Is(err, load.ErrNoProduct) {
				return bad("product %s: the shop at %s has none; is the product id right?", *product, base)
			}
			return usageError{err}
		}
	}

	if levels != nil {
		sw := sweepRun{cfg: cfg, step: sweepStep, warmup: *warmup, repeats: *repeats, slo: objectives, confirm: *confirm,
			output: *output, html: *sweepHTML, live: !*quiet}
		if !set["warmup"] {
			sw.warmup = 500 * time.Millisecond
		}
		if *rate > 0 || *users > 0 {
			sw.target = &capacity.Target{Users: *users, Think: think.Seconds(), Rate: *rate}
		}
		return sw.run(ctx, levels, stdout, stderr)
	}

	var res *load.Result
	if *procs > 1 {
		fmt.Fprintf(stderr, "running %d load processes…\n", *procs)
		res, err = load.RunProcesses(ctx, *procs, shareArgs(*procs, args[:len(args)-fs.NArg()], fs.Args(), cfg))
	} else {
		if !*quiet {
			cfg.Tick = progress(stderr)
		}
		res, err = load.Run(ctx, cfg)
	}
	if err != nil {
		return err
	}
	if *resultFile != "" {
		if err := res.WriteFile(*resultFile); err != nil {
			return fmt.Errorf("write %s: %w", *resultFile, err)
		}
	}
	rep := res.Report()
	if cfg.Sale != nil && *check {
		after, err := load.ReadStock(context.WithoutCancel(ctx), saleBase, cfg.Sale.ProductID, *insecure, *timeout)
		if err != nil {
			return err
		}
		v := load.Judge(before, after, int64(len(res.Orders)))
		rep.Verdict = &v
	}
	if err := writeReport(stdout, rep, *output); err != nil {
		return err
	}
	if rep.Verdict != nil && rep.Verdict.Failed() {
		return errors.New(rep.Verdict.Line)
	}
	if objectives != nil {
		checks := objectives.Judge(rep)
		if *output == "text" {
			fmt.Fprintf(stdout, "slo           %s\n", capacity.Describe(checks))
		}
		if !capacity.Met(checks) {
			return exitError{capacity.ExitSLO, errors.New("SLO not met: " + capacity.Describe(checks))}
		}
	}
	// A flash sale's resent 503s and 504s are failed requests of purchases
	// that settled in the end: the sale's own verdict judges it.
	if !*allowErrors && cfg.Sale == nil && !objectives.Has("errors") && rep.ErrorRate > load.MaxErrorRate {
		return fmt.Errorf("%.1f%% of the requests failed (%s), over %.0f%%: the service did not hold this load (--allow-errors to exit 0 all the same)",
			100*rep.ErrorRate, topErrors(rep), 100*load.MaxErrorRate)
	}
	return nil
}

// topErrors names what failed most: the error causes and 5xx codes, the
// commonest first, at most three.
func topErrors(rep load.Report) string {
	type count struct {
		what string
		n    int64
	}
	var all []count
	for k, n := range rep.Errors {
		all = append(all, count{k, n})
	}
	for code, n := range rep.StatusCodes {
		if code >= "500" {
			all = append(all, count{code, n})
		}
	}
	slices.SortFunc(all, func(a, b count) int { return cmp.Or(cmp.Compare(b.n, a.n), strings.Compare(a.what, b.what)) })
	var parts []string
	for _, c := range all[:min(3, len(all))] {
		parts = append(parts, fmt.Sprintf("%s %d", c.what, c.n))
	}
	return strings.Join(parts, ", ")
}

func writeReport(w io.Writer, rep load.Report, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	case "text":
		rep.WriteText(w)
	}
	return nil
}

// progress prints one status line a second: redrawn in place on a
// terminal, a plain line otherwise.
func progress(w io.Writer) func(time.Duration, load.Second) {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	var total int64
	var last time.Duration
	return func(elapsed time.Duration, s load.Second) {
		total += s.Requests
		// The rate of the window just ended; the last window of a run is
		// only what was left of a second, too short to say a rate, so
		// the run's mean is shown instead.
		window := elapsed - last
		last = elapsed
		rps := float64(total) / elapsed.Seconds()
		if window >= 500*time.Millisecond {
			rps = float64(s.Requests) / window.Seconds()
		}
		line := fmt.Sprintf("%6.1fs  requests %d  rps %.0f  p50 %.2fms  p99 %.2fms  errors %d",
			elapsed.Seconds(), total, rps, float64(s.Latency.ValueAtQuantile(50))/1e3, float64(s.Latency.ValueAtQuantile(99))/1e3, s.Errors)
		if tty {
			fmt.Fprintf(w, "\r\033[K%s", line)
			return
		}
		fmt.Fprintln(w, line)
	}
}

func requestBody(body, file string) ([]byte, error) {
	if file == "" {
		return []byte(body), nil
	}
	if body != "" {
		return nil, errors.New("give -b or --body-file, not both")
	}
	b, err := load.ReadBody(file)
	if err != nil {
		return nil, fmt.Errorf("--body-file: %w", err)
	}
	return b, nil
}

func runID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// shareArgs maps the run onto n load processes: process i gets the user's
// flags, then its share of the users (or rate, or requests) and its own
// keys and users in a flash sale, then the URL. The share's flags come
// after the user's, so they win, and before the URL, where parsing stops.
func shareArgs(n int, flags, positional []string, cfg load.Config) func(i int, file string) []string {
	share := func(total int64, i int) int64 { // as evenly as whole numbers allow
		s := total / int64(n)
		if int64(i) < total%int64(n) {
			s++
		}
		return max(1, s)
	}
	return func(i int, file string) []string {
		a := append(append([]string{"load"}, flags...), "--procs", "1", "-o", file, "--output", "none", "--quiet")
		switch {
		case cfg.Rate > 0:
			a = append(a, "--rate", strconv.FormatFloat(cfg.Rate/float64(n), 'f', -1, 64))
		case cfg.Stages == nil:
			a = append(a, "-c", strconv.FormatInt(share(int64(cfg.Users), i), 10))
		}
		if cfg.Requests > 0 {
			a = append(a, "-n", strconv.FormatInt(share(cfg.Requests, i), 10))
		}
		if cfg.Sale != nil {
			a = append(a, "--run-id", cfg.Sale.RunID+"p"+strconv.Itoa(i), "--user-slice", strconv.Itoa(i)+"/"+strconv.Itoa(n), "--check=false")
		}
		return append(a, positional...)
	}
}

// sweepRun is a sweep, the plan for its target and how to show them.
type sweepRun struct {
	cfg           load.Config
	step, warmup  time.Duration
	repeats       int
	target        *capacity.Target
	slo           capacity.SLO
	confirm, live bool
	output, html  string
}

// run sweeps levels, plans, confirms if asked, and prints; a plan that
// breaks its SLO exits with capacity.ExitSLO.
func (s sweepRun) run(ctx context.Context, levels []int, stdout, stderr io.Writer) error {
	opt := load.SweepOptions{Levels: levels, Step: s.step, Warmup: s.warmup, Repeats: s.repeats}
	if s.live {
		opt.Progress = func(p load.SweepPoint, run, runs int) {
			last := p.RPSRuns[len(p.RPSRuns)-1]
			fmt.Fprintf(stderr, "run %d/%d: %d at once: %.1f req/s, p99 %.2fms, errors %.2f%%\n", run, runs, p.Concurrency, last, p.Latency.P99*1e3, 100*p.ErrorRate)
		}
	}
	points, err := load.Sweep(ctx, s.cfg, opt)
	if err != nil {
		return err
	}
	rep, err := capacity.NewReport(points, s.target, s.slo)
	if err != nil {
		return fmt.Errorf("no plan from this sweep: %w", err)
	}
	var cannot error
	if s.confirm && rep.Plan != nil {
		if s.live {
			fmt.Fprintf(stderr, "confirming: running the target itself…\n")
		}
		if err := rep.Curve.Confirm(ctx, s.cfg, *s.target, rep.Plan, s.slo, s.step, s.warmup); err != nil {
			if !errors.Is(err, capacity.ErrCannotConfirm) {
				return err
			}
			cannot = err
		}
	}
	if s.html != "" {
		if err := writeFile(s.html, rep.WriteHTML); err != nil {
			return err
		}
	}
	switch s.output {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	case "text":
		rep.WriteText(stdout)
	}
	if cannot != nil {
		fmt.Fprintf(stderr, "stampede load: not confirmed: %v\n", cannot)
	}
	if p := rep.Plan; p != nil && p.SLOMet != nil && !*p.SLOMet {
		return exitError{capacity.ExitSLO, errors.New("the plan breaks the SLO: " + capacity.Describe(p.SLO))}
	}
	return nil
}

// writeFile writes a file through write, and says which file failed.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
