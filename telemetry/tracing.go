package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Instrumentation is the instrumentation scope of every span Strata starts.
const Instrumentation = "github.com/strata-run/strata"

// OTLP protocols accepted by TracingConfig.Protocol, named as in
// OTEL_EXPORTER_OTLP_PROTOCOL.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// TracingConfig configures OpenTelemetry tracing of one node.
type TracingConfig struct {
	// Endpoint is the OTLP collector's base URL with
	// OTEL_EXPORTER_OTLP_ENDPOINT semantics: "http://collector:4318" sends
	// to /v1/traces there (http/protobuf), "http://collector:4317" is the
	// gRPC target; http:// means no TLS. A bare host:port is taken as
	// http://host:port. Empty turns tracing off.
	Endpoint string
	// Protocol is ProtocolHTTP (the default when empty) or ProtocolGRPC.
	Protocol string
	// SampleRatio is the fraction of new traces recorded, 0 to 1. A request
	// whose traceparent says its caller sampled it is recorded whatever the
	// ratio (parent-based sampling), so traces stay whole across services.
	SampleRatio float64
	// ServiceVersion and NodeID identify this node in the resource
	// (service.version, service.instance.id).
	ServiceVersion string
	NodeID         string
}

// Tracing is a node's tracer provider and its exporter. A nil *Tracing is
// tracing switched off: Provider returns nil and Shutdown does nothing.
type Tracing struct {
	provider *sdktrace.TracerProvider
}

// NewTracing starts the exporter cfg describes; it returns nil (tracing
// off) when cfg.Endpoint is empty. The exporter connects lazily, so a
// collector that is down costs dropped spans, not a failed start.
func NewTracing(ctx context.Context, cfg TracingConfig) (*Tracing, error) {
	if strings.TrimSpace(cfg.Endpoint) == "" {
		return nil, nil
	}
	if cfg.SampleRatio < 0 || cfg.SampleRatio > 1 {
		return nil, fmt.Errorf("trace sample ratio %v: want 0 to 1", cfg.SampleRatio)
	}
	endpoint, err := endpointURL(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	var client otlptrace.Client
	switch strings.ToLower(strings.TrimSpace(cfg.Protocol)) {
	case ProtocolHTTP, "http", "":
		// WithEndpointURL takes the full URL, so the signal path is added
		// here as the OTLP spec says to for the generic endpoint.
		u := *endpoint
		u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
		client = otlptracehttp.NewClient(otlptracehttp.WithEndpointURL(u.String()))
	case ProtocolGRPC:
		client = otlptracegrpc.NewClient(otlptracegrpc.WithEndpointURL(endpoint.String()))
	default:
		return nil, fmt.Errorf("OTLP protocol %q: want %s or %s", cfg.Protocol, ProtocolHTTP, ProtocolGRPC)
	}
	exp, err := otlptrace.New(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", "strata")}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.ServiceVersion))
	}
	if cfg.NodeID != "" {
		attrs = append(attrs, attribute.String("service.instance.id", cfg.NodeID))
	}
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES come last so that an
	// operator can rename the service per deployment.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(attrs...), resource.WithFromEnv())
	if err != nil && res == nil {
		exp.Shutdown(ctx)
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	return &Tracing{provider: tp}, nil
}

// endpointURL parses an OTLP endpoint, defaulting the scheme to http.
func endpointURL(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("OTLP endpoint %q: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("OTLP endpoint %q: want http(s)://host:port", s)
	}
	return u, nil
}

// Provider is the tracer provider to give api.Options, or nil when t is.
func (t *Tracing) Provider() trace.TracerProvider {
	if t == nil {
		return nil
	}
	return t.provider
}

// Shutdown exports the spans still buffered and stops the exporter; ctx
// bounds how long a slow collector may hold up the process exit.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// Propagator reads and writes W3C traceparent/tracestate headers.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// noSpan is what StartChild returns when there is nothing to trace under;
// boxing the empty struct into the interface does not allocate.
var noSpan trace.Span = noop.Span{}

// StartChild starts span name as a child of the span in ctx, from the same
// provider, when that span is being recorded. Otherwise (tracing off, the
// trace not sampled, or work outside any request) it returns ctx and a
// no-op span without allocating, which keeps instrumented code free when
// tracing is off. Callers set attributes only if span.IsRecording(), as
// building them allocates.
func StartChild(ctx context.Context, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, noSpan
	}
	return parent.TracerProvider().Tracer(Instrumentation).Start(ctx, name, trace.WithSpanKind(kind))
}

// EndSpan ends span, marking it failed when err is not nil.
func EndSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
