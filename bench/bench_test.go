package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/strata-run/strata/api"
	"github.com/strata-run/strata/bench"
	"github.com/strata-run/strata/bus/memory"
	"github.com/strata-run/strata/cache"
	"github.com/strata-run/strata/realtime"
	"github.com/strata-run/strata/service"
	"github.com/strata-run/strata/store/sqlite"
)

func TestPacer(t *testing.T) {
	p := bench.Pacer{Rate: 2000}
	if got := p.Offset(0); got != 0 {
		t.Fatalf("Offset(0) = %v", got)
	}
	if got := p.Offset(2000); got != time.Second {
		t.Fatalf("Offset(2000) = %v", got)
	}
	if got := p.Offset(1); got != 500*time.Microsecond {
		t.Fatalf("Offset(1) = %v", got)
	}
	// Due counts the requests scheduled in [0, elapsed].
	for _, c := range []struct {
		el   time.Duration
		want int64
	}{{-1, 0}, {0, 1}, {499 * time.Microsecond, 1}, {500 * time.Microsecond, 2}, {time.Second - 1, 2000}} {
		if got := p.Due(c.el); got != c.want {
			t.Errorf("Due(%v) = %d, want %d", c.el, got, c.want)
		}
	}
	for s, want := range map[string]float64{"2000/s": 2000, "2000": 2000, "120/m": 2, "5/100ms": 50} {
		if got, err := bench.ParseRate(s); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "-1/s", "x/s", "10/parsec"} {
		if _, err := bench.ParseRate(s); err == nil {
			t.Errorf("ParseRate(%q) accepted", s)
		}
	}
}

// TestPercentileMath checks the HDR setup the recorder uses (µs, 3
// significant digits) on a known uniform distribution.
func TestPercentileMath(t *testing.T) {
	h := hdrhistogram.New(1, int64(5*time.Minute/time.Microsecond), 3)
	for v := int64(1); v <= 10000; v++ {
		h.RecordValue(v * 100) // 0.1 ms … 1000 ms
	}
	for q, want := range map[float64]int64{50: 500_000, 90: 900_000, 99: 990_000, 99.9: 999_000, 100: 1_000_000} {
		got := h.ValueAtQuantile(q)
		if d := float64(got-want) / float64(want); d < -0.001 || d > 0.001 {
			t.Errorf("p%v = %d µs, want %d ±0.1%%", q, got, want)
		}
	}
}

func startStrata(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "data.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	bus := memory.New()
	app, err := service.New(ctx, service.Config{Store: st, Cache: cache.New(cache.Options{}), Bus: bus})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.UpsertSuperuser(ctx, "bench@strata.test", "bench-pass-123"); err != nil {
		t.Fatal(err)
	}
	// Realtime as `strata serve` wires it, for the realtime scenario.
	hub := realtime.New(app, bus, realtime.Config{})
	hctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { hub.Run(hctx); close(done) }()
	s := api.New(app, api.Options{})
	s.EnableRealtime(hub)
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		stop()
		<-done
		srv.Close()
	})
	return srv.URL
}

func TestRunAgainstStrata(t *testing.T) {
	url := startStrata(t)
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		cfg  bench.Config
	}{
		{"closed-view", bench.Config{Scenario: "view", Duration: 2 * time.Second, Concurrency: 8}},
		{"open-mixed", bench.Config{Duration: 2 * time.Second, Rate: 200, Concurrency: 50}},
		{"closed-refresh", bench.Config{Scenario: "refresh", Duration: 2 * time.Second, Concurrency: 4}},
	} {
		cfg := c.cfg
		cfg.URL, cfg.Email, cfg.Password, cfg.Records = url, "bench@strata.test", "bench-pass-123", 100
		var progress bytes.Buffer
		cfg.Progress = &progress
		res, err := bench.Run(context.Background(), cfg)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		out := filepath.Join(dir, c.name+".json")
		if err := res.WriteJSON(out); err != nil {
			t.Fatal(err)
		}
		// Validate the JSON as a consumer would.
		raw, _ := os.ReadFile(out)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"tool", "scenario", "mode", "requests", "throughput", "latency", "percentiles", "timeline", "ops", "statuses"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: result has no %q", c.name, k)
			}
		}
		back, err := bench.ReadResult(out)
		if err != nil {
			t.Fatal(err)
		}
		l := back.Latency
		if back.Requests < 50 || back.Errors != 0 || !(l.Min <= l.P50 && l.P50 <= l.P99 && l.P99 <= l.Max) || len(back.Timeline) < 2 {
			t.Fatalf("%s: implausible result %+v (errors %v)", c.name, back, back.ErrorSamples)
		}
		if cfg.Rate > 0 {
			// 2 s at 200/s is 400 requests, all sent on schedule.
			if back.Mode != "open" || back.Requests+back.Missed != 400 {
				t.Fatalf("open loop: mode %s, %d requests + %d missed", back.Mode, back.Requests, back.Missed)
			}
			if len(back.Ops) != 4 {
				t.Fatalf("mixed ops = %v", back.Ops)
			}
		}
		if !strings.Contains(progress.String(), "req/s") {
			t.Errorf("%s: no progress line: %q", c.name, progress.String())
		}
		var html bytes.Buffer
		if err := back.RenderHTML(&html); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(html.String(), "<svg"); n != 3 || strings.Contains(html.String(), "http://cdn") {
			t.Fatalf("html report has %d charts", n)
		}
		var cmp bytes.Buffer
		bench.Compare(&cmp, back, back)
		if !strings.Contains(cmp.String(), "1.000") {
			t.Fatalf("compare: %s", cmp.String())
		}
		t.Logf("%s: %d req, %.0f req/s, p50 %.2fms p99 %.2fms", c.name, back.Requests, back.Throughput, l.P50, l.P99)
	}
}

// A short spike run in two rounds: each phase holds both rounds' totals,
// and the counts, the timeline and the recoveries add up (no performance
// is asserted: that lives in docs/benchmarks.md).
func TestSpikeAgainstStrata(t *testing.T) {
	url := startStrata(t)
	// A CPU clock that advances one second per reading: each phase, read
	// at its start and end, must report about one core (its length is
	// measured between the readings, so not exactly a second).
	var reads float64
	res, err := bench.Spike(context.Background(), bench.SpikeConfig{
		URL: url, Email: "bench@strata.test", Password: "bench-pass-123", Records: 200,
		Steps: []float64{0.5, 2}, StepDuration: time.Second, Recovery: time.Second, Capacity: 100, Rounds: 2,
		CPU: func() (float64, float64) { reads++; return reads, 2 * reads },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Phases) != 3 || res.Phases[2].Name != "recovery 0.5x" || res.Rounds != 2 {
		t.Fatalf("phases: %+v", res.Phases)
	}
	if reads != 7 {
		t.Errorf("CPU read %v times, want once before the run and after each of its 6 segments", reads)
	}
	var ok int64
	for _, ph := range res.Phases {
		// Both rounds of a phase: its offered load for 1 s, twice.
		if want := int64(2 * ph.Multiple * 100); ph.Seconds != 2 || ph.Sent != want {
			t.Errorf("phase %s: %v s, sent %d, want 2 s and %d", ph.Name, ph.Seconds, ph.Sent, want)
		}
		if len(ph.RoundGoodput) != 2 || ph.Goodput != (ph.RoundGoodput[0]+ph.RoundGoodput[1])/2 {
			t.Errorf("phase %s: goodput %v, by round %v", ph.Name, ph.Goodput, ph.RoundGoodput)
		}
		if ph.Sent == 0 || ph.OK+ph.Rejected+ph.Errors+ph.Missed != ph.Sent {
			t.Errorf("phase %s: sent %d, answered %d+%d+%d, missed %d", ph.Name, ph.Sent, ph.OK, ph.Rejected, ph.Errors, ph.Missed)
		}
		if ph.Offered != ph.Multiple*100 {
			t.Errorf("phase %s offered %v", ph.Name, ph.Offered)
		}
		if ph.ServerCores < 0.9 || ph.ServerCores > 1.1 || ph.GeneratorCores != 2*ph.ServerCores {
			t.Errorf("phase %s: cores %v server, %v generator; want ~1 and twice that", ph.Name, ph.ServerCores, ph.GeneratorCores)
		}
		ok += ph.OK
	}
	var ticks int64
	for _, tk := range res.Timeline {
		ticks += tk.OK
	}
	if ticks != ok || ok == 0 {
		t.Errorf("timeline holds %d successes, phases %d", ticks, ok)
	}
	if res.PeakGoodput <= 0 || res.UnloadedP99 <= 0 {
		t.Errorf("peak goodput %v, unloaded p99 %v", res.PeakGoodput, res.UnloadedP99)
	}
	worst := -1.0
	if len(res.Recoveries) == 2 && !slices.Contains(res.Recoveries, -1) {
		worst = slices.Max(res.Recoveries)
	}
	if len(res.Recoveries) != 2 || res.RecoverySeconds != worst {
		t.Errorf("recovery %v, by round %v", res.RecoverySeconds, res.Recoveries)
	}
	var segs []int
	for _, tk := range res.Timeline {
		if tk.OK+tk.Rejected+tk.Errors > 0 && (len(segs) == 0 || segs[len(segs)-1] != tk.Phase) {
			segs = append(segs, tk.Phase)
		}
	}
	if !slices.Equal(segs, []int{0, 1, 2, 3, 4, 5}) {
		t.Errorf("the timeline's segments run %v, want 0 to 5 in order", segs)
	}
}

// TestRealtimeFanout runs the realtime scenario briefly: every subscriber
// must get every create exactly once, and the delivery numbers must reach
// the JSON, the summary, the HTML report and the comparison.
func TestRealtimeFanout(t *testing.T) {
	url := startStrata(t)
	var progress bytes.Buffer
	res, err := bench.Run(context.Background(), bench.Config{
		URL: url, Email: "bench@strata.test", Password: "bench-pass-123",
		Scenario: bench.RealtimeScenario, Duration: 2 * time.Second, Rate: 50, Concurrency: 20,
		Records: 10, Subscribers: 20, Progress: &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "rt.json")
	if err := res.WriteJSON(out); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(out)
	var m struct {
		Fanout map[string]any `json:"fanout"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"subscribers", "expected", "received", "missing", "duplicates", "eventsPerSecond", "latency", "percentiles"} {
		if _, ok := m.Fanout[k]; !ok {
			t.Errorf("fanout has no %q: %s", k, raw)
		}
	}
	back, err := bench.ReadResult(out)
	if err != nil {
		t.Fatal(err)
	}
	f := back.Fanout
	// 2 s at 50/s is 100 creates, all sent on schedule.
	if f == nil || back.Errors != 0 || back.Requests == 0 || back.Requests+back.Missed != 100 {
		t.Fatalf("result: %d requests, %d errors %v, fanout %+v", back.Requests, back.Errors, back.ErrorSamples, f)
	}
	if f.Subscribers != 20 || f.Creates != back.Requests || f.Expected != 20*f.Creates ||
		f.Received != f.Expected || f.Missing != 0 || f.Duplicates != 0 || f.Disconnects != 0 || f.Unexpected != 0 {
		t.Fatalf("deliveries: %+v", f)
	}
	d := f.Latency
	if !(d.Min > 0 && d.Min <= d.P50 && d.P50 <= d.P90 && d.P90 <= d.P99 && d.P99 <= d.Max) || f.EventsPerSecond <= 0 {
		t.Fatalf("delivery latency %+v, %.0f events/s", d, f.EventsPerSecond)
	}
	if ops := back.Ops["create"]; len(back.Ops) != 1 || ops.Requests != back.Requests {
		t.Fatalf("ops = %+v", back.Ops)
	}
	if !strings.Contains(progress.String(), "delivered") {
		t.Errorf("no delivery count in the progress line: %q", progress.String())
	}
	var sum bytes.Buffer
	back.PrintSummary(&sum)
	if !strings.Contains(sum.String(), "delivery ms") {
		t.Errorf("summary: %s", sum.String())
	}
	var html bytes.Buffer
	if err := back.RenderHTML(&html); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(html.String(), "<svg"); n != 4 || !strings.Contains(html.String(), "Realtime delivery latency") {
		t.Fatalf("html report has %d charts", n)
	}
	var cmp bytes.Buffer
	bench.Compare(&cmp, back, back)
	if !strings.Contains(cmp.String(), "delivery p99 ms") {
		t.Fatalf("compare: %s", cmp.String())
	}
	t.Logf("%d creates × %d subscribers: delivery p50 %.2fms p99 %.2fms max %.2fms, %.0f events/s",
		f.Creates, f.Subscribers, d.P50, d.P99, d.Max, f.EventsPerSecond)
}
