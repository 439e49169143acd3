package load

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
)

// WriteHTML writes a self-contained page (inline SVG, no scripts, no
// network) with requests/s and latency over time and the percentile curve.
func WriteHTML(w io.Writer, r *Result, sources []string) error {
	rep := r.Report()
	var rps, p50, p99 []float64
	for _, s := range r.Seconds {
		rps = append(rps, float64(s.Requests))
		p50 = append(p50, float64(s.Latency.ValueAtQuantile(50))/1e3)
		p99 = append(p99, float64(s.Latency.ValueAtQuantile(99))/1e3)
	}
	// The percentile curve on a log scale of 1/(1-q): 0, 90, 99, 99.9 …
	var qx, qy []float64
	for i := 0; i <= 50; i++ {
		x := float64(i) / 10 // 0 … 5 nines
		q := 100 * (1 - math.Pow(10, -x))
		qx = append(qx, x)
		qy = append(qy, float64(r.Latency.ValueAtQuantile(q))/1e3)
	}
	data := map[string]any{
		"Report":  rep,
		"Sources": strings.Join(sources, ", "),
		"RPS":     template.HTML(chart("requests per second", "s", "req/s", [][]float64{rps}, nil, []string{"requests"})),
		"Lat":     template.HTML(chart("latency over time", "s", "ms", [][]float64{p50, p99}, nil, []string{"p50", "p99"})),
		"Curve":   template.HTML(chart("latency by percentile", "percentile (nines)", "ms", [][]float64{qy}, qx, []string{"latency"})),
	}
	return page.Execute(w, data)
}

var page = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>stampede load report</title>
<style>
:root { color-scheme: light dark; --fg: #1d2430; --bg: #fff; --grid: #d0d5dd; --s0: #2563eb; --s1: #dc2626; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e9ef; --bg: #14171c; --grid: #3a414c; --s0: #60a5fa; --s1: #f87171; } }
body { font: 15px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg); max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
table { border-collapse: collapse; } td, th { padding: .2rem .8rem; text-align: right; border-bottom: 1px solid var(--grid); }
svg { width: 100%; height: auto; } svg text { fill: var(--fg); font-size: 12px; }
.grid { stroke: var(--grid); } .s0 { stroke: var(--s0); fill: none; stroke-width: 2; } .s1 { stroke: var(--s1); fill: none; stroke-width: 2; }
</style></head><body>
<h1>stampede load report</h1>
<p>{{.Sources}} · {{.Report.Mode}} model · {{.Report.Requests}} requests in {{printf "%.2f" .Report.DurationSeconds}} s · {{printf "%.1f" .Report.RPS}} req/s</p>
<table><tr><th>min</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>
{{with .Report.Latency}}<tr><td>{{printf "%.3f" .Min}}</td><td>{{printf "%.3f" .Mean}}</td><td>{{printf "%.3f" .P50}}</td><td>{{printf "%.3f" .P90}}</td><td>{{printf "%.3f" .P99}}</td><td>{{printf "%.3f" .P999}}</td><td>{{printf "%.3f" .Max}}</td></tr>{{end}}
</table><p>latency in seconds, measured from each request's intended send time</p>
{{.RPS}}{{.Lat}}{{.Curve}}
</body></html>
`))

// chart draws line series as SVG with labelled axes and a legend. xs, if
// nil, is 0, 1, 2 … (seconds).
func chart(title, xLabel, yLabel string, series [][]float64, xs []float64, names []string) string {
	const W, H, L, R, T, B = 900.0, 300.0, 70.0, 20.0, 30.0, 45.0
	n := 0
	ymax := 0.0
	for _, s := range series {
		n = max(n, len(s))
		for _, v := range s {
			ymax = max(ymax, v)
		}
	}
	if xs == nil {
		for i := range n {
			xs = append(xs, float64(i+1))
		}
	}
	if n == 0 || ymax == 0 {
		ymax = 1
	}
	xmin, xmax := 0.0, 1.0
	if len(xs) > 0 {
		xmin, xmax = xs[0], xs[len(xs)-1]
		if xmax == xmin {
			xmax = xmin + 1
		}
	}
	px := func(x float64) float64 { return L + (x-xmin)/(xmax-xmin)*(W-L-R) }
	py := func(y float64) float64 { return H - B - y/ymax*(H-T-B) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %.0f %.0f" role="img" aria-label="%s"><text x="%.0f" y="18">%s</text>`, W, H, title, L, title)
	for i := 0; i <= 4; i++ {
		y := ymax * float64(i) / 4
		fmt.Fprintf(&b, `<line class="grid" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/><text x="%.1f" y="%.1f" text-anchor="end">%.4g</text>`,
			L, W-R, py(y), py(y), L-6, py(y)+4, y)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, (L+W-R)/2, H-8, xLabel)
	fmt.Fprintf(&b, `<text transform="translate(14 %.1f) rotate(-90)" text-anchor="middle">%s</text>`, (H-B+T)/2, yLabel)
	for _, x := range []float64{xmin, (xmin + xmax) / 2, xmax} {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%.4g</text>`, px(x), H-B+16, x)
	}
	for si, s := range series {
		var pts []string
		for i, v := range s {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(xs[i]), py(v)))
		}
		fmt.Fprintf(&b, `<polyline class="s%d" points="%s"><title>%s</title></polyline>`, si%2, strings.Join(pts, " "), names[si])
		fmt.Fprintf(&b, `<line class="s%d" x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f"/><text x="%.0f" y="%.0f">%s</text>`,
			si%2, W-R-140+float64(si)*70, W-R-120+float64(si)*70, 14.0, 14.0, W-R-116+float64(si)*70, 18.0, names[si])
	}
	b.WriteString(`</svg>`)
	return b.String()
}
