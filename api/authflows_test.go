package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/mailer"
	"github.com/strata-run/strata/service"
)

// withMail points the server's settings at a fresh SMTP sink and installs
// the real mailer.
func withMail(ts *testServer) *smtpSink {
	ts.tb.Helper()
	sink := newSMTPSink(ts.tb)
	ts.su("PATCH", "/api/settings", map[string]any{
		"smtp": map[string]any{"enabled": true, "host": "127.0.0.1", "port": sink.port(), "username": "mailer", "password": "smtp-secret"},
		"meta": map[string]any{"appName": "Strata Test", "appURL": "http://app.test", "senderAddress": "noreply@strata.test"},
	}).status(200)
	ts.app.SetMailer(mailer.New(ts.app.SMTPConfig, ts.tb.TempDir(), nil))
	return sink
}

// doWith is do with extra request headers.
func (ts *testServer) doWith(method, path, token string, body any, hdr map[string]string) *response {
	ts.tb.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		ts.tb.Fatal(err)
	}
	req, err := http.NewRequest(method, ts.srv.URL+path, bytes.NewReader(raw))
	if err != nil {
		ts.tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.tb.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return &response{tb: ts.tb, code: res.StatusCode, body: b, hdr: res.Header, desc: method + " " + path}
}

// claims decodes a JWT's payload without verifying it.
func claims(tb testing.TB, token string) map[string]any {
	tb.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		tb.Fatalf("not a JWT: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

const userPass = "user-pass-123"

func signIn(ts *testServer, email, pass string) *response {
	ts.tb.Helper()
	return ts.do("POST", "/api/collections/users/auth-with-password", "", map[string]any{"identity": email, "password": pass})
}

func TestVerificationFlow(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	sink := withMail(ts)
	id, _ := ts.user("verify@strata.test")

	ts.do("POST", "/api/collections/users/request-verification", "", map[string]any{"email": "verify@strata.test"}).status(204)
	m := sink.next(t)
	if len(m.To) != 1 || m.To[0] != "verify@strata.test" || m.Subject != "Verify your Strata Test email" {
		t.Fatalf("mail = %v %q", m.To, m.Subject)
	}
	if !strings.Contains(m.HTML, "http://app.test/_/#/auth/confirm-verification/") || !strings.Contains(m.Text, "http://app.test/") {
		t.Fatalf("mail body lacks the link: %s", m.HTML)
	}
	if got := <-sink.auths; got != "mailer:smtp-secret" {
		t.Fatalf("AUTH PLAIN = %q", got)
	}
	token := m.link(t, "confirm-verification")
	c := claims(t, token)
	if c["type"] != "verification" || c["email"] != "verify@strata.test" || c["id"] != id || c["collectionId"] != "_pb_users_auth_" {
		t.Fatalf("claims = %v", c)
	}
	// unknown and repeated requests answer the same and send nothing
	ts.do("POST", "/api/collections/users/request-verification", "", map[string]any{"email": "nobody@strata.test"}).status(204)
	ts.do("POST", "/api/collections/users/request-verification", "", map[string]any{"email": "verify@strata.test"}).status(204)
	sink.none(t)

	ts.do("POST", "/api/collections/users/confirm-verification", "", map[string]any{"token": token + "x"}).
		status(400).expect("data.token.code", "validation_invalid_token")
	ts.do("POST", "/api/collections/users/confirm-verification", "", map[string]any{"token": ""}).
		status(400).expect("data.token.code", "validation_required")
	ts.do("POST", "/api/collections/users/confirm-verification", "", map[string]any{"token": token}).status(204)
	ts.su("GET", "/api/collections/users/records/"+id, nil).status(200).expect("verified", true)
	// a verified account gets no more mails
	ts.do("POST", "/api/collections/users/request-verification", "", map[string]any{"email": "verify@strata.test"}).status(204)
	sink.none(t)

	ts.do("POST", "/api/collections/_superusers/request-verification", "", map[string]any{"email": suEmail}).status(400)
	ts.do("POST", "/api/collections/users/request-verification", "", map[string]any{"email": "bad"}).
		status(400).expect("data.email.code", "validation_is_email")
}

func TestPasswordResetFlow(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	sink := withMail(ts)
	id, session := ts.user("reset@strata.test")

	ts.do("POST", "/api/collections/users/request-password-reset", "", map[string]any{"email": "RESET@strata.test"}).status(204)
	m := sink.next(t)
	token := m.link(t, "confirm-password-reset")
	if c := claims(t, token); c["type"] != "passwordReset" || c["email"] != "reset@strata.test" {
		t.Fatalf("claims = %v", c)
	}
	ts.do("POST", "/api/collections/users/request-password-reset", "", map[string]any{"email": "ghost@strata.test"}).status(204)
	sink.none(t)

	confirm := func(tok, p, pc string) *response {
		return ts.do("POST", "/api/collections/users/confirm-password-reset", "", map[string]any{"token": tok, "password": p, "passwordConfirm": pc})
	}
	confirm(token, "new-pass-456", "other-pass-456").status(400).expect("data.passwordConfirm.code", "validation_values_mismatch")
	confirm(token, "password123", "password123").status(400).expect("data.password.code", "validation_common_password")
	confirm(token, "short", "short").status(400).expect("data.password.code", "validation_min_text_constraint")
	long := strings.Repeat("x", 72)
	confirm(token, long, long).status(400).expect("data.password.code", "validation_max_text_constraint")
	ok64 := strings.Repeat("yZ", 32)
	confirm(token, ok64, ok64).status(204)
	// single use: the new password rotated tokenKey
	confirm(token, "new-pass-789", "new-pass-789").status(400).expect("data.token.code", "validation_invalid_token")
	ts.do("POST", "/api/collections/users/auth-refresh", session, nil).status(401)
	signIn(ts, "reset@strata.test", userPass).status(400)
	signIn(ts, "reset@strata.test", ok64).status(200).expect("record.verified", true)
	ts.su("GET", "/api/collections/users/records/"+id, nil).expect("verified", true)
}

func TestEmailChangeFlow(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	sink := withMail(ts)
	id, tok := ts.user("old@strata.test")
	ts.user("taken@strata.test")

	req := func(token, newEmail string) *response {
		return ts.do("POST", "/api/collections/users/request-email-change", token, map[string]any{"newEmail": newEmail})
	}
	req("", "new@strata.test").status(401)
	req(ts.suToken, "new@strata.test").status(403)
	req(tok, "old@strata.test").status(400).expect("data.newEmail.code", "validation_not_in_invalid")
	req(tok, "taken@strata.test").status(400).expect("data.newEmail.code", "validation_invalid_new_email")
	req(tok, "new@strata.test").status(204)
	m := sink.next(t)
	if m.To[0] != "new@strata.test" {
		t.Fatalf("mail to %v", m.To)
	}
	token := m.link(t, "confirm-email-change")
	if c := claims(t, token); c["type"] != "emailChange" || c["email"] != "old@strata.test" || c["newEmail"] != "new@strata.test" {
		t.Fatalf("claims = %v", c)
	}
	confirm := func(p string) *response {
		return ts.do("POST", "/api/collections/users/confirm-email-change", "", map[string]any{"token": token, "password": p})
	}
	confirm("wrong-pass-1").status(400).expect("data.password.code", "validation_invalid_password")
	confirm(userPass).status(204)
	confirm(userPass).status(400) // tokenKey rotated with the email
	ts.do("POST", "/api/collections/users/auth-refresh", tok, nil).status(401)
	signIn(ts, "new@strata.test", userPass).status(200).expect("record.verified", true).expect("record.id", id)

	ts.do("POST", "/api/collections/_superusers/request-email-change", ts.suToken, map[string]any{"newEmail": "x@strata.test"}).status(400)

	// a mail server that refuses connections is reported
	ts.su("PATCH", "/api/settings", map[string]any{"smtp": map[string]any{"port": 1}}).status(200)
	_, tok2 := ts.user("third@strata.test")
	req(tok2, "fourth@strata.test").expectError(400, "Failed to request email change.", map[string]any{})
}

func enableOTP(ts *testServer, mfa bool) {
	ts.tb.Helper()
	ts.su("PATCH", "/api/collections/users", map[string]any{"otp": map[string]any{"enabled": true}, "mfa": map[string]any{"enabled": mfa}}).status(200)
}

var codeRe = regexp.MustCompile(`<strong>(\d+)</strong>`)

func otpCode(tb testing.TB, m *sunkMail) string {
	tb.Helper()
	g := codeRe.FindStringSubmatch(m.HTML)
	if g == nil {
		tb.Fatalf("no code in %s", m.HTML)
	}
	return g[1]
}

func TestOTPFlow(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	sink := withMail(ts)
	ts.do("POST", "/api/collections/users/request-otp", "", map[string]any{"email": "a@strata.test"}).status(403)
	enableOTP(ts, false)
	id, _ := ts.user("otp@strata.test")

	fake := ts.do("POST", "/api/collections/users/request-otp", "", map[string]any{"email": "nobody@strata.test"}).status(200).get("otpId").(string)
	otpID := ts.do("POST", "/api/collections/users/request-otp", "", map[string]any{"email": "otp@strata.test"}).status(200).get("otpId").(string)
	if len(fake) != 15 || len(otpID) != 15 {
		t.Fatalf("otp ids %q %q", fake, otpID)
	}
	m := sink.next(t)
	code := otpCode(t, m)
	if len(code) != 8 {
		t.Fatalf("code %q", code)
	}
	auth := func(id, code string) *response {
		return ts.do("POST", "/api/collections/users/auth-with-otp", "", map[string]any{"otpId": id, "password": code})
	}
	auth(fake, code).expectError(400, "Invalid or expired OTP.", map[string]any{})
	// five wrong codes, then 429 even for the right one
	for i := range 5 {
		auth(otpID, "0000000"+strconv.Itoa(i)).status(400)
	}
	r := auth(otpID, code).status(429)
	if r.hdr.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}

	otpID = ts.do("POST", "/api/collections/users/request-otp", "", map[string]any{"email": "otp@strata.test"}).status(200).get("otpId").(string)
	code = otpCode(t, sink.next(t))
	ok := auth(otpID, code).status(200)
	ok.expect("record.id", id).expect("record.verified", true)
	if c := claims(t, ok.get("token").(string)); c["type"] != "auth" || c["refreshable"] != true {
		t.Fatalf("claims %v", c)
	}
	auth(otpID, code).status(400) // single use
	// the unverified account's password (possibly set by someone else) was replaced
	signIn(ts, "otp@strata.test", userPass).status(400)
}

func TestMFAFlow(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	sink := withMail(ts)
	ts.user("mfa@strata.test")
	enableOTP(ts, true)

	r := signIn(ts, "mfa@strata.test", userPass).status(401)
	var body map[string]any
	json.Unmarshal(r.body, &body)
	mfaID, _ := body["mfaId"].(string)
	if len(body) != 1 || mfaID == "" {
		t.Fatalf("MFA body %s", r.body)
	}
	ts.do("POST", "/api/collections/users/auth-with-password", "", map[string]any{"identity": "mfa@strata.test", "password": userPass, "mfaId": mfaID}).
		expectError(400, "A different authentication method is required.", map[string]any{})
	ts.do("POST", "/api/collections/users/auth-with-password?mfaId=nope", "", map[string]any{"identity": "mfa@strata.test", "password": userPass}).
		expectError(400, "Invalid or expired MFA session.", map[string]any{})

	otpID := ts.do("POST", "/api/collections/users/request-otp", "", map[string]any{"email": "mfa@strata.test"}).status(200).get("otpId").(string)
	code := otpCode(t, sink.next(t))
	ts.do("POST", "/api/collections/users/auth-with-otp", "", map[string]any{"otpId": otpID, "password": code, "mfaId": mfaID}).status(200)
	// with MFA on, the OTP does not replace the password
	signIn(ts, "mfa@strata.test", userPass).status(401)
}

func TestImpersonate(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	id, userTok := ts.user("imp@strata.test")
	path := "/api/collections/users/impersonate/" + id
	ts.do("POST", path, "", nil).status(401)
	ts.do("POST", path, userTok, nil).status(403)
	ts.do("POST", "/api/collections/users/impersonate/missing", ts.suToken, nil).status(404)
	r := ts.do("POST", path, ts.suToken, map[string]any{"duration": 60}).status(200).expect("record.id", id).expect("record.email", "imp@strata.test")
	tok := r.get("token").(string)
	c := claims(t, tok)
	if c["refreshable"] != false || c["type"] != "auth" {
		t.Fatalf("claims %v", c)
	}
	if exp := int64(c["exp"].(float64)); exp < time.Now().Unix()+50 || exp > time.Now().Unix()+70 {
		t.Fatalf("exp %d not about a minute away", exp)
	}
	// non-refreshable: auth-refresh returns the same token
	ts.do("POST", "/api/collections/users/auth-refresh", tok, nil).status(200).expect("token", tok)
	ts.do("POST", path, ts.suToken, map[string]any{"duration": -5}).status(400)
}

func TestAuthRateLimits(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.user("victim@strata.test")
	attempt := func(ip, pass string) *response {
		return ts.doWith("POST", "/api/collections/users/auth-with-password", "", map[string]any{"identity": "victim@strata.test", "password": pass},
			map[string]string{"X-Forwarded-For": ip})
	}
	// X-Forwarded-For is ignored without a trusted proxy: the attacker's
	// rotating header does not give them fresh buckets. (ts.user signed in
	// once already: 9 more fill the burst of 10.)
	for i := range 9 {
		attempt("10.0.0."+strconv.Itoa(i), "wrong-pass-1").status(400)
	}
	r := attempt("10.0.1.1", "wrong-pass-1").status(429)
	if ra, err := strconv.Atoi(r.hdr.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After = %q", r.hdr.Get("Retry-After"))
	}
	r.expect("status", 429)

	// Behind a trusted proxy, the limit follows the client: the attacker's
	// IP is blocked, the victim signing in from elsewhere is not.
	ts.su("PATCH", "/api/settings", map[string]any{"trustedProxy": map[string]any{"headers": []string{"X-Forwarded-For"}}}).status(200)
	for range 10 {
		attempt("203.0.113.9", "wrong-pass-1").status(400)
	}
	attempt("203.0.113.9", userPass).status(429)
	attempt("198.51.100.7", userPass).status(200)

	// per IP across identities: a burst of 30 checks, then one per 2 s
	// (slow machines refill a few tokens while hashing), then 429 whatever
	// the identity.
	start := time.Now()
	for i := 0; ; i++ {
		r := ts.doWith("POST", "/api/collections/users/auth-with-password", "", map[string]any{"identity": "u" + strconv.Itoa(i) + "@strata.test", "password": "wrong-pass-1"},
			map[string]string{"X-Forwarded-For": "192.0.2.1"})
		if r.code == 429 {
			if allowed := 30 + int(time.Since(start)/(2*time.Second)) + 1; i < 30 || i > allowed {
				t.Fatalf("429 after %d checks, want 30..%d", i, allowed)
			}
			break
		}
		r.status(400)
	}
	// reset confirmation and OTP are limited too
	for range 30 {
		ts.doWith("POST", "/api/collections/users/confirm-password-reset", "", map[string]any{"token": "x", "password": "abcdefgh1", "passwordConfirm": "abcdefgh1"},
			map[string]string{"X-Forwarded-For": "192.0.2.2"})
	}
	ts.doWith("POST", "/api/collections/users/confirm-password-reset", "", map[string]any{"token": "x", "password": "abcdefgh1", "passwordConfirm": "abcdefgh1"},
		map[string]string{"X-Forwarded-For": "192.0.2.2"}).status(429)
}

// TestNoEnumeration: known and unknown identities get byte-identical
// answers, and comparable timing on sign-in.
func TestNoEnumeration(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	withMail(ts)
	ts.user("known@strata.test")
	enableOTP(ts, false)
	for _, route := range []string{"request-password-reset", "request-verification"} {
		a := ts.do("POST", "/api/collections/users/"+route, "", map[string]any{"email": "known@strata.test"})
		b := ts.do("POST", "/api/collections/users/"+route, "", map[string]any{"email": "unknown@strata.test"})
		if a.code != b.code || string(a.body) != string(b.body) {
			t.Fatalf("%s: %d %s vs %d %s", route, a.code, a.body, b.code, b.body)
		}
	}
	a := signIn(ts, "known@strata.test", "wrong-pass-1")
	b := signIn(ts, "unknown@strata.test", "wrong-pass-1")
	if a.code != 400 || string(a.body) != string(b.body) {
		t.Fatalf("sign-in: %s vs %s", a.body, b.body)
	}
	ka := ts.do("POST", "/api/collections/users/request-otp", "", map[string]any{"email": "known@strata.test"}).status(200).json()
	kb := ts.do("POST", "/api/collections/users/request-otp", "", map[string]any{"email": "unknown@strata.test"}).status(200).json()
	if len(ka) != 1 || len(kb) != 1 || len(ka["otpId"].(string)) != len(kb["otpId"].(string)) {
		t.Fatalf("otp: %v vs %v", ka, kb)
	}
	// timing: medians within 2x (both cost one Argon2id hash)
	median := func(email string) time.Duration {
		var ds []time.Duration
		for i := range 7 {
			start := time.Now()
			ts.doWith("POST", "/api/collections/users/auth-with-password", "", map[string]any{"identity": email, "password": "wrong-pass-1"},
				map[string]string{"X-Forwarded-For": "198.18.0." + strconv.Itoa(i)})
			ds = append(ds, time.Since(start))
		}
		for i := range ds {
			for j := i + 1; j < len(ds); j++ {
				if ds[j] < ds[i] {
					ds[i], ds[j] = ds[j], ds[i]
				}
			}
		}
		return ds[len(ds)/2]
	}
	ts.app.SetAuthLimits(serviceNoLimits())
	known, unknown := median("known@strata.test"), median("unknown@strata.test")
	if known > 2*unknown || unknown > 2*known {
		t.Fatalf("timing differs: known %v, unknown %v", known, unknown)
	}
}

func TestCommonPasswordOnSignUp(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.do("POST", "/api/collections/users/records", "", map[string]any{"email": "c@strata.test", "password": "Iloveyou1", "passwordConfirm": "Iloveyou1"}).
		status(400).expect("data.password.code", "validation_common_password")
	p := strings.Repeat("a1", 32) // 64 characters are accepted
	ts.do("POST", "/api/collections/users/records", "", map[string]any{"email": "c@strata.test", "password": p, "passwordConfirm": p}).status(200)
	signIn(ts, "c@strata.test", p).status(200)
}

func TestDevMailer(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	dir := t.TempDir()
	ts.app.SetMailer(mailer.New(ts.app.SMTPConfig, dir, nil))
	ts.user("dev@strata.test")
	ts.do("POST", "/api/collections/users/request-verification", "", map[string]any{"email": "dev@strata.test"}).status(204)
	ts.app.WaitMail()
	files := devMails(t, dir)
	if len(files) != 1 {
		t.Fatalf("%d .eml files", len(files))
	}
	m, err := parseMail(files[0])
	if err != nil {
		t.Fatal(err)
	}
	token := m.link(t, "confirm-verification")
	ts.do("POST", "/api/collections/users/confirm-verification", "", map[string]any{"token": token}).status(204)
}

func serviceNoLimits() service.AuthLimits { return service.AuthLimits{Disabled: true} }

func devMails(tb testing.TB, dir string) []string {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".eml") {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, string(b))
		}
	}
	return out
}
