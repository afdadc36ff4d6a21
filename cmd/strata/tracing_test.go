package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestServeFlushesTracesOnStop: with --otlp-endpoint, the span of a request
// served just before SIGTERM reaches the collector by the time Run returns.
func TestServeFlushesTracesOnStop(t *testing.T) {
	var mu sync.Mutex
	var names []string
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(raw, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					names = append(names, s.GetName())
				}
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()

	ready := make(chan string, 1)
	cmd := &serveCommand{stdout: io.Discard, stderr: io.Discard, ready: ready}
	if err := cmd.parse([]string{"--http", "127.0.0.1:0", "--drain-delay", "0s", "--dir", t.TempDir(),
		"--otlp-endpoint", collector.URL, "--trace-sample", "1"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.Run(ctx) }()
	addr := <-ready
	res, err := http.Get("http://" + addr + "/api/health")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, n := range names {
		if n == "GET /api/health" {
			return
		}
	}
	t.Fatalf("request span not exported on stop; got %q", names)
}

func TestServeTracingFlags(t *testing.T) {
	cmd := &serveCommand{stdout: io.Discard, stderr: io.Discard}
	if err := cmd.parse([]string{"--otlp-endpoint", "http://collector:4317", "--otlp-protocol", "grpc", "--trace-sample", "0.25"}); err != nil {
		t.Fatal(err)
	}
	if cmd.OTLPEndpoint != "http://collector:4317" || cmd.OTLPProtocol != "grpc" || cmd.TraceSample != 0.25 {
		t.Fatalf("parsed %+v", cmd)
	}
	t.Setenv("STRATA_TRACE_SAMPLE", "half")
	if err := (&serveCommand{stdout: io.Discard, stderr: io.Discard}).parse(nil); err == nil {
		t.Fatal("STRATA_TRACE_SAMPLE=half accepted")
	}
	t.Setenv("STRATA_TRACE_SAMPLE", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4318")
	cmd = &serveCommand{stdout: io.Discard, stderr: io.Discard}
	if err := cmd.parse(nil); err != nil {
		t.Fatal(err)
	}
	if cmd.OTLPEndpoint != "http://otel:4318" || cmd.OTLPProtocol != "http/protobuf" || cmd.TraceSample != 1 {
		t.Fatalf("defaults from the environment: %+v", cmd)
	}
}
