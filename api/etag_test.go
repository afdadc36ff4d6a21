package api_test

import (
	"net/http"
	"testing"
)

// TestETag: record views and lists carry an ETag and answer a matching
// If-None-Match with 304; a change to the record, or a caller who sees a
// different body, gets a new one.
func TestETag(t *testing.T) {
	ts := newTestServer(t)
	ts.collection(`{"name":"notes","listRule":"","viewRule":"","updateRule":"","fields":[{"name":"title","type":"text"},{"name":"secret","type":"text","hidden":true}]}`)
	id := ts.record("notes", map[string]any{"title": "a", "secret": "s"})

	get := func(path, token, inm string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", ts.srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", token)
		}
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	for _, path := range []string{"/api/collections/notes/records/" + id, "/api/collections/notes/records"} {
		first := get(path, "", "")
		etag := first.Header.Get("ETag")
		if first.StatusCode != 200 || etag == "" || first.Header.Get("Cache-Control") != "private, no-cache" {
			t.Fatalf("%s: status %d etag %q cache-control %q", path, first.StatusCode, etag, first.Header.Get("Cache-Control"))
		}
		if res := get(path, "", etag); res.StatusCode != http.StatusNotModified {
			t.Fatalf("%s: matching If-None-Match: status %d", path, res.StatusCode)
		}
		if res := get(path, "", `"other", W/`+etag); res.StatusCode != http.StatusNotModified {
			t.Fatalf("%s: list with a weak match: status %d", path, res.StatusCode)
		}
		// The superuser sees the hidden field: a different body, a different tag.
		if res := get(path, ts.suToken, etag); res.StatusCode != 200 || res.Header.Get("ETag") == etag {
			t.Fatalf("%s: superuser got %d with the guest's tag", path, res.StatusCode)
		}
	}
	path := "/api/collections/notes/records/" + id
	etag := get(path, "", "").Header.Get("ETag")
	ts.do("PATCH", path, "", map[string]any{"title": "b"}).status(200)
	if res := get(path, "", etag); res.StatusCode != 200 {
		t.Fatalf("after an update the old tag still matched: %d", res.StatusCode)
	}
}
