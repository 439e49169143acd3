// Command stampede learns, runs and measures concurrency: the lab, the
// flash-sale shop and the load generator in one binary. This file only
// wires subcommands to the packages under internal/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/stampede-dev/stampede/internal/backend"
	"github.com/stampede-dev/stampede/internal/lab/async"
	"github.com/stampede-dev/stampede/internal/lab/costs"
	"github.com/stampede-dev/stampede/internal/lab/eventloop"
	"github.com/stampede-dev/stampede/internal/lab/interleave"
	"github.com/stampede-dev/stampede/internal/lab/ipc"
	"github.com/stampede-dev/stampede/internal/lab/isolation"
	"github.com/stampede-dev/stampede/internal/lab/parallel"
)

// command is one subcommand. run returns an error to print as one line;
// a usageError means the command line was wrong (exit code 2).
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"lab", "serve the lab: concurrency demos that run on this machine (the default)", runLab},
		{"bench", "run one lab experiment from the shell and print its figures", runBench},
		{"shop", "run the flash-sale order service", runShop},
		{"load", "bring the crowd: load-test an HTTP service or the shop", runLoad},
		{"report", "merge .stl results from stampede load -o; print or write HTML", runReport},
		{"usl", "fit the Universal Scalability Law to measurements: where throughput peaks", runUSL},
		{"verify", "run a flash sale with faults and prove what it did: the books, limits, linearizability", runVerify},
		{"version", "print the version, the commit and the Go that built this binary", runVersion},
	}
}

func main() {
	if backend.ReaperMain() { // the reaper of this process's private servers
		return
	}
	if costs.ChildMain() { // a child process of the lab's first chapter
		return
	}
	if async.ChildMain() { // the trap of the lab's fifth chapter
		return
	}
	if isolation.ChildMain() { // a child of the lab's fourth chapter
		return
	}
	if parallel.ChildMain() { // a workload of the lab's sixth chapter
		return
	}
	if eventloop.ChildMain() { // a server of the lab's fifth chapter
		return
	}
	if ipc.ChildMain() { // an end of the lab's fourth chapter's IPC
		return
	}
	if interleave.ChildMain() { // the deadlock child of the lab's seventh chapter
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches args and returns the exit code: 0 on success, 1 when the
// work failed, 2 when the command line was wrong, 3 when a run or a plan
// broke its service-level objectives (--slo).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		args = []string{"lab"}
	}
	name := args[0]
	if name == "--version" || name == "-version" {
		name, args = "version", []string{"version"}
	}
	if name == "help" || name == "-h" || name == "--help" || name == "-help" {
		if len(args) > 1 {
			return run(ctx, []string{args[1], "-h"}, stdout, stderr)
		}
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		}
		// One line, whatever the error's own layout (drivers like newlines).
		fmt.Fprintf(stderr, "stampede %s: %s\n", name, strings.Join(strings.Fields(err.Error()), " "))
		var ue usageError
		var ee exitError
		switch {
		case errors.As(err, &ue):
			return 2
		case errors.As(err, &ee):
			return ee.code
		}
		return 1
	}
	fmt.Fprintf(stderr, "stampede: unknown command %q (run 'stampede help')\n", name)
	return 2
}

// usageError marks a mistake in the command line: exit code 2.
type usageError struct{ error }

// exitError carries an exit code of its own, such as the SLO gate's 3.
type exitError struct {
	code int
	error
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "stampede: learn, run and measure concurrency for real.")
	fmt.Fprintln(w, "\nUsage: stampede [COMMAND] [flags]   (no command: stampede lab)\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'stampede COMMAND -h' for a command's flags.")
}

// newFlagSet returns a FlagSet that reports errors instead of exiting and
// prints its usage to stderr.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: stampede %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args. A wrong flag is one line, a usageError naming the
// help to read; -h prints the flags.
func parse(fs *flag.FlagSet, args []string) error {
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage()
		return err
	case err != nil:
		return usageError{fmt.Errorf("%v (see stampede %s -h)", err, fs.Name())}
	}
	return nil
}

func logger(stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
