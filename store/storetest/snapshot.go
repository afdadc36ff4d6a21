package storetest

import (
	"context"
	"slices"
	"testing"

	"github.com/strata-run/strata"
)

// testSnapshot checks RecordQuery.Snapshot: rows given by the caller (here
// deleted ones) are filtered exactly as the same rows would be in the
// table, while relations, back-relations and @collection read live rows.
func testSnapshot(t *testing.T, s strata.Store) {
	ctx := context.Background()
	people, notes := setup(t, s)
	sc := schema{people, notes}
	ann := rec(people, "id", "p1", "name", "Ann", "age", 30.0, "active", true, "email", "ann@x.io")
	bob := rec(people, "id", "p2", "name", "Bob", "age", 20.0)
	n1 := rec(notes, "id", "n1", "title", "hello", "views", 5.0, "tags", []string{"x", "y"},
		"meta", map[string]any{"k": 1.0, "s": "v"}, "owner", "p1", "readers", []string{"p2"},
		"when", "2026-01-02 03:04:05.000Z", "where", map[string]any{"lon": 1.5, "lat": -2.0})
	n2 := rec(notes, "id", "n2", "title", "world", "views", 1.5, "tags", []string{"x"}, "owner", "p2")
	n3 := rec(notes, "id", "n3")
	insert(t, s, ann, bob, n1, n2, n3)

	auth := rec(people, "id", "p2")
	req := &strata.RequestInfo{Auth: auth, Method: "GET"}
	query := func(c *strata.Collection, snap []*strata.Record, expr, sort string, restricted bool) *strata.RecordQuery {
		q := &strata.RecordQuery{Collection: c, Schema: sc, Request: req, Snapshot: snap, Sort: sort}
		if expr != "" {
			q.Filters = []strata.Filter{{Expr: expr, Restricted: restricted}}
		}
		return q
	}
	// The same rows answer the same way from the table and from a snapshot:
	// types, affinities and JSON columns survive the trip.
	filters := []string{
		"", "title = 'hello'", "title ~ 'ell'", "views > 2", "views = 5", "views = '5'", "views >= 1.5",
		"tags:each ?= 'y'", "tags:length = 2", "tags ~ 'x'", "meta.k = 1", "meta.s = 'v'", "meta = null",
		"owner = @request.auth.id", "readers.id ?= @request.auth.id", "owner.name = 'Ann'", "owner.active = true",
		"readers.age < 25", "when > '2026-01-01'", "where.lon = 1.5", "title = ''", "owner = ''",
		"@collection.people.name ?= 'Bob' && @collection.people.id ?= owner",
		"readers.name ?= 'Bob' && readers.id ?= @request.auth.id", "readers.name ?= 'Bob'",
	}
	snap := []*strata.Record{n1, n2, n3}
	for _, f := range filters {
		want := find(t, s, query(notes, nil, f, "id", false))
		got := find(t, s, query(notes, snap, f, "id", false))
		if !slices.Equal(got, want) {
			t.Errorf("notes %q: snapshot %v, table %v", f, got, want)
		}
	}
	for _, f := range []string{"active = true", "active = false", "age > 25", "email ~ 'x.io'", "notes_via_owner.views ?> 2"} {
		want := find(t, s, query(people, nil, f, "id", false))
		got := find(t, s, query(people, []*strata.Record{ann, bob}, f, "id", false))
		if !slices.Equal(got, want) {
			t.Errorf("people %q: snapshot %v, table %v", f, got, want)
		}
	}

	// A deleted record is still judged by its snapshot; relations still
	// read the live rows.
	mustWrite(t, s, func(tx strata.Tx) error { return tx.DeleteRecord(ctx, n1) })
	if got := find(t, s, query(notes, nil, "", "", false)); slices.Contains(got, "n1") {
		t.Fatalf("n1 not deleted: %v", got)
	}
	gone := []*strata.Record{n1}
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{"owner.name = 'Ann'", []string{"n1"}},
		{"owner.name = 'Bob'", nil},
		{"readers.name ?= 'Bob' && readers.id ?= @request.auth.id", []string{"n1"}},
		{"@collection.people.id ?= owner && @collection.people.age ?> 25", []string{"n1"}},
	} {
		if got := find(t, s, query(notes, gone, tc.expr, "", false)); !slices.Equal(got, tc.want) {
			t.Errorf("deleted n1 %q: got %v, want %v", tc.expr, got, tc.want)
		}
	}
	// Only the snapshot is read, never the table's rows; the order is the
	// snapshot's unless sorted; Count, Limit and client filters apply.
	two := []*strata.Record{n3, n1}
	if got := find(t, s, query(notes, two, "", "", false)); !slices.Equal(got, []string{"n3", "n1"}) {
		t.Errorf("snapshot order: %v", got)
	}
	if got := find(t, s, query(notes, two, "", "-views", false)); !slices.Equal(got, []string{"n1", "n3"}) {
		t.Errorf("snapshot sort: %v", got)
	}
	if got := find(t, s, query(notes, two, "title != ''", "", true)); !slices.Equal(got, []string{"n1"}) {
		t.Errorf("restricted filter: %v", got)
	}
	q := query(notes, two, "", "", false)
	q.Limit = 1
	if got := find(t, s, q); !slices.Equal(got, []string{"n3"}) {
		t.Errorf("limit: %v", got)
	}
	if n, err := s.CountRecords(ctx, query(notes, two, "views > 2", "", false)); err != nil || n != 1 {
		t.Errorf("count = %d, %v; want 1", n, err)
	}
	if got := find(t, s, query(notes, []*strata.Record{}, "", "", false)); len(got) != 0 {
		t.Errorf("empty snapshot: %v", got)
	}
	if n, err := s.CountRecords(ctx, query(notes, []*strata.Record{}, "", "", false)); err != nil || n != 0 {
		t.Errorf("empty snapshot count = %d, %v", n, err)
	}
	// Rows come back typed as from the table.
	recs, err := s.FindRecords(ctx, query(notes, gone, "", "", false))
	if err != nil || len(recs) != 1 {
		t.Fatalf("find: %v, %d", err, len(recs))
	}
	if r := recs[0]; r.Data["views"] != 5.0 || !slices.Equal(r.Data["tags"].([]string), []string{"x", "y"}) || r.Data["owner"] != "p1" {
		t.Errorf("snapshot row = %#v", r.Data)
	}
	// A broken client filter is still an EInvalid.
	_, err = s.FindRecords(ctx, query(notes, gone, "nosuch = 1", "", true))
	if strata.ErrorCodeOf(err) != strata.EInvalid {
		t.Fatalf("unknown field: %v", err)
	}
}
