package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/strata-run/strata/cache"
)

// TestServeRecordCacheFlag: --record-cache=false leaves the service without
// a record cache (a nil interface, which is what the service checks), and
// the default keeps it.
func TestServeRecordCacheFlag(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		cached bool
	}{
		{nil, true},
		{[]string{"--record-cache"}, true},
		{[]string{"--record-cache=true"}, true},
		{[]string{"--record-cache=false"}, false},
	} {
		cmd := &serveCommand{stdout: io.Discard, stderr: io.Discard}
		if err := cmd.parse(append([]string{"--dir", t.TempDir()}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		app, closeStore, err := cmd.Store.open(context.Background(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if got := app.RecordCache() != nil; got != tc.cached {
			t.Errorf("%v: record cache present = %v, want %v", tc.args, got, tc.cached)
		}
		closeStore()
	}
	cmd := &serveCommand{stdout: io.Discard, stderr: io.Discard}
	if err := cmd.parse([]string{"--record-cache=maybe"}); err == nil {
		t.Error("--record-cache=maybe was accepted")
	}
}

// TestServeRecordCacheBudget: the size and TTL flags reach the cache, and
// values that would disable it by accident are refused.
func TestServeRecordCacheBudget(t *testing.T) {
	cmd := &serveCommand{stdout: io.Discard, stderr: io.Discard}
	if err := cmd.parse([]string{"--dir", t.TempDir(), "--record-cache-size", "8", "--record-cache-ttl", "30s"}); err != nil {
		t.Fatal(err)
	}
	app, closeStore, err := cmd.Store.open(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	rc, ok := app.RecordCache().(*cache.Records)
	if !ok {
		t.Fatalf("record cache %T", app.RecordCache())
	}
	if size, ttl := rc.Budget(); size != 8<<20 || ttl != 30*time.Second {
		t.Fatalf("budget %d bytes, TTL %v; want 8 MiB, 30s", size, ttl)
	}
	for _, args := range [][]string{{"--record-cache-size", "0"}, {"--record-cache-size", "-1"}, {"--record-cache-ttl", "0s"}} {
		cmd := &serveCommand{stdout: io.Discard, stderr: io.Discard}
		if err := cmd.parse(args); err == nil {
			t.Errorf("%v was accepted", args)
		}
	}
}
