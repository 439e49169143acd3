package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/stampede-dev/stampede/internal/usl"
)

func runUSL(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("usl", "usl [--json] [--predict N] FILE   (CSV with the header concurrency,throughput; - reads standard input)", stderr)
	asJSON := fs.Bool("json", false, "print the fit as JSON")
	predict := fs.Float64("predict", 0, "concurrency to predict throughput and latency at (default: the largest measured); past 4× it the law is no evidence, and the report says so")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{fmt.Errorf("give one CSV file of measurements, or - for standard input (see stampede usl -h)")}
	}
	if *predict != 0 && (!(*predict >= 1) || math.IsInf(*predict, 0)) {
		return usageError{fmt.Errorf("--predict must be a concurrency of at least 1, not %g", *predict)}
	}
	in := io.Reader(os.Stdin)
	if name := fs.Arg(0); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return usageError{err}
		}
		defer f.Close()
		in = f
	}
	points, err := usl.ReadCSV(in)
	if err != nil {
		return usageError{fmt.Errorf("%s: %v", fs.Arg(0), err)}
	}
	m, err := usl.Fit(points)
	if err != nil {
		return usageError{fmt.Errorf("%s: %v", fs.Arg(0), err)}
	}
	if *predict == 0 {
		for _, p := range points {
			*predict = math.Max(*predict, p.N)
		}
	}
	rep := usl.Judge(m, points, *predict)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"usl": rep})
	}
	rep.WriteText(stdout)
	return nil
}
