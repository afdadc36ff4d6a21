package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/api"
	"github.com/strata-run/strata/cache"
	"github.com/strata-run/strata/service"
	"github.com/strata-run/strata/store/sqlite"
)

const (
	suEmail = "root@strata.test"
	suPass  = "root-pass-123"
)

// testServer is a Strata node on a temp SQLite file with a superuser.
type testServer struct {
	tb      testing.TB
	app     *service.App
	srv     *httptest.Server
	suToken string
}

func newTestServer(tb testing.TB) *testServer {
	tb.Helper()
	return nodeOn(tb, openSQLite(tb, filepath.Join(tb.TempDir(), "data.db")), true, api.Options{})
}

// openSQLite opens a SQLite store at path, closed in Cleanup.
func openSQLite(tb testing.TB, path string) strata.Store {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// nodeOn starts a node on st (an App with its own record cache, and an HTTP
// server with opts) signed in as the superuser, whom it creates first when
// create is set (the first node of a database).
func nodeOn(tb testing.TB, st strata.Store, create bool, opts api.Options) *testServer {
	tb.Helper()
	ctx := context.Background()
	app, err := service.New(ctx, service.Config{Store: st, Cache: cache.New(cache.Options{})})
	if err != nil {
		tb.Fatal(err)
	}
	if create {
		if _, err := app.UpsertSuperuser(ctx, suEmail, suPass); err != nil {
			tb.Fatal(err)
		}
	}
	srv := httptest.NewServer(api.New(app, opts))
	tb.Cleanup(srv.Close)
	ts := &testServer{tb: tb, app: app, srv: srv}
	ts.suToken = ts.do("POST", "/api/collections/_superusers/auth-with-password", "", map[string]any{
		"identity": suEmail, "password": suPass}).status(200).json()["token"].(string)
	return ts
}

// response is a finished request with assertion helpers.
type response struct {
	tb   testing.TB
	code int
	body []byte
	hdr  http.Header
	desc string
}

// do sends body (nil, a string sent as-is, or a value encoded as JSON).
func (ts *testServer) do(method, path, token string, body any) *response {
	ts.tb.Helper()
	var raw []byte
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		raw, ct = []byte(b), "application/json"
	case []byte:
		raw, ct = b, "application/json"
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			ts.tb.Fatal(err)
		}
		ct = "application/json"
	}
	return ts.send(method, path, token, ct, raw)
}

func (ts *testServer) su(method, path string, body any) *response {
	ts.tb.Helper()
	return ts.do(method, path, ts.suToken, body)
}

func (r *response) status(want int) *response {
	r.tb.Helper()
	if r.code != want {
		r.tb.Fatalf("%s: status %d, want %d; body %s", r.desc, r.code, want, r.body)
	}
	return r
}

func (r *response) json() map[string]any {
	r.tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		r.tb.Fatalf("%s: body is not a JSON object: %v: %s", r.desc, err, r.body)
	}
	return m
}

// get walks a dotted path ("data.title.code", "items.0.id") into the body.
func (r *response) get(path string) any {
	r.tb.Helper()
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		r.tb.Fatalf("%s: bad JSON: %s", r.desc, r.body)
	}
	for _, part := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[part]
		case []any:
			i := -1
			for j := range x {
				if part == itoa(j) {
					i = j
				}
			}
			if i < 0 {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func (r *response) expect(path string, want any) *response {
	r.tb.Helper()
	got := r.get(path)
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if string(gb) != string(wb) {
		r.tb.Fatalf("%s: %s = %s, want %s; body %s", r.desc, path, gb, wb, r.body)
	}
	return r
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// send is do with an explicit Content-Type and raw body bytes.
func (ts *testServer) send(method, path, token, contentType string, body []byte) *response {
	ts.tb.Helper()
	req, err := http.NewRequest(method, ts.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		ts.tb.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.tb.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return &response{tb: ts.tb, code: res.StatusCode, body: raw, hdr: res.Header, desc: method + " " + path}
}

// collection creates a collection from JSON as the superuser and returns
// its id.
func (ts *testServer) collection(def string) string {
	ts.tb.Helper()
	return ts.su("POST", "/api/collections", def).status(200).get("id").(string)
}

// record creates a record as the superuser and returns its id.
func (ts *testServer) record(coll string, body map[string]any) string {
	ts.tb.Helper()
	return ts.su("POST", "/api/collections/"+coll+"/records", body).status(200).get("id").(string)
}

// user creates a users record and signs it in, returning id and token.
func (ts *testServer) user(email string) (id, token string) {
	ts.tb.Helper()
	const pass = "user-pass-123"
	id = ts.do("POST", "/api/collections/users/records", "", map[string]any{
		"email": email, "password": pass, "passwordConfirm": pass}).status(200).get("id").(string)
	token = ts.do("POST", "/api/collections/users/auth-with-password", "", map[string]any{
		"identity": email, "password": pass}).status(200).get("token").(string)
	return id, token
}

// expectError asserts PocketBase's error shape: status, message and, when
// data is non-nil, the exact data object.
func (r *response) expectError(status int, message string, data any) *response {
	r.tb.Helper()
	r.status(status)
	r.expect("status", status)
	if message != "" {
		r.expect("message", message)
	}
	if data != nil {
		r.expect("data", data)
	}
	return r
}

// scenario is one HTTP exchange in PocketBase's ApiScenario style.
type scenario struct {
	name   string
	method string
	url    string
	body   any
	auth   string // key into the token table: "", "user", "other", "su"
	status int
	expect map[string]any // dotted path → exact JSON value
	absent []string       // dotted paths that must be missing
}

// run executes each scenario as a subtest against ts; tokens maps the auth
// keys to tokens.
func runScenarios(t *testing.T, ts *testServer, tokens map[string]string, list []scenario) {
	t.Helper()
	for _, sc := range list {
		t.Run(sc.name, func(t *testing.T) {
			sub := *ts
			sub.tb = t
			res := sub.do(sc.method, sc.url, tokens[sc.auth], sc.body)
			res.status(sc.status)
			for path, want := range sc.expect {
				res.expect(path, want)
			}
			for _, path := range sc.absent {
				if res.get(path) != nil {
					t.Fatalf("%s: %s present; body %s", res.desc, path, res.body)
				}
			}
		})
	}
}

// q escapes a query value.
func q(s string) string { return url.QueryEscape(s) }

// ids returns the sorted "id" values of the objects at path (a list).
func (r *response) ids(path string) []string {
	r.tb.Helper()
	list, ok := r.get(path).([]any)
	if !ok {
		r.tb.Fatalf("%s: %s is not a list; body %s", r.desc, path, r.body)
	}
	out := make([]string, 0, len(list))
	for _, it := range list {
		m, _ := it.(map[string]any)
		id, _ := m["id"].(string)
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// expectIDs asserts the exact set of ids in the list at path.
func (r *response) expectIDs(path string, want ...string) *response {
	r.tb.Helper()
	got := r.ids(path)
	w := append([]string{}, want...)
	sort.Strings(w)
	if strings.Join(got, ",") != strings.Join(w, ",") {
		r.tb.Fatalf("%s: ids at %s = %v, want %v; body %s", r.desc, path, got, w, r.body)
	}
	return r
}
