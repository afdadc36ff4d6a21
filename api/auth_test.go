package api_test

import (
	"net/http"
	"testing"
)

func TestAuthWithPassword(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	uid, _ := ts.user("auth@strata.test")
	const failed = "Failed to authenticate."
	runScenarios(t, ts, nil, []scenario{
		{name: "ok", method: "POST", url: "/api/collections/users/auth-with-password", status: 200,
			body:   map[string]any{"identity": "auth@strata.test", "password": "user-pass-123"},
			expect: map[string]any{"record.id": uid, "record.email": "auth@strata.test", "record.collectionName": "users"},
			absent: []string{"record.password", "record.tokenKey", "meta"}},
		{name: "email case-insensitive", method: "POST", url: "/api/collections/users/auth-with-password", status: 200,
			body: map[string]any{"identity": "AUTH@strata.test", "password": "user-pass-123"}},
		{name: "fields picker", method: "POST", url: "/api/collections/users/auth-with-password?fields=record.id", status: 200,
			body:   map[string]any{"identity": "auth@strata.test", "password": "user-pass-123"},
			expect: map[string]any{"record": map[string]any{"id": uid}}, absent: []string{"token"}},
		{name: "wrong password", method: "POST", url: "/api/collections/users/auth-with-password", status: 400,
			body:   map[string]any{"identity": "auth@strata.test", "password": "nope-nope-nope"},
			expect: map[string]any{"message": failed, "data": map[string]any{}}},
		{name: "unknown identity", method: "POST", url: "/api/collections/users/auth-with-password", status: 400,
			body:   map[string]any{"identity": "ghost@strata.test", "password": "user-pass-123"},
			expect: map[string]any{"message": failed, "data": map[string]any{}}},
		{name: "blank", method: "POST", url: "/api/collections/users/auth-with-password", status: 400, body: `{}`,
			expect: map[string]any{"data.identity.code": "validation_required", "data.password.code": "validation_required"}},
		{name: "user creds on superusers", method: "POST", url: "/api/collections/_superusers/auth-with-password", status: 400,
			body:   map[string]any{"identity": "auth@strata.test", "password": "user-pass-123"},
			expect: map[string]any{"message": failed}},
		{name: "bad identityField", method: "POST", url: "/api/collections/users/auth-with-password", status: 400,
			body:   map[string]any{"identity": "auth@strata.test", "password": "user-pass-123", "identityField": "name"},
			expect: map[string]any{"data.identityField.code": "validation_in_invalid"}},
		{name: "non-auth collection", method: "POST", url: "/api/collections/posts/auth-with-password", status: 404, body: `{}`,
			expect: map[string]any{"message": "Missing or invalid auth collection context.", "data": map[string]any{}}},
		{name: "auth-methods", method: "GET", url: "/api/collections/users/auth-methods", status: 200,
			expect: map[string]any{"password": map[string]any{"enabled": true, "identityFields": []string{"email"}},
				"oauth2": map[string]any{"enabled": false, "providers": []any{}}, "mfa": map[string]any{"enabled": false, "duration": 0},
				"otp": map[string]any{"enabled": false, "duration": 0}, "authProviders": nil, "usernamePassword": false, "emailPassword": true}},
		{name: "auth-methods fields", method: "GET", url: "/api/collections/users/auth-methods?fields=mfa,otp,password,oauth2", status: 200,
			absent: []string{"emailPassword", "authProviders"}, expect: map[string]any{"password.enabled": true}},
		{name: "auth-methods unknown", method: "GET", url: "/api/collections/nope/auth-methods", status: 404,
			expect: map[string]any{"message": "Missing or invalid auth collection context."}},
	})

	// Password auth disabled → 403; authRule null → 403.
	ts.su("PATCH", "/api/collections/users", map[string]any{"passwordAuth": map[string]any{"enabled": false}}).status(200)
	ts.do("POST", "/api/collections/users/auth-with-password", "", map[string]any{"identity": "auth@strata.test", "password": "user-pass-123"}).
		expectError(403, "", map[string]any{})
	ts.su("PATCH", "/api/collections/users", map[string]any{"passwordAuth": map[string]any{"enabled": true}, "authRule": "verified = true"}).status(200)
	ts.do("POST", "/api/collections/users/auth-with-password", "", map[string]any{"identity": "auth@strata.test", "password": "user-pass-123"}).
		expectError(403, "The request doesn't satisfy the collection requirements to authenticate.", map[string]any{})
}

func TestAuthRefreshAndTokens(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	uid, tok := ts.user("refresh@strata.test")
	ts.collection(`{"name":"members","type":"auth","listRule":"","viewRule":""}`)
	runScenarios(t, ts, map[string]string{"user": tok, "bearer": "Bearer " + tok, "lower": "bearer " + tok,
		"su": ts.suToken, "bad": tok + "x"}, []scenario{
		{name: "refresh", method: "POST", url: "/api/collections/users/auth-refresh", auth: "user", status: 200,
			expect: map[string]any{"record.id": uid, "record.email": "refresh@strata.test"}},
		{name: "refresh Bearer", method: "POST", url: "/api/collections/users/auth-refresh", auth: "bearer", status: 200,
			expect: map[string]any{"record.id": uid}},
		{name: "refresh bearer lower-case", method: "POST", url: "/api/collections/users/auth-refresh", auth: "lower", status: 200},
		{name: "refresh no token", method: "POST", url: "/api/collections/users/auth-refresh", status: 401,
			expect: map[string]any{"message": "The request requires valid record authorization token.", "data": map[string]any{}}},
		{name: "refresh invalid token", method: "POST", url: "/api/collections/users/auth-refresh", auth: "bad", status: 401},
		{name: "refresh other collection", method: "POST", url: "/api/collections/members/auth-refresh", auth: "user", status: 403,
			expect: map[string]any{"message": "The request requires auth record from members collection."}},
		{name: "superuser token on users refresh", method: "POST", url: "/api/collections/users/auth-refresh", auth: "su", status: 403},
		{name: "user token is not superuser", method: "GET", url: "/api/collections/users/records", auth: "user", status: 200,
			expect: map[string]any{"totalItems": 1}},
		{name: "invalid token is a guest", method: "GET", url: "/api/collections/users/records", auth: "bad", status: 200,
			expect: map[string]any{"totalItems": 0}},
		{name: "user token on superuser route", method: "GET", url: "/api/settings", auth: "user", status: 403},
		{name: "Bearer superuser", method: "GET", url: "/api/settings?fields=meta.appName", auth: "su", status: 200,
			expect: map[string]any{"meta": map[string]any{"appName": "Acme"}}},
	})

	// A password change rotates tokenKey: the old token becomes a guest.
	ts.do("PATCH", "/api/collections/users/records/"+uid, tok, map[string]any{
		"password": "new-pass-4567", "passwordConfirm": "new-pass-4567", "oldPassword": "user-pass-123"}).status(200)
	ts.do("POST", "/api/collections/users/auth-refresh", tok, nil).status(401)
	ts.do("POST", "/api/collections/users/auth-with-password", "", map[string]any{"identity": "refresh@strata.test", "password": "new-pass-4567"}).status(200)
}

func TestAuthRecordWrites(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	uid, tok := ts.user("writes@strata.test")
	_, other := ts.user("other@strata.test")
	runScenarios(t, ts, map[string]string{"user": tok, "other": other}, []scenario{
		{name: "signup mismatch", method: "POST", url: "/api/collections/users/records", status: 400,
			body:   map[string]any{"email": "x@strata.test", "password": "uncommon-pw-8", "passwordConfirm": "123456789"},
			expect: map[string]any{"message": "Failed to create record.", "data.passwordConfirm.code": "validation_values_mismatch"}},
		{name: "signup no password", method: "POST", url: "/api/collections/users/records", status: 400,
			body:   map[string]any{"email": "x@strata.test"},
			expect: map[string]any{"data.password.code": "validation_required"}},
		{name: "signup bad email", method: "POST", url: "/api/collections/users/records", status: 400,
			body:   map[string]any{"email": "nope", "password": "uncommon-pw-8", "passwordConfirm": "uncommon-pw-8"},
			expect: map[string]any{"data.email.code": "validation_is_email"}},
		{name: "signup duplicate email", method: "POST", url: "/api/collections/users/records", status: 400,
			body:   map[string]any{"email": "writes@strata.test", "password": "uncommon-pw-8", "passwordConfirm": "uncommon-pw-8"},
			expect: map[string]any{"data.email.code": "validation_not_unique"}},
		{name: "signup cannot self-verify", method: "POST", url: "/api/collections/users/records", status: 200,
			body:   map[string]any{"email": "v@strata.test", "password": "uncommon-pw-8", "passwordConfirm": "uncommon-pw-8", "verified": true},
			expect: map[string]any{"verified": false}},
		{name: "password change needs oldPassword", method: "PATCH", url: "/api/collections/users/records/" + uid, auth: "user", status: 400,
			body:   map[string]any{"password": "another-1234", "passwordConfirm": "another-1234"},
			expect: map[string]any{"message": "Failed to update record.", "data.oldPassword.code": "validation_required"}},
		{name: "wrong oldPassword", method: "PATCH", url: "/api/collections/users/records/" + uid, auth: "user", status: 400,
			body:   map[string]any{"password": "another-1234", "passwordConfirm": "another-1234", "oldPassword": "wrong-wrong"},
			expect: map[string]any{"data.oldPassword.code": "validation_invalid_old_password"}},
		{name: "email change by self", method: "PATCH", url: "/api/collections/users/records/" + uid, auth: "user", status: 400,
			body:   map[string]any{"email": "changed@strata.test"},
			expect: map[string]any{"data.email.code": "validation_values_mismatch"}},
		{name: "verify self", method: "PATCH", url: "/api/collections/users/records/" + uid, auth: "user", status: 400,
			body:   map[string]any{"verified": true},
			expect: map[string]any{"data.verified.code": "validation_values_mismatch"}},
		{name: "tokenKey ignored", method: "PATCH", url: "/api/collections/users/records/" + uid, auth: "user", status: 200,
			body: map[string]any{"tokenKey": "x", "name": "renamed"}, expect: map[string]any{"name": "renamed"}},
		{name: "other user", method: "PATCH", url: "/api/collections/users/records/" + uid, auth: "other", status: 404,
			body: map[string]any{"name": "hijack"}},
	})
	// The token still works after an ignored tokenKey write.
	ts.do("POST", "/api/collections/users/auth-refresh", tok, nil).status(200).expect("record.name", "renamed")
	// Email visibility: hidden from others, shown when emailVisibility.
	ts.su("PATCH", "/api/collections/users", map[string]any{"listRule": "", "viewRule": ""}).status(200)
	ts.do("GET", "/api/collections/users/records/"+uid, other, nil).status(200).expect("email", nil)
	ts.do("PATCH", "/api/collections/users/records/"+uid, tok, map[string]any{"emailVisibility": true}).status(200)
	ts.do("GET", "/api/collections/users/records/"+uid, "", nil).status(200).expect("email", "writes@strata.test")
	ts.do("GET", "/api/collections/users/records?filter="+q(`email = "writes@strata.test"`), "", nil).status(200).expect("totalItems", 1)
	ts.do("GET", "/api/collections/users/records?filter="+q(`email = "other@strata.test"`), other, nil).status(200).expect("totalItems", 0)
}

func TestRoutingAndCORS(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	runScenarios(t, ts, nil, []scenario{
		{name: "unknown route", method: "GET", url: "/api/nope", status: 404,
			expect: map[string]any{"status": 404, "message": "The requested resource wasn't found.", "data": map[string]any{}}},
		{name: "unknown method", method: "PUT", url: "/api/health", status: 404,
			expect: map[string]any{"status": 404, "data": map[string]any{}}},
		{name: "outside api", method: "GET", url: "/nope", status: 404},
		{name: "delete records list", method: "DELETE", url: "/api/collections/users/records", status: 404},
	})
	req, _ := http.NewRequest("OPTIONS", ts.srv.URL+"/api/collections/users/records", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "PATCH")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 204 {
		t.Fatalf("preflight status %d", res.StatusCode)
	}
	for k, want := range map[string]string{
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Methods": "GET,HEAD,PUT,PATCH,POST,DELETE",
		"Access-Control-Allow-Headers": "authorization,content-type",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("preflight %s = %q, want %q", k, got, want)
		}
	}
	if got := ts.do("GET", "/api/health", "", nil).hdr.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("Access-Control-Allow-Origin on GET = %q", got)
	}
}
