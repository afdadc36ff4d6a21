package realtime

import "github.com/prometheus/client_golang/prometheus"

// Collectors returns the hub's instruments, read from its counters at
// scrape time (the hot path only increments atomics). Register them once
// per hub.
func (h *Hub) Collectors() []prometheus.Collector {
	counter := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "strata", Subsystem: "realtime", Name: name, Help: help,
		}, func() float64 { return float64(f()) })
	}
	return []prometheus.Collector{
		h.lag,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "strata", Subsystem: "realtime", Name: "clients",
			Help: "Realtime clients connected to this node (SSE and WebSocket).",
		}, func() float64 { return float64(h.Clients()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "strata", Subsystem: "realtime", Name: "position",
			Help: "Sequence of the last change-log entry the hub has dispatched.",
		}, func() float64 { return float64(h.pos.Load()) }),
		counter("connections_total", "Realtime streams opened.", h.connects.Load),
		counter("events_delivered_total", "Events queued to clients (replays included).", h.delivered.Load),
		counter("evictions_total", "Clients disconnected because their buffer overflowed.", h.evicted.Load),
		counter("resumes_total", "Clients that resumed from a cursor with a replay.", h.resumed.Load),
		counter("resyncs_total", "Resume requests answered with PB_RESYNC (cursor outside the window).", h.resynced.Load),
	}
}
