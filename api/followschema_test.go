package api_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/api"
	"github.com/strata-run/strata/store/postgres"
	"github.com/strata-run/strata/store/postgres/pgtest"
	"github.com/strata-run/strata/store/sqlite"
)

// sharedDatabases makes, per store, a fresh database for one test and
// returns how to open a connection to it: one per node. Nodes share a
// database as processes on one SQLite file or as nodes on one PostgreSQL.
var sharedDatabases = map[string]func(t *testing.T) func() (strata.Store, error){
	"sqlite": func(t *testing.T) func() (strata.Store, error) {
		path := filepath.Join(t.TempDir(), "data.db")
		return func() (strata.Store, error) { return sqlite.Open(context.Background(), path, sqlite.Options{}) }
	},
	"postgres": func(t *testing.T) func() (strata.Store, error) {
		dsn := pgtest.Schema(t)
		return func() (strata.Store, error) {
			return postgres.Open(context.Background(), dsn, postgres.Options{MaxConns: 4})
		}
	},
}

// startNode starts a node on a new connection; the first node of a
// database creates the superuser.
func startNode(t *testing.T, open func() (strata.Store, error), first bool) *testServer {
	t.Helper()
	st, err := open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return nodeOn(t, st, first, api.Options{})
}

// following starts b's follower of the shared database, polling often so
// that the test waits milliseconds, not the production second.
func following(t *testing.T, b *testServer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.app.FollowChanges(ctx, 10*time.Millisecond)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// eventually sends the request until it answers want (the other node has
// not polled yet) and fails after 10 s. It returns the answer.
func eventually(t *testing.T, ts *testServer, want int, method, path, token string, body any) *response {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res := ts.do(method, path, token, body)
		if res.code == want {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s: still %d after 10 s, want %d; body %s", method, path, res.code, want, res.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A rule or setting changed through one node must be enforced by every
// node: each keeps collections and settings in memory, so a node that never
// reloaded them would keep serving under the old rules.
func TestSchemaAndSettingsChangesReachOtherNodes(t *testing.T) {
	for name, db := range sharedDatabases {
		t.Run(name, func(t *testing.T) {
			open := db(t)
			a := startNode(t, open, true)
			b := startNode(t, open, false)
			following(t, b)
			testSchemaChangesReachOtherNodes(t, a, b)
		})
	}
}

func testSchemaChangesReachOtherNodes(t *testing.T, a, b *testServer) {
	const list = "/api/collections/posts/records"

	// A collection created through a appears on b.
	a.collection(`{"name":"posts","listRule":"","viewRule":"","fields":[{"name":"title","type":"text"}]}`)
	id := a.record("posts", map[string]any{"title": "hello"})
	eventually(t, b, 200, "GET", list, "", nil).expect("totalItems", 1)
	// b now holds the record in its cache.
	b.do("GET", list+"/"+id, "", nil).status(200).expect("title", "hello")

	// Tightened rules are enforced on b, cached record included.
	a.su("PATCH", "/api/collections/posts", map[string]any{"listRule": nil, "viewRule": "@request.auth.id != ''"}).status(200)
	eventually(t, b, 403, "GET", list, "", nil)
	b.do("GET", list+"/"+id, "", nil).status(404)
	b.su("GET", list+"/"+id, nil).status(200).expect("title", "hello")

	// A new field is served by b.
	a.su("PATCH", "/api/collections/posts", map[string]any{"fields": []any{
		map[string]any{"name": "title", "type": "text"}, map[string]any{"name": "views", "type": "number"}}}).status(200)
	a.su("PATCH", list+"/"+id, map[string]any{"views": 7}).status(200)
	deadline := time.Now().Add(10 * time.Second)
	for b.su("GET", list+"/"+id, nil).status(200).json()["views"] != float64(7) {
		if time.Now().After(deadline) {
			t.Fatal("node b never served the new field")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Settings too: a rate limit set through a limits b's guests.
	a.su("PATCH", "/api/collections/posts", map[string]any{"listRule": ""}).status(200)
	eventually(t, b, 200, "GET", list, "", nil)
	a.rateLimited([]map[string]any{rule("posts:list", "@guest", 60, 1)})
	eventually(t, b, 429, "GET", list, "", nil)
	b.su("GET", "/api/settings", nil).status(200).expect("rateLimits.enabled", true)

	// A record deleted through a is gone from b's cache.
	b.su("GET", list+"/"+id, nil).status(200)
	a.su("DELETE", list+"/"+id, nil).status(204)
	eventually(t, b, 404, "GET", list+"/"+id, b.suToken, nil)

	// A deleted collection is gone from b.
	a.su("DELETE", "/api/collections/posts", nil).status(204)
	eventually(t, b, 404, "GET", list, b.suToken, nil)
}

// A node whose copy of the settings is stale must not undo, with its own
// partial update, what another node changed: it merges onto the stored
// settings.
func TestSettingsUpdateMergesOntoStoredSettings(t *testing.T) {
	for name, db := range sharedDatabases {
		t.Run(name, func(t *testing.T) {
			open := db(t)
			a := startNode(t, open, true)
			b := startNode(t, open, false) // not following: its copy stays stale
			testSettingsUpdateMerges(t, a, b, open)
		})
	}
}

func testSettingsUpdateMerges(t *testing.T, a, b *testServer, open func() (strata.Store, error)) {
	a.su("PATCH", "/api/settings", map[string]any{"meta": map[string]any{"appName": "Changed on a"}}).status(200)
	b.su("PATCH", "/api/settings", map[string]any{"meta": map[string]any{"senderName": "Changed on b"}}).status(200).
		expect("meta.appName", "Changed on a").expect("meta.senderName", "Changed on b")
	// What is stored, as a node started now loads it.
	startNode(t, open, false).su("GET", "/api/settings", nil).status(200).
		expect("meta.appName", "Changed on a").expect("meta.senderName", "Changed on b")
}

// A schema change through a node whose copy of the collections is stale is
// computed from the stored definitions: a partial update through b must
// not drop the field a added a moment before.
func TestSchemaChangeOnStaleNodeStartsFromTheStore(t *testing.T) {
	for name, db := range sharedDatabases {
		t.Run(name, func(t *testing.T) {
			open := db(t)
			a := startNode(t, open, true)
			a.collection(`{"name":"posts","listRule":"","fields":[{"name":"title","type":"text"}]}`)
			b := startNode(t, open, false) // not following: its copy stays stale
			a.su("PATCH", "/api/collections/posts", map[string]any{"fields": []any{
				map[string]any{"name": "title", "type": "text"}, map[string]any{"name": "views", "type": "number"}}}).status(200)
			b.su("PATCH", "/api/collections/posts", map[string]any{"viewRule": ""}).status(200).
				expect("fields.2.name", "views").expect("viewRule", "")
			startNode(t, open, false).su("GET", "/api/collections/posts", nil).status(200).
				expect("fields.2.name", "views").expect("viewRule", "")
			id := a.record("posts", map[string]any{"title": "t", "views": 3})
			b.do("GET", "/api/collections/posts/records/"+id, "", nil).status(200).expect("views", 3)
		})
	}
}
