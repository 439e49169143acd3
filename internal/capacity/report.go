package capacity

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"

	"github.com/stampede-dev/stampede/internal/load"
	"github.com/stampede-dev/stampede/internal/usl"
)

// Report is everything a sweep says: its points, the law fitted to them
// (the usl object, as stampede usl prints it, judged at the largest
// concurrency measured), the curve's analysis and, given a target, the
// plan.
type Report struct {
	Sweep []load.SweepPoint `json:"sweep"`
	USL   *usl.Report       `json:"usl,omitempty"`
	Curve *Curve            `json:"curve"`
	Plan  *Plan             `json:"plan,omitempty"`
}

// NewReport analyses points and plans for target, when one is given.
func NewReport(points []load.SweepPoint, target *Target, slo SLO) (*Report, error) {
	c, err := Analyze(points)
	r := &Report{Sweep: points, Curve: c}
	if err != nil {
		return r, err
	}
	if c.Model != nil {
		u := usl.Judge(*c.Model, c.data(), float64(c.MaxN))
		r.USL = &u
	}
	if target != nil {
		p := c.Plan(*target, slo)
		r.Plan = &p
	}
	return r, nil
}

// WriteText writes the curve as a small table, then what it says, then
// the plan.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%11s %10s %17s %10s %10s %7s %8s %6s\n", "concurrency", "req/s", "runs", "p50", "p99", "errors", "Little", "gen")
	for _, p := range r.Sweep {
		mark := ""
		if !p.Sound() {
			mark = "  *"
		} else if len(p.Notes) > 0 {
			mark = "  !"
		}
		fmt.Fprintf(w, "%11d %10.1f %17s %10s %10s %6.2f%% %8.1f %5.0f%%%s\n", p.Concurrency, p.RPS, spread(p.RPSRuns),
			seconds(p.Latency.P50), seconds(p.Latency.P99), 100*p.ErrorRate, p.LittleUsers, 100*p.Generator.Busy, mark)
	}
	fmt.Fprintln(w, "(runs: the lowest and highest of the runs; Little: throughput × response time, which should be the concurrency; gen: how busy the load generator was; * left out of the fit; ! latency understated, see below)")
	fmt.Fprintln(w)
	for _, line := range r.Curve.Describe() {
		fmt.Fprintln(w, line)
	}
	if r.Plan != nil {
		fmt.Fprintln(w)
		for _, line := range r.Plan.Lines {
			fmt.Fprintln(w, line)
		}
		if c := r.Plan.Confirmed; c != nil {
			fmt.Fprintf(w, "(The %s prediction before the run: %.1f requests/s, %s a request.)\n", c.PredictedBasis, c.PredictedRPS, seconds(c.PredictedLatency))
		}
	}
}

func spread(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return fmt.Sprintf("%.1f–%.1f", lo, hi)
}

// WriteHTML writes a self-contained page (inline SVG, no scripts): the
// measured points with their spread, the fitted law with its interval
// band as far as it is trusted, the bounds, the SLO and the target.
func (r *Report) WriteHTML(w io.Writer) error {
	c := r.Curve
	data := map[string]any{"Report": r, "Lines": append(c.Describe(), planLines(r.Plan)...), "Reach": ExtrapolationLimit}
	if len(c.sound) > 0 {
		data["Throughput"] = template.HTML(r.throughputChart())
		data["Latency"] = template.HTML(r.latencyChart())
	}
	return planPage.Execute(w, data)
}

func planLines(p *Plan) []string {
	if p == nil {
		return nil
	}
	return p.Lines
}

// chart is an SVG with a log-scaled x axis (concurrency) and a linear y.
type chart struct {
	b            strings.Builder
	xmin, xmax   float64
	ymax         float64
	w, h         float64
	l, rt, t, bt float64
}

func newChart(title, ylabel string, xmin, xmax, ymax float64, yfmt func(float64) string) *chart {
	c := &chart{xmin: xmin, xmax: xmax, w: 900, h: 340, l: 70, rt: 20, t: 30, bt: 45}
	step := load.NiceStep(ymax, 4)
	c.ymax = math.Max(step, math.Ceil(ymax/step)*step)
	fmt.Fprintf(&c.b, `<svg viewBox="0 0 %.0f %.0f" role="img" aria-label="%s"><text x="%.0f" y="18">%s</text>`, c.w, c.h, title, c.l, title)
	for v := 0.0; v <= c.ymax+step/2; v += step {
		fmt.Fprintf(&c.b, `<line class="grid" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`,
			c.l, c.w-c.rt, c.y(v), c.y(v), c.l-6, c.y(v)+4, yfmt(v))
	}
	for x := math.Pow(2, math.Ceil(math.Log2(c.xmin))); x <= c.xmax*1.0001; x *= 2 {
		if x >= c.xmin*0.9999 {
			fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, c.x(x), c.h-c.bt+16, num(x))
		}
	}
	fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" text-anchor="middle">requests in the service at once (log scale)</text>`, (c.l+c.w-c.rt)/2, c.h-8)
	fmt.Fprintf(&c.b, `<text transform="translate(14 %.1f) rotate(-90)" text-anchor="middle">%s</text>`, (c.h-c.bt+c.t)/2, ylabel)
	return c
}

func (c *chart) x(n float64) float64 {
	return c.l + (math.Log(n)-math.Log(c.xmin))/(math.Log(c.xmax)-math.Log(c.xmin))*(c.w-c.l-c.rt)
}
func (c *chart) y(v float64) float64 {
	return c.h - c.bt - math.Min(v, c.ymax*1.05)/c.ymax*(c.h-c.t-c.bt)
}

func (c *chart) line(class, title string, xs, ys []float64) {
	var pts []string
	for i := range xs {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", c.x(xs[i]), c.y(ys[i])))
	}
	fmt.Fprintf(&c.b, `<polyline class="%s" points="%s"><title>%s</title></polyline>`, class, strings.Join(pts, " "), title)
}

func (c *chart) band(title string, xs, lo, hi []float64) {
	var pts []string
	for i := range xs {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", c.x(xs[i]), c.y(hi[i])))
	}
	for i := len(xs) - 1; i >= 0; i-- {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", c.x(xs[i]), c.y(lo[i])))
	}
	fmt.Fprintf(&c.b, `<polygon class="band" points="%s"><title>%s</title></polygon>`, strings.Join(pts, " "), title)
}

func (c *chart) legend(i int, class, name string) {
	x := c.l + 10 + float64(i)*170
	if class == "band" {
		fmt.Fprintf(&c.b, `<rect class="band" x="%.0f" y="%.0f" width="20" height="10"/><text x="%.0f" y="%.0f">%s</text>`, x, c.t+3, x+24, c.t+12, name)
		return
	}
	fmt.Fprintf(&c.b, `<line class="%s" x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f"/><text x="%.0f" y="%.0f">%s</text>`,
		class, x, x+20, c.t+8, c.t+8, x+24, c.t+12, name)
}

func (c *chart) end() string { c.b.WriteString("</svg>"); return c.b.String() }

// xs is a log-spaced run of concurrencies from lo to hi.
func xs(lo, hi float64) []float64 {
	var out []float64
	for i := 0; i <= 80; i++ {
		out = append(out, lo*math.Pow(hi/lo, float64(i)/80))
	}
	return out
}

// reach is the right end of the charts: past the sweep as far as the fit
// is trusted, and to the target's requests in service where known.
func (r *Report) reach() float64 {
	c := r.Curve
	top := float64(c.MaxN)
	if c.Model != nil {
		top *= ExtrapolationLimit
	}
	if r.Plan != nil && r.Plan.InService > top {
		top = r.Plan.InService
	}
	for _, p := range r.Sweep {
		top = math.Max(top, float64(p.Concurrency))
	}
	return top
}

// left is the left end of the charts: 1, or the target's requests in
// service when fewer.
func (r *Report) left() float64 {
	if r.Plan != nil && r.Plan.InService > 0 {
		return math.Max(0.1, math.Min(1, r.Plan.InService))
	}
	return 1
}

func (r *Report) throughputChart() string {
	c := r.Curve
	top := r.reach()
	ymax := c.Capacity
	for _, p := range r.Sweep {
		for _, x := range p.RPSRuns {
			ymax = math.Max(ymax, x)
		}
	}
	if r.Plan != nil {
		ymax = math.Max(ymax, math.Min(r.Plan.RequiredRPS, 2*ymax))
	}
	ch := newChart("throughput by requests at once", "requests/s", r.left(), top, ymax*1.1, func(v float64) string { return num(v) })
	if c.Model != nil {
		fx := xs(1, ExtrapolationLimit*float64(c.MaxN))
		var fy, lo, hi []float64
		for _, n := range fx {
			fy = append(fy, c.Model.X(n))
			ci := c.interval(func(b usl.Model) float64 { return b.X(n) })
			lo, hi = append(lo, ci[0]), append(hi, ci[1])
		}
		ch.band("the fit's 90% interval", fx, lo, hi)
		ch.line("s0", "fitted law", fx, fy)
	}
	// The operational bound X ≤ min(N/D, Xmax), with no think time.
	if xmax := c.Xmax(); !math.IsInf(xmax, 1) && c.Lone > 0 {
		bx := xs(1, top)
		var by []float64
		for _, n := range bx {
			by = append(by, math.Min(n/c.Lone, xmax))
		}
		ch.line("bound", "bound: X ≤ min(N/D, Xmax)", bx, by)
	}
	for _, p := range r.Sweep {
		n := float64(p.Concurrency)
		lo, hi := p.RPS, p.RPS
		for _, x := range p.RPSRuns {
			lo, hi = math.Min(lo, x), math.Max(hi, x)
		}
		class := "dot"
		if !p.Sound() {
			class = "dot off"
		}
		fmt.Fprintf(&ch.b, `<line class="spread" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/><circle class="%s" cx="%.1f" cy="%.1f" r="4"><title>%d at once: %.1f req/s (runs %s)%s</title></circle>`,
			ch.x(n), ch.x(n), ch.y(lo), ch.y(hi), class, ch.x(n), ch.y(p.RPS), p.Concurrency, p.RPS, spread(p.RPSRuns), flagTitle(p))
	}
	if pl := r.Plan; pl != nil && pl.InService > 0 {
		fmt.Fprintf(&ch.b, `<circle class="target" cx="%.1f" cy="%.1f" r="6"><title>target: %.1f req/s (%s)</title></circle>`,
			ch.x(pl.InService), ch.y(pl.RPS), pl.RPS, pl.Basis)
	}
	ch.legend(0, "s0", "fitted law")
	ch.legend(1, "bound", "operational bound")
	ch.legend(2, "band", "90% interval")
	return ch.end()
}

func (r *Report) latencyChart() string {
	c := r.Curve
	top := r.reach()
	var ns, mean, p99 []float64
	ymax := 0.0
	for _, p := range r.Sweep {
		if p.Latency.Mean > 0 {
			ns, mean, p99 = append(ns, float64(p.Concurrency)), append(mean, p.Latency.Mean), append(p99, p.Latency.P99)
			ymax = math.Max(ymax, p.Latency.P99)
		}
	}
	var sloLine float64
	if r.Plan != nil {
		for _, ch := range r.Plan.SLO {
			if ch.Metric != "errors" && ch.Metric != "rps" {
				sloLine = math.Max(sloLine, ch.Value)
			}
		}
		ymax = math.Max(ymax, math.Min(r.Plan.LatencySeconds, 20*ymax))
	}
	// The SLO is drawn where it falls near the measurements; far above
	// them it would flatten them into the axis, so it is named instead.
	sloAbove := sloLine > 3*ymax
	if !sloAbove {
		ymax = math.Max(ymax, sloLine)
	}
	ymax *= 1.1
	ms := func(v float64) string { return seconds(v) }
	ch := newChart("response time by requests at once", "response time", r.left(), top, ymax, ms)
	if xmax := c.Xmax(); !math.IsInf(xmax, 1) {
		bx := xs(1, top)
		var by []float64
		for _, n := range bx {
			by = append(by, math.Max(c.Lone, n/xmax))
		}
		ch.line("bound", "bound: R ≥ max(D, N/Xmax)", bx, by)
	}
	ch.line("s0", "mean, measured", ns, mean)
	ch.line("s1", "p99, measured", ns, p99)
	switch {
	case sloAbove:
		fmt.Fprintf(&ch.b, `<text x="%.1f" y="%.1f" text-anchor="end">the SLO (%s) lies far above</text>`, ch.w-ch.rt, ch.t+28, seconds(sloLine))
	case sloLine > 0:
		fmt.Fprintf(&ch.b, `<line class="slo" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"><title>SLO</title></line>`, ch.l, ch.w-ch.rt, ch.y(sloLine), ch.y(sloLine))
	}
	if pl := r.Plan; pl != nil && pl.InService > 0 {
		fmt.Fprintf(&ch.b, `<circle class="target" cx="%.1f" cy="%.1f" r="6"><title>target: %s (%s)</title></circle>`,
			ch.x(pl.InService), ch.y(pl.LatencySeconds), seconds(pl.LatencySeconds), pl.Basis)
	}
	ch.legend(0, "s0", "mean")
	ch.legend(1, "s1", "p99")
	ch.legend(2, "bound", "operational bound")
	if sloLine > 0 && !sloAbove {
		ch.legend(3, "slo", "SLO")
	}
	return ch.end()
}

func flagTitle(p load.SweepPoint) string {
	if p.Sound() {
		return ""
	}
	return "; left out: " + strings.Join(p.Flags, "; ")
}

var planPage = template.Must(template.Must(template.New("plan").Funcs(template.FuncMap{
	"sec":    seconds,
	"pct":    func(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) },
	"deref":  func(b *bool) bool { return b != nil && *b },
	"spread": spread,
}).Parse(load.Style)).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>stampede capacity plan</title>
{{template "style"}}<style>.band { fill: var(--s0); opacity: .15; stroke: none; } .bound { stroke: var(--fg); stroke-dasharray: 6 4; fill: none; }
.slo { stroke: var(--s1); stroke-dasharray: 2 3; stroke-width: 2; } .target { fill: none; stroke: var(--s1); stroke-width: 3; } .spread { stroke: var(--s1); }
.dot.off { fill: none; stroke: var(--s1); } .verdict { font-size: 1.2em; }</style></head><body>
<h1>Will it hold?</h1>
{{with .Report.Plan}}<p class="verdict">Verdict: <strong>{{.Verdict}}</strong>{{if .SLOMet}} · SLO {{if deref .SLOMet}}met{{else}}NOT met{{end}}{{end}} · basis: {{.Basis}}</p>{{end}}
{{range .Lines}}<p>{{.}}</p>{{end}}
{{.Throughput}}
{{.Latency}}
<table><tr><th>at once</th><th>req/s (median)</th><th>runs</th><th>p50</th><th>p99</th><th>errors</th><th>Little</th><th>generator busy</th><th>left out because</th></tr>
{{range .Report.Sweep}}<tr><td>{{.Concurrency}}</td><td>{{printf "%.1f" .RPS}}</td><td>{{spread .RPSRuns}}</td><td>{{sec .Latency.P50}}</td><td>{{sec .Latency.P99}}</td><td>{{pct .ErrorRate}}</td><td>{{printf "%.1f" .LittleUsers}}</td><td>{{pct .Generator.Busy}}</td><td>{{range .Flags}}{{.}}. {{end}}</td></tr>
{{end}}</table>
<p>Measured where it can be, bounded where it cannot: the fitted law is drawn only to {{.Reach}}× the largest concurrency measured; past it only the operational laws' bounds (dashed) hold.</p>
</body></html>
`))
