package api_test

import (
	"strings"
	"testing"
)

func TestSettings(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	_, userTok := ts.user("settings@strata.test")
	runScenarios(t, ts, map[string]string{"su": ts.suToken, "user": userTok}, []scenario{
		{name: "guest", method: "GET", url: "/api/settings", status: 401, expect: map[string]any{"data": map[string]any{}}},
		{name: "user", method: "GET", url: "/api/settings", auth: "user", status: 403,
			expect: map[string]any{"message": "The authorized record is not allowed to perform this action."}},
		{name: "user patch", method: "PATCH", url: "/api/settings", auth: "user", body: `{"meta":{"appName":"x"}}`, status: 403},
		{name: "defaults", method: "GET", url: "/api/settings", auth: "su", status: 200,
			expect: map[string]any{"meta.appName": "Acme", "batch.enabled": false, "batch.maxRequests": 50, "batch.timeout": 3,
				"smtp.port": 587, "superuserIPs": []any{}, "trustedProxy.headers": []any{}, "rateLimits.enabled": false}},
		{name: "fields", method: "GET", url: "/api/settings?fields=meta.appName,batch", auth: "su", status: 200,
			expect: map[string]any{"meta": map[string]any{"appName": "Acme"}, "batch.maxRequests": 50}, absent: []string{"smtp"}},
		{name: "bad json", method: "PATCH", url: "/api/settings", auth: "su", body: `{"meta":`, status: 400,
			expect: map[string]any{"data": map[string]any{}}},
		{name: "wrong type", method: "PATCH", url: "/api/settings", auth: "su", body: `{"batch":{"maxRequests":"many"}}`, status: 400,
			expect: map[string]any{"data": map[string]any{}}},
		{name: "blank app name", method: "PATCH", url: "/api/settings", auth: "su", body: `{"meta":{"appName":""}}`, status: 400,
			expect: map[string]any{"data.meta.appName.code": "validation_required"}},
		{name: "bad url and email", method: "PATCH", url: "/api/settings", auth: "su", body: `{"meta":{"appURL":"nope","senderAddress":"nope"}}`, status: 400,
			expect: map[string]any{"data.meta.appURL.code": "validation_is_url", "data.meta.senderAddress.code": "validation_is_email"}},
		{name: "negative batch", method: "PATCH", url: "/api/settings", auth: "su", body: `{"batch":{"maxRequests":-1}}`, status: 400,
			expect: map[string]any{"data.batch.maxRequests.code": "validation_min_greater_equal_than_required"}},
		{name: "bad rate limit rule", method: "PATCH", url: "/api/settings", auth: "su", body: `{"rateLimits":{"rules":[{"label":"","duration":0,"maxRequests":1,"audience":"x"}]}}`, status: 400,
			expect: map[string]any{"data.rateLimits.rules.0.label.code": "validation_required",
				"data.rateLimits.rules.0.duration.code": "validation_min_greater_equal_than_required",
				"data.rateLimits.rules.0.audience.code": "validation_in_invalid"}},
		{name: "failed patch kept nothing", method: "GET", url: "/api/settings", auth: "su", status: 200,
			expect: map[string]any{"meta.appName": "Acme", "batch.maxRequests": 50}},
	})

	// Partial merge that persists; secrets are write-only.
	res := ts.su("PATCH", "/api/settings", map[string]any{
		"meta": map[string]any{"appName": "Strata Test"},
		"smtp": map[string]any{"password": "smtp-secret-1", "username": "mailer"},
		"s3":   map[string]any{"secret": "s3-secret-1", "bucket": "b"},
	}).status(200)
	res.expect("meta.appName", "Strata Test").expect("meta.appURL", "http://localhost:8090").expect("smtp.username", "mailer").expect("s3.bucket", "b")
	got := ts.su("GET", "/api/settings", nil).status(200)
	got.expect("meta.appName", "Strata Test").expect("smtp.username", "mailer")
	for _, r := range []*response{res, got} {
		if s := string(r.body); strings.Contains(s, "secret-1") || strings.Contains(s, `"password"`) || strings.Contains(s, `"secret"`) {
			t.Fatalf("settings leak a secret: %s", s)
		}
	}
	// Errors ignore ?fields=.
	ts.su("PATCH", "/api/settings?fields=meta", `{"meta":{"appName":""}}`).status(400).expect("status", 400)
}
