package api_test

import (
	"bytes"
	"mime/multipart"
	"strings"
	"testing"
)

// itemsDef exercises every scalar write path.
const itemsDef = `{"name":"items","listRule":"","viewRule":"","createRule":"","updateRule":"","deleteRule":"","fields":[
	{"name":"title","type":"text","max":50},
	{"name":"code","type":"text","autogeneratePattern":"[a-z]{5}"},
	{"name":"n","type":"number"},
	{"name":"ok","type":"bool"},
	{"name":"tags","type":"select","values":["a","b","c"],"maxSelect":3},
	{"name":"meta","type":"json"},
	{"name":"secret","type":"text","hidden":true},
	{"name":"created","type":"autodate","onCreate":true},
	{"name":"updated","type":"autodate","onCreate":true,"onUpdate":true}]}`

func newItemsServer(t *testing.T) *testServer {
	t.Helper()
	ts := newTestServer(t)
	ts.collection(itemsDef)
	return ts
}

func TestRecordsList(t *testing.T) {
	t.Parallel()
	ts := newItemsServer(t)
	a := ts.record("items", map[string]any{"title": "alpha", "n": 3, "tags": []string{"a", "b"}, "secret": "s1"})
	b := ts.record("items", map[string]any{"title": "beta", "n": 1, "meta": map[string]any{"k": 2}})
	c := ts.record("items", map[string]any{"title": "Gamma", "n": 2, "ok": true})
	const generic = "Something went wrong while processing your request."
	bad := func(name, query string) scenario {
		return scenario{name: name, method: "GET", url: "/api/collections/items/records?" + query, status: 400,
			expect: map[string]any{"status": 400, "message": generic, "data": map[string]any{}}}
	}
	runScenarios(t, ts, map[string]string{"su": ts.suToken}, []scenario{
		{name: "default", method: "GET", url: "/api/collections/items/records", status: 200,
			expect: map[string]any{"page": 1, "perPage": 30, "totalItems": 3, "totalPages": 1, "items.0.collectionName": "items"},
			absent: []string{"items.0.secret", "items.0.expand"}},
		{name: "sort asc", method: "GET", url: "/api/collections/items/records?sort=n", status: 200,
			expect: map[string]any{"items.0.id": b, "items.1.id": c, "items.2.id": a}},
		{name: "sort desc plus", method: "GET", url: "/api/collections/items/records?sort=-n,%2Btitle", status: 200,
			expect: map[string]any{"items.0.id": a, "items.2.id": b}},
		{name: "sort lower", method: "GET", url: "/api/collections/items/records?sort=title:lower", status: 200,
			expect: map[string]any{"items.0.id": a, "items.1.id": b, "items.2.id": c}},
		{name: "paging", method: "GET", url: "/api/collections/items/records?sort=n&page=2&perPage=2", status: 200,
			expect: map[string]any{"page": 2, "perPage": 2, "totalItems": 3, "totalPages": 2, "items.0.id": a, "items.1": nil}},
		{name: "past the end", method: "GET", url: "/api/collections/items/records?page=9", status: 200,
			expect: map[string]any{"page": 9, "items": []any{}}},
		{name: "page zero and negative perPage", method: "GET", url: "/api/collections/items/records?page=0&perPage=-5", status: 200,
			expect: map[string]any{"page": 1, "perPage": 30}},
		{name: "perPage capped", method: "GET", url: "/api/collections/items/records?perPage=5000", status: 200,
			expect: map[string]any{"perPage": 1000}},
		{name: "skipTotal", method: "GET", url: "/api/collections/items/records?skipTotal=true", status: 200,
			expect: map[string]any{"totalItems": -1, "totalPages": -1}},
		{name: "filter", method: "GET", url: "/api/collections/items/records?filter=" + q(`n >= 2 && title ~ "a"`) + "&sort=n", status: 200,
			expect: map[string]any{"totalItems": 2, "items.0.id": c, "items.1.id": a}},
		{name: "filter json path", method: "GET", url: "/api/collections/items/records?filter=" + q(`meta.k = 2`), status: 200,
			expect: map[string]any{"totalItems": 1, "items.0.id": b}},
		{name: "filter multi select", method: "GET", url: "/api/collections/items/records?filter=" + q(`tags:each ?= "b"`), status: 200,
			expect: map[string]any{"totalItems": 1, "items.0.id": a}},
		{name: "fields", method: "GET", url: "/api/collections/items/records?fields=id,title&sort=n", status: 200,
			expect: map[string]any{"items.0": map[string]any{"id": b, "title": "beta"}, "totalItems": 3}},
		{name: "fields excerpt", method: "GET", url: "/api/collections/items/records?fields=" + q("title:excerpt(2,true)") + "&sort=n", status: 200,
			expect: map[string]any{"items.0": map[string]any{"title": "be..."}}},
		{name: "superuser sees hidden", method: "GET", url: "/api/collections/items/records?filter=" + q(`secret = "s1"`), auth: "su", status: 200,
			expect: map[string]any{"items.0.id": a, "items.0.secret": "s1"}},
		{name: "unknown collection", method: "GET", url: "/api/collections/nope/records", status: 404,
			expect: map[string]any{"status": 404, "message": "Missing collection context.", "data": map[string]any{}}},
		bad("page not int", "page=x"),
		bad("perPage not int", "perPage=1.5"),
		bad("skipTotal not bool", "skipTotal=maybe"),
		bad("filter syntax", "filter="+q("title =")),
		bad("filter raw placeholder", "filter="+q("title = {:t}")),
		bad("filter unknown field", "filter="+q("nope = 1")),
		bad("filter hidden field", "filter="+q(`secret = "s1"`)),
		bad("filter too long", "filter="+q(`title = "`+strings.Repeat("x", 3500)+`"`)),
		bad("sort unknown field", "sort=nope"),
		bad("sort hidden field", "sort=secret"),
		bad("sort too many", "sort=n,n,n,n,n,n,n,n,n"),
		{name: "filter @request forbidden", method: "GET", url: "/api/collections/items/records?filter=" + q(`@request.auth.id = ""`), status: 403,
			expect: map[string]any{"data": map[string]any{}}},
		{name: "filter @collection forbidden", method: "GET", url: "/api/collections/items/records?filter=" + q(`@collection.items.id != ""`), status: 403,
			expect: map[string]any{"message": "Only superusers can filter by @collection.", "data": map[string]any{}}},
		{name: "superuser may use @request", method: "GET", url: "/api/collections/items/records?filter=" + q(`@request.auth.id != ""`), auth: "su", status: 200,
			expect: map[string]any{"totalItems": 3}},
		{name: "HEAD answered", method: "HEAD", url: "/api/collections/items/records", status: 200},
	})
}

func TestRecordsViewCreateUpdateDelete(t *testing.T) {
	t.Parallel()
	ts := newItemsServer(t)
	res := ts.do("POST", "/api/collections/items/records", "", map[string]any{
		"title": "x", "n": "42", "ok": "true", "tags": "b", "meta": `{"a":[1]}`, "secret": "dropped",
		"created": "2000-01-01 00:00:00.000Z", "collectionName": "zzz", "expand": map[string]any{"x": 1}, "unknown": 1,
	}).status(200)
	id := res.get("id").(string)
	if len(id) != 15 {
		t.Fatalf("generated id %q", id)
	}
	res.expect("n", 42).expect("ok", true).expect("tags", []string{"b"}).expect("meta", map[string]any{"a": []int{1}}).
		expect("collectionName", "items").expect("expand", nil)
	if code := res.get("code").(string); len(code) != 5 {
		t.Fatalf("autogenerated code %q", code)
	}
	if created := res.get("created").(string); strings.HasPrefix(created, "2000") || len(created) != 24 {
		t.Fatalf("autodate taken from body or malformed: %q", created)
	}
	ts.su("GET", "/api/collections/items/records/"+id, nil).status(200).expect("secret", "")

	runScenarios(t, ts, nil, []scenario{
		{name: "view", method: "GET", url: "/api/collections/items/records/" + id + "?fields=id,title", status: 200,
			expect: map[string]any{"id": id, "title": "x"}, absent: []string{"n", "collectionId"}},
		{name: "view missing", method: "GET", url: "/api/collections/items/records/aaaaaaaaaaaaaaa", status: 404,
			expect: map[string]any{"message": "The requested resource wasn't found.", "data": map[string]any{}}},
		{name: "view odd id", method: "GET", url: "/api/collections/items/records/" + q("a'b\"c%00"), status: 404},
		{name: "view unknown collection", method: "GET", url: "/api/collections/nope/records/" + id, status: 404,
			expect: map[string]any{"message": "Missing collection context."}},
		{name: "create custom id", method: "POST", url: "/api/collections/items/records", body: `{"id":"abcdefghijklmno","title":"c"}`, status: 200,
			expect: map[string]any{"id": "abcdefghijklmno"}},
		{name: "create duplicate id", method: "POST", url: "/api/collections/items/records", body: `{"id":"abcdefghijklmno"}`, status: 400,
			expect: map[string]any{"message": "Failed to create record.", "data.id.code": "validation_not_unique"}},
		{name: "create bad id", method: "POST", url: "/api/collections/items/records", body: `{"id":"ABC"}`, status: 400,
			expect: map[string]any{"message": "Failed to create record."}},
		{name: "create too long", method: "POST", url: "/api/collections/items/records", body: `{"title":"` + strings.Repeat("é", 51) + `"}`, status: 400,
			expect: map[string]any{"data.title.code": "validation_max_text_constraint", "data.title.params.max": 50}},
		{name: "create bad select", method: "POST", url: "/api/collections/items/records", body: `{"tags":["a","z"]}`, status: 400,
			expect: map[string]any{"data.tags.code": "validation_invalid_value"}},
		{name: "create bad json", method: "POST", url: "/api/collections/items/records", body: `{"title":`, status: 400,
			expect: map[string]any{"status": 400, "data": map[string]any{}}},
		{name: "create array body", method: "POST", url: "/api/collections/items/records", body: `[{"title":"x"}]`, status: 400,
			expect: map[string]any{"data": map[string]any{}}},
		{name: "create two documents", method: "POST", url: "/api/collections/items/records", body: `{"title":"x"}{"title":"y"}`, status: 400},
		{name: "create unknown collection", method: "POST", url: "/api/collections/nope/records", body: `{}`, status: 404,
			expect: map[string]any{"message": "Missing collection context."}},
		{name: "create with expand and fields", method: "POST", url: "/api/collections/items/records?fields=title", body: `{"title":"f"}`, status: 200,
			expect: map[string]any{"title": "f"}, absent: []string{"id"}},
		{name: "update missing", method: "PATCH", url: "/api/collections/items/records/aaaaaaaaaaaaaaa", body: `{}`, status: 404,
			expect: map[string]any{"data": map[string]any{}}},
		{name: "update pk change", method: "PATCH", url: "/api/collections/items/records/" + id, body: `{"id":"zzzzzzzzzzzzzzz"}`, status: 400,
			expect: map[string]any{"message": "Failed to update record.", "data.id.code": "validation_pk_change"}},
		{name: "delete missing", method: "DELETE", url: "/api/collections/items/records/aaaaaaaaaaaaaaa", status: 404},
	})

	// Modifiers on update: number add/subtract, select append/prepend/remove,
	// text autogenerate.
	res = ts.do("PATCH", "/api/collections/items/records/"+id, "", map[string]any{
		"n+": 8, "tags+": "c", "+tags": "a", "title:autogenerate": "t-"}).status(200)
	res.expect("n", 50).expect("tags", []string{"a", "b", "c"})
	if title := res.get("title").(string); !strings.HasPrefix(title, "t-") {
		t.Fatalf("title:autogenerate = %q", title)
	}
	ts.do("PATCH", "/api/collections/items/records/"+id, "", map[string]any{"n-": 0.5, "tags-": []string{"a", "c"}}).
		status(200).expect("n", 49.5).expect("tags", []string{"b"})
	// Shorter keys first: n replaces, then n+ adds.
	ts.do("PATCH", "/api/collections/items/records/"+id, "", map[string]any{"n+": 1, "n": 10}).status(200).expect("n", 11)
	// Absent keys stay.
	ts.do("PATCH", "/api/collections/items/records/"+id, "", `{}`).status(200).expect("n", 11).expect("tags", []string{"b"})

	ts.do("DELETE", "/api/collections/items/records/"+id, "", nil).status(204)
	ts.do("GET", "/api/collections/items/records/"+id, "", nil).status(404)
	ts.do("DELETE", "/api/collections/items/records/"+id, "", nil).status(404)
}

func TestRecordsBodyEncodings(t *testing.T) {
	t.Parallel()
	ts := newItemsServer(t)

	// urlencoded: inferred values, repeated keys become arrays.
	res := ts.send("POST", "/api/collections/items/records", "", "application/x-www-form-urlencoded",
		[]byte("title=007&n=-1.5&ok=true&tags=a&tags=c"))
	res.status(200).expect("title", "007").expect("n", -1.5).expect("ok", true).expect("tags", []string{"a", "c"})

	// multipart with @jsonPayload merged over the parts.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("title", "from-part")
	mw.WriteField("n", "42")
	mw.WriteField("ok", "false")
	mw.WriteField("@jsonPayload", `{"meta":{"deep":[1,2]},"title":"from-json"}`)
	mw.Close()
	res = ts.send("POST", "/api/collections/items/records", "", mw.FormDataContentType(), buf.Bytes())
	res.status(200).expect("title", "from-json").expect("n", 42).expect("ok", false).expect("meta", map[string]any{"deep": []int{1, 2}})

	cases := []struct {
		name, ct string
		body     string
		status   int
		msg      string
	}{
		{"unsupported type", "text/plain", "title=x", 400, "Unsupported Content-Type."},
		{"xml", "application/xml", "<a/>", 400, "Unsupported Content-Type."},
		{"empty body any type", "text/plain", "", 200, ""},
		{"json charset", "application/json; charset=utf-8", `{"title":"cs"}`, 200, ""},
		{"multipart without boundary", "multipart/form-data", "--x\r\n", 400, ""},
		{"broken multipart", "multipart/form-data; boundary=zz", "--zz\r\nbroken", 400, ""},
		{"bad jsonPayload", "multipart/form-data; boundary=zz",
			"--zz\r\nContent-Disposition: form-data; name=\"@jsonPayload\"\r\n\r\n{bad\r\n--zz--\r\n", 400, ""},
		{"bad urlencoded", "application/x-www-form-urlencoded", "a=%zz", 400, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sub := *ts
			sub.tb = t
			res := sub.send("POST", "/api/collections/items/records", "", c.ct, []byte(c.body))
			res.status(c.status)
			if c.status >= 400 {
				res.expect("data", map[string]any{})
			}
			if c.msg != "" {
				res.expect("message", c.msg)
			}
		})
	}

	// 32 MiB body limit (plus the json field's 1 MiB): over → 413.
	big := []byte(`{"title":"` + strings.Repeat("x", 34<<20) + `"}`)
	ts.send("POST", "/api/collections/items/records", "", "application/json", big).
		expectError(413, "Request entity too large.", map[string]any{})
}

func TestRecordsCascadeAndRelations(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.collection(`{"name":"authors","listRule":"","viewRule":"","fields":[{"name":"name","type":"text"}]}`)
	ts.collection(`{"name":"books","listRule":"","viewRule":"","fields":[
		{"name":"title","type":"text"},
		{"name":"author","type":"relation","collectionId":"authors","cascadeDelete":true,"maxSelect":1},
		{"name":"coauthors","type":"relation","collectionId":"authors","maxSelect":5}]}`)
	ts.collection(`{"name":"reviews","listRule":"","viewRule":"","fields":[
		{"name":"book","type":"relation","collectionId":"books","required":true,"maxSelect":1}]}`)
	a1 := ts.record("authors", map[string]any{"name": "one"})
	a2 := ts.record("authors", map[string]any{"name": "two"})
	b1 := ts.record("books", map[string]any{"title": "b1", "author": a1, "coauthors": []string{a2}})
	b2 := ts.record("books", map[string]any{"title": "b2", "author": a2, "coauthors": []string{a1, a2}})
	r1 := ts.record("reviews", map[string]any{"book": b2})

	runScenarios(t, ts, nil, []scenario{
		{name: "expand single and multiple", method: "GET", url: "/api/collections/books/records/" + b2 + "?expand=author,coauthors", status: 200,
			expect: map[string]any{"expand.author.name": "two", "expand.coauthors.0.id": a1, "expand.coauthors.1.id": a2}},
		{name: "expand back relation", method: "GET", url: "/api/collections/authors/records/" + a2 + "?expand=books_via_author", status: 200,
			expect: map[string]any{"expand.books_via_author.0.id": b2}},
		{name: "expand nested and fields", method: "GET", url: "/api/collections/reviews/records/" + r1 + "?expand=book.author&fields=expand.book.expand.author.name", status: 200,
			expect: map[string]any{"expand": map[string]any{"book": map[string]any{"expand": map[string]any{"author": map[string]any{"name": "two"}}}}}},
		{name: "expand unknown path ignored", method: "GET", url: "/api/collections/books/records/" + b1 + "?expand=nope,title", status: 200,
			absent: []string{"expand"}},
		{name: "missing relation id", method: "POST", url: "/api/collections/books/records", body: `{"author":"aaaaaaaaaaaaaaa"}`, status: 403},
	})
	ts.su("POST", "/api/collections/books/records", map[string]any{"coauthors": []string{a1, "aaaaaaaaaaaaaaa"}}).
		expectError(400, "Failed to create record.", nil).expect("data.coauthors.code", "validation_missing_rel_records")

	// Deleting a1 cascades to b1 (cascadeDelete) and removes a1 from b2's coauthors.
	ts.su("DELETE", "/api/collections/authors/records/"+a1, nil).status(204)
	ts.su("GET", "/api/collections/books/records/"+b1, nil).status(404)
	ts.su("GET", "/api/collections/books/records/"+b2, nil).status(200).expect("coauthors", []string{a2})
	// Deleting a2 cascades to b2, which a required relation in reviews blocks.
	ts.su("DELETE", "/api/collections/authors/records/"+a2, nil).status(400).expect("data", map[string]any{})
	ts.su("GET", "/api/collections/books/records/"+b2, nil).status(200)
	ts.su("DELETE", "/api/collections/reviews/records/"+r1, nil).status(204)
	ts.su("DELETE", "/api/collections/authors/records/"+a2, nil).status(204)
	ts.su("GET", "/api/collections/books/records?perPage=1", nil).status(200).expect("totalItems", 0)
}
