package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

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
