package telemetry_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-run/strata/telemetry"
)

func TestNewTracingConfig(t *testing.T) {
	ctx := context.Background()
	off, err := telemetry.NewTracing(ctx, telemetry.TracingConfig{SampleRatio: 5})
	if err != nil || off != nil || off.Provider() != nil || off.Shutdown(ctx) != nil {
		t.Fatalf("no endpoint: %v, %v; want tracing off", off, err)
	}
	for _, cfg := range []telemetry.TracingConfig{
		{Endpoint: "http://127.0.0.1:4318", SampleRatio: 1.5},
		{Endpoint: "http://127.0.0.1:4318", SampleRatio: -0.1},
		{Endpoint: "ftp://127.0.0.1:4318", SampleRatio: 1},
		{Endpoint: "http://", SampleRatio: 1},
		{Endpoint: "http://127.0.0.1:4318", Protocol: "thrift", SampleRatio: 1},
	} {
		if tr, err := telemetry.NewTracing(ctx, cfg); err == nil {
			tr.Shutdown(ctx)
			t.Errorf("%+v accepted", cfg)
		}
	}
	// The exporters connect lazily: no collector is needed to start.
	for _, cfg := range []telemetry.TracingConfig{
		{Endpoint: "127.0.0.1:4318", SampleRatio: 1},
		{Endpoint: "http://127.0.0.1:4317", Protocol: "grpc", SampleRatio: 0.5},
	} {
		tr, err := telemetry.NewTracing(ctx, cfg)
		if err != nil || tr.Provider() == nil {
			t.Fatalf("%+v: %v", cfg, err)
		}
		if err := tr.Shutdown(ctx); err != nil {
			t.Errorf("%+v: shutdown: %v", cfg, err)
		}
	}
}

// Instrumented code calls StartChild on every request: with nothing to
// trace under it must not allocate.
func TestStartChildOffAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		c, span := telemetry.StartChild(ctx, "x", trace.SpanKindInternal)
		if span.IsRecording() || c != ctx {
			t.Fatal("span started outside a trace")
		}
		telemetry.EndSpan(span, nil)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per call", allocs)
	}
}

func TestStartChildUnderRecordingSpan(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	_, child := telemetry.StartChild(ctx, "child", trace.SpanKindInternal)
	if !child.IsRecording() || child.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Fatal("child not recorded in the parent's trace")
	}
	child.End()
	parent.End()
}
