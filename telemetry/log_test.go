package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/strata-run/strata/telemetry"
)

func TestLoggerAddsRequestID(t *testing.T) {
	var buf bytes.Buffer
	log, err := telemetry.NewLogger(&buf, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	ctx := telemetry.WithRequestID(context.Background(), "req-42")
	log.InfoContext(ctx, "inside", "k", 1)
	log.With("component", "x").WarnContext(ctx, "derived")
	log.Info("outside")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines: %q", len(lines), buf.String())
	}
	for i, want := range []string{"req-42", "req-42", ""} {
		var m map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &m); err != nil {
			t.Fatal(err)
		}
		got, _ := m["request_id"].(string)
		if got != want {
			t.Errorf("line %d: request_id = %q, want %q (%s)", i, got, want, lines[i])
		}
	}
	if _, err := telemetry.NewLogger(&buf, "xml", "info"); err == nil {
		t.Error("format xml accepted")
	}
}

func TestLoggerAddsTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log, err := telemetry.NewLogger(&buf, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	log.InfoContext(trace.ContextWithSpanContext(context.Background(), sc), "traced")
	log.InfoContext(context.Background(), "untraced")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var traced, untraced map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &traced); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &untraced); err != nil {
		t.Fatal(err)
	}
	if traced["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || traced["span_id"] != "00f067aa0ba902b7" {
		t.Errorf("traced line: %s", lines[0])
	}
	if _, ok := untraced["trace_id"]; ok {
		t.Errorf("untraced line has a trace id: %s", lines[1])
	}
}

func TestRegistryHasRuntimeCollectors(t *testing.T) {
	mfs, err := telemetry.NewRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		seen[mf.GetName()] = true
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if !seen[name] {
			t.Errorf("%s missing", name)
		}
	}
}
