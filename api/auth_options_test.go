package api_test

import "testing"

func TestMFAOptionsValidation(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	notEnough := map[string]any{"mfa": map[string]any{"enabled": map[string]any{"code": "validation_mfa_not_enough_auths",
		"message": "MFA requires at least 2 auth methods to be enabled."}}}
	runScenarios(t, ts, map[string]string{"su": ts.suToken}, []scenario{
		{name: "mfa with password only", method: "PATCH", url: "/api/collections/users", auth: "su",
			body: map[string]any{"mfa": map[string]any{"enabled": true}}, status: 400, expect: map[string]any{"data": notEnough}},
		{name: "mfa with OTP only", method: "PATCH", url: "/api/collections/users", auth: "su",
			body:   map[string]any{"passwordAuth": map[string]any{"enabled": false}, "otp": map[string]any{"enabled": true}, "mfa": map[string]any{"enabled": true}},
			status: 400, expect: map[string]any{"data": notEnough}},
		{name: "new collection with mfa and one method", method: "POST", url: "/api/collections", auth: "su",
			body: map[string]any{"name": "members", "type": "auth", "mfa": map[string]any{"enabled": true}}, status: 400,
			expect: map[string]any{"data.mfa.enabled.code": "validation_mfa_not_enough_auths"}},
		{name: "unparsable mfa rule", method: "PATCH", url: "/api/collections/users", auth: "su",
			body:   map[string]any{"otp": map[string]any{"enabled": true}, "mfa": map[string]any{"enabled": true, "rule": "verified = ("}},
			status: 400, expect: map[string]any{"data.mfa.rule.code": "validation_invalid_rule"}},
		{name: "mfa rule on a missing field", method: "PATCH", url: "/api/collections/users", auth: "su",
			body:   map[string]any{"otp": map[string]any{"enabled": true}, "mfa": map[string]any{"enabled": true, "rule": "nope = true"}},
			status: 400, expect: map[string]any{"data.mfa.rule.code": "validation_invalid_rule"}},
		{name: "mfa duration out of range", method: "PATCH", url: "/api/collections/users", auth: "su",
			body:   map[string]any{"otp": map[string]any{"enabled": true}, "mfa": map[string]any{"enabled": true, "duration": 5}},
			status: 400, expect: map[string]any{"data.mfa.duration.code": "validation_min_greater_equal_than_required"}},
		{name: "a rule is not checked while mfa is off", method: "PATCH", url: "/api/collections/users", auth: "su",
			body: map[string]any{"mfa": map[string]any{"enabled": false, "rule": "verified = ("}}, status: 200},
		{name: "password and OTP with a rule", method: "PATCH", url: "/api/collections/users", auth: "su",
			body:   map[string]any{"otp": map[string]any{"enabled": true}, "mfa": map[string]any{"enabled": true, "rule": "verified = true", "duration": 600}},
			status: 200, expect: map[string]any{"mfa.enabled": true, "mfa.rule": "verified = true"}},
		{name: "turning off the second method keeps mfa valid only with another", method: "PATCH", url: "/api/collections/users", auth: "su",
			body: map[string]any{"otp": map[string]any{"enabled": false}}, status: 400, expect: map[string]any{"data": notEnough}},
		{name: "password and OAuth2", method: "POST", url: "/api/collections", auth: "su",
			body:   map[string]any{"name": "members", "type": "auth", "oauth2": map[string]any{"enabled": true}, "mfa": map[string]any{"enabled": true}},
			status: 200, expect: map[string]any{"mfa.enabled": true}},
	})
}
