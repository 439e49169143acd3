package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/stampede-dev/stampede/internal/load"
)

func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("report", "report [--output text|json] [--html out.html] RESULT.stl …", stderr)
	output := fs.String("output", "text", "report format: text or json")
	html := fs.String("html", "", "also write a self-contained HTML page with the charts")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{fmt.Errorf("give one or more .stl files written by stampede load -o")}
	}
	if *output != "text" && *output != "json" {
		return usageError{fmt.Errorf("--output must be text or json, not %q", *output)}
	}
	total := load.NewResult()
	for _, path := range fs.Args() {
		r, err := load.ReadFile(path)
		if err != nil {
			return usageError{err}
		}
		total.Merge(r)
	}
	if *html != "" {
		f, err := os.Create(*html)
		if err != nil {
			return err
		}
		err = load.WriteHTML(f, total, fs.Args())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", *html, err)
		}
	}
	return writeReport(stdout, total.Report(), *output)
}
