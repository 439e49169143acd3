package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/stampede-dev/stampede/internal/verify"
)

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := verify.Defaults()
	fs := newFlagSet("verify", "verify [--strategy NAME] [--store sqlite|sqlite:PATH|postgres|DSN] [--redis private|URL] [--procs N] [--faults KIND@AT[/FOR],…] [--html FILE] [--json FILE]", stderr)
	fs.StringVar(&cfg.Strategy, "strategy", "", "the shop's strategy (default: the shop's own default for the setup)")
	fs.StringVar(&cfg.Store, "store", cfg.Store, "sqlite (a temporary file), sqlite:PATH (a file that stays), postgres (a private cluster, which pg-pause needs) or a DSN")
	fs.StringVar(&cfg.Redis, "redis", "", "private (a private redis-server, which redis-restart needs) or a Redis URL")
	fs.IntVar(&cfg.Procs, "procs", cfg.Procs, "shop worker processes")
	fs.DurationVar(&cfg.Gap, "gap", 0, "the shop's --gap: pause between read and write in naive, mutex and redis-lock")
	fs.IntVar(&cfg.Stock, "stock", cfg.Stock, "units on sale")
	fs.IntVar(&cfg.Limit, "limit", cfg.Limit, "per-user limit (0: none)")
	fs.IntVar(&cfg.Purchases, "purchases", cfg.Purchases, "purchases in all, one unit each")
	fs.IntVar(&cfg.Users, "users", cfg.Users, "users the purchases are for, one drawn at random for each")
	fs.DurationVar(&cfg.Duration, "d", cfg.Duration, "the purchases are spread evenly over this long")
	fs.IntVar(&cfg.InFlight, "inflight", cfg.InFlight, "purchases in flight at most")
	fs.IntVar(&cfg.Readers, "readers", cfg.Readers, "clients reading the stock throughout the sale (the linearizability check's reads)")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "a purchase resends 503s and lost connections with its key for this long")
	fs.DurationVar(&cfg.MaxStall, "max-stall", cfg.MaxStall, "the longest a purchase may wait for a definite answer, outside the faults' down windows (0: not checked)")
	faults := fs.String("faults", "", "faults: kill-worker, kill-shop, redis-restart, pg-pause, each @AT after the start, /FOR long (e.g. kill-shop@1s,pg-pause@2s/2s)")
	htmlOut := fs.String("html", "", "also write the report as an HTML page to this file")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file (- for standard output, instead of the text)")
	histOut := fs.String("history", "", "also write every operation (purchases and stock reads) as JSON lines to this file")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q (see stampede verify -h)", fs.Arg(0))}
	}
	var err error
	if cfg.Faults, err = verify.ParseFaults(*faults); err != nil {
		return usageError{fmt.Errorf("--faults: %v", err)}
	}
	if cfg.Exe, err = os.Executable(); err != nil {
		return err
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	// Files are created before the sale, so a wrong path costs no sale.
	var htmlFile, jsonFile, histFile *os.File
	for _, f := range []struct {
		name string
		file **os.File
	}{{*htmlOut, &htmlFile}, {*jsonOut, &jsonFile}, {*histOut, &histFile}} {
		if f.name == "" || f.name == "-" {
			continue
		}
		if *f.file, err = os.Create(f.name); err != nil {
			return usageError{err}
		}
		defer (*f.file).Close()
	}
	rep, err := verify.Run(ctx, cfg)
	if errors.Is(err, verify.ErrConfig) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	if *jsonOut == "-" {
		err = verify.WriteJSON(stdout, rep)
	} else {
		err = verify.WriteText(stdout, rep)
	}
	if jsonFile != nil {
		err = errors.Join(err, verify.WriteJSON(jsonFile, rep), jsonFile.Close())
	}
	if histFile != nil {
		err = errors.Join(err, verify.WriteHistory(histFile, rep), histFile.Close())
	}
	if htmlFile != nil {
		err = errors.Join(err, verify.WriteHTML(htmlFile, rep), htmlFile.Close())
	}
	if err != nil {
		return err
	}
	if !rep.OK() {
		var failed []string
		for _, inv := range rep.Invariants {
			if inv.Verdict == verify.Fail {
				failed = append(failed, inv.Name)
			}
		}
		return fmt.Errorf("the sale broke %d invariant(s): %s", len(failed), strings.Join(failed, "; "))
	}
	return nil
}
