package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestServeListCacheNeedsRedis(t *testing.T) {
	cmd := &serveCommand{stdout: io.Discard, stderr: io.Discard}
	if err := cmd.parse([]string{"--http", "127.0.0.1:0", "--dir", t.TempDir(), "--list-cache"}); err != nil {
		t.Fatal(err)
	}
	err := cmd.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "--list-cache needs --redis") {
		t.Fatalf("Run = %v, want the missing --redis refused", err)
	}
}

// TestServeListCache: with --redis and --list-cache, lists go through the
// list cache, as the node's metrics show. (Whether the second list is a
// hit depends on Redis answering within the 20ms default on a loaded
// machine, so only the lookup is asserted; api tests cover hits.)
func TestServeListCache(t *testing.T) {
	ready, metricsReady := make(chan string, 1), make(chan string, 1)
	cmd := &serveCommand{stdout: io.Discard, stderr: io.Discard, ready: ready, metricsReady: metricsReady}
	if err := cmd.parse([]string{"--http", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--drain-delay", "1ms",
		"--dir", t.TempDir(), "--redis", "redis://127.0.0.1:6379/0", "--list-cache"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.Run(ctx) }()
	maddr, addr := <-metricsReady, <-ready
	get := func(url string) string {
		t.Helper()
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", url, res.StatusCode, b)
		}
		return string(b)
	}
	for range 2 {
		get("http://" + addr + "/api/collections/users/records")
	}
	metrics := get("http://" + maddr + "/metrics")
	if !regexp.MustCompile(`(?m)^strata_l2_cache_(misses|errors)_total [1-9]`).MatchString(metrics) {
		t.Fatalf("no list cache lookup in the metrics:\n%s", grepLines(metrics, "strata_l2_cache"))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
