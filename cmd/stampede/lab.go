package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/stampede-dev/stampede/internal/lab"
	"github.com/stampede-dev/stampede/internal/lab/async"
	"github.com/stampede-dev/stampede/internal/lab/costs"
	"github.com/stampede-dev/stampede/internal/lab/eventloop"
	"github.com/stampede-dev/stampede/internal/lab/flashsale"
	"github.com/stampede-dev/stampede/internal/lab/interleave"
	"github.com/stampede-dev/stampede/internal/lab/ipc"
	"github.com/stampede-dev/stampede/internal/lab/isolation"
	"github.com/stampede-dev/stampede/internal/lab/lostupdate"
	"github.com/stampede-dev/stampede/internal/lab/parallel"
	"github.com/stampede-dev/stampede/internal/lab/reference"
	"github.com/stampede-dev/stampede/internal/lab/sched"
	"github.com/stampede-dev/stampede/internal/lab/schedobs"
	"github.com/stampede-dev/stampede/internal/lab/syncbench"
)

// experiments is every lab experiment, in the order of the chapters; be
// is the store and Redis the flash sale uses (empty: its own).
func experiments(be flashsale.Backends) []lab.Experiment {
	return []lab.Experiment{
		costs.New(),
		sched.New(),
		schedobs.New(),
		syncbench.New(),
		lostupdate.New(),
		isolation.New(shopBinary()),
		ipc.New(shopBinary()),
		async.New(shopBinary()),
		eventloop.New(shopBinary()),
		parallel.New(shopBinary()),
		parallel.NewGMP(shopBinary()),
		parallel.NewGMPSim(),
		interleave.NewModel(),
		interleave.NewReal(shopBinary()),
		flashsale.New(shopBinary(), be),
		flashsale.NewSweep(shopBinary(), be),
		reference.New(shopBinary()),
	}
}

// backendFlags adds --store and --redis, the flash sale's backends, to fs.
func backendFlags(fs *flag.FlagSet) func() (flashsale.Backends, error) {
	store := fs.String("store", "", "the flash sale's store: a postgres:// DSN (default: a temporary SQLite file per sale)")
	redis := fs.String("redis", "", "the flash sale's Redis, for redis-lock and reserve in several processes: redis://HOST:PORT (default: a private redis-server per sale)")
	return func() (flashsale.Backends, error) {
		if *store != "" && !strings.HasPrefix(*store, "postgres://") && !strings.HasPrefix(*store, "postgresql://") {
			return flashsale.Backends{}, usageError{fmt.Errorf("--store %q: want a postgres:// DSN; SQLite is the default", *store)}
		}
		if *redis != "" && !strings.HasPrefix(*redis, "redis://") {
			return flashsale.Backends{}, usageError{fmt.Errorf("--redis %q: want redis://HOST:PORT", *redis)}
		}
		return flashsale.Backends{Store: *store, Redis: *redis}, nil
	}
}

// shopBinary is this binary, which the lab's flash sale starts as the
// shop and the async trap as its child; "" if it cannot be found, and the
// experiments say so or leave that part out.
func shopBinary() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return exe
}

func runLab(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("lab", "lab [--addr HOST:PORT] [--open]", stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address; anything but loopback lets other machines run experiments here")
	open := fs.Bool("open", false, "open the lab in the default browser")
	allow := fs.String("allow-host", "", "host names, comma-separated, the lab answers to besides IP addresses and localhost (it refuses others, as a page whose name was rebound to this machine would send)")
	backends := backendFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	be, err := backends()
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if _, port, err := net.SplitHostPort(*addr); err != nil || !validPort(port) {
		return usageError{fmt.Errorf("--addr %q: want HOST:PORT with a port from 0 to 65535, as in 127.0.0.1:8080", *addr)}
	}
	if !lab.IsLoopback(*addr) {
		fmt.Fprintf(stderr, "warning: the lab listens on %s, so anyone who can reach this machine can run experiments on it\n", *addr)
	}
	srv := lab.NewServer(logger(stderr), experiments(be)...)
	for h := range strings.SplitSeq(*allow, ",") {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			srv.AllowHosts = append(srv.AllowHosts, h)
		}
	}
	return lab.ListenAndServe(ctx, *addr, srv.Handler(), func(bound string) {
		url := "http://" + bound + "/"
		fmt.Fprintf(stdout, "stampede lab: %s (Ctrl-C stops)\n", url)
		if *open {
			if err := openBrowser(url); err != nil {
				fmt.Fprintf(stderr, "stampede lab: could not open a browser (%v); open %s yourself\n", err, url)
			}
		}
	})
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}

func openBrowser(url string) error {
	name := "xdg-open"
	if runtime.GOOS == "darwin" {
		name = "open"
	}
	cmd := exec.Command(name, url)
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}

// paramFlags collects repeated -p key=value.
type paramFlags map[string]any

func (p paramFlags) String() string { return "" }

func (p paramFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	p[k] = v
	return nil
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", "bench [ID] [-p key=value ...] [--json]", stderr)
	params := paramFlags{}
	fs.Var(params, "p", "set a parameter: -p key=value (repeatable)")
	asJSON := fs.Bool("json", false, "print the result, and the machine it was measured on, as JSON")
	backends := backendFlags(fs)
	// Flags may come before or after the experiment id.
	var positional []string
	for {
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	be, err := backends()
	if err != nil {
		return err
	}
	exps := experiments(be)
	if len(positional) == 0 {
		listExperiments(stdout, exps)
		return nil
	}
	if len(positional) > 1 {
		return usageError{fmt.Errorf("one experiment at a time; got %s", strings.Join(positional, " "))}
	}
	var exp lab.Experiment
	for _, e := range exps {
		if e.Info().ID == positional[0] {
			exp = e
		}
	}
	if exp == nil {
		ids := make([]string, len(exps))
		for i, e := range exps {
			ids[i] = e.Info().ID
		}
		return usageError{fmt.Errorf("no experiment %q (have: %s)", positional[0], strings.Join(ids, ", "))}
	}
	values, err := lab.Resolve(exp.Info().Params, params)
	if err != nil {
		return usageError{err}
	}
	var (
		mu      sync.Mutex // experiments may emit from several goroutines
		result  lab.Event
		lastMsg string
	)
	err = lab.Execute(ctx, exp, values, lab.ReadMachine(), func(e lab.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e.Kind {
		case lab.KindProgress:
			if e.Message != lastMsg {
				lastMsg = e.Message
				fmt.Fprintf(stderr, "… %s\n", e.Message)
			}
		case lab.KindResult:
			result = e
		}
	})
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("cancelled")
		}
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"experiment": exp.Info().ID, "params": values, "machine": result.Machine, "result": result.Data})
	}
	m := result.Machine
	virt := "not virtualised"
	if m.Virtualised {
		virt = "virtualised"
		if m.Hypervisor != "" {
			virt += " (" + m.Hypervisor + ")"
		}
	}
	fmt.Fprintf(stdout, "%s\nmeasured on: %s, %d cores, %s, %s, GOMAXPROCS %d, %s\n\n", exp.Info().Title, m.CPU, m.Cores, m.Kernel, m.Go, m.GOMAXPROCS, virt)
	if t, ok := result.Data.(lab.TextResult); ok {
		return t.WriteText(stdout)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(result.Data)
}

func listExperiments(w io.Writer, exps []lab.Experiment) {
	fmt.Fprintln(w, "Experiments (run one with: stampede bench ID [-p key=value ...] [--json]):")
	for _, e := range exps {
		info := e.Info()
		kind := "measured"
		if info.Simulation {
			kind = "simulated"
		}
		fmt.Fprintf(w, "\n  %-12s chapter %d, %s: %s\n", info.ID, info.Chapter, kind, info.Title)
		for _, p := range info.Params {
			bounds := ""
			switch p.Kind {
			case lab.Int, lab.Float:
				bounds = fmt.Sprintf("%s to %s", strconv.FormatFloat(p.Min, 'f', -1, 64), strconv.FormatFloat(p.Max, 'f', -1, 64))
			case lab.Choice:
				bounds = strings.Join(p.Choices, " | ")
			case lab.Bool:
				bounds = "true | false"
			case lab.Text:
				bounds = fmt.Sprintf("text, at most %d bytes", p.MaxLen)
			}
			fmt.Fprintf(w, "      -p %s=%v\t(%s) %s\n", p.Name, p.Default, bounds, p.Label)
		}
	}
}
