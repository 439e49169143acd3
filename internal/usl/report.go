package usl

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// ReadCSV reads measurements from CSV with the header
// "concurrency,throughput" and one measurement a row.
func ReadCSV(r io.Reader) ([]Point, error) {
	cr := csv.NewReader(io.LimitReader(r, 16<<20))
	cr.TrimLeadingSpace = true
	head, err := cr.Read()
	if err != nil {
		return nil, errors.New("want CSV with the header concurrency,throughput")
	}
	if len(head) != 2 || !strings.EqualFold(strings.TrimSpace(head[0]), "concurrency") || !strings.EqualFold(strings.TrimSpace(head[1]), "throughput") {
		return nil, fmt.Errorf("header %q: want concurrency,throughput", strings.Join(head, ","))
	}
	var out []Point
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", line, err)
		}
		n, err1 := strconv.ParseFloat(strings.TrimSpace(rec[0]), 64)
		x, err2 := strconv.ParseFloat(strings.TrimSpace(rec[1]), 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("line %d: %q is not two numbers", line, strings.Join(rec, ","))
		}
		out = append(out, Point{n, x})
	}
}

// Report is a fitted model with what it says at a concurrency of interest.
type Report struct {
	Model
	PeakConcurrency float64    `json:"peak_concurrency"` // +Inf is written as 0: see Verdict
	PeakRPS         float64    `json:"peak_rps"`
	Predicted       Prediction `json:"predicted"`
	PastPeak        int        `json:"measurements_past_peak"`
	Verdict         []string   `json:"verdict"`
}

// Prediction is the model's throughput and latency at one concurrency.
type Prediction struct {
	Concurrency    float64 `json:"concurrency"`
	RPS            float64 `json:"rps"`
	LatencySeconds float64 `json:"latency_seconds"`
}

// Judge builds the report of m, fitted to points, predicting at n users.
func Judge(m Model, points []Point, n float64) Report {
	r := Report{Model: m, Predicted: Prediction{n, m.X(n), m.Latency(n)}}
	peak := m.Peak()
	maxN := 0.0
	for _, p := range points {
		maxN = math.Max(maxN, p.N)
		if p.N > peak {
			r.PastPeak++
		}
	}
	if !math.IsInf(peak, 1) {
		r.PeakConcurrency, r.PeakRPS = peak, m.X(peak)
		r.Verdict = append(r.Verdict, fmt.Sprintf("Throughput peaks at about %s concurrent users, at %s requests/s.", Count(peak), Count(m.X(peak))))
		if n > peak {
			r.Verdict = append(r.Verdict, fmt.Sprintf("%s users would be %s× past the peak: about %s requests/s in all, each request taking about %s.",
				Count(n), Count(n/peak), Count(m.X(n)), wait(m.Latency(n))))
		} else {
			r.Verdict = append(r.Verdict, fmt.Sprintf("%s users are below the peak: about %s requests/s, each request taking about %s.",
				Count(n), Count(m.X(n)), wait(m.Latency(n))))
		}
	} else {
		r.Verdict = append(r.Verdict, fmt.Sprintf("No coherency cost was found (κ = 0): throughput levels off towards λ/σ = %s requests/s instead of falling; %s users: about %s requests/s, each request taking about %s.",
			Count(m.Lambda/math.Max(m.Sigma, 1e-12)), Count(n), Count(m.X(n)), wait(m.Latency(n))))
	}
	contention, coherency := m.Sigma*(maxN-1), m.Kappa*maxN*(maxN-1)
	switch {
	case contention > coherency:
		r.Verdict = append(r.Verdict, fmt.Sprintf("At %s users, contention (σ = %.3g: about %.1f%% of the work waits on something serial, a lock or a hot row) costs more than coherency (κ = %.3g: crosstalk between users).",
			Count(maxN), m.Sigma, 100*m.Sigma, m.Kappa))
	default:
		r.Verdict = append(r.Verdict, fmt.Sprintf("At %s users, coherency (κ = %.3g: crosstalk between every pair of users, such as shared state kept in agreement) costs more than contention (σ = %.3g).",
			Count(maxN), m.Kappa, m.Sigma))
	}
	if !math.IsInf(peak, 1) && r.PastPeak < 2 {
		r.Verdict = append(r.Verdict, fmt.Sprintf("Only %d measurement(s) lie past the peak, so the peak is an extrapolation: measure above %s users to confirm it.", r.PastPeak, Count(peak)))
	}
	if n > 4*maxN {
		r.Verdict = append(r.Verdict, fmt.Sprintf("%s users is %s× the largest measurement (%s): the fit is no evidence that far out; stampede load --sweep plans such a crowd with the operational laws' bounds instead.",
			Count(n), Count(n/maxN), Count(maxN)))
	}
	if m.R2 < 0.9 {
		r.Verdict = append(r.Verdict, fmt.Sprintf("The law fits these measurements loosely (R² = %.3f): something else shapes them.", m.R2))
	}
	return r
}

// Count writes a number the way a person would say it: 49, 1,250, 24.6k
// (∞ for an infinity or NaN).
func Count(v float64) string {
	switch {
	case math.IsInf(v, 0) || math.IsNaN(v):
		return "∞"
	case v >= 1e6:
		return strings.TrimSuffix(strconv.FormatFloat(v/1e6, 'f', 1, 64), ".0") + "M"
	case v >= 1e4:
		return strings.TrimSuffix(strconv.FormatFloat(v/1e3, 'f', 1, 64), ".0") + "k"
	case v >= 100:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// WriteText writes the report for a person.
func (r Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "sigma   %.4g   (contention)\nkappa   %.4g   (coherency)\nlambda  %s/s   (one user alone)\nR²      %.4f\n",
		r.Sigma, r.Kappa, Count(r.Lambda), r.R2)
	if r.PeakConcurrency > 0 {
		fmt.Fprintf(w, "peak    %s users, %s/s\n", Count(r.PeakConcurrency), Count(r.PeakRPS))
	}
	fmt.Fprintf(w, "at %s  %s/s, %s a request\n\n", Count(r.Predicted.Concurrency), Count(r.Predicted.RPS), wait(r.Predicted.LatencySeconds))
	for _, line := range r.Verdict {
		fmt.Fprintln(w, line)
	}
}

// wait writes seconds as a duration rounded to what matters.
func wait(sec float64) string {
	if days := sec / 86400; days >= 2 {
		if years := days / 365; years >= 2 {
			return Count(years) + " years"
		}
		return Count(days) + " days"
	}
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Microsecond).String()
}
