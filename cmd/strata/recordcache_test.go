package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
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
