package load

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
)

// WriteHTML writes a self-contained page (inline SVG, no scripts, no
// network) with requests/s and latency over time and the percentile curve.
// Axes have round ticks and units; the last second of a run, usually only
// part of one, is drawn at its own rate, or left out when too short to
// have one.
func WriteHTML(w io.Writer, r *Result, sources []string) error {
	rep := r.Report()
	var at, rps, p50, p99 []float64 // at: when each window ended
	for i, s := range r.Seconds {
		width := 1.0
		if i == len(r.Seconds)-1 {
			if width = r.Duration.Seconds() - float64(i); width < 0.1 || width > 1 {
				if width < 0.1 {
					break
				}
				width = 1
			}
		}
		at = append(at, float64(i)+width)
		rps = append(rps, float64(s.Requests)/width)
		p50 = append(p50, float64(s.Latency.ValueAtQuantile(50)))
		p99 = append(p99, float64(s.Latency.ValueAtQuantile(99)))
	}
	// The percentile curve on a log scale of 1/(1-q): 0, 90, 99, 99.9 …
	var qx, qy []float64
	for i := 0; i <= 50; i++ {
		x := float64(i) / 10 // 0 … 5 nines
		q := 100 * (1 - math.Pow(10, -x))
		qx = append(qx, x)
		qy = append(qy, float64(r.Latency.ValueAtQuantile(q)))
	}
	l := rep.Latency
	data := map[string]any{
		"Report":   rep,
		"Failed":   rep.Requests - rep.Answered,
		"ErrorPct": 100 * rep.ErrorRate,
		"Notes":    rep.Notes(),
		"Sources":  strings.Join(sources, ", "),
		"Lat": []string{duration(l.Min), duration(l.Mean), duration(l.P50), duration(l.P90), duration(l.P99),
			duration(l.P999), duration(l.Max)},
		"RPS":   template.HTML(chart("requests per second", "seconds", countAxis("req/s"), [][]float64{rps}, at, []string{"requests"})),
		"Time":  template.HTML(chart("latency over time", "seconds", latencyAxis(p99), [][]float64{p50, p99}, at, []string{"p50", "p99"})),
		"Curve": template.HTML(chart("latency by percentile", "percentile (nines: 1 = 90, 2 = 99, 3 = 99.9)", latencyAxis(qy), [][]float64{qy}, qx, []string{"latency"})),
	}
	return page.Execute(w, data)
}

// axis says how a chart's y values are shown: divided by div, labelled
// with unit, ticks written by format.
type axis struct {
	label  string
	div    float64
	format func(float64) string
}

// countAxis shows counts as 950, 12k, 1.5M.
func countAxis(label string) axis {
	return axis{label: label, div: 1, format: func(v float64) string {
		switch {
		case v >= 1e6:
			return trim(v/1e6) + "M"
		case v >= 1e3:
			return trim(v/1e3) + "k"
		}
		return trim(v)
	}}
}

// latencyAxis shows microseconds in µs, ms or s, whichever suits the
// largest of values.
func latencyAxis(values []float64) axis {
	top := 0.0
	for _, v := range values {
		top = max(top, v)
	}
	switch {
	case top >= 1e6:
		return axis{label: "latency (s)", div: 1e6, format: trim}
	case top >= 1e3:
		return axis{label: "latency (ms)", div: 1e3, format: trim}
	}
	return axis{label: "latency (µs)", div: 1, format: trim}
}

// trim writes v with up to three significant digits and no exponent.
func trim(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	if v >= 100 || v == math.Trunc(v) {
		s = strconv.FormatFloat(v, 'f', 0, 64)
	} else if v >= 10 {
		s = strconv.FormatFloat(v, 'f', 1, 64)
	}
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// duration writes seconds as µs, ms or s with a few significant digits.
func duration(sec float64) string {
	switch us := sec * 1e6; {
	case us >= 1e6:
		return trim(us/1e6) + " s"
	case us >= 1e3:
		return trim(us/1e3) + " ms"
	default:
		return trim(us) + " µs"
	}
}

// NiceStep is a step of 1, 2 or 5 times a power of ten that cuts [0, top]
// into about n parts: the ticks of a chart's axis.
func NiceStep(top float64, n int) float64 {
	if top <= 0 {
		return 1
	}
	raw := top / float64(n)
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			return m * pow
		}
	}
	return 10 * pow
}

// Style is the stylesheet the pages of runs and plans share, as a
// template named "style": colours for light and dark.
const Style = style

const style = `{{define "style"}}<style>
:root { color-scheme: light dark; --fg: #1d2430; --bg: #fff; --grid: #d0d5dd; --s0: #2563eb; --s1: #dc2626; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e9ef; --bg: #14171c; --grid: #3a414c; --s0: #60a5fa; --s1: #f87171; } }
body { font: 15px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg); max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
table { border-collapse: collapse; } td, th { padding: .2rem .8rem; text-align: right; border-bottom: 1px solid var(--grid); }
svg { width: 100%; height: auto; } svg text { fill: var(--fg); font-size: 12px; }
.grid { stroke: var(--grid); } .s0 { stroke: var(--s0); fill: none; stroke-width: 2; } .s1 { stroke: var(--s1); fill: none; stroke-width: 2; }
.dot { fill: var(--s1); } .peak { stroke: var(--s1); stroke-dasharray: 5 4; }
</style>{{end}}`

var page = template.Must(template.Must(template.New("report").Parse(style)).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>stampede load report</title>
{{template "style"}}</head><body>
<h1>stampede load report</h1>
<p>{{.Sources}} · {{.Report.Mode}} model · {{.Report.Answered}} answered in {{printf "%.2f" .Report.DurationSeconds}} s · {{printf "%.1f" .Report.RPS}} req/s</p>
<table id="outcomes"><tr><th>answered</th><th>failed</th><th>unfinished at the end</th><th>error rate</th></tr>
<tr><td>{{.Report.Answered}}</td><td>{{.Failed}}</td><td>{{.Report.Unfinished}}</td><td>{{printf "%.2f%%" .ErrorPct}}</td></tr></table>
<table id="status-codes"><tr><th>status</th><th>answers</th></tr>{{range $k, $v := .Report.StatusCodes}}<tr><td>{{$k}}</td><td>{{$v}}</td></tr>{{else}}<tr><td colspan="2">no answer</td></tr>{{end}}</table>
{{if .Report.Errors}}<table id="errors"><tr><th>error</th><th>requests</th></tr>{{range $k, $v := .Report.Errors}}<tr><td>{{$k}}</td><td>{{$v}}</td></tr>{{end}}</table>{{end}}
{{range .Notes}}<p class="note">{{.}}</p>{{end}}
<table><tr><th>min</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>
<tr>{{range .Lat}}<td>{{.}}</td>{{end}}</tr>
</table><p>latency measured from each request's intended send time</p>
{{.RPS}}{{.Time}}{{.Curve}}
</body></html>
`))

// frame is a chart's drawing area: an SVG of W×H with margins, y from 0
// to ytop and x from xmin to xmax, both cut into round steps.
type frame struct {
	W, H, L, R, T, B  float64
	xmin, xmax, xstep float64
	ytop, ystep       float64
	y                 axis
	title, xLabel     string
}

// newFrame fits round axes around x values from xmin to xmax and y
// values up to ymax (already divided by y.div).
func newFrame(title, xLabel string, y axis, h, xmin, xmax, ymax float64) *frame {
	f := &frame{W: 900, H: h, L: 70, R: 20, T: 30, B: 45, y: y, title: title, xLabel: xLabel}
	f.ystep = NiceStep(ymax, 4)
	f.ytop = math.Max(f.ystep, math.Ceil(ymax/f.ystep)*f.ystep)
	if xmax == xmin {
		xmax = xmin + 1
	}
	f.xstep = NiceStep(xmax-xmin, 8)
	f.xmin, f.xmax = xmin, math.Max(xmax, xmin+f.xstep)
	return f
}

func (f *frame) px(x float64) float64 { return f.L + (x-f.xmin)/(f.xmax-f.xmin)*(f.W-f.L-f.R) }
func (f *frame) py(v float64) float64 { return f.H - f.B - v/f.ytop*(f.H-f.T-f.B) }

// open starts the SVG with its title, grid, ticks and axis labels.
func (f *frame) open(b *strings.Builder) {
	fmt.Fprintf(b, `<svg viewBox="0 0 %.0f %.0f" role="img" aria-label="%s"><text x="%.0f" y="18">%s</text>`, f.W, f.H, f.title, f.L, f.title)
	for v := 0.0; v <= f.ytop+f.ystep/2; v += f.ystep {
		fmt.Fprintf(b, `<line class="grid" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`,
			f.L, f.W-f.R, f.py(v), f.py(v), f.L-6, f.py(v)+4, f.y.format(v))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, (f.L+f.W-f.R)/2, f.H-8, f.xLabel)
	fmt.Fprintf(b, `<text transform="translate(14 %.1f) rotate(-90)" text-anchor="middle">%s</text>`, (f.H-f.B+f.T)/2, f.y.label)
	for x := math.Ceil(f.xmin/f.xstep) * f.xstep; x <= f.xmax+f.xstep/1000; x += f.xstep {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, f.px(x), f.H-f.B+16, trim(x))
	}
}

// chart draws line series as SVG with round ticks on both axes, units and
// a legend. xs are the x values of every series' points.
func chart(title, xLabel string, y axis, series [][]float64, xs []float64, names []string) string {
	ymax := 0.0
	for _, s := range series {
		for _, v := range s {
			ymax = max(ymax, v/y.div)
		}
	}
	xmin, xmax := 0.0, 1.0
	if len(xs) > 0 {
		xmin, xmax = math.Min(0, xs[0]), xs[len(xs)-1]
	}
	f := newFrame(title, xLabel, y, 300, xmin, xmax, ymax)
	W, R := f.W, f.R
	var b strings.Builder
	f.open(&b)
	for si, s := range series {
		var pts []string
		for i, v := range s {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", f.px(xs[i]), f.py(v/y.div)))
		}
		fmt.Fprintf(&b, `<polyline class="s%d" points="%s"><title>%s</title></polyline>`, si%2, strings.Join(pts, " "), names[si])
		fmt.Fprintf(&b, `<line class="s%d" x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f"/><text x="%.0f" y="%.0f">%s</text>`,
			si%2, W-R-140+float64(si)*70, W-R-120+float64(si)*70, 14.0, 14.0, W-R-116+float64(si)*70, 18.0, names[si])
	}
	b.WriteString(`</svg>`)
	return b.String()
}
