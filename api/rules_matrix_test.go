package api_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// The rules security matrix: for every action and every caller (guest,
// owner, other user, superuser) the exact status and the exact set of ids
// returned. Nothing may leak through expand, batch or a probing filter.

const ownerRule = `owner = @request.auth.id`

// rulesFixture holds the ids of the matrix's records.
type rulesFixture struct {
	ts         *testServer
	tokens     map[string]string
	alice, bob string // user ids (owner / other)
	n1, n2     string // notes: owner-only, alice / bob
	a1, a2     string // articles: public read, alice / bob; a1 → n1, a2 → n2
	t1, t2     string // teams: members alice / bob
	p1, p2     string // posts of t1 / t2
	c1, c2     string // comments on p1 (alice) / p2 (bob)
}

func newRulesFixture(t *testing.T) *rulesFixture {
	t.Helper()
	ts := newTestServer(t)
	f := &rulesFixture{ts: ts}
	var aliceTok, bobTok string
	f.alice, aliceTok = ts.user("alice@strata.test")
	f.bob, bobTok = ts.user("bob@strata.test")
	f.tokens = map[string]string{"owner": aliceTok, "other": bobTok, "su": ts.suToken}

	ts.collection(fmt.Sprintf(`{"name":"notes","listRule":%[1]q,"viewRule":%[1]q,"createRule":%[1]q,"updateRule":%[1]q,"deleteRule":%[1]q,
		"fields":[{"name":"owner","type":"relation","collectionId":"users","maxSelect":1},{"name":"title","type":"text"}]}`, ownerRule))
	ts.collection(fmt.Sprintf(`{"name":"articles","listRule":"","viewRule":"","createRule":%[1]q,"updateRule":%[1]q,"deleteRule":%[1]q,
		"fields":[{"name":"owner","type":"relation","collectionId":"users","maxSelect":1},{"name":"title","type":"text"},
		{"name":"note","type":"relation","collectionId":"notes","maxSelect":1}]}`, ownerRule))
	const member = `members.id ?= @request.auth.id`
	ts.collection(fmt.Sprintf(`{"name":"teams","listRule":%[1]q,"viewRule":%[1]q,"createRule":null,"updateRule":null,"deleteRule":null,
		"fields":[{"name":"name","type":"text"},{"name":"members","type":"relation","collectionId":"users","maxSelect":10}]}`, member))
	const teamMember = `team.members.id ?= @request.auth.id`
	ts.collection(fmt.Sprintf(`{"name":"posts","listRule":%[1]q,"viewRule":%[1]q,"createRule":%[1]q,"updateRule":%[1]q,"deleteRule":%[1]q,
		"fields":[{"name":"team","type":"relation","collectionId":"teams","maxSelect":1},{"name":"title","type":"text"}]}`, teamMember))
	const postMember = `post.team.members.id ?= @request.auth.id`
	ts.collection(fmt.Sprintf(`{"name":"comments","listRule":%[1]q,"viewRule":%[1]q,"createRule":%[1]q,"updateRule":%[2]q,"deleteRule":%[2]q,
		"fields":[{"name":"post","type":"relation","collectionId":"posts","maxSelect":1},{"name":"author","type":"relation","collectionId":"users","maxSelect":1},
		{"name":"body","type":"text"}]}`, postMember, `author = @request.auth.id && `+postMember))

	f.n1 = ts.record("notes", map[string]any{"owner": f.alice, "title": "alice-secret"})
	f.n2 = ts.record("notes", map[string]any{"owner": f.bob, "title": "bob-secret"})
	f.a1 = ts.record("articles", map[string]any{"owner": f.alice, "title": "by alice", "note": f.n1})
	f.a2 = ts.record("articles", map[string]any{"owner": f.bob, "title": "by bob", "note": f.n2})
	f.t1 = ts.record("teams", map[string]any{"name": "team-a", "members": []string{f.alice}})
	f.t2 = ts.record("teams", map[string]any{"name": "team-b", "members": []string{f.bob}})
	f.p1 = ts.record("posts", map[string]any{"team": f.t1, "title": "p-alice"})
	f.p2 = ts.record("posts", map[string]any{"team": f.t2, "title": "p-bob"})
	f.c1 = ts.record("comments", map[string]any{"post": f.p1, "author": f.alice, "body": "c-alice"})
	f.c2 = ts.record("comments", map[string]any{"post": f.p2, "author": f.bob, "body": "c-bob"})
	return f
}

// outcome is what one caller must get: the status and, for 200 answers,
// the exact ids (of "items" for lists, of the record for views).
type outcome struct {
	status int
	ids    []string
}

func ok(ids ...string) outcome { return outcome{status: 200, ids: append([]string{}, ids...)} }

var callers = []string{"guest", "owner", "other", "su"}

// check runs one request per caller and asserts each outcome.
func (f *rulesFixture) check(t *testing.T, name, method, url string, body any, want map[string]outcome) {
	t.Helper()
	for _, who := range callers {
		w, found := want[who]
		if !found {
			t.Fatalf("%s: no outcome for %s", name, who)
		}
		t.Run(name+"/"+who, func(t *testing.T) {
			sub := *f.ts
			sub.tb = t
			res := sub.do(method, url, f.tokens[who], body)
			res.status(w.status)
			if w.status >= 400 {
				res.expect("status", w.status)
				return
			}
			if w.ids == nil {
				return
			}
			if res.get("items") != nil {
				res.expectIDs("items", w.ids...)
				return
			}
			got := []string{}
			if id, _ := res.get("id").(string); id != "" {
				got = append(got, id)
			}
			if strings.Join(got, ",") != strings.Join(w.ids, ",") {
				t.Fatalf("%s: id %v, want %v", res.desc, got, w.ids)
			}
		})
	}
}

func TestRulesMatrixReads(t *testing.T) {
	t.Parallel()
	f := newRulesFixture(t)
	nf := outcome{status: 404}
	list := func(coll string) string { return "/api/collections/" + coll + "/records?perPage=100" }
	view := func(coll, id string) string { return "/api/collections/" + coll + "/records/" + id }

	// Owner-only.
	f.check(t, "notes list", "GET", list("notes"), nil, map[string]outcome{
		"guest": ok(), "owner": ok(f.n1), "other": ok(f.n2), "su": ok(f.n1, f.n2)})
	f.check(t, "notes view", "GET", view("notes", f.n1), nil, map[string]outcome{
		"guest": nf, "owner": ok(f.n1), "other": nf, "su": ok(f.n1)})
	// Public read.
	f.check(t, "articles list", "GET", list("articles"), nil, map[string]outcome{
		"guest": ok(f.a1, f.a2), "owner": ok(f.a1, f.a2), "other": ok(f.a1, f.a2), "su": ok(f.a1, f.a2)})
	f.check(t, "articles view", "GET", view("articles", f.a2), nil, map[string]outcome{
		"guest": ok(f.a2), "owner": ok(f.a2), "other": ok(f.a2), "su": ok(f.a2)})
	// Relation-based.
	f.check(t, "teams list", "GET", list("teams"), nil, map[string]outcome{
		"guest": ok(), "owner": ok(f.t1), "other": ok(f.t2), "su": ok(f.t1, f.t2)})
	f.check(t, "posts list", "GET", list("posts"), nil, map[string]outcome{
		"guest": ok(), "owner": ok(f.p1), "other": ok(f.p2), "su": ok(f.p1, f.p2)})
	f.check(t, "posts view other team", "GET", view("posts", f.p2), nil, map[string]outcome{
		"guest": nf, "owner": nf, "other": ok(f.p2), "su": ok(f.p2)})
	f.check(t, "comments list", "GET", list("comments"), nil, map[string]outcome{
		"guest": ok(), "owner": ok(f.c1), "other": ok(f.c2), "su": ok(f.c1, f.c2)})
	f.check(t, "comments view", "GET", view("comments", f.c1), nil, map[string]outcome{
		"guest": nf, "owner": ok(f.c1), "other": nf, "su": ok(f.c1)})
	// users: id = @request.auth.id.
	f.check(t, "users list", "GET", list("users"), nil, map[string]outcome{
		"guest": ok(), "owner": ok(f.alice), "other": ok(f.bob), "su": ok(f.alice, f.bob)})
	f.check(t, "users view", "GET", view("users", f.bob), nil, map[string]outcome{
		"guest": nf, "owner": nf, "other": ok(f.bob), "su": ok(f.bob)})
	// Superuser-only collection.
	f.check(t, "superusers list", "GET", list("_superusers"), nil, map[string]outcome{
		"guest": {status: 403}, "owner": {status: 403}, "other": {status: 403}, "su": {status: 200}})

	// Probing filters: the rule is ANDed, and traversal into a related
	// collection applies that collection's listRule to the joined rows.
	probe := func(coll, filter string) string { return list(coll) + "&filter=" + q(filter) }
	f.check(t, "filter probes others' notes", "GET", probe("notes", `owner = "`+f.bob+`"`), nil, map[string]outcome{
		"guest": ok(), "owner": ok(), "other": ok(f.n2), "su": ok(f.n2)})
	f.check(t, "filter through private relation", "GET", probe("articles", `note.title ~ "bob-secret"`), nil, map[string]outcome{
		"guest": ok(), "owner": ok(), "other": ok(f.a2), "su": ok(f.a2)})
	f.check(t, "filter negated through private relation", "GET", probe("articles", `note.title !~ "alice"`), nil, map[string]outcome{
		"guest": ok(), "owner": ok(), "other": ok(f.a2), "su": ok(f.a2)})
	f.check(t, "filter on related user's name", "GET", probe("articles", `owner.email ~ "bob"`), nil, map[string]outcome{
		"guest": ok(), "owner": ok(), "other": ok(), "su": ok(f.a2)})
	f.check(t, "filter back-relation into private", "GET", probe("articles", `owner.notes_via_owner.title ?~ "bob-secret"`), nil, map[string]outcome{
		"guest": ok(), "owner": ok(), "other": ok(f.a2), "su": ok(f.a2)})
	f.check(t, "filter back-relation from users", "GET", probe("users", `notes_via_owner.title ?~ "secret"`), nil, map[string]outcome{
		"guest": ok(), "owner": ok(f.alice), "other": ok(f.bob), "su": ok(f.alice, f.bob)})
	f.check(t, "filter invalid back-relation", "GET", probe("articles", `notes_via_owner.title ?~ "secret"`), nil, map[string]outcome{
		"guest": {status: 400}, "owner": {status: 400}, "other": {status: 400}, "su": {status: 400}})
	f.check(t, "filter team membership of other team", "GET", probe("comments", `post.team.name = "team-b"`), nil, map[string]outcome{
		"guest": ok(), "owner": ok(), "other": ok(f.c2), "su": ok(f.c2)})
	f.check(t, "filter hidden field of related user", "GET", probe("articles", `owner.tokenKey != ""`), nil, map[string]outcome{
		"guest": {status: 400}, "owner": {status: 400}, "other": {status: 400}, "su": ok(f.a1, f.a2)})
	f.check(t, "filter hidden password", "GET", probe("users", `password != ""`), nil, map[string]outcome{
		"guest": {status: 400}, "owner": {status: 400}, "other": {status: 400}, "su": ok(f.alice, f.bob)})
	f.check(t, "filter @collection", "GET", probe("articles", `@collection.notes.title ?~ "bob"`), nil, map[string]outcome{
		"guest": {status: 403}, "owner": {status: 403}, "other": {status: 403}, "su": ok(f.a1, f.a2)})
	f.check(t, "sort by private relation", "GET", list("articles")+"&sort=note.title", nil, map[string]outcome{
		"guest": ok(f.a1, f.a2), "owner": ok(f.a1, f.a2), "other": ok(f.a1, f.a2), "su": ok(f.a1, f.a2)})
}

// expanded returns the ids found at expand.<key> of each list item, keyed
// by item id.
func expanded(r *response, key string) map[string][]string {
	out := map[string][]string{}
	items, _ := r.get("items").([]any)
	for _, it := range items {
		m, _ := it.(map[string]any)
		id, _ := m["id"].(string)
		exp, _ := m["expand"].(map[string]any)
		switch x := exp[key].(type) {
		case map[string]any:
			out[id] = append(out[id], x["id"].(string))
		case []any:
			for _, e := range x {
				out[id] = append(out[id], e.(map[string]any)["id"].(string))
			}
		}
		sort.Strings(out[id])
	}
	return out
}

func TestRulesMatrixExpand(t *testing.T) {
	t.Parallel()
	f := newRulesFixture(t)
	type want map[string][]string
	cases := []struct {
		name, url, key string
		per            map[string]want
	}{
		{"public articles expand private notes", "/api/collections/articles/records?expand=note", "note", map[string]want{
			"guest": {}, "owner": {f.a1: {f.n1}}, "other": {f.a2: {f.n2}}, "su": {f.a1: {f.n1}, f.a2: {f.n2}}}},
		{"public articles expand users", "/api/collections/articles/records?expand=owner", "owner", map[string]want{
			"guest": {}, "owner": {f.a1: {f.alice}}, "other": {f.a2: {f.bob}}, "su": {f.a1: {f.alice}, f.a2: {f.bob}}}},
		{"users expand back-relation to notes", "/api/collections/users/records?expand=notes_via_owner", "notes_via_owner", map[string]want{
			"guest": {}, "owner": {f.alice: {f.n1}}, "other": {f.bob: {f.n2}}, "su": {f.alice: {f.n1}, f.bob: {f.n2}}}},
		{"teams expand posts back-relation", "/api/collections/teams/records?expand=posts_via_team", "posts_via_team", map[string]want{
			"guest": {}, "owner": {f.t1: {f.p1}}, "other": {f.t2: {f.p2}}, "su": {f.t1: {f.p1}, f.t2: {f.p2}}}},
		{"articles expand owner back to comments", "/api/collections/articles/records?expand=owner.comments_via_author", "owner", map[string]want{
			"guest": {}, "owner": {f.a1: {f.alice}}, "other": {f.a2: {f.bob}}, "su": {f.a1: {f.alice}, f.a2: {f.bob}}}},
	}
	for _, c := range cases {
		for _, who := range callers {
			t.Run(c.name+"/"+who, func(t *testing.T) {
				sub := *f.ts
				sub.tb = t
				res := sub.do("GET", c.url, f.tokens[who], nil).status(200)
				got := expanded(res, c.key)
				w := c.per[who]
				if fmt.Sprint(got) != fmt.Sprint(map[string][]string(w)) {
					t.Fatalf("%s as %s: expanded %s = %v, want %v; body %s", c.url, who, c.key, got, w, res.body)
				}
			})
		}
	}
	// Nested: a user sees only the comments of their own team's posts,
	// even through another user's record.
	res := f.ts.do("GET", "/api/collections/articles/records/"+f.a1+"?expand=owner.comments_via_author", f.tokens["owner"], nil).status(200)
	res.expect("expand.owner.expand.comments_via_author.0.id", f.c1).expect("expand.owner.expand.comments_via_author.1", nil)
	res = f.ts.do("GET", "/api/collections/articles/records/"+f.a1+"?expand=note,owner", f.tokens["other"], nil).status(200)
	if res.get("expand.note") != nil || res.get("expand.owner") != nil {
		t.Fatalf("view expand leaked to another user: %s", res.body)
	}
	// Auth records expanded by another user never show a hidden email.
	res = f.ts.do("GET", "/api/collections/comments/records/"+f.c1+"?expand=author", f.tokens["owner"], nil).status(200)
	res.expect("expand.author.id", f.alice).expect("expand.author.email", "alice@strata.test")
	if strings.Contains(string(f.ts.do("GET", "/api/collections/articles/records?expand=owner", "", nil).body), "@strata.test") {
		t.Fatal("guest saw an email through expand")
	}
}

func TestRulesMatrixWrites(t *testing.T) {
	t.Parallel()
	f := newRulesFixture(t)
	ts := f.ts
	const createFailed = "Failed to create record."
	for _, who := range callers {
		t.Run("notes/"+who, func(t *testing.T) {
			sub := *ts
			sub.tb = t
			tok := f.tokens[who]
			isOwner := who == "owner" || who == "su"
			// create for alice
			res := sub.do("POST", "/api/collections/notes/records", tok, map[string]any{"owner": f.alice, "title": "new"})
			if isOwner {
				res.status(200)
			} else {
				res.expectError(400, createFailed, map[string]any{})
			}
			// update and delete alice's note
			n := sub.record("notes", map[string]any{"owner": f.alice, "title": "victim"})
			res = sub.do("PATCH", "/api/collections/notes/records/"+n, tok, map[string]any{"title": "pwned"})
			if isOwner {
				res.status(200).expect("title", "pwned")
			} else {
				res.expectError(404, "The requested resource wasn't found.", map[string]any{})
				sub.su("GET", "/api/collections/notes/records/"+n, nil).status(200).expect("title", "victim")
			}
			// moving a foreign note to oneself is not possible either
			if who == "other" {
				sub.do("PATCH", "/api/collections/notes/records/"+n, tok, map[string]any{"owner": f.bob}).status(404)
			}
			res = sub.do("DELETE", "/api/collections/notes/records/"+n, tok, nil)
			if isOwner {
				res.status(204)
			} else {
				res.status(404)
				sub.su("GET", "/api/collections/notes/records/"+n, nil).status(200)
			}
		})
		t.Run("articles/"+who, func(t *testing.T) {
			sub := *ts
			sub.tb = t
			tok := f.tokens[who]
			isOwner := who == "owner" || who == "su"
			res := sub.do("POST", "/api/collections/articles/records", tok, map[string]any{"owner": f.alice, "title": "x"})
			if isOwner {
				res.status(200)
			} else {
				res.expectError(400, createFailed, map[string]any{})
			}
			res = sub.do("PATCH", "/api/collections/articles/records/"+f.a1, tok, map[string]any{"title": "edited by " + who})
			if isOwner {
				res.status(200)
			} else {
				res.status(404)
			}
			a := sub.record("articles", map[string]any{"owner": f.alice})
			res = sub.do("DELETE", "/api/collections/articles/records/"+a, tok, nil)
			if isOwner {
				res.status(204)
			} else {
				res.status(404)
			}
		})
		t.Run("posts and comments/"+who, func(t *testing.T) {
			sub := *ts
			sub.tb = t
			tok := f.tokens[who]
			member := who == "owner" || who == "su" // of t1
			res := sub.do("POST", "/api/collections/posts/records", tok, map[string]any{"team": f.t1, "title": "x"})
			if member {
				res.status(200)
			} else {
				res.expectError(400, createFailed, map[string]any{})
			}
			res = sub.do("POST", "/api/collections/comments/records", tok, map[string]any{"post": f.p1, "author": f.alice, "body": "x"})
			if member {
				res.status(200)
			} else {
				res.status(400)
			}
			res = sub.do("PATCH", "/api/collections/comments/records/"+f.c1, tok, map[string]any{"body": "edit"})
			if member {
				res.status(200)
			} else {
				res.status(404)
			}
			res = sub.do("PATCH", "/api/collections/posts/records/"+f.p1, tok, map[string]any{"team": f.t2})
			if who == "su" {
				res.status(200)
				sub.su("PATCH", "/api/collections/posts/records/"+f.p1, map[string]any{"team": f.t1}).status(200)
			} else if member {
				res.status(200) // updateRule sees the stored record (PocketBase semantics)
				sub.su("PATCH", "/api/collections/posts/records/"+f.p1, map[string]any{"team": f.t1}).status(200)
			} else {
				res.status(404)
			}
		})
	}
}

func TestRulesMatrixBatch(t *testing.T) {
	t.Parallel()
	f := newRulesFixture(t)
	ts := f.ts
	ts.su("PATCH", "/api/settings", map[string]any{"batch": map[string]any{"enabled": true}}).status(200)
	type item = map[string]any
	batch := func(t *testing.T, who string, items ...item) *response {
		sub := *ts
		sub.tb = t
		return sub.do("POST", "/api/batch", f.tokens[who], map[string]any{"requests": items})
	}
	countNotes := func(t *testing.T) float64 {
		sub := *ts
		sub.tb = t
		return sub.su("GET", "/api/collections/notes/records?perPage=1", nil).status(200).get("totalItems").(float64)
	}
	for _, who := range []string{"guest", "other"} {
		t.Run("foreign writes fail/"+who, func(t *testing.T) {
			before := countNotes(t)
			cases := []struct {
				item   item
				status int
			}{
				{item{"method": "POST", "url": "/api/collections/notes/records", "body": item{"owner": f.alice}}, 400},
				{item{"method": "PATCH", "url": "/api/collections/notes/records/" + f.n1, "body": item{"title": "x"}}, 404},
				{item{"method": "DELETE", "url": "/api/collections/notes/records/" + f.n1}, 404},
				{item{"method": "PUT", "url": "/api/collections/notes/records", "body": item{"id": f.n1, "title": "overwritten"}}, 404},
				{item{"method": "PATCH", "url": "/api/collections/posts/records/" + f.p1, "body": item{"title": "x"}}, 404},
			}
			for _, c := range cases {
				own := item{"method": "POST", "url": "/api/collections/articles/records", "body": item{"owner": f.bob, "title": "ok"}}
				res := batch(t, who, own, c.item)
				res.status(400).expect("message", "Batch transaction failed.")
				if who == "other" {
					res.expect("data.requests.1.code", "batch_request_failed").expect("data.requests.1.response.status", c.status)
				} else {
					// The guest fails at the first item already.
					res.expect("data.requests.0.response.status", 400)
				}
			}
			if after := countNotes(t); after != before {
				t.Fatalf("notes %v → %v after failed batches", before, after)
			}
			res := ts.su("GET", "/api/collections/notes/records/"+f.n1, nil).status(200)
			res.expect("title", "alice-secret")
			ts.su("GET", "/api/collections/articles/records?filter="+q(`title = "ok"`), nil).status(200).expect("totalItems", 0)
		})
	}
	t.Run("own writes and expand", func(t *testing.T) {
		res := batch(t, "other",
			item{"method": "POST", "url": "/api/collections/notes/records?expand=owner", "body": item{"owner": f.bob, "title": "mine"}},
			item{"method": "POST", "url": "/api/collections/articles/records?expand=note&fields=id,expand", "body": item{"owner": f.bob, "note": f.n1}},
		)
		// Linking someone else's note is allowed by the rules here, but the
		// expand must not reveal it.
		res.status(200).expect("0.status", 200).expect("0.body.expand.owner.id", f.bob).expect("1.status", 200)
		if res.get("1.body.expand.note") != nil {
			t.Fatalf("batch expand leaked a private note: %s", res.body)
		}
	})
}
