package filter

import (
	"database/sql"
	"encoding/json"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/strata-run/strata"
	_ "modernc.org/sqlite"
)

// testSchema resolves collections by id or (case-insensitive) name.
type testSchema map[string]*strata.Collection

func (s testSchema) Collection(idOrName string) *strata.Collection {
	if c, ok := s[idOrName]; ok {
		return c
	}
	return s[strings.ToLower(idOrName)]
}

func newSchema(cols ...*strata.Collection) testSchema {
	s := testSchema{}
	for _, c := range cols {
		s[c.ID] = c
		s[strings.ToLower(c.Name)] = c
	}
	return s
}

func rule(s string) *string { return &s }

func fld(name, typ string, opts ...func(*strata.Field)) *strata.Field {
	f := &strata.Field{ID: strata.DefaultFieldID(typ, name), Name: name, Type: typ}
	for _, o := range opts {
		o(f)
	}
	return f
}

func rel(target string, max int) func(*strata.Field) {
	return func(f *strata.Field) { f.CollectionID, f.MaxSelect = target, max }
}
func multi(max int) func(*strata.Field) { return func(f *strata.Field) { f.MaxSelect = max } }
func hidden(f *strata.Field)            { f.Hidden = true }

// columnType is the storage layout the SQLite store uses.
func columnType(f *strata.Field) string {
	switch {
	case f.Name == "id":
		return "TEXT PRIMARY KEY NOT NULL"
	case f.IsMultiple():
		return "JSON NOT NULL DEFAULT '[]'"
	case f.Type == strata.FieldNumber:
		return "NUMERIC NOT NULL DEFAULT 0"
	case f.Type == strata.FieldBool:
		return "BOOLEAN NOT NULL DEFAULT FALSE"
	case f.Type == strata.FieldJSON:
		return "JSON DEFAULT NULL"
	case f.Type == strata.FieldGeoPoint:
		return `JSON NOT NULL DEFAULT '{"lon":0,"lat":0}'`
	}
	return "TEXT NOT NULL DEFAULT ''"
}

func createTable(tb testing.TB, db *sql.DB, c *strata.Collection) {
	tb.Helper()
	var cols []string
	for _, f := range c.Fields {
		cols = append(cols, "`"+f.Name+"` "+columnType(f))
	}
	if _, err := db.Exec("CREATE TABLE `" + c.Name + "` (" + strings.Join(cols, ", ") + ")"); err != nil {
		tb.Fatal(err)
	}
}

// storeValue converts record data to the column value the store writes.
func storeValue(f *strata.Field, v any) any {
	switch {
	case f.IsMultiple():
		return jsonText(idsOrEmpty(v))
	case f.Type == strata.FieldJSON:
		if v == nil {
			return nil
		}
		b, _ := json.Marshal(v)
		return string(b)
	case f.Type == strata.FieldGeoPoint:
		b, _ := json.Marshal(v)
		return string(b)
	case f.Type == strata.FieldBool:
		b, _ := v.(bool)
		return boolInt(b)
	}
	return v
}

func idsOrEmpty(v any) []string {
	ids := idsOf(v)
	if ids == nil {
		return []string{}
	}
	return ids
}

func insertRecord(tb testing.TB, db *sql.DB, r *strata.Record) {
	tb.Helper()
	var names, ph []string
	var vals []any
	for _, f := range r.Collection.Fields {
		names = append(names, "`"+f.Name+"`")
		ph = append(ph, "?")
		vals = append(vals, storeValue(f, r.Data[f.Name]))
	}
	q := "INSERT INTO `" + r.Collection.Name + "` (" + strings.Join(names, ",") + ") VALUES (" + strings.Join(ph, ",") + ")"
	if _, err := db.Exec(q, vals...); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
}

func openDB(tb testing.TB) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", filepath.Join(tb.TempDir(), "test.db"))
	if err != nil {
		tb.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	tb.Cleanup(func() { db.Close() })
	return db
}

func rec(c *strata.Collection, data map[string]any) *strata.Record {
	r := strata.NewRecord(c)
	for k, v := range data {
		r.Data[k] = v
	}
	return r
}

type fixture struct {
	db                                               *sql.DB
	schema                                           testSchema
	users, teams, tags, posts, comments, memberships *strata.Collection
	records                                          map[string]*strata.Record
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	idf := func() *strata.Field {
		return fld("id", strata.FieldText, func(f *strata.Field) { f.PrimaryKey = true })
	}
	users := &strata.Collection{ID: strata.UsersID, Name: "users", Type: strata.CollectionAuth, ListRule: rule(""), Fields: []*strata.Field{
		idf(), fld("email", strata.FieldEmail), fld("emailVisibility", strata.FieldBool), fld("verified", strata.FieldBool),
		fld("name", strata.FieldText), fld("team", strata.FieldRelation, rel("pbc_teams", 1)),
		fld("roles", strata.FieldSelect, multi(3)), fld("secret", strata.FieldText, hidden),
	}}
	teams := &strata.Collection{ID: "pbc_teams", Name: "teams", Type: strata.CollectionBase, ListRule: rule(""), Fields: []*strata.Field{
		idf(), fld("name", strata.FieldText), fld("owner", strata.FieldRelation, rel(strata.UsersID, 1)),
	}}
	tags := &strata.Collection{ID: "pbc_tags", Name: "tags", Type: strata.CollectionBase, ListRule: rule(""), Fields: []*strata.Field{
		idf(), fld("name", strata.FieldText),
	}}
	posts := &strata.Collection{ID: "pbc_posts", Name: "posts", Type: strata.CollectionBase, ListRule: rule(""), Fields: []*strata.Field{
		idf(), fld("title", strata.FieldText), fld("author", strata.FieldRelation, rel(strata.UsersID, 1)),
		fld("tags", strata.FieldRelation, rel("pbc_tags", 5)), fld("labels", strata.FieldSelect, multi(5)),
		fld("meta", strata.FieldJSON), fld("views", strata.FieldNumber), fld("published", strata.FieldBool),
		fld("created", strata.FieldDate), fld("location", strata.FieldGeoPoint), fld("status", strata.FieldSelect),
		fld("team", strata.FieldRelation, rel("pbc_teams", 1)), fld("secret", strata.FieldText, hidden),
	}}
	comments := &strata.Collection{ID: "pbc_comments", Name: "comments", Type: strata.CollectionBase, ListRule: rule("approved = true"), Fields: []*strata.Field{
		idf(), fld("post", strata.FieldRelation, rel("pbc_posts", 1)), fld("approved", strata.FieldBool), fld("body", strata.FieldText),
	}}
	memberships := &strata.Collection{ID: "pbc_members", Name: "memberships", Type: strata.CollectionBase, Fields: []*strata.Field{
		idf(), fld("user", strata.FieldRelation, rel(strata.UsersID, 1)), fld("team", strata.FieldRelation, rel("pbc_teams", 1)),
	}}
	fx := &fixture{db: openDB(tb), schema: newSchema(users, teams, tags, posts, comments, memberships),
		users: users, teams: teams, tags: tags, posts: posts, comments: comments, memberships: memberships,
		records: map[string]*strata.Record{}}
	for _, c := range []*strata.Collection{users, teams, tags, posts, comments, memberships} {
		createTable(tb, fx.db, c)
	}
	add := func(c *strata.Collection, data map[string]any) {
		r := rec(c, data)
		fx.records[r.ID()] = r
		insertRecord(tb, fx.db, r)
	}
	add(users, map[string]any{"id": "u1", "email": "alice@x.com", "emailVisibility": true, "verified": true, "name": "Alice", "team": "t1", "roles": []string{"admin", "editor"}, "secret": "s1"})
	add(users, map[string]any{"id": "u2", "email": "bob@y.com", "emailVisibility": false, "name": "Bob", "team": "t2", "roles": []string{"editor"}})
	add(users, map[string]any{"id": "u3", "email": "carol@x.com", "emailVisibility": true, "name": "Carol"})
	add(teams, map[string]any{"id": "t1", "name": "red", "owner": "u1"})
	add(teams, map[string]any{"id": "t2", "name": "blue", "owner": "u2"})
	add(tags, map[string]any{"id": "g1", "name": "go"})
	add(tags, map[string]any{"id": "g2", "name": "rust"})
	add(tags, map[string]any{"id": "g3", "name": "go"})
	add(posts, map[string]any{"id": "p1", "title": "Hello World", "author": "u1", "tags": []string{"g1", "g3"}, "labels": []string{"x1", "ax"},
		"meta": map[string]any{"level": float64(5), "a": []any{float64(1), float64(2)}}, "views": float64(10), "published": true,
		"created": "2024-01-05 10:00:00.000Z", "location": map[string]any{"lon": 23.32, "lat": 42.69}, "status": "active", "team": "t1", "secret": "x"})
	add(posts, map[string]any{"id": "p2", "title": "abc_def 100%", "author": "u2", "tags": []string{"g1", "g2"}, "labels": []string{"b"},
		"meta": map[string]any{"level": float64(1)}, "views": float64(5), "created": "2023-06-01 00:00:00.000Z",
		"location": map[string]any{"lon": float64(0), "lat": float64(0)}, "status": "pending", "team": "t2"})
	add(posts, map[string]any{"id": "p3", "location": map[string]any{"lon": -74.0, "lat": 40.7}})
	add(comments, map[string]any{"id": "c1", "post": "p1", "approved": true, "body": "nice"})
	add(comments, map[string]any{"id": "c2", "post": "p1", "approved": false, "body": "spam"})
	add(comments, map[string]any{"id": "c3", "post": "p2", "approved": true, "body": "ok"})
	add(comments, map[string]any{"id": "c4", "post": "p2", "approved": true, "body": "fine"})
	add(memberships, map[string]any{"id": "m1", "user": "u1", "team": "t1"})
	add(memberships, map[string]any{"id": "m2", "user": "u2", "team": "t1"})
	add(memberships, map[string]any{"id": "m3", "user": "u3", "team": "t2"})
	return fx
}

// query compiles src for coll and returns the matching ids, sorted.
func (fx *fixture) query(tb testing.TB, coll *strata.Collection, src string, env Env) ([]string, error) {
	tb.Helper()
	e, err := Parse(src)
	if err != nil {
		return nil, err
	}
	env.Collection, env.Schema = coll, fx.schema
	args := &Args{}
	where, err := Compile(e, &env, args)
	if err != nil {
		return nil, err
	}
	q := "SELECT `id` FROM `" + coll.Name + "` WHERE " + where
	q, vals := args.Bind(q)
	rows, err := fx.db.Query(q, vals...)
	if err != nil {
		tb.Fatalf("%s\n%s\n%v", src, q, err)
	}
	defer rows.Close()
	ids := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			tb.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	sort.Strings(ids)
	return ids, nil
}
