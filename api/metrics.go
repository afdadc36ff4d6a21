package api

import (
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-run/strata"
)

// httpMetrics are the HTTP layer's instruments. Routes are labelled by
// their ServeMux pattern, never by the raw path: ids in paths would make
// the label set unbounded.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	errors   *prometheus.CounterVec

	// series caches the label-bound counter and histogram per (route,
	// method, status): a vector look-up hashes every label on each call.
	series sync.Map // seriesKey → *series
	errs   sync.Map // strata.ErrorCode → prometheus.Counter
}

type seriesKey struct {
	route, method string
	status        int
}

type series struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// latencyBuckets run from a cached read (~100µs) to a slow batch (10s).
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newHTTPMetrics() *httpMetrics {
	return &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests served, by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "strata", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time from the request reaching the handler to the handler returning, by route pattern, method and status.",
			Buckets: latencyBuckets,
		}, []string{"route", "method", "status"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "strata", Subsystem: "http", Name: "requests_in_flight",
			Help: "Requests being served right now (realtime streams included).",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Subsystem: "http", Name: "errors_total",
			Help: "Error responses by domain error code (invalid, unauthorized, forbidden, not_found, …, internal).",
		}, []string{"code"}),
	}
}

func (m *httpMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.duration, m.inFlight, m.errors}
}

// observe counts one finished request.
func (m *httpMetrics) observe(route, method string, status int, seconds float64) {
	k := seriesKey{route, method, status}
	v, ok := m.series.Load(k)
	if !ok {
		code := strconv.Itoa(status)
		v, _ = m.series.LoadOrStore(k, &series{
			count:    m.requests.WithLabelValues(route, method, code),
			duration: m.duration.WithLabelValues(route, method, code),
		})
	}
	s := v.(*series)
	s.count.Inc()
	s.duration.Observe(seconds)
}

// countError counts one error response by its domain code.
func (m *httpMetrics) countError(code strata.ErrorCode) {
	v, ok := m.errs.Load(code)
	if !ok {
		v, _ = m.errs.LoadOrStore(code, m.errors.WithLabelValues(string(code)))
	}
	v.(prometheus.Counter).Inc()
}

// routeLabel turns a ServeMux pattern ("GET /api/x/{id}") into the route
// label ("/api/x/{id}"); the method has its own label.
func routeLabel(r *http.Request, pattern string) string {
	if r.Method == http.MethodOptions {
		return "preflight"
	}
	if pattern == "" {
		return "unmatched"
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return path
	}
	return pattern
}

// metricsLabelMethod keeps the method label bounded: anything unusual is
// "other".
func metricsLabelMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// metrics serves GET /metrics on the main listener to superusers only;
// `strata serve --metrics-addr` exposes the same registry without auth on
// a separate (private) listener.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.superuser(w, r); !ok {
		return
	}
	s.metricsHandler.ServeHTTP(w, r)
}

// MetricsHandler serves the node's metrics without any auth check, for a
// separate listener that only Prometheus can reach.
func (s *Server) MetricsHandler() http.Handler { return s.metricsHandler }
