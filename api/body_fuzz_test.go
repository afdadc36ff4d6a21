package api_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// fuzzDef is collection x: one field of each type a body can reach.
const fuzzDef = `{"name":"x","listRule":"","viewRule":"","createRule":"","updateRule":"","deleteRule":"","fields":[
	{"name":"title","type":"text","max":100,"pattern":"^[^#]*$"},
	{"name":"body","type":"editor"},
	{"name":"n","type":"number","min":-10,"max":1000,"onlyInt":true},
	{"name":"ok","type":"bool"},
	{"name":"mail","type":"email"},
	{"name":"site","type":"url"},
	{"name":"when","type":"date"},
	{"name":"tags","type":"select","values":["a","b","c"],"maxSelect":2},
	{"name":"one","type":"select","values":["a","b"],"maxSelect":1},
	{"name":"meta","type":"json","maxSize":2000},
	{"name":"loc","type":"geoPoint"},
	{"name":"parent","type":"relation","collectionId":"x","maxSelect":1},
	{"name":"refs","type":"relation","collectionId":"users","maxSelect":5},
	{"name":"created","type":"autodate","onCreate":true}]}`

// serve runs one request through the real handler without a network hop.
func (ts *testServer) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	ts.srv.Config.Handler.ServeHTTP(rec, req)
	return rec
}

// FuzzRecordBody: whatever the bytes and the Content-Type, creating a
// record answers 2xx or 4xx, never 5xx or a panic.
func FuzzRecordBody(f *testing.F) {
	ts := newTestServer(f)
	ts.su("POST", "/api/collections", fuzzDef).status(200)
	f.Add("application/json", []byte(`{"title":"hi","n":3,"tags":["a","b"],"meta":{"k":[1,2]},"loc":{"lon":1,"lat":2}}`))
	f.Add("application/json", []byte(`{"n+":1e308,"tags-":"a","+tags":["c"],"title:autogenerate":"x"}`))
	f.Add("application/x-www-form-urlencoded", []byte("title=007&n=-1.5&ok=true&tags=a&tags=b"))
	f.Add("multipart/form-data; boundary=b", []byte("--b\r\nContent-Disposition: form-data; name=\"@jsonPayload\"\r\n\r\n{\"meta\":null}\r\n--b--\r\n"))
	f.Add("text/plain", []byte("hello"))
	f.Add("", []byte(`{"id":"CON","parent":"x"}`))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		for _, method := range []string{"POST", "PATCH"} {
			path := "/api/collections/x/records"
			if method == "PATCH" {
				path += "/aaaaaaaaaaaaaaa"
			}
			req := httptest.NewRequest(method, path, bytes.NewReader(body))
			if contentType != "" {
				req.Header.Set("Content-Type", contentType)
			}
			rec := ts.serve(req)
			if rec.Code >= 500 || rec.Code < 200 {
				t.Fatalf("%s %q %q: status %d: %s", method, contentType, body, rec.Code, rec.Body.Bytes())
			}
		}
	})
}

// FuzzListQuery: arbitrary filter, sort, fields, expand and paging never
// make a list answer 5xx, for guests or superusers.
func FuzzListQuery(f *testing.F) {
	ts := newTestServer(f)
	ts.su("POST", "/api/collections", fuzzDef).status(200)
	p := ts.record("x", map[string]any{"title": "parent", "tags": []string{"a"}})
	ts.record("x", map[string]any{"title": "child", "parent": p, "meta": map[string]any{"a": []int{1}}})
	f.Add(`title ~ "a" && n > 1`, "-title,n", "id,expand.parent.title", "parent", "1", "30", false)
	f.Add(`parent.parent.title ?= "x" || meta.a.0 = 1`, "@random", "*,title:excerpt(3,true)", "parent.parent,x_via_parent", "0", "-1", true)
	f.Add(`tags:each ?= "a" && tags:length > 0 && loc.lat < 9`, "+created,@rowid", "", "refs", "2", "1000", false)
	f.Add(`geoDistance(loc.lon, loc.lat, 1, 2) < 5 && strftime('%Y', created) = "2026"`, "title:lower", "", "", "x", "", true)
	f.Add(`@request.auth.id != "" && @collection.x.title ?= title`, "parent.title", "", "", "", "", true)
	f.Add("(((", ",,,", "((,)", "....", "9999999999999999999", "-0", false)
	f.Fuzz(func(t *testing.T, filter, sort, fields, expand, page, perPage string, su bool) {
		v := url.Values{"filter": {filter}, "sort": {sort}, "fields": {fields}, "expand": {expand}, "page": {page}, "perPage": {perPage}}
		req := httptest.NewRequest("GET", "/api/collections/x/records?"+v.Encode(), nil)
		if su {
			req.Header.Set("Authorization", ts.suToken)
		}
		rec := ts.serve(req)
		if rec.Code >= 500 || rec.Code < 200 {
			t.Fatalf("filter=%q sort=%q fields=%q expand=%q page=%q perPage=%q su=%v: status %d: %s",
				filter, sort, fields, expand, page, perPage, su, rec.Code, rec.Body.Bytes())
		}
	})
}
