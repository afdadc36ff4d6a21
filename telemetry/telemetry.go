// Package telemetry sets up what the rest of Strata reports into: the
// Prometheus registry (with Go runtime and process collectors), the slog
// logger that stamps every line of a request with its request and trace
// ids, and OpenTelemetry tracing (the OTLP exporter, plus the store
// decorator that gives every store call its span).
//
// Metrics themselves are declared next to the code they measure (api,
// store/sqlite, cache); this package only wires registries and exporters.
package telemetry

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry holding the Go runtime and process
// collectors. Components register their own metrics into it.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// MetricsHandler serves g in the Prometheus exposition format. Errors while
// gathering one metric are reported in the response rather than failing the
// whole scrape.
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
