package postgres_test

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/store/postgres"
	"github.com/strata-run/strata/store/postgres/pgtest"
)

// sample sums the samples of family name whose labels include want
// (histograms: their count); ok is false when there is none.
func sample(tb testing.TB, g prometheus.Gatherer, name string, want map[string]string) (v float64, ok bool) {
	tb.Helper()
	mfs, err := g.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, w := range want {
				if labels[k] != w {
					continue next
				}
			}
			ok = true
			switch {
			case m.Counter != nil:
				v += m.GetCounter().GetValue()
			case m.Gauge != nil:
				v += m.GetGauge().GetValue()
			case m.Histogram != nil:
				v += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return v, ok
}

// mustSample is sample that fails the test when the series is missing.
func mustSample(tb testing.TB, g prometheus.Gatherer, name string, want map[string]string) float64 {
	tb.Helper()
	v, ok := sample(tb, g, name, want)
	if !ok {
		tb.Fatalf("no %s%v in the scrape", name, want)
	}
	return v
}

// scrapeText is the registry in the exposition format.
func scrapeText(tb testing.TB, g prometheus.Gatherer) string {
	tb.Helper()
	mfs, err := g.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var out strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&out, mf); err != nil {
			tb.Fatal(err)
		}
	}
	return out.String()
}

// TestMetrics opens a store whose one "replica" is the primary itself
// (not a standby, so its health check fails) behind a DSN with a password:
// the primary serves every read, the replica is reported down, and the
// password appears nowhere in the scrape.
func TestMetrics(t *testing.T) {
	const password = "s3cret-pw-never-exported"
	dsn := pgtest.Schema(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), password)
	reg := prometheus.NewPedanticRegistry()
	ctx := context.Background()
	st, err := postgres.Open(ctx, dsn, postgres.Options{MaxConns: 6, Replicas: []string{u.String()},
		MaxReplicaLag: 3 * time.Second, ReplicaRetry: time.Hour, Logger: discardLogger(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := strata.NowDate()
	c := &strata.Collection{ID: "pbc_m", Name: "m", Type: strata.CollectionBase, Created: now, Updated: now,
		Fields: []*strata.Field{{ID: "text3208210256", Name: "id", Type: strata.FieldText, System: true, PrimaryKey: true}}}
	if _, err := st.Write(ctx, func(tx strata.Tx) error { return tx.CreateCollection(ctx, c) }); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := st.FindRecords(ctx, &strata.RecordQuery{Collection: c}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.CountRecords(strata.WithReadAfter(ctx, strata.ReadLatest), &strata.RecordQuery{Collection: c}); err != nil {
		t.Fatal(err)
	}

	primary := map[string]string{"store": "postgres", "pool": "primary"}
	if got := mustSample(t, reg, "strata_store_pool_max_open_connections", primary); got != 6 {
		t.Errorf("primary max connections = %v, want 6", got)
	}
	if got := mustSample(t, reg, "strata_store_pool_open_connections", primary); got < 1 {
		t.Errorf("primary open connections = %v after queries", got)
	}
	if got := mustSample(t, reg, "strata_store_pool_new_connections_total", primary); got < 1 {
		t.Errorf("primary new connections = %v after queries", got)
	}
	if got := mustSample(t, reg, "strata_store_pool_acquires_total", primary); got < 7 {
		t.Errorf("primary acquires = %v after 7 calls", got)
	}
	for _, name := range []string{"strata_store_pool_in_use_connections", "strata_store_pool_idle_connections",
		"strata_store_pool_wait_total", "strata_store_pool_wait_seconds_total", "strata_store_pool_acquire_seconds_total",
		"strata_store_pool_canceled_acquires_total"} {
		mustSample(t, reg, name, primary)
	}
	if got := mustSample(t, reg, "strata_store_reads_total", map[string]string{"pool": "primary", "reason": "unhealthy"}); got != 5 {
		t.Errorf("reads on the primary with the replica down = %v, want 5", got)
	}
	if got := mustSample(t, reg, "strata_store_reads_total", map[string]string{"pool": "primary", "reason": "latest"}); got != 1 {
		t.Errorf("reads asking for the primary = %v, want 1", got)
	}
	if got := mustSample(t, reg, "strata_store_query_duration_seconds", map[string]string{"op": "find", "target": "primary"}); got != 5 {
		t.Errorf("find latency count = %v, want 5", got)
	}
	for _, o := range []string{"count", "write", "commit"} {
		if got := mustSample(t, reg, "strata_store_query_duration_seconds", map[string]string{"op": o, "target": "primary"}); got < 1 {
			t.Errorf("%s latency count = %v", o, got)
		}
	}

	replica := map[string]string{"pool": "replica-1"}
	if got := mustSample(t, reg, "strata_store_replica_up", replica); got != 0 {
		t.Errorf("replica_up = %v for a server that is not a standby", got)
	}
	if got := mustSample(t, reg, "strata_store_replica_healthy", replica); got != 0 {
		t.Errorf("replica_healthy = %v for a server that is not a standby", got)
	}
	if got := mustSample(t, reg, "strata_store_replica_failures_total", replica); got < 1 {
		t.Errorf("replica failures = %v", got)
	}
	if got := mustSample(t, reg, "strata_store_replica_max_lag_seconds", nil); got != 3 {
		t.Errorf("max lag = %v, want 3", got)
	}
	mustSample(t, reg, "strata_store_replica_lag_seconds", replica)
	mustSample(t, reg, "strata_store_pool_max_open_connections", replica)
	mustSample(t, reg, "strata_store_replica_info", map[string]string{"pool": "replica-1", "addr": "127.0.0.1:" + u.Port()})

	text := scrapeText(t, reg)
	if strings.Contains(text, password) || strings.Contains(text, "postgres://") {
		t.Fatalf("the scrape exposes a DSN:\n%s", text)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestMetricsWithoutReplicas checks the one-database case and that a
// second store cannot register over the first one's metrics.
func TestMetricsWithoutReplicas(t *testing.T) {
	reg := prometheus.NewRegistry()
	ctx := context.Background()
	dsn := pgtest.Schema(t)
	st, err := postgres.Open(ctx, dsn, postgres.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Changes(ctx, 0, 10); err != nil {
		t.Fatal(err)
	}
	if got := mustSample(t, reg, "strata_store_reads_total", map[string]string{"pool": "primary", "reason": "no-replicas"}); got != 1 {
		t.Errorf("reads without replicas = %v, want 1", got)
	}
	if _, ok := sample(t, reg, "strata_store_replica_max_lag_seconds", nil); ok {
		t.Error("replica metrics exported without replicas")
	}
	if !strings.Contains(scrapeText(t, reg), `strata_store_query_duration_seconds_bucket{op="changes",store="postgres",target="primary",le="5e-05"}`) {
		t.Error("changes latency histogram missing or with other buckets than store/sqlite's")
	}
	if second, err := postgres.Open(ctx, dsn, postgres.Options{Registerer: reg}); err == nil {
		second.Close()
		t.Fatal("a second store registered the same metrics")
	}
	if _, err := st.Changes(ctx, 0, 10); err != nil {
		t.Fatalf("the first store after the second failed to open: %v", err)
	}
}

// checkMetrics asserts what the metrics say about f after its reads: the
// replica's pool, health and lag, and reads on both targets.
func (f *replicaFixture) checkMetrics(t *testing.T, replicaReadsNoToken float64) {
	t.Helper()
	reg := f.registry
	replica := map[string]string{"pool": "replica-1"}
	if got := mustSample(t, reg, "strata_store_replica_up", replica); got != 1 {
		t.Errorf("replica_up = %v", got)
	}
	if got := mustSample(t, reg, "strata_store_replica_healthy", replica); got != 1 {
		t.Errorf("replica_healthy = %v", got)
	}
	if lag := mustSample(t, reg, "strata_store_replica_lag_seconds", replica); lag < 0 || lag > 10 {
		t.Errorf("replica lag = %vs", lag)
	}
	if got := mustSample(t, reg, "strata_store_pool_open_connections", replica); got < 1 {
		t.Errorf("replica open connections = %v after it served reads", got)
	}
	if got := mustSample(t, reg, "strata_store_pool_max_open_connections", replica); got != 32 {
		t.Errorf("replica max connections = %v, want the primary's 32", got)
	}
	if got := mustSample(t, reg, "strata_store_reads_total", map[string]string{"pool": "replica-1", "reason": "no-token"}); got < replicaReadsNoToken {
		t.Errorf("replica reads without a token = %v, want at least %v", got, replicaReadsNoToken)
	}
	if got := mustSample(t, reg, "strata_store_reads_total", map[string]string{"pool": "primary", "reason": "consistency-token"}); got < 1 {
		t.Errorf("primary reads for a token = %v, want at least the read right after the write", got)
	}
	replicaTotal, _ := sample(t, reg, "strata_store_reads_total", replica)
	if st := f.store.ReadStats(); float64(st.Replicas[0].Reads) != replicaTotal {
		t.Errorf("ReadStats says the replica served %d reads, the metrics %v", st.Replicas[0].Reads, replicaTotal)
	}
	if got := mustSample(t, reg, "strata_store_query_duration_seconds", map[string]string{"op": "find", "target": "replica"}); got != replicaTotal {
		t.Errorf("find latency on the replica counted %v reads, want %v", got, replicaTotal)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
