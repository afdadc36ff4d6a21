package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeDrainAndMetricsListener: /metrics needs no token on
// --metrics-addr; after SIGTERM (ctx cancelled) /readyz fails while the
// node still serves, then Run returns cleanly.
func TestServeDrainAndMetricsListener(t *testing.T) {
	ready, metricsReady := make(chan string, 1), make(chan string, 1)
	cmd := &serveCommand{stdout: io.Discard, stderr: io.Discard, ready: ready, metricsReady: metricsReady}
	if err := cmd.parse([]string{"--http", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--drain-delay", "700ms", "--dir", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.Run(ctx) }()
	maddr, addr := <-metricsReady, <-ready
	get := func(url string) (int, string) {
		t.Helper()
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := get("http://" + addr + "/readyz"); code != 200 {
		t.Fatalf("readyz before drain = %d", code)
	}
	if code, body := get("http://" + maddr + "/metrics"); code != 200 || !strings.Contains(body, `strata_http_requests_total{method="GET",route="/readyz",status="200"} 1`) {
		t.Fatalf("metrics listener = %d:\n%s", code, body)
	}
	if code, _ := get("http://" + addr + "/metrics"); code != 401 {
		t.Fatalf("main listener /metrics without token = %d", code)
	}
	cancel()
	time.Sleep(100 * time.Millisecond)
	if code, _ := get("http://" + addr + "/readyz"); code != 503 {
		t.Fatalf("readyz while draining = %d", code)
	}
	if code, _ := get("http://" + addr + "/api/health"); code != 200 {
		t.Fatalf("health while draining = %d", code)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}
