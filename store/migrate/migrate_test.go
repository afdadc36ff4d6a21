package migrate

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/service"
	"github.com/strata-run/strata/store/postgres"
	"github.com/strata-run/strata/store/postgres/pgtest"
	"github.com/strata-run/strata/store/sqlite"
)

// openPG opens a store on a fresh PostgreSQL schema.
func openPG(tb testing.TB) *postgres.Store {
	tb.Helper()
	st, err := postgres.Open(context.Background(), pgtest.Schema(tb), postgres.Options{MaxConns: 4})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

func superuser(app *service.App) *strata.RequestInfo {
	return &strata.RequestInfo{Auth: &strata.Record{Collection: app.Collection(strata.SuperusersID),
		Data: map[string]any{"id": "su0000000000000"}}}
}

func mustCollection(tb testing.TB, app *service.App, body string) *strata.Collection {
	tb.Helper()
	c, err := app.CreateCollection(context.Background(), superuser(app), json.RawMessage(body))
	if err != nil {
		tb.Fatalf("create collection %s: %v", body, err)
	}
	return c
}

func mustRecord(tb testing.TB, app *service.App, c *strata.Collection, in service.Input) *strata.Record {
	tb.Helper()
	r, _, err := app.CreateRecord(context.Background(), superuser(app), c, in)
	if err != nil {
		tb.Fatalf("create %s record %v: %v", c.Name, in, err)
	}
	return r
}

const (
	userEmail   = "ann@example.com"
	userPass    = "Ann-secret-123"
	memberEmail = "bob@example.com"
	memberPass  = "Bob-secret-456"
	suEmail     = "root@example.com"
	suPass      = "Root-secret-789"
)

// newStrataDir fills a Strata data dir through the service layer: every
// field type, single and multiple relations, an auth collection besides
// users, a unique index and settings. It returns the dir, closed, and an
// auth token of the user issued before the move.
func newStrataDir(tb testing.TB, posts int) (string, string) {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "data.db"), sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	app, err := service.New(ctx, service.Config{Store: st})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := app.UpsertSuperuser(ctx, suEmail, suPass); err != nil {
		tb.Fatal(err)
	}
	authors := mustCollection(tb, app, `{"name":"authors","type":"base","listRule":"","fields":[
		{"name":"name","type":"text","required":true},
		{"name":"bio","type":"editor"},
		{"name":"age","type":"number"},
		{"name":"active","type":"bool"},
		{"name":"site","type":"url"},
		{"name":"contact","type":"email"},
		{"name":"born","type":"date"},
		{"name":"tags","type":"select","values":["a","b","c"],"maxSelect":3},
		{"name":"level","type":"select","values":["x","y"],"maxSelect":1},
		{"name":"meta","type":"json"},
		{"name":"loc","type":"geoPoint"},
		{"name":"avatar","type":"file","maxSelect":1},
		{"name":"docs","type":"file","maxSelect":5},
		{"name":"secret","type":"text","hidden":true},
		{"name":"created","type":"autodate","onCreate":true},
		{"name":"updated","type":"autodate","onCreate":true,"onUpdate":true}]}`)
	postsC := mustCollection(tb, app, `{"name":"posts","type":"base","listRule":"","viewRule":"",
		"indexes":["CREATE UNIQUE INDEX idx_posts_slug ON posts (slug)"],"fields":[
		{"name":"slug","type":"text"},
		{"name":"author","type":"relation","collectionId":"`+authors.ID+`","maxSelect":1},
		{"name":"coauthors","type":"relation","collectionId":"`+authors.ID+`","maxSelect":5},
		{"name":"score","type":"number"},
		{"name":"created","type":"autodate","onCreate":true},
		{"name":"updated","type":"autodate","onCreate":true,"onUpdate":true}]}`)
	members := mustCollection(tb, app, `{"name":"members","type":"auth","fields":[
		{"name":"nickname","type":"text"}],
		"passwordAuth":{"enabled":true,"identityFields":["email","nickname"]}}`)

	var ids []string
	for i := range 12 {
		r := mustRecord(tb, app, authors, service.Input{
			"name": fmt.Sprintf("author %d \"quoted\" ünïcode", i), "bio": "<p>bio</p>", "age": float64(i) + 0.5,
			"active": i%2 == 0, "site": "https://example.com/" + fmt.Sprint(i), "contact": fmt.Sprintf("a%d@example.com", i),
			"born": "1990-01-02 03:04:05.678Z", "tags": []any{"a", "c"}, "level": "y",
			"meta": map[string]any{"n": float64(i), "nested": map[string]any{"list": []any{1.0, "two", nil, true}}},
			"loc":  map[string]any{"lon": 12.5, "lat": -7.25}, "secret": "hidden value",
		})
		ids = append(ids, r.ID())
	}
	// Files are uploaded through the API; here only their names matter.
	if _, err := st.Write(ctx, func(tx strata.Tx) error {
		recs, err := tx.FindRecords(ctx, &strata.RecordQuery{Collection: authors, IDs: ids[:2]})
		if err != nil {
			return err
		}
		for _, r := range recs {
			r.Data["avatar"] = "face_abc123.png"
			r.Data["docs"] = []string{"a_1.pdf", "b_2.pdf"}
			if err := tx.UpdateRecord(ctx, r); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	for i := range posts {
		mustRecord(tb, app, postsC, service.Input{"slug": fmt.Sprintf("post-%04d", i), "author": ids[i%len(ids)],
			"coauthors": []any{ids[(i+1)%len(ids)], ids[(i+2)%len(ids)]}, "score": float64(i * 3)})
	}
	users := app.Collection(strata.UsersID)
	mustRecord(tb, app, users, service.Input{"email": userEmail, "password": userPass, "passwordConfirm": userPass, "name": "Ann"})
	mustRecord(tb, app, members, service.Input{"email": memberEmail, "password": memberPass, "passwordConfirm": memberPass, "nickname": "bobby"})
	if _, err := app.UpdateSettings(ctx, superuser(app), json.RawMessage(`{"meta":{"appName":"Migrated App"}}`)); err != nil {
		tb.Fatal(err)
	}
	return dir, signIn(tb, app, "users", userEmail, userPass).Token
}

// allRecords reads every record of every collection, keyed by collection
// name and record id.
func allRecords(tb testing.TB, st strata.Store) map[string]map[string]map[string]any {
	tb.Helper()
	ctx := context.Background()
	cols, err := st.Collections(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]map[string]map[string]any{}
	for _, c := range cols {
		recs, err := st.FindRecords(ctx, &strata.RecordQuery{Collection: c, Schema: schema(cols)})
		if err != nil {
			tb.Fatal(err)
		}
		m := map[string]map[string]any{}
		for _, r := range recs {
			m[r.ID()] = r.Data
		}
		out[c.Name] = m
	}
	return out
}

func signIn(tb testing.TB, app *service.App, collection, email, pass string) *service.AuthResult {
	tb.Helper()
	c, err := app.AuthCollection(collection)
	if err != nil {
		tb.Fatal(err)
	}
	res, err := app.AuthWithPassword(context.Background(), &strata.RequestInfo{Method: "POST", Context: strata.ContextPassword},
		c, email, pass, "")
	if err != nil {
		tb.Fatalf("sign in %s to %s: %v", email, collection, err)
	}
	return res
}

func TestCopyStrataToPostgres(t *testing.T) {
	ctx := context.Background()
	dir, token := newStrataDir(t, 230)

	src, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.Kind() != KindStrata {
		t.Fatalf("kind = %q", src.Kind())
	}
	dst := openPG(t)
	var log bytes.Buffer
	rep, err := Copy(ctx, src, dst, Options{Batch: 50, Log: &log})
	if err != nil {
		t.Fatalf("copy: %v\n%s", err, log.String())
	}
	counts := map[string]int{}
	for _, c := range rep.Collections {
		if !c.OK() || c.SourceCheck == (Checksum{}).String() && c.SourceCount > 0 {
			t.Errorf("%s: %+v", c.Name, c)
		}
		counts[c.Name] = c.DestCount
	}
	want := map[string]int{"_superusers": 1, "users": 1, "_otps": 0, "_mfas": 0, "_externalAuths": 0, "_authOrigins": 0,
		"authors": 12, "posts": 230, "members": 1}
	if !maps.Equal(counts, want) {
		t.Errorf("counts = %v, want %v", counts, want)
	}
	if !rep.Settings {
		t.Error("settings not copied")
	}
	if !strings.Contains(log.String(), "copied posts: 230 records") {
		t.Errorf("log lacks progress:\n%s", log.String())
	}

	// Field by field, as each store reads it.
	srcStore := src.(verifier).Store()
	got, wantRecs := allRecords(t, dst), allRecords(t, srcStore)
	if !reflect.DeepEqual(got, wantRecs) {
		for name, recs := range wantRecs {
			for id, data := range recs {
				if !reflect.DeepEqual(got[name][id], data) {
					t.Errorf("%s/%s:\n got %#v\nwant %#v", name, id, got[name][id], data)
				}
			}
		}
		t.Fatal("records differ")
	}
	// Insertion order survives: unsorted lists come back in the same order.
	srcCols, _ := srcStore.Collections(ctx)
	dstCols, _ := dst.Collections(ctx)
	order := func(st strata.Store, cols []*strata.Collection) []string {
		recs, err := st.FindRecords(ctx, &strata.RecordQuery{Collection: schema(cols).Collection("posts"), Schema: schema(cols)})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range recs {
			ids = append(ids, r.ID())
		}
		return ids
	}
	if a, b := order(srcStore, srcCols), order(dst, dstCols); !slices.Equal(a, b) {
		t.Error("posts come back in a different order")
	}
	// Collection definitions (with token secrets) are kept.
	for _, c := range srcCols {
		d := schema(dstCols).Collection(c.ID)
		if d == nil {
			t.Fatalf("collection %s missing", c.Name)
		}
		a, _ := c.StorageJSON()
		b, _ := d.StorageJSON()
		if !sameJSON(a, b) {
			t.Errorf("collection %s:\n got %s\nwant %s", c.Name, b, a)
		}
	}

	// The service runs on the copy: passwords work, the unique index holds,
	// and new writes continue the change log.
	app, err := service.New(ctx, service.Config{Store: dst})
	if err != nil {
		t.Fatal(err)
	}
	if app.Settings().Meta.AppName != "Migrated App" {
		t.Errorf("appName = %q", app.Settings().Meta.AppName)
	}
	signIn(t, app, "users", userEmail, userPass)
	signIn(t, app, "members", memberEmail, memberPass)
	// Token secrets and token keys moved with the data: sessions survive.
	if r := app.Authenticate(ctx, token); r == nil || r.String("email") != userEmail {
		t.Errorf("token issued before the move: authenticated %v", r)
	}
	signIn(t, app, "_superusers", suEmail, suPass)
	last, err := dst.LastChangeSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	posts := app.Collection("posts")
	if _, _, err := app.CreateRecord(ctx, superuser(app), posts, service.Input{"slug": "post-0001"}); strata.ErrorCodeOf(err) != strata.EInvalid {
		t.Fatalf("duplicate slug: err = %v", err)
	}
	_, chs, err := app.CreateRecord(ctx, superuser(app), posts, service.Input{"slug": "after-migration"})
	if err != nil {
		t.Fatal(err)
	}
	if len(chs) != 1 || chs[0].Seq != last+1 {
		t.Fatalf("new write logged as %+v, want seq %d", chs, last+1)
	}
	feed, err := dst.Changes(ctx, last, 10)
	if err != nil || len(feed) != 1 || feed[0].Seq != last+1 {
		t.Fatalf("change feed after migration = %+v, %v", feed, err)
	}
}

func TestCopyRefusesNonEmptyDestination(t *testing.T) {
	ctx := context.Background()
	dir, _ := newStrataDir(t, 5)
	src, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := openPG(t)
	if _, err := Copy(ctx, src, dst, Options{}); err != nil {
		t.Fatal(err)
	}
	// An extra collection in the destination must survive a forced copy.
	if _, err := dst.Write(ctx, func(tx strata.Tx) error {
		return tx.CreateCollection(ctx, &strata.Collection{ID: "pbc_extra", Name: "extra", Type: strata.CollectionBase,
			Fields: []*strata.Field{{ID: "text3208210256", Name: "id", Type: strata.FieldText, PrimaryKey: true}}})
	}); err != nil {
		t.Fatal(err)
	}
	_, err = Copy(ctx, src, dst, Options{})
	if err == nil || !strings.Contains(err.Error(), "not empty") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second copy: err = %v", err)
	}
	rep, err := Copy(ctx, src, dst, Options{Force: true})
	if err != nil {
		t.Fatalf("forced copy: %v", err)
	}
	for _, c := range rep.Collections {
		if !c.Replaced || !c.OK() {
			t.Errorf("%s: %+v", c.Name, c)
		}
	}
	cols, err := dst.Collections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if schema(cols).Collection("extra") == nil {
		t.Error("forced copy dropped a collection the source does not have")
	}
}

// TestBootstrappedMatchesService keeps the "empty destination" notion in
// step with what the service creates in a fresh store.
func TestBootstrappedMatchesService(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "data.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := service.New(ctx, service.Config{Store: st}); err != nil {
		t.Fatal(err)
	}
	cols, err := st.Collections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range cols {
		ids = append(ids, c.ID)
	}
	if want := slices.Sorted(maps.Keys(bootstrapped)); !slices.Equal(slices.Sorted(slices.Values(ids)), want) {
		t.Fatalf("fresh store has %v, bootstrapped lists %v", ids, want)
	}
}

func TestOpenRejectsBadSources(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notdb")
	os.MkdirAll(notDB, 0o755)
	os.WriteFile(filepath.Join(notDB, "data.db"), []byte("this is not a database, just some text that is long enough to look like a header....."), 0o644)
	otherDB := filepath.Join(dir, "other")
	os.MkdirAll(otherDB, 0o755)
	db, err := sql.Open("sqlite", filepath.Join(otherDB, "data.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE things (id TEXT)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, c := range []struct{ path, want string }{
		{filepath.Join(dir, "missing"), "does not exist"},
		{dir, "no data.db"},
		{notDB, "notdb"},
		{otherDB, "neither a Strata nor a PocketBase"},
	} {
		src, err := Open(ctx, c.path)
		if err == nil {
			src.Close()
			t.Errorf("%s: opened", c.path)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", c.path, err, c.want)
		}
	}
}

// pbSchema is PocketBase v0.23+'s layout of its system tables.
const pbSchema = `
CREATE TABLE _collections (
	id TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL,
	system BOOLEAN DEFAULT FALSE NOT NULL,
	type TEXT DEFAULT "base" NOT NULL,
	name TEXT UNIQUE NOT NULL,
	fields JSON DEFAULT "[]" NOT NULL,
	indexes JSON DEFAULT "[]" NOT NULL,
	listRule TEXT DEFAULT NULL,
	viewRule TEXT DEFAULT NULL,
	createRule TEXT DEFAULT NULL,
	updateRule TEXT DEFAULT NULL,
	deleteRule TEXT DEFAULT NULL,
	options JSON DEFAULT "{}" NOT NULL,
	created TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL,
	updated TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL
);
CREATE TABLE _params (
	id TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL,
	value JSON DEFAULT NULL,
	created TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL,
	updated TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL
);
CREATE TABLE _migrations (file VARCHAR(255) PRIMARY KEY NOT NULL, applied INTEGER NOT NULL);
CREATE TABLE _superusers (id TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL,
	password TEXT DEFAULT '' NOT NULL, tokenKey TEXT DEFAULT '' NOT NULL, email TEXT DEFAULT '' NOT NULL,
	emailVisibility BOOLEAN DEFAULT FALSE NOT NULL, verified BOOLEAN DEFAULT FALSE NOT NULL,
	created TEXT DEFAULT '' NOT NULL, updated TEXT DEFAULT '' NOT NULL);
CREATE UNIQUE INDEX idx_tokenKey_pbc_3142635823 ON _superusers (tokenKey);
CREATE UNIQUE INDEX idx_email_pbc_3142635823 ON _superusers (email) WHERE email != '';
CREATE TABLE users (id TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL,
	password TEXT DEFAULT '' NOT NULL, tokenKey TEXT DEFAULT '' NOT NULL, email TEXT DEFAULT '' NOT NULL,
	emailVisibility BOOLEAN DEFAULT FALSE NOT NULL, verified BOOLEAN DEFAULT FALSE NOT NULL,
	name TEXT DEFAULT '' NOT NULL, avatar TEXT DEFAULT '' NOT NULL,
	created TEXT DEFAULT '' NOT NULL, updated TEXT DEFAULT '' NOT NULL);
CREATE UNIQUE INDEX idx_tokenKey__pb_users_auth_ ON users (tokenKey);
CREATE UNIQUE INDEX idx_email__pb_users_auth_ ON users (email) WHERE email != '';
CREATE TABLE _authOrigins (id TEXT PRIMARY KEY NOT NULL, collectionRef TEXT DEFAULT '' NOT NULL,
	recordRef TEXT DEFAULT '' NOT NULL, fingerprint TEXT DEFAULT '' NOT NULL,
	created TEXT DEFAULT '' NOT NULL, updated TEXT DEFAULT '' NOT NULL);
CREATE TABLE _externalAuths (id TEXT PRIMARY KEY NOT NULL, collectionRef TEXT DEFAULT '' NOT NULL,
	recordRef TEXT DEFAULT '' NOT NULL, provider TEXT DEFAULT '' NOT NULL, providerId TEXT DEFAULT '' NOT NULL,
	created TEXT DEFAULT '' NOT NULL, updated TEXT DEFAULT '' NOT NULL);
CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, title TEXT DEFAULT '' NOT NULL, done BOOLEAN DEFAULT FALSE NOT NULL,
	score NUMERIC DEFAULT 0 NOT NULL, data JSON DEFAULT NULL, tags JSON DEFAULT '[]' NOT NULL,
	owner TEXT DEFAULT '' NOT NULL, due TEXT DEFAULT '' NOT NULL, spot JSON DEFAULT '{"lon":0,"lat":0}' NOT NULL,
	created TEXT DEFAULT '' NOT NULL, updated TEXT DEFAULT '' NOT NULL);
CREATE INDEX idx_notes_owner ON notes (owner);
CREATE VIEW stats AS SELECT owner AS id, count(*) AS total FROM notes GROUP BY owner;
`

// Field JSON exactly as PocketBase writes it into _collections.fields.
const (
	pbIDField     = `{"autogeneratePattern":"[a-z0-9]{15}","hidden":false,"id":"text3208210256","max":15,"min":15,"name":"id","pattern":"^[a-z0-9]+$","presentable":false,"primaryKey":true,"required":true,"system":true,"type":"text"}`
	pbAuthFields  = `{"cost":0,"hidden":true,"id":"password901924565","max":0,"min":8,"name":"password","pattern":"","presentable":false,"required":true,"system":true,"type":"password"},{"autogeneratePattern":"[a-zA-Z0-9]{50}","hidden":true,"id":"text2504183744","max":60,"min":30,"name":"tokenKey","pattern":"","presentable":false,"primaryKey":false,"required":true,"system":true,"type":"text"},{"exceptDomains":null,"hidden":false,"id":"email3885137012","name":"email","onlyDomains":null,"presentable":false,"required":true,"system":true,"type":"email"},{"hidden":false,"id":"bool1547992806","name":"emailVisibility","presentable":false,"required":false,"system":true,"type":"bool"},{"hidden":false,"id":"bool256245529","name":"verified","presentable":false,"required":false,"system":true,"type":"bool"}`
	pbDateFields  = `{"hidden":false,"id":"autodate2990389176","name":"created","onCreate":true,"onUpdate":false,"presentable":false,"system":false,"type":"autodate"},{"hidden":false,"id":"autodate3332085495","name":"updated","onCreate":true,"onUpdate":true,"presentable":false,"system":false,"type":"autodate"}`
	pbRefFields   = `{"autogeneratePattern":"","hidden":false,"id":"text455797646","max":0,"min":0,"name":"collectionRef","pattern":"","presentable":false,"primaryKey":false,"required":true,"system":true,"type":"text"},{"autogeneratePattern":"","hidden":false,"id":"text127846527","max":0,"min":0,"name":"recordRef","pattern":"","presentable":false,"primaryKey":false,"required":true,"system":true,"type":"text"}`
	pbAuthOptions = `{"authAlert":{"emailTemplate":{"body":"<p>Hi</p>","subject":"Login from a new location"},"enabled":true},"authRule":"","authToken":{"duration":604800,"secret":"%s"},"confirmEmailChangeTemplate":{"body":"b","subject":"s"},"emailChangeToken":{"duration":1800,"secret":"ec-secret-0123456789012345678901234567890123456789"},"fileToken":{"duration":180,"secret":"ft-secret-0123456789012345678901234567890123456789"},"manageRule":null,"mfa":{"duration":1800,"enabled":false,"rule":""},"oauth2":{"enabled":false,"mappedFields":{"avatarURL":"","id":"","name":"","username":""},"providers":[]},"otp":{"duration":180,"emailTemplate":{"body":"b","subject":"s"},"enabled":false,"length":8},"passwordAuth":{"enabled":true,"identityFields":["email"]},"passwordResetToken":{"duration":1800,"secret":"pr-secret-0123456789012345678901234567890123456789"},"resetPasswordTemplate":{"body":"b","subject":"s"},"verificationTemplate":{"body":"b","subject":"s"},"verificationToken":{"duration":259200,"secret":"vt-secret-0123456789012345678901234567890123456789"}}`
)

const (
	pbUserPass = "pb-password-123"
	pbSUPass   = "pb-root-pass-456"
)

// newPBDir writes a pb_data/data.db with PocketBase's table layout.
func newPBDir(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "pb_data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "data.db"))
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		tb.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
	exec(pbSchema)
	const ts = "2024-11-05 10:20:30.123Z"
	coll := func(id, typ, name string, system bool, fields, indexes string, rules [5]any, options string) {
		exec(`INSERT INTO _collections (id, system, type, name, fields, indexes, listRule, viewRule, createRule, updateRule, deleteRule, options, created, updated)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, system, typ, name, fields, indexes,
			rules[0], rules[1], rules[2], rules[3], rules[4], options, ts, ts)
	}
	own := "id = @request.auth.id"
	coll("pbc_3142635823", "auth", "_superusers", true, "["+pbIDField+","+pbAuthFields+","+pbDateFields+"]",
		`["CREATE UNIQUE INDEX `+"`idx_tokenKey_pbc_3142635823` ON `_superusers` (`tokenKey`)"+`","CREATE UNIQUE INDEX `+"`idx_email_pbc_3142635823` ON `_superusers` (`email`) WHERE `email` != ''"+`"]`,
		[5]any{}, fmt.Sprintf(pbAuthOptions, "su-secret-0123456789012345678901234567890123456789"))
	coll("_pb_users_auth_", "auth", "users", false, "["+pbIDField+","+pbAuthFields+`,{"autogeneratePattern":"","hidden":false,"id":"text1579384326","max":255,"min":0,"name":"name","pattern":"","presentable":false,"primaryKey":false,"required":false,"system":false,"type":"text"},{"hidden":false,"id":"file376926767","maxSelect":1,"maxSize":0,"mimeTypes":["image/jpeg","image/png"],"name":"avatar","presentable":false,"protected":false,"required":false,"system":false,"thumbs":null,"type":"file"},`+pbDateFields+"]",
		`["CREATE UNIQUE INDEX `+"`idx_tokenKey__pb_users_auth_` ON `users` (`tokenKey`)"+`","CREATE UNIQUE INDEX `+"`idx_email__pb_users_auth_` ON `users` (`email`) WHERE `email` != ''"+`"]`,
		[5]any{own, own, "", own, own}, fmt.Sprintf(pbAuthOptions, "users-secret-0123456789012345678901234567890123456789"))
	coll("pbc_4275539003", "base", "_authOrigins", true, "["+pbIDField+","+pbRefFields+`,{"autogeneratePattern":"","hidden":true,"id":"text4228609354","max":0,"min":0,"name":"fingerprint","pattern":"","presentable":false,"primaryKey":false,"required":true,"system":true,"type":"text"},`+pbDateFields+"]",
		"[]", [5]any{}, "{}")
	coll("pbc_2281828961", "base", "_externalAuths", true, "["+pbIDField+","+pbRefFields+`,{"autogeneratePattern":"","hidden":false,"id":"text2462348188","max":0,"min":0,"name":"provider","pattern":"","presentable":false,"primaryKey":false,"required":true,"system":true,"type":"text"},{"autogeneratePattern":"","hidden":false,"id":"text1044722854","max":0,"min":0,"name":"providerId","pattern":"","presentable":false,"primaryKey":false,"required":true,"system":true,"type":"text"},`+pbDateFields+"]",
		"[]", [5]any{}, "{}")
	coll("pbc_1000000001", "base", "notes", false, "["+pbIDField+`,
		{"autogeneratePattern":"","hidden":false,"id":"text724990059","max":0,"min":0,"name":"title","pattern":"","presentable":false,"primaryKey":false,"required":false,"system":false,"type":"text"},
		{"hidden":false,"id":"bool1","name":"done","presentable":false,"required":false,"system":false,"type":"bool"},
		{"hidden":false,"id":"number1","max":null,"min":null,"name":"score","onlyInt":false,"presentable":false,"required":false,"system":false,"type":"number"},
		{"hidden":false,"id":"json1","maxSize":0,"name":"data","presentable":false,"required":false,"system":false,"type":"json"},
		{"hidden":false,"id":"select1","maxSelect":3,"name":"tags","presentable":false,"required":false,"system":false,"type":"select","values":["red","green","blue"]},
		{"cascadeDelete":false,"collectionId":"_pb_users_auth_","hidden":false,"id":"relation1","maxSelect":1,"minSelect":0,"name":"owner","presentable":false,"required":false,"system":false,"type":"relation"},
		{"hidden":false,"id":"date1","max":"","min":"","name":"due","presentable":false,"required":false,"system":false,"type":"date"},
		{"hidden":false,"id":"geoPoint1","name":"spot","presentable":false,"required":false,"system":false,"type":"geoPoint"},`+pbDateFields+"]",
		`["CREATE INDEX `+"`idx_notes_owner` ON `notes` (`owner`)"+`"]`, [5]any{"owner = @request.auth.id", "owner = @request.auth.id", "@request.auth.id != ''", nil, nil}, "{}")
	coll("pbc_1000000002", "view", "stats", false, `[{"autogeneratePattern":"","hidden":false,"id":"text3208210256","max":0,"min":0,"name":"id","pattern":"^[a-z0-9]+$","presentable":false,"primaryKey":true,"required":true,"system":true,"type":"text"},{"hidden":false,"id":"number2","max":null,"min":null,"name":"total","onlyInt":false,"presentable":false,"required":false,"system":false,"type":"number"}]`,
		"[]", [5]any{"", "", nil, nil, nil}, `{"viewQuery":"SELECT owner AS id, count(*) AS total FROM notes GROUP BY owner"}`)

	hash := func(p string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			tb.Fatal(err)
		}
		return string(h)
	}
	exec(`INSERT INTO _superusers VALUES ('su1234567890123', ?, 'tk-su-0123456789012345678901234567890123456789', 'root@pb.example', 0, 1, ?, ?)`,
		hash(pbSUPass), ts, ts)
	exec(`INSERT INTO users VALUES ('u12345678901234', ?, 'tk-user-0123456789012345678901234567890123456789', 'carol@pb.example', 1, 'true', 'Carol', 'carol_x1.png', ?, ?)`,
		hash(pbUserPass), ts, "2024-12-01 08:00:00.000Z")
	exec(`INSERT INTO users VALUES ('u22345678901234', ?, 'tk-user2-123456789012345678901234567890123456789', 'dan@pb.example', 0, 0, 'Dan', '', ?, ?)`,
		hash("dan-password-1"), ts, ts)
	exec(`INSERT INTO _authOrigins VALUES ('ao1234567890123', '_pb_users_auth_', 'u12345678901234', 'fp', ?, ?)`, ts, ts)
	exec(`INSERT INTO _externalAuths VALUES ('ea1234567890123', '_pb_users_auth_', 'u12345678901234', 'github', '4242', ?, ?)`, ts, ts)
	for i := range 7 {
		exec(`INSERT INTO notes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			fmt.Sprintf("n%014d", i), fmt.Sprintf("note %d", i),
			[]any{1, 0, "true", "false", true, "1", 0}[i], // PocketBase has written bools every way
			[]any{1.5, 2, "3.25", -4, 0, 1e10, 7}[i],
			[]any{`{"a": 1, "b": [true, null]}`, nil, `"plain"`, `[1,2,3]`, `42`, `{"deep":{"x":"y"}}`, `null`}[i],
			[]any{`["red","blue"]`, `[]`, `["green"]`, `[]`, `["red"]`, `["blue","green","red"]`, `[]`}[i],
			[]any{"u12345678901234", "", "u22345678901234", "u12345678901234", "", "", ""}[i],
			[]any{"2025-01-02 03:04:05.000Z", "", "", "", "", "", ""}[i],
			[]any{`{"lon":1.5,"lat":2.5}`, `{"lon":0,"lat":0}`, `{"lon":0,"lat":0}`, `{"lon":0,"lat":0}`, `{"lon":0,"lat":0}`, `{"lon":0,"lat":0}`, `{"lon":-3,"lat":4}`}[i],
			ts, ts)
	}
	exec(`INSERT INTO _params (id, value, created, updated) VALUES ('settings', ?, ?, ?)`,
		`{"meta":{"appName":"PB App","appURL":"https://pb.example","senderName":"PB","senderAddress":"pb@pb.example","hideControls":false},"batch":{"enabled":true,"maxRequests":10,"timeout":3,"maxBodySize":0}}`, ts, ts)
	return dir
}

func TestCopyPocketBaseToPostgres(t *testing.T) {
	ctx := context.Background()
	src, err := Open(ctx, newPBDir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.Kind() != KindPocketBase {
		t.Fatalf("kind = %q", src.Kind())
	}
	dst := openPG(t)
	// A destination `strata serve` has already started on holds only the
	// bootstrapped collections: it still counts as empty.
	if _, err := service.New(ctx, service.Config{Store: dst}); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	rep, err := Copy(ctx, src, dst, Options{Batch: 3, Log: &log})
	if err != nil {
		t.Fatalf("copy: %v\n%s", err, log.String())
	}
	counts := map[string]int{}
	for _, c := range rep.Collections {
		if !c.OK() {
			t.Errorf("%s: %+v", c.Name, c)
		}
		counts[c.Name] = c.DestCount
	}
	if want := map[string]int{"_superusers": 1, "users": 2, "_externalAuths": 1, "_authOrigins": 1, "notes": 7}; !maps.Equal(counts, want) {
		t.Errorf("counts = %v, want %v", counts, want)
	}
	if len(rep.Skipped) != 1 || !strings.Contains(log.String(), "skipped stats: view") {
		t.Errorf("skipped = %q\n%s", rep.Skipped, log.String())
	}

	cols, err := dst.Collections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	notes := schema(cols).Collection("notes")
	if notes == nil || notes.ID != "pbc_1000000001" || notes.ListRule == nil || *notes.ListRule != "owner = @request.auth.id" || notes.UpdateRule != nil {
		t.Fatalf("notes collection = %+v", notes)
	}
	recs, err := dst.FindRecords(ctx, &strata.RecordQuery{Collection: notes, Schema: schema(cols)})
	if err != nil {
		t.Fatal(err)
	}
	var done []bool
	for _, r := range recs {
		done = append(done, r.Bool("done"))
	}
	if want := []bool{true, false, true, false, true, true, false}; !slices.Equal(done, want) {
		t.Errorf("done = %v, want %v", done, want)
	}
	first := recs[0].Data
	if first["score"] != 1.5 || first["due"] != "2025-01-02 03:04:05.000Z" || first["owner"] != "u12345678901234" ||
		!reflect.DeepEqual(first["tags"], []string{"red", "blue"}) || first["created"] != "2024-11-05 10:20:30.123Z" ||
		!reflect.DeepEqual(first["data"], map[string]any{"a": 1.0, "b": []any{true, nil}}) ||
		!reflect.DeepEqual(first["spot"], map[string]any{"lon": 1.5, "lat": 2.5}) {
		t.Errorf("first note = %#v", first)
	}
	if recs[2].Data["score"] != 3.25 || recs[2].Data["data"] != "plain" || recs[6].Data["data"] != nil {
		t.Errorf("notes 2, 6 = %#v, %#v", recs[2].Data, recs[6].Data)
	}

	app, err := service.New(ctx, service.Config{Store: dst})
	if err != nil {
		t.Fatal(err)
	}
	if s := app.Settings(); s.Meta.AppName != "PB App" || !s.Batch.Enabled || s.Batch.MaxRequests != 10 {
		t.Errorf("settings = %+v", s)
	}
	users := app.Collection("users")
	if users.Auth.AuthToken.Secret != "users-secret-0123456789012345678901234567890123456789" || users.Auth.AuthToken.Duration != 604800 {
		t.Errorf("users auth options = %+v", users.Auth.AuthToken)
	}
	u := signIn(t, app, "users", "carol@pb.example", pbUserPass).Record
	if u.ID() != "u12345678901234" || u.String("tokenKey") != "tk-user-0123456789012345678901234567890123456789" ||
		!u.Bool("verified") || !u.Bool("emailVisibility") || u.String("updated") != "2024-12-01 08:00:00.000Z" || u.String("avatar") != "carol_x1.png" {
		t.Errorf("signed-in user = %#v", u.Data)
	}
	signIn(t, app, "_superusers", "root@pb.example", pbSUPass)
	if _, err := app.AuthWithPassword(ctx, &strata.RequestInfo{}, users, "carol@pb.example", "wrong-password", ""); strata.ErrorCodeOf(err) != strata.EInvalid {
		t.Errorf("wrong password: err = %v", err)
	}
	// The bcrypt hash was upgraded on sign-in.
	again, err := dst.FindRecords(ctx, &strata.RecordQuery{Collection: users, Schema: app.Schema(), IDs: []string{"u12345678901234"}})
	if err != nil || len(again) != 1 || !strings.HasPrefix(again[0].String("password"), "$argon2id$") {
		t.Errorf("hash after sign-in: %v %v", again, err)
	}
	signIn(t, app, "users", "carol@pb.example", pbUserPass)
}

func TestCopyRefusesUnknownFieldType(t *testing.T) {
	ctx := context.Background()
	dir := newPBDir(t)
	db, err := sql.Open("sqlite", filepath.Join(dir, "data.db"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`UPDATE _collections SET fields = ? WHERE name = 'notes'`, "["+pbIDField+`,{"id":"x1","name":"title","type":"hologram"}]`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	src, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, err = Copy(ctx, src, openPG(t), Options{})
	if err == nil || !strings.Contains(err.Error(), `"hologram"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestDecodeColumn(t *testing.T) {
	multi := &strata.Field{Type: strata.FieldSelect, MaxSelect: 3}
	for _, c := range []struct {
		f    *strata.Field
		in   any
		want any
	}{
		{&strata.Field{Type: strata.FieldNumber}, "12.5", 12.5},
		{&strata.Field{Type: strata.FieldNumber}, "junk", 0.0},
		{&strata.Field{Type: strata.FieldNumber}, nil, 0.0},
		{&strata.Field{Type: strata.FieldBool}, "TRUE", true},
		{&strata.Field{Type: strata.FieldBool}, int64(0), false},
		{&strata.Field{Type: strata.FieldText}, nil, ""},
		{&strata.Field{Type: strata.FieldText}, int64(42), "42"},
		{&strata.Field{Type: strata.FieldText}, []byte("bytes"), "bytes"},
		{multi, `["a","b"]`, []string{"a", "b"}},
		{multi, "a", []string{"a"}},
		{multi, "[broken", []string{}},
		{multi, nil, []string{}},
		{&strata.Field{Type: strata.FieldJSON}, nil, nil},
		{&strata.Field{Type: strata.FieldJSON}, `{"a" : 1}`, json.RawMessage(`{"a" : 1}`)},
		{&strata.Field{Type: strata.FieldJSON}, `{bad`, `{bad`},
		{&strata.Field{Type: strata.FieldJSON}, int64(7), json.RawMessage(`7`)},
	} {
		if got := decodeColumn(c.f, c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s %#v: got %#v, want %#v", c.f.Type, c.in, got, c.want)
		}
	}
}

func TestChecksumIsOrderIndependent(t *testing.T) {
	c := &strata.Collection{Fields: []*strata.Field{{Name: "id", Type: strata.FieldText}, {Name: "n", Type: strata.FieldNumber}}}
	recs := []*strata.Record{
		{Collection: c, Data: map[string]any{"id": "a", "n": 1.0}},
		{Collection: c, Data: map[string]any{"id": "b", "n": 2.0}},
		{Collection: c, Data: map[string]any{"id": "c", "n": 3.0}},
	}
	var x, y Checksum
	for _, r := range recs {
		if err := x.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{2, 0, 1} {
		y.Add(recs[i])
	}
	if x != y {
		t.Fatal("order changed the checksum")
	}
	var z Checksum
	z.Add(recs[0])
	z.Add(recs[0])
	z.Add(recs[0])
	if z == x || z == (Checksum{}) {
		t.Fatal("duplicates must not cancel out")
	}
	recs[1].Data["n"] = 2.5
	var w Checksum
	for _, r := range recs {
		w.Add(r)
	}
	if w == x {
		t.Fatal("a changed value kept the checksum")
	}
	if !errors.Is(fmt.Errorf("%w: x", ErrMismatch), ErrMismatch) {
		t.Fatal("ErrMismatch does not wrap")
	}
}
