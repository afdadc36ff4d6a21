package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/store/sqlite"
)

func openLogs(tb testing.TB, opts sqlite.LogOptions) *sqlite.LogStore {
	tb.Helper()
	l, err := sqlite.OpenLogs(context.Background(), filepath.Join(tb.TempDir(), "auxiliary.db"), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

func TestLogStoreFilterSortStatsPrune(t *testing.T) {
	ctx := context.Background()
	l := openLogs(t, sqlite.LogOptions{})
	base := time.Date(2026, 1, 2, 10, 15, 0, 0, time.UTC)
	for i, e := range []strata.Log{
		{ID: "a", Created: base, Level: 0, Message: "GET /a", Data: map[string]any{"status": 200, "method": "GET"}},
		{ID: "b", Created: base.Add(time.Minute), Level: 8, Message: "GET /b", Data: map[string]any{"status": 404, "method": "GET"}},
		{ID: "c", Created: base.Add(time.Hour), Level: 8, Message: "POST /c", Data: map[string]any{"status": 500, "method": "POST"}},
		{ID: "d", Created: base.Add(-48 * time.Hour), Level: 0, Message: "old"},
	} {
		_ = i
		l.Add(e)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := l.FindLogs(ctx, strata.LogQuery{Filter: "data.status >= 400 && level = 8", Sort: "created"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "b" || got[1].ID != "c" || got[1].Data["method"] != "POST" {
		t.Fatalf("filter by data.status: %+v", got)
	}
	if n, err := l.CountLogs(ctx, `message ~ "GET"`); err != nil || n != 2 {
		t.Fatalf("count = %d, %v", n, err)
	}
	if _, err := l.FindLogs(ctx, strata.LogQuery{Filter: "@request.auth.id = ''"}); err == nil {
		t.Fatal("@request accepted in a log filter")
	}
	stats, err := l.LogStats(ctx, `created >= "2026-01-02"`)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 2 || stats[0].Total != 2 || stats[1].Total != 1 || stats[0].Date != base.Truncate(time.Hour) {
		t.Fatalf("stats: %+v", stats)
	}
	if n, err := l.Prune(ctx, base.Add(-time.Hour)); err != nil || n != 1 {
		t.Fatalf("prune = %d, %v", n, err)
	}
}

func TestLogStoreDropsWhenFull(t *testing.T) {
	reg := prometheus.NewRegistry()
	// An hour-long flush interval and a huge batch keep the writer idle,
	// so the tiny buffer fills.
	l := openLogs(t, sqlite.LogOptions{Buffer: 2, BatchSize: 1000, FlushEvery: time.Hour, Registerer: reg})
	for range 50 {
		l.Add(strata.Log{Message: "x"})
	}
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, err := l.CountLogs(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	dropped := testutil.ToFloat64(collector(t, reg, "strata_logs_dropped_total"))
	written := testutil.ToFloat64(collector(t, reg, "strata_logs_written_total"))
	if int(dropped)+n != 50 || int(written) != n || dropped == 0 {
		t.Fatalf("stored %d, written %v, dropped %v", n, written, dropped)
	}
}

// collector finds a registered counter by name through Gather.
func collector(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: "copy"}, func() float64 { return mf.GetMetric()[0].GetCounter().GetValue() })
		}
	}
	t.Fatalf("%s not registered", name)
	return nil
}
