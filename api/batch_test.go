package api_test

import (
	"bytes"
	"mime/multipart"
	"strings"
	"testing"
)

func TestBatch(t *testing.T) {
	t.Parallel()
	ts := newItemsServer(t)
	type item = map[string]any
	post := func(body item) item {
		return item{"method": "POST", "url": "/api/collections/items/records", "body": body}
	}

	ts.su("POST", "/api/batch", item{"requests": []any{post(item{"title": "x"})}}).
		expectError(403, "Batch requests are not allowed.", map[string]any{})
	ts.su("PATCH", "/api/settings", item{"batch": item{"enabled": true, "maxRequests": 3}}).status(200).expect("batch.enabled", true)

	existing := ts.record("items", item{"title": "old", "n": 1})
	victim := ts.record("items", item{"title": "victim"})
	res := ts.do("POST", "/api/batch", "", item{"requests": []any{
		item{"method": "POST", "url": "/api/collections/items/records?fields=id,title", "body": item{"title": "b1"}},
		item{"method": "PUT", "url": "/api/collections/items/records", "body": item{"id": "abcdefghijklmno", "title": "upsert-new"}},
		item{"method": "PATCH", "url": "/api/collections/items/records/" + existing, "body": item{"n+": 1}},
	}}).status(200)
	res.expect("0.status", 200).expect("0.body.title", "b1").expect("1.body.id", "abcdefghijklmno").expect("2.body.n", 2)
	if len(res.get("0.body").(map[string]any)) != 2 {
		t.Fatalf("per-item fields not applied: %s", res.body)
	}
	ts.do("POST", "/api/batch", "", item{"requests": []any{
		item{"method": "PUT", "url": "/api/collections/items/records", "body": item{"id": "abcdefghijklmno", "title": "upsert-upd"}},
		item{"method": "DELETE", "url": "/api/collections/items/records/" + victim},
	}}).status(200).expect("0.body.title", "upsert-upd").expect("1", map[string]any{"status": 204, "body": nil})
	ts.su("GET", "/api/collections/items/records/"+victim, nil).status(404)

	// A failing item rolls back the earlier ones.
	res = ts.do("POST", "/api/batch", "", item{"requests": []any{
		post(item{"title": "rolled-back"}),
		post(item{"title": strings.Repeat("x", 51)}),
	}}).status(400)
	res.expect("message", "Batch transaction failed.").
		expect("data.requests.1.code", "batch_request_failed").
		expect("data.requests.1.message", "Batch request failed.").
		expect("data.requests.1.response.status", 400).
		expect("data.requests.1.response.message", "Failed to create record.").
		expect("data.requests.1.response.data.title.code", "validation_max_text_constraint")
	ts.su("GET", "/api/collections/items/records?filter="+q(`title = "rolled-back"`), nil).status(200).expect("totalItems", 0)

	cases := []struct {
		name string
		body any
		path string
		want any
	}{
		{"empty", item{"requests": []any{}}, "data.requests.code", "validation_required"},
		{"missing", item{}, "data.requests.code", "validation_required"},
		{"too many", item{"requests": []any{post(nil), post(nil), post(nil), post(nil)}}, "data.requests.code", "validation_length_too_long"},
		{"unsupported action", item{"requests": []any{item{"method": "GET", "url": "/api/collections/items/records"}}}, "data.requests.0.response.status", 400},
		{"non-record url", item{"requests": []any{item{"method": "POST", "url": "/api/collections", "body": item{"name": "x"}}}}, "data.requests.0.code", "batch_request_failed"},
		{"unknown collection", item{"requests": []any{item{"method": "POST", "url": "/api/collections/nope/records"}}}, "data.requests.0.response.status", 404},
		{"item not object", item{"requests": []any{"x"}}, "data.requests.0.code", "batch_request_failed"},
		{"missing record", item{"requests": []any{item{"method": "DELETE", "url": "/api/collections/items/records/aaaaaaaaaaaaaaa"}}}, "data.requests.0.response.status", 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sub := *ts
			sub.tb = t
			sub.do("POST", "/api/batch", "", c.body).status(400).expect(c.path, c.want)
		})
	}
	ts.send("POST", "/api/batch", "", "application/json", []byte(`{"requests":`)).expectError(400, "", map[string]any{})

	// Multipart with the JSON in @jsonPayload, as the JS SDK sends it.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("@jsonPayload", `{"requests":[{"method":"POST","url":"/api/collections/items/records","body":{"title":"mp"}}]}`)
	mw.Close()
	ts.send("POST", "/api/batch", "", mw.FormDataContentType(), buf.Bytes()).status(200).expect("0.body.title", "mp")
}
