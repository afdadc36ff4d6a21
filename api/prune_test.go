package api_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Pruning the change log (strata serve --changes-retention) must cost a
// client with an older cursor a clear 400, never a silently skipped change,
// and must leave the feed working for everyone after it.
func TestChangeFeedAfterPruning(t *testing.T) {
	ts := newTestServer(t)
	ts.collection(`{"name":"notes","type":"base","listRule":"","fields":[{"name":"title","type":"text"}]}`)
	for _, title := range []string{"a", "b", "c"} {
		ts.record("notes", map[string]any{"title": title})
	}
	page := ts.su("GET", "/api/collections/notes/changes?since=0", nil).status(200).json()
	if items := page["items"].([]any); len(items) != 3 {
		t.Fatalf("feed before pruning: %d items, want 3", len(items))
	}
	cursor := page["cursor"].(string)
	first := ts.su("GET", "/api/collections/notes/changes?since=0&limit=1", nil).status(200).json()["cursor"].(string)

	n, err := ts.app.PruneChanges(context.Background(), time.Now().Add(time.Hour))
	if err != nil || n < 2 {
		t.Fatalf("PruneChanges: %d, %v; want at least the two older entries", n, err)
	}
	res := ts.su("GET", "/api/collections/notes/changes?since="+first, nil).status(400)
	if !strings.Contains(string(res.body), "validation_cursor_expired") {
		t.Fatalf("an expired cursor answered %s", res.body)
	}
	// The newest entry is kept, so a client that was up to date still is,
	// and sees what comes next.
	ts.record("notes", map[string]any{"title": "d"})
	items := ts.su("GET", "/api/collections/notes/changes?since="+cursor, nil).status(200).json()["items"].([]any)
	if len(items) != 1 {
		t.Fatalf("feed after pruning from the last cursor: %d items, want the 1 new one", len(items))
	}
}
