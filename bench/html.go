package bench

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"strings"
)

// WriteHTML writes a self-contained report (inline SVG, no scripts or
// external assets) to path.
func (r *Result) WriteHTML(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.RenderHTML(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// RenderHTML writes the report to w.
func (r *Result) RenderHTML(w io.Writer) error {
	mode := fmt.Sprintf("closed loop · %d workers", r.Concurrency)
	if r.Mode == "open" {
		mode = fmt.Sprintf("open loop · %.0f req/s target · up to %d in flight", r.Rate, r.Concurrency)
	}
	var ops []opRow
	for _, name := range sortedKeys(r.Ops) {
		ops = append(ops, opRow{name, r.Ops[name]})
	}
	data := map[string]any{
		"R": r, "Mode": mode, "Ops": ops,
		"Timeline":    template.HTML(r.latencyOverTime()),
		"Throughput":  template.HTML(r.throughputChart()),
		"Percentiles": template.HTML(r.percentileChart()),
	}
	if r.Fanout != nil {
		data["Delivery"] = template.HTML(pointsChart(r.Fanout.Percentiles, "delivery", "#0891b2"))
	}
	return reportTmpl.Execute(w, data)
}

type opRow struct {
	Name string
	OpStats
}

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"f": func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"n": func(v float64) string { return fmt.Sprintf("%.0f", v) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>strata bench · {{.R.Scenario}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:980px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}.sub{color:#667;margin-bottom:20px}
.cards{display:grid;grid-template-columns:repeat(6,1fr);gap:10px;margin-bottom:20px}
.card{background:#fff;border-radius:8px;padding:10px 12px;box-shadow:0 1px 2px #0001}
.card b{display:block;font-size:20px}.card span{color:#667;font-size:12px}
.panel{background:#fff;border-radius:8px;padding:14px;margin-bottom:18px;box-shadow:0 1px 2px #0001}
.panel h2{font-size:15px;margin:0 0 8px}
table{border-collapse:collapse;width:100%}td,th{padding:4px 8px;text-align:right;border-bottom:1px solid #eee}
td:first-child,th:first-child{text-align:left}svg text{font:11px system-ui,sans-serif;fill:#556}
.err b,tr.err td{color:#c0392b}
</style></head><body><main>
<h1>strata bench · {{.R.Scenario}}</h1>
<div class="sub">{{.R.URL}}{{if .R.Server}} ({{.R.Server}}){{end}} · {{.Mode}} · {{printf "%.1f" .R.DurationSeconds}} s · {{.R.Records}} seeded records · {{.R.Started.Format "2006-01-02 15:04:05 UTC"}}</div>
<div class="cards">
<div class="card"><b>{{n .R.Throughput}}</b><span>req/s</span></div>
<div class="card"><b>{{f .R.Latency.P50}}</b><span>p50 ms</span></div>
<div class="card"><b>{{f .R.Latency.P99}}</b><span>p99 ms</span></div>
<div class="card"><b>{{f .R.Latency.P999}}</b><span>p99.9 ms</span></div>
<div class="card"><b>{{f .R.Latency.Max}}</b><span>max ms</span></div>
<div class="card{{if .R.Errors}} err{{end}}"><b>{{.R.Errors}}</b><span>errors of {{.R.Requests}}{{if .R.Missed}} · {{.R.Missed}} missed{{end}}</span></div>
</div>
<div class="panel"><h2>Latency over time (ms, log scale){{if eq .R.Mode "open"}}, measured from each request's due time{{end}}</h2>{{.Timeline}}</div>
<div class="panel"><h2>Requests per second</h2>{{.Throughput}}</div>
<div class="panel"><h2>Latency by percentile (ms)</h2>{{.Percentiles}}</div>
{{with .R.Fanout}}<div class="panel"><h2>Realtime delivery latency by percentile (ms) · {{.Subscribers}} subscribers, from create sent to event received</h2>{{$.Delivery}}
<table><tr><th>deliveries</th><th>expected</th><th>missing</th><th>duplicates</th><th>disconnects</th><th>events/s</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>
<tr{{if or .Missing .Duplicates .Disconnects}} class="err"{{end}}><td>{{.Received}}</td><td>{{.Expected}}</td><td>{{.Missing}}</td><td>{{.Duplicates}}</td><td>{{.Disconnects}}</td><td>{{n .EventsPerSecond}}</td><td>{{f .Latency.P50}}</td><td>{{f .Latency.P90}}</td><td>{{f .Latency.P99}}</td><td>{{f .Latency.Max}}</td></tr></table></div>
{{end}}<div class="panel"><h2>Operations</h2><table><tr><th>op</th><th>requests</th><th>errors</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>
{{range .Ops}}<tr><td>{{.Name}}</td><td>{{.Requests}}</td><td>{{.Errors}}</td><td>{{f .Latency.P50}}</td><td>{{f .Latency.P90}}</td><td>{{f .Latency.P99}}</td><td>{{f .Latency.P999}}</td><td>{{f .Latency.Max}}</td></tr>
{{end}}</table>
{{if .R.ErrorSamples}}<p>Errors seen:</p><ul>{{range .R.ErrorSamples}}<li><code>{{.}}</code></li>{{end}}</ul>{{end}}
<p>Statuses: {{range $k, $v := .R.Statuses}}<code>{{$k}}</code> × {{$v}} &nbsp; {{end}}</p></div>
</main></body></html>
`))

// chart geometry shared by the plots.
const (
	cw, ch                 = 940, 280
	padL, padR, padT, padB = 56, 16, 12, 34
)

type series struct {
	name  string
	color string
	xs    []float64
	ys    []float64
}

// plot draws series as lines; yLog uses a log10 y axis. xTick labels x.
func plot(ss []series, xMax float64, yLog bool, xTicks []float64, xLabel func(float64) string) string {
	yMin, yMax := math.Inf(1), 0.0
	for _, s := range ss {
		for _, y := range s.ys {
			yMax = math.Max(yMax, y)
			if y > 0 {
				yMin = math.Min(yMin, y)
			}
		}
	}
	if yMax <= 0 {
		yMax = 1
	}
	if math.IsInf(yMin, 1) {
		yMin = 0.01
	}
	ty := func(y float64) float64 {
		if yLog {
			lo, hi := math.Floor(math.Log10(yMin)), math.Ceil(math.Log10(yMax))
			if hi <= lo {
				hi = lo + 1
			}
			return padT + (ch-padT-padB)*(1-(math.Log10(math.Max(y, yMin))-lo)/(hi-lo))
		}
		return padT + (ch-padT-padB)*(1-y/(yMax*1.1))
	}
	tx := func(x float64) float64 { return padL + (cw-padL-padR)*x/math.Max(xMax, 1e-9) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %d %d" width="100%%" role="img">`, cw, ch)
	// y grid
	var yt []float64
	if yLog {
		for e := math.Floor(math.Log10(yMin)); e <= math.Ceil(math.Log10(yMax)); e++ {
			yt = append(yt, math.Pow(10, e))
		}
	} else {
		step := niceStep(yMax * 1.1 / 5)
		for y := 0.0; y <= yMax*1.1; y += step {
			yt = append(yt, y)
		}
	}
	for _, y := range yt {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e5e7eb"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`,
			padL, cw-padR, ty(y), ty(y), padL-6, ty(y)+4, fmtNum(y))
	}
	for _, x := range xTicks {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#f0f1f3"/><text x="%.1f" y="%d" text-anchor="middle">%s</text>`,
			tx(x), tx(x), padT, ch-padB, tx(x), ch-padB+16, xLabel(x))
	}
	for i, s := range ss {
		var pts []string
		for j := range s.xs {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", tx(s.xs[j]), ty(s.ys[j])))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round" points="%s"/>`, s.color, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`,
			padL+10+i*90, ch-12, s.color, padL+24+i*90, ch-3, s.name)
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func (r *Result) latencyOverTime() string {
	p50 := series{name: "p50", color: "#2563eb"}
	p99 := series{name: "p99", color: "#f59e0b"}
	mx := series{name: "max", color: "#dc2626"}
	for _, t := range r.Timeline {
		x := float64(t.Second) + 0.5
		p50.xs, p50.ys = append(p50.xs, x), append(p50.ys, t.P50)
		p99.xs, p99.ys = append(p99.xs, x), append(p99.ys, t.P99)
		mx.xs, mx.ys = append(mx.xs, x), append(mx.ys, t.Max)
	}
	return plot([]series{p50, p99, mx}, float64(len(r.Timeline)), true, secondTicks(len(r.Timeline)), func(x float64) string { return fmt.Sprintf("%.0fs", x) })
}

func (r *Result) throughputChart() string {
	var b strings.Builder
	maxN := int64(1)
	for _, t := range r.Timeline {
		maxN = max(maxN, t.Requests)
	}
	n := max(len(r.Timeline), 1)
	bw := float64(cw-padL-padR) / float64(n)
	fmt.Fprintf(&b, `<svg viewBox="0 0 %d %d" width="100%%" role="img">`, cw, ch/2+20)
	h := float64(ch/2 - padT - 10)
	for _, y := range []float64{0, 0.5, 1} {
		yy := padT + h*(1-y)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e5e7eb"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`,
			padL, cw-padR, yy, yy, padL-6, yy+4, fmtNum(y*float64(maxN)))
	}
	for i, t := range r.Timeline {
		ok := float64(t.Requests-t.Errors) / float64(maxN) * h
		bad := float64(t.Errors) / float64(maxN) * h
		x := padL + float64(i)*bw
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#10b981"><title>%ds: %d req, %d errors</title></rect>`,
			x+1, padT+h-ok, math.Max(bw-2, 1), ok, i, t.Requests, t.Errors)
		if bad > 0 {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#dc2626"/>`, x+1, padT+h-ok-bad, math.Max(bw-2, 1), bad)
		}
	}
	for _, s := range secondTicks(n) {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%.0fs</text>`, padL+s*bw, padT+h+16, s)
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// percentileChart plots latency against the percentile on the nines scale.
func (r *Result) percentileChart() string { return pointsChart(r.Percentiles, "latency", "#7c3aed") }

// pointsChart plots a percentileCurve on the nines scale.
func pointsChart(pts []Point, name, color string) string {
	s := series{name: name, color: color}
	for _, p := range pts {
		if p.Percentile >= 100 {
			continue
		}
		s.xs = append(s.xs, -math.Log10(1-p.Percentile/100))
		s.ys = append(s.ys, p.Ms)
	}
	return plot([]series{s}, 5, false, []float64{0, 1, 2, 3, 4, 5}, func(x float64) string {
		return []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"}[int(x)]
	})
}

func secondTicks(n int) []float64 {
	step := max(1, niceStepInt(n/10))
	var out []float64
	for s := 0; s <= n; s += step {
		out = append(out, float64(s))
	}
	return out
}

func niceStepInt(n int) int { return int(niceStep(float64(n))) }

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func fmtNum(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v), "0"), ".")
	case v == 0:
		return "0"
	default:
		return strings.TrimRight(fmt.Sprintf("%.3f", v), "0")
	}
}
