package api_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fakeOIDC is an OpenID Connect provider on loopback: discovery, JWKS,
// a token endpoint that checks client credentials, redirect URI and the
// PKCE verifier, a userinfo endpoint, and real RS256-signed ID tokens.
type fakeOIDC struct {
	tb  testing.TB
	srv *httptest.Server
	key *rsa.PrivateKey

	mu     sync.Mutex
	codes  map[string]*fakeGrant
	access map[string]map[string]any // access token → userinfo
}

// fakeGrant is what the user approved at /authorize.
type fakeGrant struct {
	claims      map[string]any // sub, email, email_verified, name…
	challenge   string         // S256 code challenge; "" without PKCE
	nonce       string
	redirectURI string
	idMode      string // "" (good), "badsig", "none", "hs256", "otherkey", "wrongaud", "expired", "wrongnonce"
}

const (
	fakeClientID     = "strata-client"
	fakeClientSecret = "strata-client-secret"
	fakeRedirect     = "http://127.0.0.1/callback"
)

var (
	testKeyOnce sync.Once
	testKeys    [2]*rsa.PrivateKey
)

func testRSAKeys(tb testing.TB) [2]*rsa.PrivateKey {
	testKeyOnce.Do(func() {
		for i := range testKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				tb.Fatal(err)
			}
			testKeys[i] = k
		}
	})
	return testKeys
}

func newFakeOIDC(tb testing.TB) *fakeOIDC {
	tb.Helper()
	f := &fakeOIDC{tb: tb, key: testRSAKeys(tb)[0], codes: map[string]*fakeGrant{}, access: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, 200, map[string]any{"issuer": f.srv.URL, "authorization_endpoint": f.srv.URL + "/authorize",
			"token_endpoint": f.srv.URL + "/token", "userinfo_endpoint": f.srv.URL + "/userinfo", "jwks_uri": f.srv.URL + "/jwks"})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		pub := f.key.PublicKey
		writeTestJSON(w, 200, map[string]any{"keys": []any{map[string]any{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
			"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes())}}})
	})
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("GET /userinfo", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		info := f.access[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		f.mu.Unlock()
		if info == nil {
			writeTestJSON(w, 401, map[string]any{"error": "invalid_token"})
			return
		}
		writeTestJSON(w, 200, info)
	})
	f.srv = httptest.NewServer(mux)
	tb.Cleanup(f.srv.Close)
	return f
}

func writeTestJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeOIDC) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeTestJSON(w, 400, map[string]any{"error": "invalid_request"})
		return
	}
	fail := func(e string) { writeTestJSON(w, 400, map[string]any{"error": e}) }
	if r.PostForm.Get("client_id") != fakeClientID || r.PostForm.Get("client_secret") != fakeClientSecret {
		fail("invalid_client")
		return
	}
	f.mu.Lock()
	g := f.codes[r.PostForm.Get("code")]
	delete(f.codes, r.PostForm.Get("code")) // single use
	f.mu.Unlock()
	if r.PostForm.Get("grant_type") != "authorization_code" || g == nil || r.PostForm.Get("redirect_uri") != g.redirectURI {
		fail("invalid_grant")
		return
	}
	if g.challenge != "" {
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			fail("invalid_grant")
			return
		}
	}
	access := randomTestString()
	f.mu.Lock()
	f.access[access] = g.claims
	f.mu.Unlock()
	writeTestJSON(w, 200, map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": 3600,
		"refresh_token": "refresh-" + access, "id_token": f.idToken(g)})
}

func randomTestString() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// idToken signs g's claims as the idMode says.
func (f *fakeOIDC) idToken(g *fakeGrant) string {
	now := time.Now()
	claims := jwt.MapClaims{"iss": f.srv.URL, "aud": fakeClientID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range g.claims {
		claims[k] = v
	}
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}
	switch g.idMode {
	case "wrongaud":
		claims["aud"] = "someone-else"
	case "expired":
		claims["exp"] = now.Add(-time.Hour).Unix()
	case "wrongnonce":
		claims["nonce"] = "not-the-nonce"
	}
	var (
		s   string
		err error
	)
	switch g.idMode {
	case "none":
		t := jwt.NewWithClaims(jwt.SigningMethodNone, claims)
		t.Header["kid"] = "k1"
		s, err = t.SignedString(jwt.UnsafeAllowNoneSignatureType)
	case "hs256":
		// Signed with the client secret (and, separately, with the public
		// key's bytes as the HMAC key: the classic confusion attack).
		t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
		t.Header["kid"] = "k1"
		s, err = t.SignedString(f.key.PublicKey.N.Bytes())
	case "otherkey", "badsig":
		t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		t.Header["kid"] = "k1"
		s, err = t.SignedString(testRSAKeys(f.tb)[1])
	default:
		t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		t.Header["kid"] = "k1"
		s, err = t.SignedString(f.key)
	}
	if err != nil {
		f.tb.Fatal(err)
	}
	if g.idMode == "badsig" {
		// Flip the claims: the signature no longer covers them.
		parts := strings.Split(s, ".")
		parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"` + f.srv.URL + `","aud":"` + fakeClientID + `","sub":"admin","exp":9999999999}`))
		s = strings.Join(parts, ".")
	}
	return s
}

// oauthFixture is a test server whose users collection signs in with the
// fake provider as "oidc".
type oauthFixture struct {
	*testServer
	idp *fakeOIDC
}

func newOAuthFixture(t *testing.T) *oauthFixture {
	t.Helper()
	ts := newTestServer(t)
	idp := newFakeOIDC(t)
	ts.su("PATCH", "/api/collections/users", map[string]any{"oauth2": map[string]any{"enabled": true,
		"providers": []any{map[string]any{"name": "oidc", "displayName": "Fake IdP", "clientId": fakeClientID,
			"clientSecret": fakeClientSecret, "extra": map[string]any{"issuer": idp.srv.URL}}}}}).status(200)
	return &oauthFixture{testServer: ts, idp: idp}
}

// authorize plays the user approving at the provider: it reads the
// challenge and nonce from auth-methods' authURL and returns a code and
// the verifier the client kept.
func (fx *oauthFixture) authorize(coll string, claims map[string]any, idMode string) (code, verifier string) {
	fx.tb.Helper()
	res := fx.do("GET", "/api/collections/"+coll+"/auth-methods", "", nil).status(200)
	p := res.get("oauth2.providers.0").(map[string]any)
	u, err := url.Parse(p["authURL"].(string) + url.QueryEscape(fakeRedirect))
	if err != nil {
		fx.tb.Fatal(err)
	}
	q := u.Query()
	code = randomTestString()
	fx.idp.mu.Lock()
	fx.idp.codes[code] = &fakeGrant{claims: claims, challenge: q.Get("code_challenge"), nonce: q.Get("nonce"),
		redirectURI: q.Get("redirect_uri"), idMode: idMode}
	fx.idp.mu.Unlock()
	return code, p["codeVerifier"].(string)
}

func (fx *oauthFixture) signIn(coll, token string, claims map[string]any, idMode string, createData map[string]any) *response {
	fx.tb.Helper()
	code, verifier := fx.authorize(coll, claims, idMode)
	body := map[string]any{"provider": "oidc", "code": code, "codeVerifier": verifier, "redirectURL": fakeRedirect}
	if createData != nil {
		body["createData"] = createData
	}
	return fx.do("POST", "/api/collections/"+coll+"/auth-with-oauth2", token, body)
}

func person(sub, email string, verified bool) map[string]any {
	return map[string]any{"sub": sub, "email": email, "email_verified": verified, "name": "Person " + sub,
		"picture": "https://img.test/" + sub + ".png"}
}

func TestOAuth2AuthMethodsAndProviders(t *testing.T) {
	fx := newOAuthFixture(t)
	res := fx.do("GET", "/api/collections/users/auth-methods", "", nil).status(200)
	res.expect("oauth2.enabled", true).expect("oauth2.providers.0.name", "oidc").
		expect("oauth2.providers.0.displayName", "Fake IdP").expect("oauth2.providers.0.codeChallengeMethod", "S256").
		expect("authProviders.0.name", "oidc")
	p := res.get("oauth2.providers.0").(map[string]any)
	if s := p["state"].(string); len(s) != 30 {
		t.Fatalf("state %q: want 30 chars", s)
	}
	if v := p["codeVerifier"].(string); len(v) != 43 {
		t.Fatalf("codeVerifier %q: want 43 chars", v)
	}
	au := p["authURL"].(string)
	if !strings.HasPrefix(au, fx.idp.srv.URL+"/authorize?") || !strings.HasSuffix(au, "&redirect_uri=") || p["authUrl"] != au {
		t.Fatalf("authURL %q", au)
	}
	sum := sha256.Sum256([]byte(p["codeVerifier"].(string)))
	if p["codeChallenge"] != base64.RawURLEncoding.EncodeToString(sum[:]) {
		t.Fatalf("codeChallenge is not S256(codeVerifier)")
	}
	if res.get("authProviders.0.logo") != nil || res.get("oauth2.providers.0.logo") == nil {
		t.Fatalf("logo: only in oauth2.providers; body %s", res.body)
	}

	// Without PKCE the PKCE fields (and the nonce) are empty; a built-in
	// provider brings its own endpoints and scopes.
	fx.su("PATCH", "/api/collections/users", map[string]any{"oauth2": map[string]any{"enabled": true,
		"providers": []any{map[string]any{"name": "oidc", "clientId": fakeClientID, "pkce": false, "extra": map[string]any{"issuer": fx.idp.srv.URL}},
			map[string]any{"name": "github", "clientId": "gh"}}}}).status(200)
	res = fx.do("GET", "/api/collections/users/auth-methods", "", nil).status(200)
	res.expect("oauth2.providers.0.name", "oidc").expect("oauth2.providers.0.codeVerifier", "").
		expect("oauth2.providers.0.codeChallenge", "").expect("oauth2.providers.0.codeChallengeMethod", "").
		expect("oauth2.providers.1.name", "github").expect("oauth2.providers.1.displayName", "GitHub").
		expect("oauth2.providers.1.codeChallengeMethod", "S256")
	if au := res.get("oauth2.providers.0.authURL").(string); strings.Contains(au, "nonce=") || strings.Contains(au, "code_challenge") {
		t.Fatalf("authURL without PKCE %q", au)
	}
	if au := res.get("oauth2.providers.1.authURL").(string); !strings.HasPrefix(au, "https://github.com/login/oauth/authorize?client_id=gh&code_challenge=") ||
		!strings.Contains(au, "&scope=read%3Auser+user%3Aemail&") {
		t.Fatalf("github authURL %q", au)
	}

	// OAuth2 off: no providers, legacy key null.
	fx.su("PATCH", "/api/collections/users", map[string]any{"oauth2": map[string]any{"enabled": false}}).status(200)
	fx.do("GET", "/api/collections/users/auth-methods", "", nil).status(200).
		expect("oauth2", map[string]any{"enabled": false, "providers": []any{}}).expect("authProviders", nil)

	fx.do("GET", "/api/collections/meta/oauth2-providers", "", nil).status(401)
	list := fx.su("GET", "/api/collections/meta/oauth2-providers", nil).status(200)
	for _, name := range []string{"apple", "discord", "github", "gitlab", "google", "microsoft", "oidc"} {
		found := false
		var arr []map[string]any
		_ = json.Unmarshal(list.body, &arr)
		for _, p := range arr {
			if p["name"] == name && p["displayName"] != "" && strings.HasPrefix(p["logo"].(string), "<svg") {
				found = true
			}
		}
		if !found {
			t.Fatalf("provider %s missing from %s", name, list.body)
		}
	}
}

func TestOAuth2SignUpAndSignIn(t *testing.T) {
	fx := newOAuthFixture(t)
	res := fx.signIn("users", "", person("alice-sub", "alice@idp.test", true), "", map[string]any{"emailVisibility": true})
	res.status(200).expect("meta.isNew", true).expect("meta.id", "alice-sub").expect("meta.email", "alice@idp.test").
		expect("meta.name", "Person alice-sub").expect("meta.avatarURL", "https://img.test/alice-sub.png").
		expect("meta.avatarUrl", "https://img.test/alice-sub.png").expect("meta.rawUser.sub", "alice-sub").
		expect("record.email", "alice@idp.test").expect("record.verified", true).expect("record.name", "Person alice-sub").
		expect("record.emailVisibility", true)
	for _, k := range []string{"meta.accessToken", "meta.refreshToken", "meta.expiry", "meta.username"} {
		if _, ok := res.get(k).(string); !ok {
			t.Fatalf("%s missing: %s", k, res.body)
		}
	}
	id := res.get("record.id").(string)
	token := res.get("token").(string)
	fx.do("POST", "/api/collections/users/auth-refresh", token, nil).status(200).expect("record.id", id)

	// The same identity signs in to the same record.
	fx.signIn("users", "", person("alice-sub", "alice@idp.test", true), "", nil).status(200).
		expect("meta.isNew", false).expect("record.id", id)
	// Even after its email changed at the provider.
	fx.signIn("users", "", person("alice-sub", "alice-new@idp.test", true), "", nil).status(200).expect("record.id", id)

	links := fx.su("GET", "/api/collections/_externalAuths/records", nil).status(200)
	links.expect("totalItems", 1).expect("items.0.recordRef", id).expect("items.0.provider", "oidc").
		expect("items.0.providerId", "alice-sub").expect("items.0.collectionRef", "_pb_users_auth_")
	// The owner sees (and may delete) its own links; others don't.
	fx.do("GET", "/api/collections/_externalAuths/records", token, nil).status(200).expect("totalItems", 1)
	_, other := fx.user("other@strata.test")
	fx.do("GET", "/api/collections/_externalAuths/records", other, nil).status(200).expect("totalItems", 0)

	// createData cannot choose another email than the provider's.
	res = fx.signIn("users", "", person("mallory-sub", "mallory@idp.test", true), "", map[string]any{"email": "victim@strata.test"})
	res.status(200).expect("record.email", "mallory@idp.test")
}

func TestOAuth2ExistingAccounts(t *testing.T) {
	fx := newOAuthFixture(t)
	// A verified account is linked by its email.
	verifiedID := fx.record("users", map[string]any{"email": "bob@idp.test", "password": "bob-pass-123", "passwordConfirm": "bob-pass-123", "verified": true})
	fx.signIn("users", "", person("bob-sub", "BOB@idp.test", true), "", nil).status(200).
		expect("meta.isNew", false).expect("record.id", verifiedID)

	// An unverified account with that email is never linked: 400, no
	// link, no second account, and its password is left alone.
	unverifiedID := fx.record("users", map[string]any{"email": "carol@idp.test", "password": "carol-pass-123", "passwordConfirm": "carol-pass-123"})
	fx.signIn("users", "", person("carol-sub", "carol@idp.test", true), "", nil).
		expectError(400, "An unverified account already uses this email. Verify it (or reset its password) first, then sign in with OAuth2 again.", nil)
	fx.su("GET", "/api/collections/_externalAuths/records?filter="+q("recordRef='"+unverifiedID+"'"), nil).status(200).expect("totalItems", 0)
	fx.su("GET", "/api/collections/users/records?filter="+q("email='carol@idp.test'"), nil).status(200).expect("totalItems", 1)

	// An email the provider does not vouch for never selects an account.
	fx.signIn("users", "", person("bob-impostor", "bob@idp.test", false), "", nil).status(400)
	fx.su("GET", "/api/collections/_externalAuths/records?filter="+q("providerId='bob-impostor'"), nil).status(200).expect("totalItems", 0)

	// A signed-in user links an identity to its own record, whatever the
	// identity's email.
	daveID, daveToken := fx.user("dave@strata.test")
	fx.signIn("users", daveToken, person("dave-sub", "dave-elsewhere@idp.test", true), "", nil).status(200).
		expect("record.id", daveID).expect("meta.isNew", false)
	fx.signIn("users", "", person("dave-sub", "dave-elsewhere@idp.test", true), "", nil).status(200).expect("record.id", daveID)
}

func TestOAuth2Refusals(t *testing.T) {
	fx := newOAuthFixture(t)
	alice := person("alice-sub", "alice@idp.test", true)
	for _, mode := range []string{"badsig", "otherkey", "none", "hs256", "wrongaud", "expired", "wrongnonce"} {
		t.Run(mode, func(t *testing.T) {
			sub := *fx.testServer
			sub.tb = t
			fx := &oauthFixture{testServer: &sub, idp: fx.idp}
			fx.signIn("users", "", alice, mode, nil).expectError(400, "Failed to fetch OAuth2 user.", nil)
		})
	}
	fx.su("GET", "/api/collections/users/records", nil).status(200).expect("totalItems", 0)

	// PKCE: a wrong verifier fails at the provider.
	code, _ := fx.authorize("users", alice, "")
	fx.do("POST", "/api/collections/users/auth-with-oauth2", "", map[string]any{"provider": "oidc", "code": code,
		"codeVerifier": strings.Repeat("x", 43), "redirectURL": fakeRedirect}).expectError(400, "Failed to fetch OAuth2 token.", nil)
	// A code is single-use.
	code, verifier := fx.authorize("users", alice, "")
	body := map[string]any{"provider": "oidc", "code": code, "codeVerifier": verifier, "redirectUrl": fakeRedirect}
	fx.do("POST", "/api/collections/users/auth-with-oauth2", "", body).status(200)
	fx.do("POST", "/api/collections/users/auth-with-oauth2", "", body).expectError(400, "Failed to fetch OAuth2 token.", nil)

	fx.do("POST", "/api/collections/users/auth-with-oauth2", "", map[string]any{"provider": "github", "code": "x"}).
		expectError(400, "", map[string]any{"provider": map[string]any{"code": "validation_invalid_provider",
			"message": "Provider with name github is missing or is not enabled."}})
	fx.do("POST", "/api/collections/users/auth-with-oauth2", "", map[string]any{}).status(400).
		expect("data.provider.code", "validation_required").expect("data.code.code", "validation_required")
	fx.su("PATCH", "/api/collections/users", map[string]any{"oauth2": map[string]any{"enabled": false}}).status(200)
	fx.do("POST", "/api/collections/users/auth-with-oauth2", "", body).status(403)
}

func TestOAuth2CreateRule(t *testing.T) {
	fx := newOAuthFixture(t)
	fx.su("PATCH", "/api/collections/users", map[string]any{"createRule": `@request.context = "oauth2" && name != "blocked"`}).status(200)
	fx.signIn("users", "", person("x-sub", "x@idp.test", true), "", map[string]any{"name": "blocked"}).
		expectError(400, "Failed to create record.", nil)
	fx.su("GET", "/api/collections/users/records", nil).status(200).expect("totalItems", 0)
	fx.su("GET", "/api/collections/_externalAuths/records", nil).status(200).expect("totalItems", 0)
	fx.signIn("users", "", person("x-sub", "x@idp.test", true), "", map[string]any{"name": "fine"}).status(200).
		expect("record.name", "fine").expect("meta.isNew", true)
	// The rule's context is oauth2: a plain sign-up is refused.
	fx.do("POST", "/api/collections/users/records", "", map[string]any{"email": "y@strata.test", "password": "y-pass-1234", "passwordConfirm": "y-pass-1234"}).status(400)
	// createRule null: only superusers create, so no OAuth2 sign-up.
	fx.su("PATCH", "/api/collections/users", map[string]any{"createRule": nil}).status(200)
	fx.signIn("users", "", person("z-sub", "z@idp.test", true), "", nil).status(403)
}

func TestOAuth2NeverCreatesSuperusers(t *testing.T) {
	fx := newOAuthFixture(t)
	fx.su("PATCH", "/api/collections/_superusers", map[string]any{"oauth2": map[string]any{"enabled": true,
		"providers": []any{map[string]any{"name": "oidc", "clientId": fakeClientID, "clientSecret": fakeClientSecret,
			"extra": map[string]any{"issuer": fx.idp.srv.URL}}}}}).status(200)
	fx.signIn("_superusers", "", person("evil-sub", "evil@idp.test", true), "", nil).
		expectError(400, "Superusers cannot sign up with OAuth2.", nil)
	fx.su("GET", "/api/collections/_superusers/records", nil).status(200).expect("totalItems", 1)
	// An existing (always verified) superuser may sign in with its email.
	fx.signIn("_superusers", "", person("root-sub", suEmail, true), "", nil).status(200).expect("record.email", suEmail)
}

// TestOAuth2PreHijacking: an account registered with someone's email but
// never verified is not handed to whoever proves that email at a provider
// (API.md §7.4; Strata refuses where PocketBase links and resets the
// password, so that identities the registrant may have linked meanwhile
// cannot come along). The refusal changes nothing; once the account is
// verified the identity links. A signed-in owner linking an identity with
// its own provider-verified email gets the account verified.
func TestOAuth2PreHijacking(t *testing.T) {
	t.Parallel()
	fx := newOAuthFixture(t)
	const email = "erin@idp.test"
	id, squatterToken := fx.user(email)

	fx.signIn("users", "", person("erin-sub", email, true), "", nil).status(400)
	fx.do("POST", "/api/collections/users/auth-refresh", squatterToken, nil).status(200).expect("record.verified", false)
	signIn(fx.testServer, email, "user-pass-123").status(200)
	fx.su("GET", "/api/collections/_externalAuths/records?filter="+q("recordRef='"+id+"'"), nil).status(200).expect("totalItems", 0)

	// Verified (here by a superuser; a mailed link or an OTP does the
	// same), the account is the email owner's: the identity links.
	fx.su("PATCH", "/api/collections/users/records/"+id, map[string]any{"verified": true}).status(200)
	fx.signIn("users", "", person("erin-sub", email, true), "", nil).status(200).expect("record.id", id).expect("meta.isNew", false)

	// Linking while signed in verifies the account when the provider
	// vouches for its email; the session and password keep working.
	fid, ftoken := fx.user("frank@idp.test")
	fx.signIn("users", ftoken, person("frank-sub", "FRANK@idp.test", true), "", nil).status(200).
		expect("record.id", fid).expect("record.verified", true)
	fx.do("POST", "/api/collections/users/auth-refresh", ftoken, nil).status(200).expect("record.verified", true)
	signIn(fx.testServer, "frank@idp.test", "user-pass-123").status(200)
	// An unvouched or different email does not.
	gid, gtoken := fx.user("gina@idp.test")
	fx.signIn("users", gtoken, person("gina-sub", "gina@idp.test", false), "", nil).status(200).expect("record.verified", false)
	fx.signIn("users", "", person("gina-sub", "gina@idp.test", false), "", nil).status(200).expect("record.id", gid).expect("record.verified", false)
	// Its linked identity signing in later with a vouched email does.
	fx.signIn("users", "", person("gina-sub", "gina@idp.test", true), "", nil).status(200).expect("record.id", gid).expect("record.verified", true)

	// A squatter registers someone else's address, signs in with the
	// password they chose and links their own identity. When the real
	// owner verifies the address (here by a password reset), that link
	// is dropped: the squatter's identity no longer reaches the account.
	// (Every path that verifies goes through the same record update: a
	// mailed link, a password reset, an OTP or a superuser.)
	const owner = "hana@idp.test"
	hid, squatter := fx.user(owner)
	fx.signIn("users", squatter, person("mallory-sub", "mallory@evil.test", true), "", nil).status(200).
		expect("record.id", hid).expect("record.verified", false)
	fx.signIn("users", "", person("mallory-sub", "mallory@evil.test", true), "", nil).status(200).expect("record.id", hid)
	fx.su("PATCH", "/api/collections/users/records/"+hid, map[string]any{"verified": true}).status(200)
	fx.su("GET", "/api/collections/users/records/"+hid, nil).status(200).expect("verified", true)
	fx.su("GET", "/api/collections/_externalAuths/records?filter="+q("recordRef='"+hid+"'"), nil).status(200).expect("totalItems", 0)
	res := fx.signIn("users", "", person("mallory-sub", "mallory@evil.test", true), "", nil).status(200)
	if res.json()["record"].(map[string]any)["id"] == hid {
		t.Fatal("the squatter's identity still signs in to the verified account")
	}
}
