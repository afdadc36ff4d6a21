package api_test

import "testing"

// An import with one bad definition changes nothing (PocketBase imports in
// one transaction).
func TestImportIsAtomic(t *testing.T) {
	ts := newTestServer(t)
	ts.su("PUT", "/api/collections/import", map[string]any{"collections": []any{
		map[string]any{"name": "ok1"},
		map[string]any{"name": "bad name"},
	}}).status(400).expect("data.collections.1.name.code", "validation_match_invalid")
	ts.su("GET", "/api/collections/ok1", nil).status(404)

	ts.su("PUT", "/api/collections/import", map[string]any{"collections": []any{
		map[string]any{"name": "ok1", "fields": []any{map[string]any{"name": "title", "type": "text"}}},
		map[string]any{"name": "ok2", "fields": []any{map[string]any{"name": "ref", "type": "relation", "collectionId": "ok1"}}},
	}}).status(204)
	ts.su("GET", "/api/collections/ok2", nil).status(200)
	// Re-import updates in place and deleteMissing drops what is not listed.
	ts.su("PUT", "/api/collections/import", map[string]any{"deleteMissing": true, "collections": []any{
		map[string]any{"name": "ok1", "fields": []any{map[string]any{"name": "title", "type": "text"}, map[string]any{"name": "extra", "type": "bool"}}},
	}}).status(204)
	ts.su("GET", "/api/collections/ok2", nil).status(404)
	ts.su("GET", "/api/collections/ok1", nil).status(200).expect("fields.2.name", "extra")
	ts.su("GET", "/api/collections/users", nil).status(404) // not system: dropped too, as in PocketBase
	ts.su("GET", "/api/collections/_superusers", nil).status(200)
}

// Field errors are keyed by the client's own field indexes even when the
// server inserts the id field in front.
func TestFieldErrorsMirrorInputIndexes(t *testing.T) {
	ts := newTestServer(t)
	ts.su("POST", "/api/collections", map[string]any{"name": "x", "fields": []any{
		map[string]any{"name": "fine", "type": "text"},
		map[string]any{"name": "bad name", "type": "text"},
	}}).status(400).expect("data.fields.1.name.code", "validation_match_invalid")
}

// A PATCH that sends some auth options keeps the others (the SDK's
// collections.update sends only what changes).
func TestPatchAuthOptionsIsPartial(t *testing.T) {
	ts := newTestServer(t)
	ts.su("PATCH", "/api/collections/users", map[string]any{"otp": map[string]any{"enabled": true}}).status(200)
	ts.su("PATCH", "/api/collections/users", map[string]any{"mfa": map[string]any{"duration": 900}}).status(200).
		expect("otp.enabled", true).
		expect("mfa.duration", 900).
		expect("mfa.enabled", false).
		expect("oauth2.mappedFields.avatarURL", "avatar").
		expect("otp.length", 8)
}

// A sent providers list replaces the stored one, extra maps included.
func TestPatchProvidersReplaces(t *testing.T) {
	ts := newTestServer(t)
	p := func(extra map[string]any) map[string]any {
		return map[string]any{"oauth2": map[string]any{"providers": []any{map[string]any{
			"name": "oidc", "clientId": "c", "clientSecret": "s", "authURL": "https://idp.test/auth",
			"tokenURL": "https://idp.test/token", "userInfoURL": "https://idp.test/userinfo", "extra": extra}}}}
	}
	ts.su("PATCH", "/api/collections/users", p(map[string]any{"a": "1", "b": "2"})).status(200)
	ts.su("PATCH", "/api/collections/users", p(map[string]any{"a": "3"})).status(200).
		expect("oauth2.providers.0.extra", map[string]any{"a": "3"})
}
