package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stampede-dev/stampede/internal/load"
)

// headers is a repeatable -H flag.
type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("load", "load [flags] URL", stderr)
	users := fs.Int("c", 0, "closed model: virtual users, each sending its next request when the last finished (default 50 unless --rate)")
	rate := fs.Float64("rate", 0, "open model: requests per second at a constant arrival rate")
	maxInFlight := fs.Int("max-inflight", 10000, "open model: requests in flight at most")
	stages := fs.String("stages", "", "ramp users (or the rate, with --rate) like k6: 10s:1000,30s:5000,10s:0")
	dur := fs.Duration("d", 0, "stop after this long (default 10s unless -n or --stages)")
	count := fs.Int64("n", 0, "stop after this many requests")
	think := fs.Duration("think", 0, "closed model: pause between a user's requests")
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
	saleUsers := fs.Int("users", 100000, "flash-sale: distinct user ids")
	quantity := fs.Int("quantity", 1, "flash-sale: units per purchase")
	rid := fs.String("run-id", "", "flash-sale: prefix of the Idempotency-Keys (default: random per run)")
	check := fs.Bool("check", true, "flash-sale: read the product before and after, and say whether the shop oversold or lost orders (exit 1 if so)")
	slice := fs.String("user-slice", "", "flash-sale: buy only for users i, i+n, i+2n, … (given as i/n; --procs sets it for each process)")
	sourceIPs := fs.String("source-ips", "", "spread connections over local addresses, as 127.0.0.2-127.0.0.60")
	procs := fs.Int("procs", 1, "load worker processes, results merged (one process may hold only so many open files)")
	output := fs.String("output", "text", "report format: text or json")
	resultFile := fs.String("o", "", "write the result (series, histogram, order ids) to this .stl file")
	quiet := fs.Bool("quiet", false, "no live progress")
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
		{"rate", *rate, 0.001, load.MaxRate},
		{"max-inflight", float64(*maxInFlight), 1, load.MaxUsers},
		{"n", float64(*count), 1, 1e12},
		{"connections", float64(*conns), 1, load.MaxUsers},
		{"users", float64(*saleUsers), 1, 1e12},
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
	}{{"d", *dur, false}, {"think", *think, true}, {"timeout", *timeout, false}} {
		if set[d.name] && (d.v < 0 || (d.v == 0 && !d.zero)) {
			return bad("-%s must be a positive duration, not %v", d.name, d.v)
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
	cfg := load.Config{
		Users: *users, Rate: *rate, MaxInFlight: *maxInFlight, Duration: *dur, Requests: *count,
		Think: *think, Timeout: *timeout, KeepAlive: !*noKeepAlive, Connections: *conns, Insecure: *insecure,
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
		ips, err := parseIPRange(*sourceIPs)
		if err != nil {
			return bad("--source-ips: %v", err)
		}
		cfg.SourceIPs = ips
	}
	var err error
	if *targetsFile != "" {
		cfg.Targets, err = readTargets(*targetsFile, hdrs)
	} else {
		var b []byte
		if b, err = requestBody(*body, *bodyFile); err == nil {
			var t load.Target
			t, err = makeTarget(*method, fs.Arg(0), hdrs, b)
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
		pid := *product
		if _, err := strconv.ParseInt(pid, 10, 64); err != nil {
			pid = strconv.Quote(pid)
		}
		t := cfg.Targets[0]
		saleBase = t.URL.String()
		t.URL = t.URL.JoinPath("api", "orders")
		if !strings.HasPrefix(t.URL.Path, "/") {
			t.URL.Path = "/" + t.URL.Path
		}
		cfg.Targets = []load.Target{t}
		if *rid == "" {
			*rid = runID()
		}
		cfg.Sale = &load.FlashSale{ProductID: pid, Users: *saleUsers, Quantity: *quantity, RunID: *rid}
		if *slice != "" {
			i, n, ok := strings.Cut(*slice, "/")
			si, err1 := strconv.Atoi(i)
			sn, err2 := strconv.Atoi(n)
			if !ok || err1 != nil || err2 != nil || sn < 1 || si < 0 || si >= sn || sn > *saleUsers {
				return bad("--user-slice %q: want i/n with 0 <= i < n <= --users", *slice)
			}
			cfg.Sale.Slice, cfg.Sale.Slices = si, sn
		}
	default:
		return bad("unknown --scenario %q (there is flash-sale)", *scenario)
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

	var res *load.Result
	if *procs > 1 {
		res, err = runLoadProcs(ctx, *procs, args[:len(args)-fs.NArg()], fs.Args(), cfg, stderr)
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
	return nil
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

func makeTarget(method, raw string, hdrs headers, body []byte) (load.Target, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return load.Target{}, fmt.Errorf("%q is not an http:// or https:// URL", raw)
	}
	if !load.ValidToken(method) {
		return load.Target{}, fmt.Errorf("method %q is not an HTTP token", method)
	}
	h := http.Header{}
	for _, kv := range hdrs {
		k, v, ok := strings.Cut(kv, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || !load.ValidToken(k) {
			return load.Target{}, fmt.Errorf("header %q: want 'Name: value' with a name of letters, digits and !#$%%&'*+-.^_`|~", kv)
		}
		if !load.ValidHeaderValue(v) {
			return load.Target{}, fmt.Errorf("header %q: a value may not hold CR, LF or other control characters", kv)
		}
		h.Add(k, v)
	}
	return load.Target{Method: strings.ToUpper(method), URL: u, Header: h, Body: body}, nil
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

// readTargets reads 'METHOD URL [@bodyfile]' lines; # starts a comment.
func readTargets(path string, hdrs headers) ([]load.Target, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--targets: %w", err)
	}
	var out []load.Target
	for i, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("%s:%d: want 'METHOD URL [@bodyfile]'", path, i+1)
		}
		var body []byte
		if len(f) == 3 {
			if !strings.HasPrefix(f[2], "@") {
				return nil, fmt.Errorf("%s:%d: a body file is written @path", path, i+1)
			}
			if body, err = load.ReadBody(filepath.Join(filepath.Dir(path), f[2][1:])); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
			}
		}
		t, err := makeTarget(f[0], f[1], hdrs, body)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no targets", path)
	}
	return out, nil
}

// parseIPRange reads A.B.C.D-A.B.C.E (the last octet ranges) or a list.
func parseIPRange(s string) ([]net.IP, error) {
	var out []net.IP
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a := net.ParseIP(strings.TrimSpace(lo)).To4()
		if a == nil {
			return nil, fmt.Errorf("%q is not an IPv4 address", lo)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b := net.ParseIP(strings.TrimSpace(hi)).To4()
		if b == nil || !a[:3].Equal(b[:3]) || b[3] < a[3] {
			return nil, fmt.Errorf("%q: a range differs only in its last number, low to high", part)
		}
		for x := int(a[3]); x <= int(b[3]); x++ {
			out = append(out, net.IPv4(a[0], a[1], a[2], byte(x)).To4())
		}
	}
	return out, nil
}

func runID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// runLoadProcs runs n copies of this command, each with a share of the
// users (or rate, or requests), and merges their result files.
func runLoadProcs(ctx context.Context, n int, flags, positional []string, cfg load.Config, stderr io.Writer) (*load.Result, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "stampede-load")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	share := func(total int64, i int) int64 { // split total as evenly as whole numbers allow
		s := total / int64(n)
		if int64(i) < total%int64(n) {
			s++
		}
		return max(1, s)
	}
	fmt.Fprintf(stderr, "running %d load processes…\n", n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		out := filepath.Join(dir, strconv.Itoa(i)+".stl")
		// The share's flags come after the user's, so they win, and before
		// the URL, where flag parsing stops.
		a := append(append([]string{"load"}, flags...), "--procs", "1", "-o", out, "--output", "none", "--quiet")
		switch {
		case cfg.Rate > 0:
			a = append(a, "--rate", strconv.FormatFloat(cfg.Rate/float64(n), 'f', -1, 64))
		case cfg.Stages == nil:
			a = append(a, "-c", strconv.FormatInt(share(int64(cfg.Users), i), 10))
		}
		if cfg.Requests > 0 {
			a = append(a, "-n", strconv.FormatInt(share(cfg.Requests, i), 10))
		}
		if cfg.Sale != nil { // keep keys and users apart between processes
			a = append(a, "--run-id", cfg.Sale.RunID+"p"+strconv.Itoa(i), "--user-slice", strconv.Itoa(i)+"/"+strconv.Itoa(n), "--check=false")
		}
		a = append(a, positional...)
		cmd := exec.CommandContext(context.WithoutCancel(ctx), exe, a...)
		cmd.Stderr = stderr
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = cmd.Run()
		}()
	}
	wg.Wait()
	total := load.NewResult()
	for i := range n {
		r, err := load.ReadFile(filepath.Join(dir, strconv.Itoa(i)+".stl"))
		if err != nil {
			return nil, fmt.Errorf("load process %d: %v", i, errors.Join(errs[i], err))
		}
		total.Merge(r)
	}
	return total, nil
}
