package api_test

import (
	"net"
	"strings"
	"testing"
)

// noMailNow asserts that no mail is waiting in the sink (call after
// WaitMail: every queued mail has then reached it).
func (s *smtpSink) noMailNow(tb testing.TB) {
	tb.Helper()
	select {
	case m := <-s.mails:
		tb.Fatalf("unexpected mail to %v: %q", m.To, m.Subject)
	default:
	}
}

func TestSettingsTestEmail(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	sink := withMail(ts)
	_, user := ts.user("plain@strata.test")
	ts.collection(`{"name":"posts","type":"base","fields":[{"name":"title","type":"text"}]}`)

	const path = "/api/settings/test/email"
	ts.do("POST", path, "", map[string]any{"email": "x@strata.test", "template": "otp"}).status(401)
	ts.do("POST", path, user, map[string]any{"email": "x@strata.test", "template": "otp"}).status(403)
	ts.su("POST", path, map[string]any{}).expectError(400, "Failed to send the test email.", map[string]any{
		"email":    map[string]any{"code": "validation_required", "message": "Cannot be blank."},
		"template": map[string]any{"code": "validation_required", "message": "Cannot be blank."}})
	ts.su("POST", path, map[string]any{"email": "not-an-email", "template": "welcome", "collection": "posts"}).status(400).
		expect("data.email.code", "validation_is_email").expect("data.template.code", "validation_in_invalid").
		expect("data.collection.code", "validation_invalid_auth_collection")
	ts.su("POST", path, map[string]any{"email": "x@strata.test", "template": "otp", "collection": "nope"}).status(400).
		expect("data.collection.code", "validation_invalid_auth_collection")
	ts.su("POST", path, map[string]any{"email": 12, "template": []any{"otp"}}).status(400).
		expect("data.email.code", "validation_required")
	sink.noMailNow(t)

	for _, tc := range []struct{ template, collection, subject, contains string }{
		{"verification", "users", "Verify your Strata Test email", "/_/#/auth/confirm-verification/"},
		{"password-reset", "users", "Reset your Strata Test password", "/_/#/auth/confirm-password-reset/"},
		{"email-change", "_pb_users_auth_", "Confirm your Strata Test new email address", "/_/#/auth/confirm-email-change/"},
		{"otp", "users", "OTP for Strata Test", "<strong>123456</strong>"},
		{"login-alert", "users", "Login from a new location", "127.0.0.1 TEST_USER_AGENT"},
		{"verification", "", "Verify your Strata Test email", "/_/#/auth/confirm-verification/"}, // _superusers
	} {
		ts.su("POST", path, map[string]any{"email": "inbox@strata.test", "template": tc.template, "collection": tc.collection}).status(204)
		m := sink.next(t)
		if len(m.To) != 1 || m.To[0] != "inbox@strata.test" || m.Subject != tc.subject || !strings.Contains(m.HTML, tc.contains) {
			t.Fatalf("%s: mail %v %q %s", tc.template, m.To, m.Subject, m.HTML)
		}
	}

	// The mail server's refusal is reported to the superuser.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ts.su("PATCH", "/api/settings", map[string]any{"smtp": map[string]any{"port": closed}}).status(200)
	res := ts.su("POST", path, map[string]any{"email": "inbox@strata.test", "template": "otp"}).status(400)
	if msg, _ := res.get("message").(string); !strings.HasPrefix(msg, "Failed to send the test email.") {
		t.Fatalf("message %q", msg)
	}
}

func TestLoginAlerts(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	sink := withMail(ts)
	enableOTP(ts, false)
	const email = "alerted@strata.test"
	id, _ := ts.user(email) // the first sign-in ever: no alert
	// Verified, so that the OTP sign-in below keeps the password.
	ts.su("PATCH", "/api/collections/users/records/"+id, map[string]any{"verified": true}).status(200)
	signInAs := func(agent, ip string) {
		t.Helper()
		hdr := map[string]string{"User-Agent": agent}
		if ip != "" {
			hdr["X-Real-IP"] = ip
		}
		ts.doWith("POST", "/api/collections/users/auth-with-password", "", map[string]any{"identity": email, "password": userPass}, hdr).status(200)
		ts.app.WaitMail()
	}
	alert := func(want string) {
		t.Helper()
		m := sink.next(t)
		if len(m.To) != 1 || m.To[0] != email || m.Subject != "Login from a new location" || !strings.Contains(m.HTML, want) {
			t.Fatalf("alert %v %q %s", m.To, m.Subject, m.HTML)
		}
	}
	ts.app.WaitMail()
	sink.noMailNow(t)
	signIn(ts, email, userPass).status(200) // the same device
	ts.app.WaitMail()
	sink.noMailNow(t)

	signInAs("Laptop/1.0", "")
	alert("127.0.0.1 Laptop/1.0")
	signInAs("Laptop/1.0", "")
	sink.noMailNow(t)

	// The device is the network and the User-Agent.
	ts.su("PATCH", "/api/settings", map[string]any{"trustedProxy": map[string]any{"headers": []any{"X-Real-IP"}}}).status(200)
	signInAs("Laptop/1.0", "203.0.113.9")
	alert("203.0.113.9 Laptop/1.0")
	signInAs("Laptop/1.0", "203.0.113.77")
	sink.noMailNow(t)

	// OTP and OAuth2 sign-ins count too.
	otpID := ts.do("POST", "/api/collections/users/request-otp", "", map[string]any{"email": email}).status(200).get("otpId").(string)
	code := otpCode(t, sink.next(t))
	ts.doWith("POST", "/api/collections/users/auth-with-otp", "", map[string]any{"otpId": otpID, "password": code},
		map[string]string{"User-Agent": "Phone/2"}).status(200)
	ts.app.WaitMail()
	alert("Phone/2")

	// The owner sees its devices; at most 5 are remembered.
	ts.do("GET", "/api/collections/_authOrigins/records", "", nil).status(200).expect("totalItems", 0)
	mine := signIn(ts, email, userPass).status(200).get("token").(string)
	ts.app.WaitMail()
	ts.do("GET", "/api/collections/_authOrigins/records", mine, nil).status(200).expect("totalItems", 4).
		expect("items.0.recordRef", id).expect("items.0.collectionRef", "_pb_users_auth_")
	for _, agent := range []string{"A/1", "B/1", "C/1"} {
		signInAs(agent, "")
		alert(agent)
	}
	ts.do("GET", "/api/collections/_authOrigins/records", mine, nil).status(200).expect("totalItems", 5)
	otherID, other := ts.user("someone@strata.test")
	ts.app.WaitMail()
	ts.do("GET", "/api/collections/_authOrigins/records", other, nil).status(200).expect("totalItems", 1).
		expect("items.0.recordRef", otherID)

	// Alerts off: no mail and nothing remembered.
	ts.su("PATCH", "/api/collections/users", map[string]any{"authAlert": map[string]any{"enabled": false}}).status(200)
	signInAs("Tablet/9", "")
	sink.noMailNow(t)
	ts.su("GET", "/api/collections/_authOrigins/records?filter="+q("recordRef='"+id+"'"), nil).status(200).expect("totalItems", 5)
}

func TestLoginAlertOAuth2(t *testing.T) {
	t.Parallel()
	fx := newOAuthFixture(t)
	sink := withMail(fx.testServer)
	fx.signIn("users", "", person("ola-sub", "ola@idp.test", true), "", nil).status(200) // sign-up: no alert
	fx.app.WaitMail()
	sink.noMailNow(t)
	code, verifier := fx.authorize("users", person("ola-sub", "ola@idp.test", true), "")
	fx.doWith("POST", "/api/collections/users/auth-with-oauth2", "", map[string]any{"provider": "oidc", "code": code,
		"codeVerifier": verifier, "redirectURL": fakeRedirect}, map[string]string{"User-Agent": "Kiosk/3"}).status(200)
	fx.app.WaitMail()
	m := sink.next(t)
	if m.To[0] != "ola@idp.test" || !strings.Contains(m.HTML, "Kiosk/3") {
		t.Fatalf("alert %v %s", m.To, m.HTML)
	}
}
