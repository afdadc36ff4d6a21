package api_test

import (
	"testing"
)

// idFieldJSON is the default id field as the dashboard sends it, so
// field error indexes match the submitted list.
const idFieldJSON = `{"name":"id","type":"text","system":true,"primaryKey":true,"required":true,"min":15,"max":15,"pattern":"^[a-z0-9]+$","autogeneratePattern":"[a-z0-9]{15}"}`

const postsDef = `{"name":"posts","fields":[
	{"name":"title","type":"text","required":true,"max":20},
	{"name":"views","type":"number"},
	{"name":"slug","type":"text"}],
	"indexes":["CREATE UNIQUE INDEX idx_posts_slug ON posts (slug) WHERE slug != ''"],
	"listRule":"","viewRule":""}`

func TestHealth(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	_, userTok := ts.user("health@strata.test")
	runScenarios(t, ts, map[string]string{"su": ts.suToken, "user": userTok}, []scenario{
		{name: "guest", method: "GET", url: "/api/health", status: 200,
			expect: map[string]any{"message": "API is healthy.", "code": 200, "data": map[string]any{}}},
		{name: "user sees no details", method: "GET", url: "/api/health", auth: "user", status: 200,
			expect: map[string]any{"data": map[string]any{}}},
		{name: "superuser details", method: "GET", url: "/api/health", auth: "su", status: 200,
			expect: map[string]any{"data.canBackup": false, "data.realIP": "127.0.0.1", "data.possibleProxyHeader": ""}},
		{name: "fields picker", method: "GET", url: "/api/health?fields=code", status: 200,
			expect: map[string]any{"code": 200}, absent: []string{"message"}},
	})
	res := ts.do("HEAD", "/api/health", "", nil)
	res.status(200)
}

func TestCollectionsAccess(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	_, userTok := ts.user("coll-access@strata.test")
	toks := map[string]string{"su": ts.suToken, "user": userTok, "bad": "not-a-jwt"}
	const needAuth = "The request requires valid record authorization token."
	const notAllowed = "The authorized record is not allowed to perform this action."
	routes := []struct{ method, url string }{
		{"GET", "/api/collections"},
		{"POST", "/api/collections"},
		{"PUT", "/api/collections/import"},
		{"GET", "/api/collections/meta/scaffolds"},
		{"GET", "/api/collections/users"},
		{"PATCH", "/api/collections/users"},
		{"DELETE", "/api/collections/users"},
		{"DELETE", "/api/collections/users/truncate"},
	}
	var list []scenario
	for _, r := range routes {
		list = append(list,
			scenario{name: r.method + " " + r.url + " guest", method: r.method, url: r.url, status: 401,
				expect: map[string]any{"message": needAuth, "data": map[string]any{}}},
			scenario{name: r.method + " " + r.url + " invalid token", method: r.method, url: r.url, auth: "bad", status: 401,
				expect: map[string]any{"message": needAuth}},
			scenario{name: r.method + " " + r.url + " user", method: r.method, url: r.url, auth: "user", status: 403,
				expect: map[string]any{"message": notAllowed, "data": map[string]any{}}},
		)
	}
	runScenarios(t, ts, toks, list)
}

func TestCollectionsCRUD(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	toks := map[string]string{"su": ts.suToken}
	id := ts.collection(postsDef)
	if id != "pbc_1125843985" {
		t.Fatalf("posts id = %q, want pbc_1125843985 (pbc_ + CRC32(type+name))", id)
	}
	runScenarios(t, ts, toks, []scenario{
		{name: "view by name", method: "GET", url: "/api/collections/posts", auth: "su", status: 200,
			expect: map[string]any{"id": id, "name": "posts", "type": "base", "system": false,
				"fields.0.name": "id", "fields.0.id": "text3208210256", "fields.0.primaryKey": true,
				"fields.1.name": "title", "fields.1.id": "text724990059", "listRule": "", "createRule": nil}},
		{name: "view by id", method: "GET", url: "/api/collections/" + id, auth: "su", status: 200,
			expect: map[string]any{"name": "posts"}},
		{name: "view with fields", method: "GET", url: "/api/collections/posts?fields=name,type", auth: "su", status: 200,
			expect: map[string]any{"name": "posts", "type": "base"}, absent: []string{"id", "fields"}},
		{name: "view missing", method: "GET", url: "/api/collections/nope", auth: "su", status: 404,
			expect: map[string]any{"status": 404, "message": "The requested resource wasn't found.", "data": map[string]any{}}},
		{name: "list", method: "GET", url: "/api/collections?sort=name", auth: "su", status: 200,
			expect: map[string]any{"page": 1, "perPage": 30, "totalItems": 7, "totalPages": 1, "items.0.name": "_authOrigins",
				"items.1.name": "_externalAuths", "items.2.name": "_mfas", "items.3.name": "_otps", "items.4.name": "_superusers", "items.5.name": "posts", "items.6.name": "users"}},
		{name: "list desc", method: "GET", url: "/api/collections?sort=-name&perPage=1", auth: "su", status: 200,
			expect: map[string]any{"perPage": 1, "totalItems": 7, "totalPages": 7, "items.0.name": "users"}},
		{name: "list filter", method: "GET", url: "/api/collections?filter=" + q(`system = false && type = "base"`), auth: "su", status: 200,
			expect: map[string]any{"totalItems": 1, "items.0.name": "posts"}},
		{name: "list skipTotal", method: "GET", url: "/api/collections?skipTotal=1", auth: "su", status: 200,
			expect: map[string]any{"totalItems": -1, "totalPages": -1}},
		{name: "list fields per item", method: "GET", url: "/api/collections?fields=name&sort=name", auth: "su", status: 200,
			expect: map[string]any{"items.0": map[string]any{"name": "_authOrigins"}, "page": 1}},
		{name: "list bad filter", method: "GET", url: "/api/collections?filter=" + q("name ="), auth: "su", status: 400,
			expect: map[string]any{"message": "Something went wrong while processing your request.", "data": map[string]any{}}},
		{name: "list unknown filter field", method: "GET", url: "/api/collections?filter=" + q("listRule = ''"), auth: "su", status: 400,
			expect: map[string]any{"data": map[string]any{}}},
		{name: "list bad sort", method: "GET", url: "/api/collections?sort=fields", auth: "su", status: 400,
			expect: map[string]any{"message": "Something went wrong while processing your request.", "data": map[string]any{}}},
		{name: "list bad page", method: "GET", url: "/api/collections?page=x", auth: "su", status: 400,
			expect: map[string]any{"data": map[string]any{}}},
	})
}

func TestCollectionsCreateValidation(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.collection(postsDef)
	const failed = "Failed to create collection."
	runScenarios(t, ts, map[string]string{"su": ts.suToken}, []scenario{
		{name: "bad json", method: "POST", url: "/api/collections", body: `{"name":`, auth: "su", status: 400,
			expect: map[string]any{"data": map[string]any{}}},
		{name: "missing name", method: "POST", url: "/api/collections", body: `{"type":"base"}`, auth: "su", status: 400,
			expect: map[string]any{"message": failed, "data.name.code": "validation_required"}},
		{name: "bad name", method: "POST", url: "/api/collections", body: `{"name":"a b"}`, auth: "su", status: 400,
			expect: map[string]any{"message": failed, "data.name.code": "validation_match_invalid"}},
		{name: "via name", method: "POST", url: "/api/collections", body: `{"name":"a_via_b"}`, auth: "su", status: 400,
			expect: map[string]any{"data.name.code": "validation_invalid_name"}},
		{name: "duplicate name case-insensitive", method: "POST", url: "/api/collections", body: `{"name":"POSTS"}`, auth: "su", status: 400,
			expect: map[string]any{"data.name.code": "validation_collection_name_exists"}},
		{name: "bad type", method: "POST", url: "/api/collections", body: `{"name":"x1","type":"nope"}`, auth: "su", status: 400,
			expect: map[string]any{"data.type.code": "validation_in_invalid"}},
		{name: "bad field name", method: "POST", url: "/api/collections", auth: "su", status: 400,
			body:   `{"name":"x2","fields":[` + idFieldJSON + `,{"name":"ok","type":"text"},{"name":"bad name","type":"text"}]}`,
			expect: map[string]any{"message": failed, "data.fields.2.name.code": "validation_match_invalid"}},
		{name: "reserved field name", method: "POST", url: "/api/collections", auth: "su", status: 400,
			body:   `{"name":"x3","fields":[` + idFieldJSON + `,{"name":"expand","type":"text"}]}`,
			expect: map[string]any{"data.fields.1.name.code": "validation_not_in_invalid"}},
		{name: "duplicate field name", method: "POST", url: "/api/collections", auth: "su", status: 400,
			body:   `{"name":"x4","fields":[` + idFieldJSON + `,{"name":"a","type":"text"},{"name":"A","type":"number"}]}`,
			expect: map[string]any{"data.fields.2.name.code": "validation_duplicated_field_name"}},
		{name: "unknown field type", method: "POST", url: "/api/collections", auth: "su", status: 400,
			body:   `{"name":"x5","fields":[{"name":"a","type":"weird"}]}`,
			expect: map[string]any{"message": failed}},
		{name: "password field on base", method: "POST", url: "/api/collections", auth: "su", status: 400,
			body:   `{"name":"x6","fields":[` + idFieldJSON + `,{"name":"pw","type":"password"}]}`,
			expect: map[string]any{"data.fields.1.type.code": "validation_in_invalid"}},
		{name: "select without values", method: "POST", url: "/api/collections", auth: "su", status: 400,
			body:   `{"name":"x7","fields":[` + idFieldJSON + `,{"name":"s","type":"select"}]}`,
			expect: map[string]any{"data.fields.1.values.code": "validation_required"}},
		{name: "relation to missing collection", method: "POST", url: "/api/collections", auth: "su", status: 400,
			body:   `{"name":"x8","fields":[` + idFieldJSON + `,{"name":"r","type":"relation","collectionId":"nope"}]}`,
			expect: map[string]any{"data.fields.1.collectionId.code": "validation_missing_collection"}},
		{name: "rule does not compile", method: "POST", url: "/api/collections", auth: "su", status: 400,
			body:   `{"name":"x9","listRule":"missing = 1"}`,
			expect: map[string]any{"message": failed, "data.listRule.code": "validation_invalid_rule"}},
		{name: "bad index", method: "POST", url: "/api/collections", auth: "su", status: 400,
			body:   `{"name":"x10","indexes":["DROP TABLE users"]}`,
			expect: map[string]any{"message": failed}},
		{name: "manageRule empty", method: "POST", url: "/api/collections", auth: "su", status: 400,
			body:   `{"name":"x11","type":"auth","manageRule":""}`,
			expect: map[string]any{"data.manageRule.code": "validation_nil_or_not_empty_required"}},
		{name: "auth defaults", method: "POST", url: "/api/collections", auth: "su", status: 200,
			body: `{"name":"members","type":"auth"}`,
			expect: map[string]any{"type": "auth", "authRule": "", "manageRule": nil, "passwordAuth.enabled": true,
				"passwordAuth.identityFields": []string{"email"}, "authToken": map[string]any{"duration": 432000},
				"fields.1.name": "password", "fields.1.hidden": true}},
		{name: "base has no auth options", method: "POST", url: "/api/collections", auth: "su", status: 200,
			body:   `{"name":"plain"}`,
			expect: map[string]any{"type": "base", "listRule": nil, "fields.0.name": "id"},
			absent: []string{"authRule", "passwordAuth", "viewQuery"}},
	})
}

func TestCollectionsUpdate(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.collection(postsDef)
	rid := ts.record("posts", map[string]any{"title": "hello", "views": 3, "slug": "s1"})

	// PATCH semantics: absent keys stay.
	res := ts.su("PATCH", "/api/collections/posts", `{"viewRule":null}`).status(200)
	res.expect("listRule", "").expect("viewRule", nil).expect("fields.1.name", "title").expect("indexes.0", "CREATE UNIQUE INDEX idx_posts_slug ON `posts` (slug) WHERE slug != ''")

	// Rename a field (matched by id) and drop another: data of the others stays.
	c := ts.su("GET", "/api/collections/posts", nil).status(200)
	titleID := c.get("fields.1.id").(string)
	slugID := c.get("fields.3.id").(string)
	ts.su("PATCH", "/api/collections/posts", map[string]any{"fields": []any{
		map[string]any{"id": titleID, "name": "headline", "type": "text", "required": true, "max": 20},
		map[string]any{"id": slugID, "name": "slug", "type": "text"},
	}}).status(200).expect("fields.0.name", "id").expect("fields.1.name", "headline").expect("fields.2.name", "slug").expect("fields.3", nil)
	got := ts.su("GET", "/api/collections/posts/records/"+rid, nil).status(200)
	got.expect("headline", "hello").expect("slug", "s1")
	if got.get("views") != nil || got.get("title") != nil {
		t.Fatalf("dropped/renamed fields still present: %s", got.body)
	}

	// A field re-added without id gets the deterministic id: data of the
	// dropped column is gone.
	ts.su("PATCH", "/api/collections/posts", map[string]any{"fields": []any{
		map[string]any{"id": titleID, "name": "headline", "type": "text"},
		map[string]any{"id": slugID, "name": "slug", "type": "text"},
		map[string]any{"name": "views", "type": "number"},
	}}).status(200).expect("fields.3.id", "number300981383")
	ts.su("GET", "/api/collections/posts/records/"+rid, nil).status(200).expect("views", 0)

	runScenarios(t, ts, map[string]string{"su": ts.suToken}, []scenario{
		{name: "type change", method: "PATCH", url: "/api/collections/posts", body: `{"type":"auth"}`, auth: "su", status: 400,
			expect: map[string]any{"message": "Failed to update collection.", "data.type.code": "validation_collection_type_change"}},
		{name: "field type change", method: "PATCH", url: "/api/collections/posts", auth: "su", status: 400,
			body:   `{"fields":[` + idFieldJSON + `,{"id":"` + titleID + `","name":"headline","type":"number"}]}`,
			expect: map[string]any{"data.fields.1.type.code": "validation_field_type_change"}},
		{name: "system collection rename", method: "PATCH", url: "/api/collections/_superusers", body: `{"name":"admins"}`, auth: "su", status: 400,
			expect: map[string]any{"data.name.code": "validation_collection_system_name_change"}},
		{name: "system collection rules", method: "PATCH", url: "/api/collections/_superusers", body: `{"listRule":""}`, auth: "su", status: 400,
			expect: map[string]any{"data.listRule.code": "validation_collection_system_rule_change"}},
		{name: "unknown", method: "PATCH", url: "/api/collections/nope", body: `{}`, auth: "su", status: 404,
			expect: map[string]any{"data": map[string]any{}}},
		{name: "bad json", method: "PATCH", url: "/api/collections/posts", body: `[1,2]`, auth: "su", status: 400,
			expect: map[string]any{"data": map[string]any{}}},
		{name: "rename collection", method: "PATCH", url: "/api/collections/posts", body: `{"name":"articles"}`, auth: "su", status: 200,
			expect: map[string]any{"name": "articles"}},
	})
	ts.su("GET", "/api/collections/articles/records/"+rid, nil).status(200).expect("headline", "hello")
	ts.su("GET", "/api/collections/posts/records", nil).expectError(404, "Missing collection context.", map[string]any{})
}

func TestCollectionsUniqueIndex(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.collection(postsDef)
	ts.record("posts", map[string]any{"title": "a", "slug": "same"})
	res := ts.su("POST", "/api/collections/posts/records", map[string]any{"title": "b", "slug": "same"})
	res.expectError(400, "Failed to create record.", nil).expect("data.slug.code", "validation_not_unique").expect("data.slug.message", "Value must be unique.")
	other := ts.record("posts", map[string]any{"title": "c", "slug": "other"})
	ts.su("PATCH", "/api/collections/posts/records/"+other, map[string]any{"slug": "same"}).
		expectError(400, "Failed to update record.", nil).expect("data.slug.code", "validation_not_unique")
	// Empty slugs are outside the partial index.
	ts.record("posts", map[string]any{"title": "d"})
	ts.record("posts", map[string]any{"title": "e"})

	// An index that existing rows violate is refused without breaking the collection.
	ts.record("posts", map[string]any{"title": "dup", "views": 1})
	ts.record("posts", map[string]any{"title": "dup", "views": 2})
	ts.su("PATCH", "/api/collections/posts", map[string]any{"indexes": []string{"CREATE UNIQUE INDEX idx_t ON posts (title)"}}).
		expectError(400, "Failed to update collection.", nil)
	ts.su("GET", "/api/collections/posts/records?perPage=1", nil).status(200).expect("totalItems", 6)
}

func TestCollectionsDeleteAndTruncate(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.collection(postsDef)
	ts.collection(`{"name":"comments","fields":[{"name":"post","type":"relation","collectionId":"posts","cascadeDelete":true,"maxSelect":1}]}`)
	p := ts.record("posts", map[string]any{"title": "a"})
	ts.record("comments", map[string]any{"post": p})
	ts.record("comments", map[string]any{"post": p})

	runScenarios(t, ts, map[string]string{"su": ts.suToken}, []scenario{
		{name: "system collection", method: "DELETE", url: "/api/collections/_superusers", auth: "su", status: 400,
			expect: map[string]any{"data": map[string]any{}}},
		{name: "referenced", method: "DELETE", url: "/api/collections/posts", auth: "su", status: 400,
			expect: map[string]any{"message": "Failed to delete collection probably due to existing reference in comments.", "data": map[string]any{}}},
		{name: "missing", method: "DELETE", url: "/api/collections/nope", auth: "su", status: 404},
		{name: "truncate missing", method: "DELETE", url: "/api/collections/nope/truncate", auth: "su", status: 404},
	})
	ts.su("DELETE", "/api/collections/posts/truncate", nil).status(204)
	ts.su("GET", "/api/collections/posts/records", nil).status(200).expect("totalItems", 0)
	ts.su("GET", "/api/collections/comments/records", nil).status(200).expect("totalItems", 0)
	ts.su("DELETE", "/api/collections/comments", nil).status(204)
	ts.su("DELETE", "/api/collections/posts", nil).status(204)
	ts.su("GET", "/api/collections/posts", nil).status(404)
}

func TestCollectionsImportAndScaffolds(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.collection(postsDef)
	ts.collection(`{"name":"gone"}`)
	rid := ts.record("posts", map[string]any{"title": "kept"})
	runScenarios(t, ts, map[string]string{"su": ts.suToken}, []scenario{
		{name: "empty list", method: "PUT", url: "/api/collections/import", body: `{"collections":[]}`, auth: "su", status: 400,
			expect: map[string]any{"message": "Failed to import collections.", "data.collections.code": "validation_required"}},
		{name: "bad json", method: "PUT", url: "/api/collections/import", body: `{"collections":`, auth: "su", status: 400,
			expect: map[string]any{"data": map[string]any{}}},
		{name: "invalid item", method: "PUT", url: "/api/collections/import", auth: "su", status: 400,
			body:   `{"collections":[{"name":"ok1"},{"name":"bad name"}]}`,
			expect: map[string]any{"message": "Failed to import collections.", "data.collections.1.name.code": "validation_match_invalid"}},
		{name: "scaffolds", method: "GET", url: "/api/collections/meta/scaffolds", auth: "su", status: 200,
			expect: map[string]any{"base.id": "", "base.name": "", "base.type": "base", "auth.type": "auth", "auth.name": "",
				"base.fields.0.name": "id", "auth.fields.1.name": "password"}},
	})
	body := map[string]any{"deleteMissing": true, "collections": []any{
		map[string]any{"name": "posts", "listRule": "", "viewRule": "", "indexes": []string{}, "fields": []any{
			map[string]any{"name": "title", "type": "text"}}},
		map[string]any{"name": "fresh", "fields": []any{map[string]any{"name": "n", "type": "number"}}},
	}}
	ts.su("PUT", "/api/collections/import", body).status(204)
	ts.su("GET", "/api/collections/gone", nil).status(404)
	ts.su("GET", "/api/collections/fresh", nil).status(200).expect("fields.1.name", "n")
	ts.su("GET", "/api/collections/users", nil).status(404) // not system: deleteMissing drops it, as PocketBase does
	ts.su("GET", "/api/collections/_superusers", nil).status(200)
	ts.su("GET", "/api/collections/posts/records/"+rid, nil).status(200).expect("title", "kept")
}
