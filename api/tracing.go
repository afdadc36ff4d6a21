package api

import (
	"context"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-run/strata/telemetry"
)

// startRequestSpan continues the caller's trace (W3C traceparent) or starts
// one, with the request's server span. The name is "METHOD route" with the
// route pattern, so that it stays low-cardinality; unmatched requests are
// named by their method only.
func (s *Server) startRequestSpan(ctx context.Context, r *http.Request, pattern, requestID string) (context.Context, trace.Span) {
	ctx = telemetry.Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
	method := spanMethod(r.Method)
	name, route := method, ""
	if pattern != "" && r.Method != http.MethodOptions {
		route = routeLabel(r, pattern)
		name = method + " " + route
	}
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", method),
		attribute.String("url.path", r.URL.Path),
		attribute.String("strata.request_id", requestID),
	}
	if method == "_OTHER" {
		attrs = append(attrs, attribute.String("http.request.method_original", r.Method))
	}
	if route != "" {
		attrs = append(attrs, attribute.String("http.route", route))
	}
	return s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
}

// endRequestSpan records the response status and ends the request span.
// Only 5xx are errors of the server span: a 4xx is the client's.
func endRequestSpan(span trace.Span, status int) {
	if status == 0 {
		status = http.StatusOK
	}
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, strconv.Itoa(status))
	}
	span.End()
}

// spanMethod keeps http.request.method to the known methods, as the
// semantic conventions ask: anything else is "_OTHER".
func spanMethod(m string) string {
	if metricsLabelMethod(m) == "other" {
		return "_OTHER"
	}
	return m
}
