package api_test

import (
	"bytes"
	"net/http"
	"testing"
)

// authRoutes are the auth routes that decode a body.
var authRoutes = []string{
	"auth-with-password", "auth-with-otp", "request-otp", "request-verification", "confirm-verification",
	"request-password-reset", "confirm-password-reset", "request-email-change", "confirm-email-change",
	"auth-refresh", "impersonate/abc",
}

// FuzzAuthBodies sends arbitrary bodies (as JSON, form and multipart
// content types) to every auth route: no input may cause a 5xx or a panic,
// and no answer may be a success for garbage credentials.
func FuzzAuthBodies(f *testing.F) {
	ts := newTestServer(f)
	ts.app.SetAuthLimits(serviceNoLimits())
	ts.su("PATCH", "/api/collections/users", map[string]any{"otp": map[string]any{"enabled": true}}).status(200)
	_, userTok := ts.user("fuzz@strata.test")
	for _, seed := range []string{
		`{"identity":"fuzz@strata.test","password":"x"}`, `{"otpId":"abc","password":"12345678"}`,
		`{"email":"a@b.co"}`, `{"token":"a.b.c"}`, `{"token":"x","password":"p","passwordConfirm":"p"}`,
		`{"newEmail":"n@b.co"}`, `{"duration":1e308}`, `{"identity":["a"],"password":{"x":1}}`, `null`, `[]`, `"x"`,
		`{"mfaId":"zzz","identity":"fuzz@strata.test","password":"user-pass-12x"}`,
	} {
		for i := range authRoutes {
			f.Add(uint8(i), uint8(0), []byte(seed))
		}
	}
	f.Fuzz(func(t *testing.T, route, kind uint8, body []byte) {
		path := "/api/collections/users/" + authRoutes[int(route)%len(authRoutes)]
		ct := []string{"application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"}[int(kind)%4]
		for _, tok := range []string{"", userTok} {
			req, _ := http.NewRequest("POST", path, bytes.NewReader(body))
			req.Header.Set("Content-Type", ct)
			if tok != "" {
				req.Header.Set("Authorization", tok)
			}
			rec := ts.serve(req)
			if rec.Code >= 500 {
				t.Fatalf("%s %q: %d %s", path, body, rec.Code, rec.Body.Bytes())
			}
			// Only a real credential signs in: the fuzzer does not know
			// the password, and every token it could send is forged.
			if rec.Code == 200 && path != "/api/collections/users/request-otp" && path != "/api/collections/users/auth-refresh" {
				t.Fatalf("%s %q succeeded: %s", path, body, rec.Body.Bytes())
			}
		}
	})
}
