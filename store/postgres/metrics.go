package postgres

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics share their names (and latency buckets) with store/sqlite's, with
// store="postgres" instead of store="sqlite", so one dashboard serves both
// stores. Pools, replicas and read routing are read from counters the hot
// path keeps anyway (pgxpool's, the router's atomics) at scrape time.

// op is a measured store call, the "op" label of query_duration_seconds.
type op uint8

const (
	opFind op = iota
	opCount
	opSetting
	opChanges
	opCollections
	opWrite  // the whole Write call, the caller's function included
	opCommit // one group commit: the group's functions, the change-log append and COMMIT
	numOps
)

var opNames = [numOps]string{"find", "count", "setting", "changes", "collections", "write", "commit"}

// target is where a call ran, the "target" label of query_duration_seconds.
type target uint8

const (
	onPrimary target = iota
	onReplica
	numTargets
)

var targetNames = [numTargets]string{"primary", "replica"}

// readReason says why a read went where it went: the "reason" label of
// strata_store_reads_total. The set is closed so the label stays bounded.
type readReason uint8

const (
	// On the primary:
	reasonNoReplicas       readReason = iota // none configured
	reasonLatest                             // the caller asked for the primary (strata.ReadLatest)
	reasonUnhealthy                          // every replica is down or failing
	reasonLagging                            // no healthy replica; some are out for lagging
	reasonToken                              // no replica had replayed the caller's consistency token
	reasonReplicaError                       // the replica failed the read; retried here
	reasonRecoveryConflict                   // the replica cancelled the read to apply WAL
	reasonSchemaLag                          // the replica lacks a table or column it has not replayed yet
	// On a replica:
	reasonNoToken  // the read had no consistency token
	reasonCaughtUp // the replica's cached position was past the token
	reasonChecked  // the position was re-read on the serving connection
	numReasons
)

var reasonNames = [numReasons]string{"no-replicas", "latest", "unhealthy", "lagging", "consistency-token",
	"replica-error", "recovery-conflict", "schema-lag", "no-token", "caught-up", "checked"}

// readCounts counts reads by reason; each target has one.
type readCounts [numReasons]atomic.Int64

func (c *readCounts) total() int64 {
	var n int64
	for i := range c {
		n += c[i].Load()
	}
	return n
}

// queryBuckets are store/sqlite's: the same histogram on both stores.
var queryBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// metrics are the store's instruments. They always exist, so the hot path
// never checks for nil, and are exported only when Options.Registerer is set.
type metrics struct {
	dur        [numOps][numTargets]prometheus.Observer
	groupSize  prometheus.Observer
	collectors []prometheus.Collector
}

func newMetrics(s *Store) *metrics {
	vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "strata", Subsystem: "store", Name: "query_duration_seconds",
		Help: "Store call latency by operation and the database that served it. write is the whole transaction; " +
			"commit is one group commit (write.go).",
		ConstLabels: storeLabels, Buckets: queryBuckets,
	}, []string{"op", "target"})
	group := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "strata", Subsystem: "store", Name: "write_group_size",
		Help:        "Transactions committed together by one group commit.",
		ConstLabels: storeLabels, Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
	})
	m := &metrics{groupSize: group, collectors: []prometheus.Collector{vec, group, &collector{s: s}}}
	for o := range numOps {
		for t := range numTargets {
			m.dur[o][t] = vec.WithLabelValues(opNames[o], targetNames[t])
		}
	}
	return m
}

// observe records a call to o on t that started at start.
func (m *metrics) observe(o op, t target, start time.Time) {
	m.dur[o][t].Observe(time.Since(start).Seconds())
}

// register adds the store's collectors to reg, failing on a duplicate so
// that two stores never silently share one metric.
func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("postgres metrics: %w", err)
		}
	}
	return nil
}

var (
	storeLabels = prometheus.Labels{"store": "postgres"}
	poolLabel   = []string{"pool"}

	// Named as store/sqlite's pool metrics.
	descOpen     = newDesc("pool_open_connections", "Open connections in the pool.", poolLabel...)
	descInUse    = newDesc("pool_in_use_connections", "Connections currently in use.", poolLabel...)
	descIdle     = newDesc("pool_idle_connections", "Idle connections.", poolLabel...)
	descMax      = newDesc("pool_max_open_connections", "Configured pool size.", poolLabel...)
	descWaits    = newDesc("pool_wait_total", "Times a caller waited for a free connection (the pool was empty).", poolLabel...)
	descWaitSecs = newDesc("pool_wait_seconds_total", "Time spent waiting for a free connection.", poolLabel...)

	// pgxpool's own counters.
	descAcquires    = newDesc("pool_acquires_total", "Connections handed out by the pool.", poolLabel...)
	descAcquireSecs = newDesc("pool_acquire_seconds_total", "Time spent acquiring connections, waits included.", poolLabel...)
	descCanceled    = newDesc("pool_canceled_acquires_total", "Acquires abandoned because the caller's context ended.", poolLabel...)
	descNewConns    = newDesc("pool_new_connections_total", "Connections opened; near zero per second under steady load.", poolLabel...)
	descClosedConns = newDesc("pool_closed_connections_total", "Connections closed by the pool, by reason (max_lifetime, max_idle).", "pool", "reason")

	descReads = newDesc("reads_total", "Reads by the database that served them and why it was chosen.", "pool", "reason")

	descReplicaInfo = newDesc("replica_info", "A configured replica: its pool label and address (host:port).", "pool", "addr")
	descReplicaUp   = newDesc("replica_up", "Whether the last health check reached the replica (1) or it failed (0).", poolLabel...)
	descHealthy     = newDesc("replica_healthy", "Whether the replica serves reads (1): reachable and lagging less than the bound.", poolLabel...)
	descLag         = newDesc("replica_lag_seconds", "How far the replica's replay is behind the primary, as of the last health check.", poolLabel...)
	descMaxLag      = newDesc("replica_max_lag_seconds", "The lag past which a replica is taken out of reads (--db-replica-max-lag).")
	descFailures    = newDesc("replica_failures_total", "Errors that took the replica out of reads.", poolLabel...)
)

func newDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("strata_store_"+name, help, labels, storeLabels)
}

// collector reads the pools, the router and the replicas at scrape time.
type collector struct{ s *Store }

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOpen, descInUse, descIdle, descMax, descWaits, descWaitSecs,
		descAcquires, descAcquireSecs, descCanceled, descNewConns, descClosedConns, descReads,
		descReplicaInfo, descReplicaUp, descHealthy, descLag, descMaxLag, descFailures} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	emitPool(ch, "primary", c.s.pool.Stat())
	emitReads(ch, "primary", &c.s.primaryReads)
	rs := c.s.replicas
	if rs == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descMaxLag, prometheus.GaugeValue, rs.maxLag.Seconds())
	for _, r := range rs.list {
		emitPool(ch, r.label, r.pool.Stat())
		emitReads(ch, r.label, &r.reads)
		ch <- prometheus.MustNewConstMetric(descReplicaInfo, prometheus.GaugeValue, 1, r.label, r.name)
		ch <- prometheus.MustNewConstMetric(descReplicaUp, prometheus.GaugeValue, b2f(r.up.Load()), r.label)
		ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, b2f(r.healthy.Load()), r.label)
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, time.Duration(r.lag.Load()).Seconds(), r.label)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(r.failures.Load()), r.label)
	}
}

func emitPool(ch chan<- prometheus.Metric, pool string, st *pgxpool.Stat) {
	gauge := func(d *prometheus.Desc, v int32) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), pool)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append([]string{pool}, labels...)...)
	}
	gauge(descOpen, st.TotalConns())
	gauge(descInUse, st.AcquiredConns())
	gauge(descIdle, st.IdleConns())
	gauge(descMax, st.MaxConns())
	counter(descWaits, float64(st.EmptyAcquireCount()))
	counter(descWaitSecs, st.EmptyAcquireWaitTime().Seconds())
	counter(descAcquires, float64(st.AcquireCount()))
	counter(descAcquireSecs, st.AcquireDuration().Seconds())
	counter(descCanceled, float64(st.CanceledAcquireCount()))
	counter(descNewConns, float64(st.NewConnsCount()))
	counter(descClosedConns, float64(st.MaxLifetimeDestroyCount()), "max_lifetime")
	counter(descClosedConns, float64(st.MaxIdleDestroyCount()), "max_idle")
}

// emitReads exports the reasons a target has seen; a reason that cannot
// apply to it (or has not happened yet) adds no series.
func emitReads(ch chan<- prometheus.Metric, pool string, c *readCounts) {
	for i := range c {
		if n := c[i].Load(); n > 0 {
			ch <- prometheus.MustNewConstMetric(descReads, prometheus.CounterValue, float64(n), pool, reasonNames[i])
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
