package service

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/telemetry"
)

// traceRule starts the "rule.check" span of checking c's rule of kind
// (list, view, create, update, delete) for req, when the request is traced.
// Superusers bypass rules, so they get no rule span. The store queries that
// evaluate the rule become its children.
func traceRule(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, kind string) (context.Context, trace.Span) {
	if req.IsSuperuser() {
		return ctx, noop.Span{}
	}
	ctx, span := telemetry.StartChild(ctx, "rule.check", trace.SpanKindInternal)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("strata.collection", c.Name), attribute.String("strata.rule.kind", kind))
	}
	return ctx, span
}

// endRule ends a rule span with its outcome.
func endRule(span trace.Span, allowed bool, err error) {
	if err == nil && span.IsRecording() {
		span.SetAttributes(attribute.Bool("strata.rule.allowed", allowed))
	}
	telemetry.EndSpan(span, err)
}

// tracePublish starts the span of handing a transaction's changes to the
// bus. Publish takes no context (it never blocks), so the span is started
// here, at the call site, rather than by a bus decorator.
func tracePublish(ctx context.Context, changes []strata.Change) trace.Span {
	_, span := telemetry.StartChild(ctx, "bus.publish", trace.SpanKindProducer)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.operation.name", "publish"),
			attribute.Int("messaging.batch.message_count", len(changes)))
	}
	return span
}
