package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is the JSON written by --out. Latencies are milliseconds.
type Result struct {
	Tool            string             `json:"tool"`
	URL             string             `json:"url"`
	Server          string             `json:"server,omitempty"`
	Scenario        string             `json:"scenario"`
	Mode            string             `json:"mode"` // "open" or "closed"
	Rate            float64            `json:"rate,omitempty"`
	Concurrency     int                `json:"concurrency"`
	Records         int                `json:"records"`
	Started         time.Time          `json:"started"`
	DurationSeconds float64            `json:"durationSeconds"`
	Requests        int64              `json:"requests"`
	Errors          int64              `json:"errors"`
	Missed          int64              `json:"missed"` // open loop: due but never sent
	Throughput      float64            `json:"throughput"`
	Statuses        map[string]int64   `json:"statuses"`
	ErrorSamples    []string           `json:"errorSamples,omitempty"`
	Latency         Summary            `json:"latency"`
	Percentiles     []Point            `json:"percentiles"`
	Timeline        []Tick             `json:"timeline"`
	Ops             map[string]OpStats `json:"ops"`
	// Fanout is set by the realtime scenario; its failed deliveries are
	// also counted in Errors.
	Fanout *Fanout `json:"fanout,omitempty"`
}

// Summary is a latency distribution in milliseconds.
type Summary struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// Point is one point of the percentile distribution.
type Point struct {
	Percentile float64 `json:"percentile"`
	Ms         float64 `json:"ms"`
}

// Tick is one second of the run, by send (open loop: due) time.
type Tick struct {
	Second   int     `json:"second"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	P50      float64 `json:"p50"`
	P99      float64 `json:"p99"`
	Max      float64 `json:"max"`
}

// OpStats is one operation of a mixed scenario.
type OpStats struct {
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	Latency  Summary `json:"latency"`
}

func summarize(h *hdrhistogram.Histogram) Summary {
	return Summary{
		Min: ms(h.Min()), Mean: h.Mean() / 1000,
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)),
		P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()),
	}
}

// percentileCurve samples the distribution evenly on the "nines" scale
// (x = log10(1/(1-q))), as HdrHistogram's plots do, up to the maximum.
func percentileCurve(h *hdrhistogram.Histogram) []Point {
	var pts []Point
	for x := 0.0; x <= 5.0001; x += 0.1 {
		q := 100 * (1 - math.Pow(10, -x))
		pts = append(pts, Point{Percentile: math.Round(q*10000) / 10000, Ms: ms(h.ValueAtQuantile(q))})
	}
	return append(pts, Point{Percentile: 100, Ms: ms(h.Max())})
}

func (r *recorder) result(cfg Config, t *target, elapsed time.Duration, missed int64) *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &Result{
		Tool: "strata bench", URL: cfg.URL, Server: t.server, Scenario: cfg.Scenario, Mode: "closed",
		Concurrency: cfg.Concurrency, Records: cfg.Records, Started: r.start.UTC(),
		DurationSeconds: elapsed.Seconds(), Requests: r.total, Errors: r.errors, Missed: missed,
		Throughput: float64(r.total) / elapsed.Seconds(), Statuses: r.statuses,
		Latency: summarize(r.all), Percentiles: percentileCurve(r.all), Ops: map[string]OpStats{},
	}
	if cfg.Rate > 0 {
		res.Mode, res.Rate = "open", cfg.Rate
	}
	for e := range r.errSeen {
		res.ErrorSamples = append(res.ErrorSamples, e)
	}
	slices.Sort(res.ErrorSamples)
	for i, s := range r.seconds {
		// The last second is partial in closed loop; keep it all the same.
		res.Timeline = append(res.Timeline, Tick{Second: i, Requests: s.n, Errors: s.errors,
			P50: ms(s.h.ValueAtQuantile(50)), P99: ms(s.h.ValueAtQuantile(99)), Max: ms(s.h.Max())})
	}
	for name, o := range r.ops {
		res.Ops[name] = OpStats{Requests: o.n, Errors: o.errors, Latency: summarize(o.h)}
	}
	return res
}

// WriteJSON writes the result to path.
func (r *Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadResult reads a result written by WriteJSON.
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Tool != "strata bench" {
		return nil, fmt.Errorf("%s: not a strata bench result", path)
	}
	return &r, nil
}

// PrintSummary writes a human summary of the result.
func (r *Result) PrintSummary(w io.Writer) {
	mode := fmt.Sprintf("closed loop, %d workers", r.Concurrency)
	if r.Mode == "open" {
		mode = fmt.Sprintf("open loop, %.0f req/s target", r.Rate)
	}
	fmt.Fprintf(w, "%s against %s (%s), %.1fs\n", r.Scenario, r.URL, mode, r.DurationSeconds)
	fmt.Fprintf(w, "  requests %d  throughput %.0f req/s  errors %d  missed %d\n", r.Requests, r.Throughput, r.Errors, r.Missed)
	l := r.Latency
	fmt.Fprintf(w, "  latency ms: min %.2f  p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n", l.Min, l.P50, l.P90, l.P99, l.P999, l.Max)
	if len(r.Ops) > 1 {
		for _, name := range sortedKeys(r.Ops) {
			o := r.Ops[name]
			fmt.Fprintf(w, "  %-8s %7d req  p50 %.2f  p99 %.2f  errors %d\n", name, o.Requests, o.Latency.P50, o.Latency.P99, o.Errors)
		}
	}
	if f := r.Fanout; f != nil {
		fmt.Fprintf(w, "  realtime: %d subscribers  deliveries %d/%d  missing %d  duplicates %d  disconnects %d  %.0f events/s\n",
			f.Subscribers, f.Received, f.Expected, f.Missing, f.Duplicates, f.Disconnects, f.EventsPerSecond)
		d := f.Latency
		fmt.Fprintf(w, "  delivery ms: min %.2f  p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", d.Min, d.P50, d.P90, d.P99, d.Max)
	}
	for _, e := range r.ErrorSamples {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Compare prints b relative to a: a ratio above 1 means b is higher (for
// throughput better, for latency worse).
func Compare(w io.Writer, a, b *Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "metric\ta\tb\tb/a\t\n")
	row := func(name string, x, y float64) {
		ratio := "—"
		if x != 0 {
			ratio = fmt.Sprintf("%.3f", y/x)
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%s\t\n", name, x, y, ratio)
	}
	row("throughput req/s", a.Throughput, b.Throughput)
	row("p50 ms", a.Latency.P50, b.Latency.P50)
	row("p90 ms", a.Latency.P90, b.Latency.P90)
	row("p99 ms", a.Latency.P99, b.Latency.P99)
	row("p99.9 ms", a.Latency.P999, b.Latency.P999)
	row("max ms", a.Latency.Max, b.Latency.Max)
	row("error rate %", 100*float64(a.Errors)/float64(max(a.Requests, 1)), 100*float64(b.Errors)/float64(max(b.Requests, 1)))
	for _, op := range sortedKeys(a.Ops) {
		if bo, ok := b.Ops[op]; ok && len(a.Ops) > 1 {
			row(op+" p99 ms", a.Ops[op].Latency.P99, bo.Latency.P99)
		}
	}
	if fa, fb := a.Fanout, b.Fanout; fa != nil && fb != nil {
		row("events/s", fa.EventsPerSecond, fb.EventsPerSecond)
		row("delivery p50 ms", fa.Latency.P50, fb.Latency.P50)
		row("delivery p90 ms", fa.Latency.P90, fb.Latency.P90)
		row("delivery p99 ms", fa.Latency.P99, fb.Latency.P99)
		row("delivery max ms", fa.Latency.Max, fb.Latency.Max)
		lost := func(f *Fanout) float64 { return 100 * float64(f.Missing+f.Duplicates) / float64(max(f.Expected, 1)) }
		row("delivery failures %", lost(fa), lost(fb))
	}
	tw.Flush()
	if (a.Fanout != nil) != (b.Fanout != nil) {
		fmt.Fprintln(w, "note: only one run has realtime delivery numbers")
	} else if a.Fanout != nil && a.Fanout.Subscribers != b.Fanout.Subscribers {
		fmt.Fprintf(w, "note: subscribers differ (a: %d; b: %d)\n", a.Fanout.Subscribers, b.Fanout.Subscribers)
	}
	if a.Scenario != b.Scenario || a.Mode != b.Mode || a.Rate != b.Rate || a.Concurrency != b.Concurrency {
		fmt.Fprintf(w, "note: the runs differ (a: %s %s rate %.0f conc %d; b: %s %s rate %.0f conc %d)\n",
			a.Scenario, a.Mode, a.Rate, a.Concurrency, b.Scenario, b.Mode, b.Rate, b.Concurrency)
	}
}
