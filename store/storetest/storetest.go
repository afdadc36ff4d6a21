// Package storetest is the conformance suite every strata.Store passes, so
// that no feature can exist on one store only (SQLite, PostgreSQL, …).
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-run/strata"
)

// Opener returns a fresh, empty store for one test; it registers its own
// cleanup with tb.
type Opener func(tb testing.TB) strata.Store

// Run runs the whole suite against stores made by open.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, strata.Store)
	}{
		{"CollectionLifecycle", testCollectionLifecycle},
		{"RecordRoundTrip", testRecordRoundTrip},
		{"QueryConditions", testQueryConditions},
		{"FiltersAndSort", testFiltersAndSort},
		{"UniqueViolation", testUniqueViolation},
		{"RollbackOnError", testRollback},
		{"ChangeLog", testChangeLog},
		{"PruneChanges", testPruneChanges},
		{"Snapshot", testSnapshot},
		{"Settings", testSettings},
		{"SchemaMigrationKeepsData", testSchemaMigration},
		{"ConcurrentWriters", testConcurrentWriters},
		{"ConcurrentFailuresIsolated", testConcurrentFailures},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// schema is a strata.Schema over a fixed list.
type schema []*strata.Collection

func (s schema) Collection(idOrName string) *strata.Collection {
	for _, c := range s {
		if c.ID == idOrName || strings.EqualFold(c.Name, idOrName) {
			return c
		}
	}
	return nil
}

func field(name, typ string, opts ...func(*strata.Field)) *strata.Field {
	f := &strata.Field{ID: strata.DefaultFieldID(typ, name), Name: name, Type: typ}
	for _, o := range opts {
		o(f)
	}
	return f
}

func multi(n int) func(*strata.Field) { return func(f *strata.Field) { f.MaxSelect = n } }

func relTo(id string, n int) func(*strata.Field) {
	return func(f *strata.Field) { f.CollectionID, f.MaxSelect = id, n }
}

func idField() *strata.Field {
	return &strata.Field{ID: "text3208210256", Name: "id", Type: strata.FieldText, System: true, PrimaryKey: true}
}

// fixture builds two related collections: people and notes.
func fixture() (people, notes *strata.Collection) {
	now := strata.NowDate()
	people = &strata.Collection{ID: "pbc_people", Name: "people", Type: strata.CollectionBase, Created: now, Updated: now,
		Fields: []*strata.Field{idField(), field("name", strata.FieldText), field("age", strata.FieldNumber),
			field("active", strata.FieldBool), field("email", strata.FieldEmail)},
		Indexes: []string{"CREATE UNIQUE INDEX `idx_people_email` ON `people` (`email`) WHERE `email` != ''"}}
	notes = &strata.Collection{ID: "pbc_notes", Name: "notes", Type: strata.CollectionBase, Created: now, Updated: now,
		Fields: []*strata.Field{idField(), field("title", strata.FieldText), field("views", strata.FieldNumber),
			field("tags", strata.FieldSelect, multi(3)), field("meta", strata.FieldJSON),
			field("owner", strata.FieldRelation, relTo("pbc_people", 1)),
			field("readers", strata.FieldRelation, relTo("pbc_people", 5)),
			field("when", strata.FieldDate), field("where", strata.FieldGeoPoint)},
		Indexes: []string{}}
	return people, notes
}

func mustWrite(tb testing.TB, s strata.Store, fn func(strata.Tx) error) []strata.Change {
	tb.Helper()
	ch, err := s.Write(context.Background(), fn)
	if err != nil {
		tb.Fatalf("write: %v", err)
	}
	return ch
}

func setup(tb testing.TB, s strata.Store) (people, notes *strata.Collection) {
	tb.Helper()
	people, notes = fixture()
	mustWrite(tb, s, func(tx strata.Tx) error {
		if err := tx.CreateCollection(context.Background(), people); err != nil {
			return err
		}
		return tx.CreateCollection(context.Background(), notes)
	})
	return people, notes
}

func rec(c *strata.Collection, kv ...any) *strata.Record {
	r := strata.NewRecord(c)
	for i := 0; i+1 < len(kv); i += 2 {
		r.Data[kv[i].(string)] = kv[i+1]
	}
	return r
}

func insert(tb testing.TB, s strata.Store, recs ...*strata.Record) {
	tb.Helper()
	mustWrite(tb, s, func(tx strata.Tx) error {
		for _, r := range recs {
			if err := tx.InsertRecord(context.Background(), r); err != nil {
				return err
			}
		}
		return nil
	})
}

func ids(recs []*strata.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID()
	}
	return out
}

func find(tb testing.TB, s strata.Reader, q *strata.RecordQuery) []string {
	tb.Helper()
	recs, err := s.FindRecords(context.Background(), q)
	if err != nil {
		tb.Fatalf("find: %v", err)
	}
	return ids(recs)
}

func testCollectionLifecycle(t *testing.T, s strata.Store) {
	ctx := context.Background()
	people, notes := setup(t, s)
	list, err := s.Collections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != people.ID || list[1].ID != notes.ID {
		t.Fatalf("collections = %v", list)
	}
	got, _ := json.Marshal(list[1])
	want, _ := json.Marshal(notes)
	if string(got) != string(want) {
		t.Fatalf("round trip:\n got %s\nwant %s", got, want)
	}
	mustWrite(t, s, func(tx strata.Tx) error { return tx.DeleteCollection(ctx, notes) })
	list, _ = s.Collections(ctx)
	if len(list) != 1 {
		t.Fatalf("after delete: %d collections", len(list))
	}
	// The name is free again.
	mustWrite(t, s, func(tx strata.Tx) error { return tx.CreateCollection(ctx, notes) })
}

func testRecordRoundTrip(t *testing.T, s strata.Store) {
	people, notes := setup(t, s)
	insert(t, s, rec(people, "id", "p1", "name", "Ann", "age", 41.5, "active", true))
	n := rec(notes, "id", "n1", "title", "hello", "views", 3.0, "tags", []string{"a", "b"},
		"meta", map[string]any{"k": []any{1.0, "x"}}, "owner", "p1", "readers", []string{"p1"},
		"when", "2026-01-02 03:04:05.000Z", "where", map[string]any{"lon": 1.5, "lat": -2.0})
	insert(t, s, n)
	recs, err := s.FindRecords(context.Background(), &strata.RecordQuery{Collection: notes, Schema: schema{people, notes}, IDs: []string{"n1"}})
	if err != nil || len(recs) != 1 {
		t.Fatalf("find: %v %d", err, len(recs))
	}
	got, _ := json.Marshal(recs[0].Data)
	want, _ := json.Marshal(n.Data)
	if string(got) != string(want) {
		t.Fatalf("round trip:\n got %s\nwant %s", got, want)
	}
	// Zero values come back typed.
	insert(t, s, rec(notes, "id", "n2"))
	recs, _ = s.FindRecords(context.Background(), &strata.RecordQuery{Collection: notes, Schema: schema{people, notes}, IDs: []string{"n2"}})
	if v, ok := recs[0].Data["tags"].([]string); !ok || len(v) != 0 {
		t.Fatalf("empty multi select = %#v", recs[0].Data["tags"])
	}
	if recs[0].Data["meta"] != nil || recs[0].Data["views"] != 0.0 || recs[0].Data["owner"] != "" {
		t.Fatalf("zero values = %#v", recs[0].Data)
	}
}

func testQueryConditions(t *testing.T, s strata.Store) {
	people, notes := setup(t, s)
	sc := schema{people, notes}
	insert(t, s,
		rec(people, "id", "p1", "name", "Ann", "email", "Ann@Example.com"),
		rec(people, "id", "p2", "name", "Bob"),
		rec(notes, "id", "n1", "owner", "p1", "readers", []string{"p2"}),
		rec(notes, "id", "n2", "owner", "p2", "readers", []string{"p1", "p2"}),
		rec(notes, "id", "n3"),
	)
	check := func(name string, q *strata.RecordQuery, want ...string) {
		t.Helper()
		q.Schema = sc
		if q.Sort == "" {
			q.Sort = "id"
		}
		if got := find(t, s, q); !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	check("ids", &strata.RecordQuery{Collection: notes, IDs: []string{"n3", "n1", "zz"}}, "n1", "n3")
	check("empty ids", &strata.RecordQuery{Collection: notes, IDs: []string{}})
	check("single relation", &strata.RecordQuery{Collection: notes, RelationField: "owner", RelationIDs: []string{"p2"}}, "n2")
	check("multi relation", &strata.RecordQuery{Collection: notes, RelationField: "readers", RelationIDs: []string{"p2"}}, "n1", "n2")
	check("equal", &strata.RecordQuery{Collection: people, Equal: map[string]any{"name": "Bob"}}, "p2")
	check("equal fold", &strata.RecordQuery{Collection: people, EqualFold: map[string]string{"email": "ann@example.COM"}}, "p1")
	check("limit offset", &strata.RecordQuery{Collection: notes, Limit: 1, Offset: 1}, "n2")
	n, err := s.CountRecords(context.Background(), &strata.RecordQuery{Collection: notes, Schema: sc, Limit: 1})
	if err != nil || n != 3 {
		t.Fatalf("count = %d, %v; want 3 ignoring the limit", n, err)
	}
}

func testFiltersAndSort(t *testing.T, s strata.Store) {
	people, notes := setup(t, s)
	sc := schema{people, notes}
	insert(t, s,
		rec(people, "id", "p1", "name", "Ann", "age", 30.0),
		rec(people, "id", "p2", "name", "Bob", "age", 20.0),
		rec(notes, "id", "n1", "title", "b", "views", 5.0, "owner", "p1", "tags", []string{"x"}),
		rec(notes, "id", "n2", "title", "a", "views", 5.0, "owner", "p2", "tags", []string{"x", "y"}),
		rec(notes, "id", "n3", "title", "c", "views", 1.0, "owner", "p1"),
	)
	auth := rec(people, "id", "p2")
	req := &strata.RequestInfo{Auth: auth, Method: "GET"}
	cases := []struct {
		filters []string
		sort    string
		want    []string
	}{
		{[]string{"views > 2"}, "title", []string{"n2", "n1"}},
		{[]string{"views > 2", "owner = @request.auth.id"}, "", []string{"n2"}},
		{[]string{"owner.name = 'Ann'"}, "-title", []string{"n3", "n1"}},
		{[]string{"tags:length = 2 || title = 'c'"}, "id", []string{"n2", "n3"}},
		{nil, "-views,title", []string{"n2", "n1", "n3"}},
		{nil, "owner.age,title", []string{"n2", "n1", "n3"}},
	}
	for _, tc := range cases {
		q := &strata.RecordQuery{Collection: notes, Schema: sc, Request: req, Sort: tc.sort}
		for _, f := range tc.filters {
			q.Filters = append(q.Filters, strata.Filter{Expr: f})
		}
		if got := find(t, s, q); !slices.Equal(got, tc.want) {
			t.Errorf("filters %q sort %q: got %v, want %v", tc.filters, tc.sort, got, tc.want)
		}
	}
	// A broken client filter is an EInvalid, not a driver error.
	_, err := s.FindRecords(context.Background(), &strata.RecordQuery{Collection: notes, Schema: sc,
		Filters: []strata.Filter{{Expr: "nosuch = 1", Restricted: true}}})
	if strata.ErrorCodeOf(err) != strata.EInvalid {
		t.Fatalf("unknown field: %v", err)
	}
}

func testUniqueViolation(t *testing.T, s strata.Store) {
	people, _ := setup(t, s)
	insert(t, s, rec(people, "id", "p1", "email", "a@x.io"), rec(people, "id", "p2"), rec(people, "id", "p3"))
	for name, r := range map[string]*strata.Record{
		"index":       rec(people, "id", "p9", "email", "a@x.io"),
		"primary key": rec(people, "id", "p1"),
	} {
		_, err := s.Write(context.Background(), func(tx strata.Tx) error { return tx.InsertRecord(context.Background(), r) })
		var e *strata.Error
		if !errors.As(err, &e) || e.Code != strata.EInvalid {
			t.Fatalf("%s: err = %v, want EInvalid", name, err)
		}
		key := "email"
		if name == "primary key" {
			key = "id"
		}
		if fe, ok := e.Data[key].(*strata.FieldError); !ok || fe.Code != "validation_not_unique" {
			t.Fatalf("%s: data = %#v", name, e.Data)
		}
	}
}

func testRollback(t *testing.T, s strata.Store) {
	people, _ := setup(t, s)
	boom := errors.New("boom")
	_, err := s.Write(context.Background(), func(tx strata.Tx) error {
		if err := tx.InsertRecord(context.Background(), rec(people, "id", "p1")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if got := find(t, s, &strata.RecordQuery{Collection: people}); len(got) != 0 {
		t.Fatalf("rolled back insert is visible: %v", got)
	}
	if ch, _ := s.Changes(context.Background(), 0, 10); len(ch) != 0 {
		t.Fatalf("rolled back change is logged: %v", ch)
	}
}

func testChangeLog(t *testing.T, s strata.Store) {
	ctx := context.Background()
	people, _ := setup(t, s)
	ch := mustWrite(t, s, func(tx strata.Tx) error {
		if err := tx.InsertRecord(ctx, rec(people, "id", "p1", "name", "A")); err != nil {
			return err
		}
		r := rec(people, "id", "p1", "name", "B")
		if err := tx.UpdateRecord(ctx, r); err != nil {
			return err
		}
		return tx.InsertRecord(ctx, rec(people, "id", "p2"))
	})
	if len(ch) != 3 || ch[0].Action != strata.ActionCreate || ch[1].Action != strata.ActionUpdate || ch[2].RecordID != "p2" {
		t.Fatalf("changes = %+v", ch)
	}
	del := mustWrite(t, s, func(tx strata.Tx) error { return tx.DeleteRecord(ctx, rec(people, "id", "p1", "name", "B")) })
	tr := mustWrite(t, s, func(tx strata.Tx) error { return tx.TruncateCollection(ctx, people) })
	if len(del) != 1 || del[0].Action != strata.ActionDelete || len(tr) != 1 || tr[0].RecordID != "p2" || tr[0].Action != strata.ActionDelete {
		t.Fatalf("delete %+v truncate %+v", del, tr)
	}
	all, err := s.Changes(ctx, 0, 100)
	if err != nil || len(all) != 5 {
		t.Fatalf("changes: %v, %d", err, len(all))
	}
	if last, err := s.LastChangeSeq(ctx); err != nil || last != all[4].Seq {
		t.Fatalf("LastChangeSeq = %d, %v; want %d", last, err, all[4].Seq)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq {
			t.Fatalf("seq not increasing: %v", all)
		}
	}
	var data map[string]any
	if err := json.Unmarshal(all[1].Record, &data); err != nil || data["name"] != "B" {
		t.Fatalf("update change record = %s", all[1].Record)
	}
	after, _ := s.Changes(ctx, all[2].Seq, 100)
	if len(after) != 2 || after[0].Seq != all[3].Seq {
		t.Fatalf("changes after %d = %+v", all[2].Seq, after)
	}
	if got := find(t, s, &strata.RecordQuery{Collection: people}); len(got) != 0 {
		t.Fatalf("truncate left %v", got)
	}
}

func testSettings(t *testing.T, s strata.Store) {
	ctx := context.Background()
	if last, err := s.LastChangeSeq(ctx); err != nil || last != 0 {
		t.Fatalf("LastChangeSeq of an empty log = %d, %v", last, err)
	}
	if _, ok, err := s.Setting(ctx, "settings"); ok || err != nil {
		t.Fatalf("fresh store has settings: %v %v", ok, err)
	}
	for _, v := range []string{`{"a":1}`, `{"a":2}`} {
		mustWrite(t, s, func(tx strata.Tx) error { return tx.PutSetting(ctx, "settings", json.RawMessage(v)) })
		got, ok, err := s.Setting(ctx, "settings")
		if err != nil || !ok || string(got) != v {
			t.Fatalf("setting = %s %v %v, want %s", got, ok, err, v)
		}
	}
}

func testSchemaMigration(t *testing.T, s strata.Store) {
	ctx := context.Background()
	people, notes := setup(t, s)
	insert(t, s, rec(people, "id", "p1"), rec(notes, "id", "n1", "title", "keep", "views", 7.0, "tags", []string{"a", "b"}, "owner", "p1"))
	next := notes.Clone()
	next.Name = "memos"
	var fields []*strata.Field
	for _, f := range next.Fields {
		switch f.Name {
		case "views": // dropped
			continue
		case "title":
			f.Name = "heading" // renamed, same id
		case "tags":
			f.MaxSelect = 1 // multiple → single keeps the last value
		case "owner":
			f.MaxSelect = 2 // single → multiple
		}
		fields = append(fields, f)
	}
	next.Fields = append(fields, field("extra", strata.FieldBool))
	next.Indexes = []string{"CREATE INDEX `idx_memos_heading` ON `memos` (heading)"}
	mustWrite(t, s, func(tx strata.Tx) error { return tx.UpdateCollection(ctx, notes, next) })
	recs, err := s.FindRecords(ctx, &strata.RecordQuery{Collection: next, Schema: schema{people, next}})
	if err != nil || len(recs) != 1 {
		t.Fatalf("find after migration: %v %d", err, len(recs))
	}
	d := recs[0].Data
	if d["heading"] != "keep" || d["tags"] != "b" || !slices.Equal(d["owner"].([]string), []string{"p1"}) || d["extra"] != false {
		t.Fatalf("migrated row = %#v", d)
	}
	if _, ok := d["views"]; ok {
		t.Fatalf("dropped column still read: %#v", d)
	}
	list, _ := s.Collections(ctx)
	if list[1].Name != "memos" {
		t.Fatalf("stored definition not updated: %s", list[1].Name)
	}
}

func testConcurrentWriters(t *testing.T, s strata.Store) {
	ctx := context.Background()
	people, _ := setup(t, s)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	// Room for a write and a read error per iteration: a store that fails
	// every call must fail the test, not block it.
	errs := make(chan error, 2*workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				_, err := s.Write(ctx, func(tx strata.Tx) error {
					return tx.InsertRecord(ctx, rec(people, "id", fmt.Sprintf("w%di%d", w, i)))
				})
				if err != nil {
					errs <- err
				}
				// Readers run alongside the writers.
				if _, err := s.CountRecords(ctx, &strata.RecordQuery{Collection: people, Schema: schema{people}}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent write: %v", err)
	}
	n, _ := s.CountRecords(ctx, &strata.RecordQuery{Collection: people, Schema: schema{people}})
	chs, _ := s.Changes(ctx, 0, 10000)
	if n != workers*each || len(chs) != workers*each {
		t.Fatalf("rows %d, changes %d, want %d", n, len(chs), workers*each)
	}
	for i := 1; i < len(chs); i++ {
		if chs[i].Seq != chs[i-1].Seq+1 {
			t.Fatalf("gap in change log at %d: %d then %d", i, chs[i-1].Seq, chs[i].Seq)
		}
	}
}

// testConcurrentFailures runs writers that fail after writing alongside
// writers that succeed: a store that shares commits between callers (group
// commit) must still undo exactly the failed ones.
func testConcurrentFailures(t *testing.T, s strata.Store) {
	ctx := context.Background()
	people, _ := setup(t, s)
	boom := errors.New("boom")
	const n = 200
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = s.Write(ctx, func(tx strata.Tx) error {
				if err := tx.InsertRecord(ctx, rec(people, "id", fmt.Sprintf("r%03d", i))); err != nil {
					return err
				}
				if i%3 == 0 {
					return boom
				}
				return nil
			})
		}()
	}
	wg.Wait()
	var want []string
	for i, err := range results {
		switch {
		case i%3 == 0 && !errors.Is(err, boom):
			t.Fatalf("write %d: err = %v, want boom", i, err)
		case i%3 != 0 && err != nil:
			t.Fatalf("write %d: %v", i, err)
		case i%3 != 0:
			want = append(want, fmt.Sprintf("r%03d", i))
		}
	}
	got := find(t, s, &strata.RecordQuery{Collection: people, Sort: "id"})
	if !slices.Equal(got, want) {
		t.Fatalf("visible rows = %d, want %d", len(got), len(want))
	}
	chs, _ := s.Changes(ctx, 0, 10000)
	if len(chs) != len(want) {
		t.Fatalf("changes = %d, want %d", len(chs), len(want))
	}
	for i := 1; i < len(chs); i++ {
		if chs[i].Seq != chs[i-1].Seq+1 {
			t.Fatalf("gap in change log: %d then %d", chs[i-1].Seq, chs[i].Seq)
		}
	}
}

// testPruneChanges deletes old change-log entries in bounded batches, keeps
// recent ones and never the newest, so that sequence numbers never go back.
func testPruneChanges(t *testing.T, s strata.Store) {
	ctx := context.Background()
	people, _ := setup(t, s)
	for i := range 5 {
		mustWrite(t, s, func(tx strata.Tx) error { return tx.InsertRecord(ctx, rec(people, "id", fmt.Sprintf("p%d", i))) })
	}
	all, err := s.Changes(ctx, 0, 100)
	if err != nil || len(all) != 5 {
		t.Fatalf("changes: %v, %d", err, len(all))
	}
	last := all[4].Seq
	// Nothing is older than an hour ago.
	if n, err := s.PruneChanges(ctx, time.Now().Add(-time.Hour), 100); err != nil || n != 0 {
		t.Fatalf("prune before an hour ago: %d, %v; want 0", n, err)
	}
	future := time.Now().Add(time.Hour)
	if n, err := s.PruneChanges(ctx, future, 3); err != nil || n != 3 {
		t.Fatalf("prune 3: %d, %v", n, err)
	}
	left, _ := s.Changes(ctx, 0, 100)
	if len(left) != 2 || left[0].Seq != all[3].Seq {
		t.Fatalf("after pruning 3 the log holds %+v, want the last 2", left)
	}
	// Everything is old enough, but the newest entry stays.
	if n, err := s.PruneChanges(ctx, future, 100); err != nil || n != 1 {
		t.Fatalf("prune the rest: %d, %v; want 1", n, err)
	}
	if seq, err := s.LastChangeSeq(ctx); err != nil || seq != last {
		t.Fatalf("LastChangeSeq after pruning = %d, %v; want %d", seq, err, last)
	}
	ch := mustWrite(t, s, func(tx strata.Tx) error { return tx.InsertRecord(ctx, rec(people, "id", "p9")) })
	if len(ch) != 1 || ch[0].Seq != last+1 {
		t.Fatalf("the next entry after pruning has seq %+v, want %d", ch, last+1)
	}
}
