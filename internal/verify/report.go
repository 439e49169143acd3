package verify

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stampede-dev/stampede/internal/load"
)

// Slot is one interval of the sale's timeline: the purchases that got
// their final answer in it, by answer, and the faults under way.
type Slot struct {
	At            time.Duration `json:"at_ns"` // since the sale started
	Acknowledged  int           `json:"acknowledged"`
	SoldOut       int           `json:"sold_out"`
	LimitExceeded int           `json:"limit_exceeded"`
	Failed        int           `json:"failed"`  // unsettled or another answer, before settling
	Retries       int           `json:"retries"` // attempts beyond the first, of purchases answered here
	Faults        []string      `json:"faults,omitempty"`
}

// slotWidth gives a timeline of about 12 to 24 rows.
func slotWidth(d time.Duration) time.Duration {
	for _, w := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second} {
		if d/w <= 24 {
			return w
		}
	}
	return time.Minute
}

// timeline bins the purchases by when they were answered during the sale
// (settling's answers are not in it) and marks the faults.
func (r *run) timeline(events []Event) []Slot {
	end := r.cfg.Duration
	for _, p := range r.during {
		end = max(end, p.End.Sub(r.start))
	}
	w := slotWidth(r.cfg.Duration)
	slots := make([]Slot, int(end/w)+1)
	for i := range slots {
		slots[i].At = time.Duration(i) * w
	}
	for _, p := range r.during {
		s := &slots[min(int(p.End.Sub(r.start)/w), len(slots)-1)]
		switch p.Outcome {
		case load.Acknowledged:
			s.Acknowledged++
		case load.SoldOut:
			s.SoldOut++
		case load.LimitExceeded:
			s.LimitExceeded++
		default:
			s.Failed++
		}
		s.Retries += p.Attempts - 1
	}
	for _, ev := range events {
		if ev.Start == 0 && ev.End == 0 {
			continue // never injected
		}
		for i := range slots {
			if slots[i].At <= ev.End && ev.Start < slots[i].At+w {
				slots[i].Faults = append(slots[i].Faults, ev.Kind)
			}
		}
	}
	return slots
}

// WriteText prints the verdict table, the outcomes and the timeline.
func WriteText(w io.Writer, rep *Report) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "invariant\texpected\tobserved\tverdict")
	for _, inv := range rep.Invariants {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", inv.Name, inv.Expected, inv.Observed, inv.Verdict)
	}
	tw.Flush()
	o := rep.Outcomes
	fmt.Fprintf(w, "\npurchases %d planned, %d sent; the longest a purchase waited for a definite answer %.2fs (fault windows aside)", rep.Planned, rep.Sent, rep.LongestStall)
	fmt.Fprintf(w, "\npurchases %d: %d acknowledged, %d sold out, %d over the limit, %d unsettled, %d other; %d retried; %d orders stored\n",
		o.Purchases, o.Acknowledged, o.SoldOut, o.LimitExceeded, o.Unsettled, o.Other, o.Retried, o.Stored)
	fmt.Fprintf(w, "during the sale: %d answers, %d transport errors\n", rep.Requests, rep.Errors)
	for _, ev := range rep.Events {
		if ev.Err != "" {
			fmt.Fprintf(w, "fault %v: %s\n", ev.Fault, ev.Err)
		} else {
			fmt.Fprintf(w, "fault %v: from %v to %v\n", ev.Fault, ev.Start.Round(time.Millisecond), ev.End.Round(time.Millisecond))
		}
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "time\tacked\tsold out\tlimit\tfailed\tretries\t faults")
	for _, s := range rep.Timeline {
		fmt.Fprintf(tw, "%v\t%d\t%d\t%d\t%d\t%d\t %s\n", s.At, s.Acknowledged, s.SoldOut, s.LimitExceeded, s.Failed, s.Retries, strings.Join(s.Faults, " "))
	}
	tw.Flush()
	if rep.OK() {
		fmt.Fprintln(w, "\nverdict: every invariant held")
	} else {
		var failed []string
		for _, inv := range rep.Invariants {
			if inv.Verdict == Fail {
				failed = append(failed, inv.Name)
			}
		}
		fmt.Fprintf(w, "\nverdict: VIOLATED: %s\n", strings.Join(failed, "; "))
	}
	return nil
}

// WriteHistory writes the history as JSON lines, one operation each, in
// the order they were called: the raw record to check again or plot.
func WriteHistory(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	for _, op := range rep.History {
		if err := enc.Encode(op); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON writes the report as one JSON document.
func WriteJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteHTML writes the report as a page: the verdict table, and the
// timeline drawn as stacked bars of answers per slot with the faults
// shaded behind them.
func WriteHTML(w io.Writer, rep *Report) error {
	const width, height, left, bottom = 760, 240, 44, 24
	peak := 1
	for _, s := range rep.Timeline {
		peak = max(peak, s.Acknowledged+s.SoldOut+s.LimitExceeded+s.Failed)
	}
	n := max(len(rep.Timeline), 1)
	bw := float64(width-left) / float64(n)
	y := func(v int) float64 { return float64(height-bottom) * (1 - float64(v)/float64(peak)) }
	var bars []bar
	for i, s := range rep.Timeline {
		x := float64(left) + float64(i)*bw
		if len(s.Faults) > 0 {
			bars = append(bars, bar{X: x, Y: 0, W: bw, H: float64(height - bottom), Class: "fault", Title: strings.Join(s.Faults, ", ")})
		}
		base := 0
		for _, part := range []struct {
			n     int
			class string
		}{{s.Acknowledged, "ack"}, {s.SoldOut, "soldout"}, {s.LimitExceeded, "limit"}, {s.Failed, "failed"}} {
			if part.n == 0 {
				continue
			}
			top := y(base + part.n)
			bars = append(bars, bar{X: x + 1, Y: top, W: bw - 2, H: y(base) - top, Class: part.class,
				Title: fmt.Sprintf("%v: %d %s", s.At, part.n, part.class)})
			base += part.n
		}
	}
	var labels []label
	for i, s := range rep.Timeline {
		if i%max(1, n/8) == 0 {
			labels = append(labels, label{X: float64(left) + float64(i)*bw, Y: height - 6, Text: s.At.String()})
		}
	}
	labels = append(labels, label{X: 2, Y: 12, Text: fmt.Sprint(peak)}, label{X: 2, Y: height - bottom, Text: "0"})
	return page.Execute(w, map[string]any{"R": rep, "OK": rep.OK(), "Bars": bars, "Labels": labels, "W": width, "H": height})
}

type bar struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

type label struct {
	X, Y float64
	Text string
}

var page = template.Must(template.New("verify").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>stampede verify</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:820px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:left}
.pass{color:#176b2c}.FAIL{color:#b00020;font-weight:bold}
svg text{font-size:11px;fill:#555}.ack{fill:#2e7d32}.soldout{fill:#9e9e9e}.limit{fill:#f9a825}.failed{fill:#c62828}.fault{fill:#fde0dc}
.key span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;vertical-align:middle}
</style></head><body>
<h1>stampede verify: {{if .OK}}every invariant held{{else}}<span class="FAIL">violated</span>{{end}}</h1>
<table><tr><th>invariant</th><th>expected</th><th>observed</th><th>verdict</th></tr>
{{range .R.Invariants}}<tr><td>{{.Name}}</td><td>{{.Expected}}</td><td>{{.Observed}}</td><td class="{{.Verdict}}">{{.Verdict}}</td></tr>
{{end}}</table>
<p>{{with .R.Outcomes}}{{.Purchases}} purchases: {{.Acknowledged}} acknowledged, {{.SoldOut}} sold out, {{.LimitExceeded}} over the limit, {{.Unsettled}} unsettled, {{.Other}} other; {{.Retried}} retried; {{.Stored}} orders stored.{{end}}</p>
<h2>Answers over time, faults shaded</h2>
<svg width="{{.W}}" height="{{.H}}" role="img" aria-label="answers per interval">
{{range .Bars}}<rect x="{{printf "%.1f" .X}}" y="{{printf "%.1f" .Y}}" width="{{printf "%.1f" .W}}" height="{{printf "%.1f" .H}}" class="{{.Class}}"><title>{{.Title}}</title></rect>
{{end}}{{range .Labels}}<text x="{{printf "%.1f" .X}}" y="{{printf "%.1f" .Y}}">{{.Text}}</text>
{{end}}</svg>
<p class="key"><span class="ack" style="background:#2e7d32"></span>acknowledged<span style="background:#9e9e9e"></span>sold out<span style="background:#f9a825"></span>over the limit<span style="background:#c62828"></span>failed<span style="background:#fde0dc"></span>fault</p>
<ul>{{range .R.Events}}<li>{{.Fault}}{{if .Err}}: {{.Err}}{{else}}: from {{.Start}} to {{.End}}{{end}}</li>{{end}}</ul>
</body></html>
`))
