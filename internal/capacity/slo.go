package capacity

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stampede-dev/stampede/internal/load"
)

// ExitSLO is the exit status of a run or plan that breaks its SLO: not 0
// (success), 1 (the work failed) or 2 (a wrong command line), so that CI
// can tell a slow service from a broken test.
const ExitSLO = 3

// SLO is a set of objectives, all of which must hold: latency percentiles
// (p50, p90, p95, p99, p99.9) and the mean below a duration, the share of
// failed requests below a percentage, throughput above a rate.
type SLO []Objective

// Objective is one bound: Metric Op Value, as in p99<300ms.
type Objective struct {
	Metric string  `json:"metric"` // p50 p90 p95 p99 p99.9 mean errors rps
	Op     string  `json:"op"`     // < or >
	Value  float64 `json:"value"`  // seconds, a share (0.001 for 0.1 %), or requests/s
	Text   string  `json:"text"`
}

// Check is one objective judged.
type Check struct {
	Objective
	Got float64 `json:"got"`
	Met bool    `json:"met"`
}

// ParseSLO reads "p99<300ms,errors<0.1%,rps>100".
func ParseSLO(s string) (SLO, error) {
	var out SLO
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		i := strings.IndexAny(part, "<>")
		if i <= 0 || i == len(part)-1 {
			return nil, fmt.Errorf("%q: want METRIC<VALUE or METRIC>VALUE, as p99<300ms, errors<0.1%%, rps>100", part)
		}
		o := Objective{Metric: strings.ToLower(strings.TrimSpace(part[:i])), Op: part[i : i+1], Text: part}
		v := strings.TrimSpace(part[i+1:])
		switch o.Metric {
		case "p50", "p90", "p95", "p99", "p99.9", "p999", "mean":
			if o.Metric == "p999" {
				o.Metric = "p99.9"
			}
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("%q: %s needs a duration, as 300ms", part, o.Metric)
			}
			if o.Op != "<" {
				return nil, fmt.Errorf("%q: a latency objective is an upper bound (<)", part)
			}
			o.Value = d.Seconds()
		case "errors":
			f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
			if err != nil || !strings.HasSuffix(v, "%") || !(f >= 0 && f <= 100) {
				return nil, fmt.Errorf("%q: errors needs a percentage, as 0.1%%", part)
			}
			if o.Op != "<" {
				return nil, fmt.Errorf("%q: an error objective is an upper bound (<)", part)
			}
			o.Value = f / 100
		case "rps":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || !(f > 0) || f > load.MaxRate {
				return nil, fmt.Errorf("%q: rps needs a rate, as 100", part)
			}
			if o.Op != ">" {
				return nil, fmt.Errorf("%q: a throughput objective is a lower bound (>)", part)
			}
			o.Value = f
		default:
			return nil, fmt.Errorf("%q: unknown metric %q (p50, p90, p95, p99, p99.9, mean, errors, rps)", part, o.Metric)
		}
		out = append(out, o)
	}
	return out, nil
}

// percentile picks the objective's latency from p.
func percentile(metric string, p load.Percentiles) float64 {
	switch metric {
	case "p50":
		return p.P50
	case "p90":
		return p.P90
	case "p95":
		return p.P95
	case "p99":
		return p.P99
	case "p99.9":
		return p.P999
	}
	return p.Mean
}

// Has reports whether the SLO bounds metric ("errors", "p99", …).
func (s SLO) Has(metric string) bool {
	return slices.ContainsFunc(s, func(o Objective) bool { return o.Metric == metric })
}

// Judge checks a run's report against the SLO.
func (s SLO) Judge(rep load.Report) []Check {
	return s.judge(func(o Objective) float64 {
		switch o.Metric {
		case "errors":
			return rep.ErrorRate
		case "rps":
			return rep.RPS
		}
		return percentile(o.Metric, rep.Latency)
	})
}

func (s SLO) judge(got func(Objective) float64) []Check {
	out := make([]Check, len(s))
	for i, o := range s {
		v := got(o)
		met := v < o.Value
		if o.Op == ">" {
			met = v > o.Value
		}
		out[i] = Check{Objective: o, Got: v, Met: met}
	}
	return out
}

// Met reports whether every check passed.
func Met(checks []Check) bool {
	for _, c := range checks {
		if !c.Met {
			return false
		}
	}
	return true
}

// Describe writes the checks as one line: "p99<300ms met (212ms); …".
func Describe(checks []Check) string {
	var parts []string
	for _, c := range checks {
		got := strconv.FormatFloat(c.Got, 'f', 1, 64) + " req/s"
		switch c.Metric {
		case "errors":
			got = strconv.FormatFloat(100*c.Got, 'f', 2, 64) + "%"
		case "rps":
		default:
			got = seconds(c.Got)
		}
		verdict := "met"
		if !c.Met {
			verdict = "NOT met"
		}
		parts = append(parts, fmt.Sprintf("%s %s (%s)", c.Text, verdict, got))
	}
	return strings.Join(parts, "; ")
}
