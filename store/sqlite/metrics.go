package sqlite

import (
	"database/sql"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's instruments. They always exist (so the hot path
// never checks for nil) and are exported only when Options.Registerer is set.
type metrics struct {
	find, count, setting, changes, collections prometheus.Observer
	write, commit                              prometheus.Observer
	groupSize                                  prometheus.Observer
	collectors                                 []prometheus.Collector
}

// queryBuckets span a cached point read (tens of µs) to a slow scan.
var queryBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

func newMetrics(s *Store) *metrics {
	labels := prometheus.Labels{"store": "sqlite"}
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "strata", Subsystem: "store", Name: "query_duration_seconds",
		Help:        "Store call latency by operation. write includes the wait for the writer; commit is one group commit.",
		ConstLabels: labels, Buckets: queryBuckets,
	}, []string{"op"})
	group := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "strata", Subsystem: "store", Name: "write_group_size",
		Help:        "Transactions committed together by one group commit.",
		ConstLabels: labels, Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
	})
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "strata", Subsystem: "store", Name: "write_queue_length",
		Help:        "Transactions waiting for the single writer connection.",
		ConstLabels: labels,
	}, func() float64 {
		s.qmu.Lock()
		defer s.qmu.Unlock()
		return float64(len(s.queue))
	})
	m := &metrics{
		find: dur.WithLabelValues("find"), count: dur.WithLabelValues("count"),
		setting: dur.WithLabelValues("setting"), changes: dur.WithLabelValues("changes"),
		collections: dur.WithLabelValues("collections"),
		write:       dur.WithLabelValues("write"), commit: dur.WithLabelValues("commit"),
		groupSize:  group,
		collectors: []prometheus.Collector{dur, group, queue, &poolCollector{s: s}},
	}
	return m
}

func since(o prometheus.Observer, start time.Time) { o.Observe(time.Since(start).Seconds()) }

// poolCollector reports database/sql pool statistics of the read pool
// (and the one writer connection), read once per scrape.
type poolCollector struct{ s *Store }

var (
	poolLabels   = []string{"pool"}
	poolConst    = prometheus.Labels{"store": "sqlite"}
	descOpen     = prometheus.NewDesc("strata_store_pool_open_connections", "Open connections in the pool.", poolLabels, poolConst)
	descInUse    = prometheus.NewDesc("strata_store_pool_in_use_connections", "Connections currently in use.", poolLabels, poolConst)
	descIdle     = prometheus.NewDesc("strata_store_pool_idle_connections", "Idle connections.", poolLabels, poolConst)
	descMax      = prometheus.NewDesc("strata_store_pool_max_open_connections", "Configured pool size.", poolLabels, poolConst)
	descWaits    = prometheus.NewDesc("strata_store_pool_wait_total", "Times a caller waited for a free connection.", poolLabels, poolConst)
	descWaitSecs = prometheus.NewDesc("strata_store_pool_wait_seconds_total", "Time spent waiting for a free connection.", poolLabels, poolConst)
)

// Describe implements prometheus.Collector.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOpen, descInUse, descIdle, descMax, descWaits, descWaitSecs} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	emit := func(pool string, st sql.DBStats) {
		ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(st.OpenConnections), pool)
		ch <- prometheus.MustNewConstMetric(descInUse, prometheus.GaugeValue, float64(st.InUse), pool)
		ch <- prometheus.MustNewConstMetric(descIdle, prometheus.GaugeValue, float64(st.Idle), pool)
		ch <- prometheus.MustNewConstMetric(descMax, prometheus.GaugeValue, float64(st.MaxOpenConnections), pool)
		ch <- prometheus.MustNewConstMetric(descWaits, prometheus.CounterValue, float64(st.WaitCount), pool)
		ch <- prometheus.MustNewConstMetric(descWaitSecs, prometheus.CounterValue, st.WaitDuration.Seconds(), pool)
	}
	emit("reader", c.s.reader.Stats())
	emit("writer", c.s.writer.Stats())
}
