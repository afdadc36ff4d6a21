package service

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-run/strata"
)

// preset is a built-in provider: its endpoints, scopes and how its user
// JSON maps to an ExternalUser. Collection options may override the URLs.
type preset struct {
	name, displayName string
	authURL, tokenURL string
	userInfoURL       string
	jwksURL           string
	issuers           []string
	scopes            []string
	authParams        map[string]string
	// oidc: the provider issues ID tokens we verify (and bind to a nonce).
	oidc    bool
	mapUser func(ctx context.Context, p *provider, tok *oauth2Token, raw map[string]any) (*ExternalUser, error)
}

var presets = map[string]*preset{
	"google": {name: "google", displayName: "Google",
		authURL: "https://accounts.google.com/o/oauth2/v2/auth", tokenURL: "https://oauth2.googleapis.com/token",
		userInfoURL: "https://www.googleapis.com/oauth2/v3/userinfo",
		scopes:      []string{"https://www.googleapis.com/auth/userinfo.profile", "https://www.googleapis.com/auth/userinfo.email"},
		mapUser:     mapOIDCUser},
	"github": {name: "github", displayName: "GitHub",
		authURL: "https://github.com/login/oauth/authorize", tokenURL: "https://github.com/login/oauth/access_token",
		userInfoURL: "https://api.github.com/user", scopes: []string{"read:user", "user:email"},
		mapUser: mapGitHubUser},
	"apple": {name: "apple", displayName: "Apple",
		authURL: "https://appleid.apple.com/auth/authorize", tokenURL: "https://appleid.apple.com/auth/token",
		jwksURL: "https://appleid.apple.com/auth/keys", issuers: []string{"https://appleid.apple.com"},
		scopes: []string{"name", "email"}, authParams: map[string]string{"response_mode": "form_post"},
		oidc: true, mapUser: mapOIDCUser},
	"microsoft": {name: "microsoft", displayName: "Microsoft",
		authURL:     "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
		tokenURL:    "https://login.microsoftonline.com/common/oauth2/v2.0/token",
		userInfoURL: "https://graph.microsoft.com/v1.0/me", scopes: []string{"User.Read"},
		mapUser: mapMicrosoftUser},
	"gitlab": {name: "gitlab", displayName: "GitLab",
		authURL: "https://gitlab.com/oauth/authorize", tokenURL: "https://gitlab.com/oauth/token",
		userInfoURL: "https://gitlab.com/api/v4/user", scopes: []string{"read_user"},
		mapUser: mapGitLabUser},
	"discord": {name: "discord", displayName: "Discord",
		authURL: "https://discord.com/api/oauth2/authorize", tokenURL: "https://discord.com/api/oauth2/token",
		userInfoURL: "https://discord.com/api/users/@me", scopes: []string{"identify", "email"},
		mapUser: mapDiscordUser},
	"oidc": {name: "oidc", displayName: "OpenID Connect", scopes: []string{"openid", "email", "profile"},
		oidc: true, mapUser: mapOIDCUser},
}

// OAuth2ProviderInfo is a built-in provider as listed by
// GET /api/collections/meta/oauth2-providers.
type OAuth2ProviderInfo struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
	Logo        string `json:"logo"`
}

// OAuth2Providers lists the built-in providers, by name.
func OAuth2Providers() []OAuth2ProviderInfo {
	out := make([]OAuth2ProviderInfo, 0, len(presets))
	for _, p := range presets {
		out = append(out, OAuth2ProviderInfo{Name: p.name, DisplayName: p.displayName, Logo: logo(p.displayName)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// logo is a small monogram badge (no third-party artwork is shipped).
func logo(displayName string) string {
	return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="16" cy="16" r="16" fill="#555"/>` +
		`<text x="16" y="22" font-family="sans-serif" font-size="16" text-anchor="middle" fill="#fff">` + displayName[:1] + `</text></svg>`
}

// presetOf returns the preset of a configured provider name: a built-in
// name, or "oidc", "oidc2", "oidc3"… for generic OpenID Connect.
func presetOf(name string) *preset {
	if p := presets[name]; p != nil {
		return p
	}
	if rest, ok := strings.CutPrefix(name, "oidc"); ok {
		if _, err := strconv.Atoi(rest); err == nil {
			return presets["oidc"]
		}
	}
	return nil
}

// provider is a configured provider, ready to use.
type provider struct {
	*preset
	name         string
	displayName  string
	clientID     string
	clientSecret string
	authURL      string
	tokenURL     string
	userInfoURL  string
	jwksURL      string
	issuers      []string
	pkce         bool
	client       *http.Client
	jwks         *jwksCache
}

// oauth2HTTP is the client for provider calls: bounded in time, and it
// never follows a redirect to somewhere else with a bearer token.
var oauth2HTTP = &http.Client{Timeout: 15 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// oauth2Provider resolves provider name of c, or nil when c has no such
// provider configured.
func (a *App) oauth2Provider(ctx context.Context, c *strata.Collection, name string) (*provider, error) {
	for _, cfg := range c.Auth.OAuth2.Providers {
		if cfg.Name != name {
			continue
		}
		pre := presetOf(name)
		if pre == nil {
			return nil, nil
		}
		return a.newProvider(ctx, pre, cfg)
	}
	return nil, nil
}

func (a *App) newProvider(ctx context.Context, pre *preset, cfg strata.OAuth2Provider) (*provider, error) {
	p := &provider{preset: pre, name: cfg.Name, displayName: cfg.DisplayName, clientID: cfg.ClientID,
		clientSecret: cfg.ClientSecret, authURL: pre.authURL, tokenURL: pre.tokenURL, userInfoURL: pre.userInfoURL,
		jwksURL: pre.jwksURL, issuers: pre.issuers, pkce: true, client: oauth2HTTP, jwks: sharedJWKS}
	if p.displayName == "" {
		p.displayName = pre.displayName
	}
	if cfg.PKCE != nil {
		p.pkce = *cfg.PKCE
	}
	extra := func(k string) string { v, _ := cfg.Extra[k].(string); return v }
	if d := extra("discoveryURL"); d != "" || extra("issuer") != "" {
		if d == "" {
			d = strings.TrimSuffix(extra("issuer"), "/") + "/.well-known/openid-configuration"
		}
		doc, err := discover(ctx, p.client, d)
		if err != nil {
			return nil, &strata.Error{Code: strata.EInvalid, Message: "Failed to load the OpenID Connect discovery document.", Err: err}
		}
		p.authURL, p.tokenURL, p.userInfoURL, p.jwksURL = doc.Authorization, doc.Token, doc.UserInfo, doc.JWKS
		if doc.Issuer != "" {
			p.issuers = []string{doc.Issuer}
		}
	}
	if cfg.AuthURL != "" {
		p.authURL = cfg.AuthURL
	}
	if cfg.TokenURL != "" {
		p.tokenURL = cfg.TokenURL
	}
	if cfg.UserInfoURL != "" {
		p.userInfoURL = cfg.UserInfoURL
	}
	if v := extra("jwksURL"); v != "" {
		p.jwksURL = v
	}
	if v := extra("issuer"); v != "" {
		p.issuers = []string{v}
	}
	if list, ok := cfg.Extra["issuers"].([]any); ok {
		p.issuers = nil
		for _, v := range list {
			if s, _ := v.(string); s != "" {
				p.issuers = append(p.issuers, s)
			}
		}
	}
	return p, nil
}

// discovery is the part of an OpenID Provider Configuration we use.
type discovery struct {
	Issuer        string `json:"issuer"`
	Authorization string `json:"authorization_endpoint"`
	Token         string `json:"token_endpoint"`
	UserInfo      string `json:"userinfo_endpoint"`
	JWKS          string `json:"jwks_uri"`
}

var discoveryCache sync.Map // url → discoveryEntry

type discoveryEntry struct {
	doc     *discovery
	fetched time.Time
}

func discover(ctx context.Context, client *http.Client, u string) (*discovery, error) {
	if e, ok := discoveryCache.Load(u); ok && time.Since(e.(discoveryEntry).fetched) < time.Hour {
		return e.(discoveryEntry).doc, nil
	}
	var doc discovery
	if err := getJSON(ctx, client, u, "", &doc); err != nil {
		return nil, err
	}
	if doc.Token == "" || doc.Authorization == "" {
		return nil, errors.New("discovery document without authorization or token endpoint")
	}
	discoveryCache.Store(u, discoveryEntry{doc: &doc, fetched: time.Now()})
	return &doc, nil
}

// OAuth2Start is one provider of auth-methods: where to send the user, and
// the PKCE verifier the client keeps for auth-with-oauth2.
type OAuth2Start struct {
	Name                string `json:"name"`
	DisplayName         string `json:"displayName"`
	State               string `json:"state"`
	AuthURL             string `json:"authURL"`
	AuthURLOld          string `json:"authUrl"`
	CodeVerifier        string `json:"codeVerifier"`
	CodeChallenge       string `json:"codeChallenge"`
	CodeChallengeMethod string `json:"codeChallengeMethod"`
}

// OAuth2Starts lists c's usable providers with fresh state and PKCE values
// (empty when OAuth2 is off). A provider whose discovery fails is left out.
func (a *App) OAuth2Starts(ctx context.Context, c *strata.Collection) []OAuth2Start {
	out := []OAuth2Start{}
	if !c.Auth.OAuth2.Enabled {
		return out
	}
	for _, cfg := range c.Auth.OAuth2.Providers {
		p, err := a.oauth2Provider(ctx, c, cfg.Name)
		if err != nil || p == nil {
			if err != nil {
				a.log.Warn("oauth2 provider unavailable", "collection", c.Name, "provider", cfg.Name, "err", err)
			}
			continue
		}
		s := OAuth2Start{Name: p.name, DisplayName: p.displayName, State: randomSecret(30)}
		q := url.Values{}
		q.Set("client_id", p.clientID)
		q.Set("response_type", "code")
		q.Set("scope", strings.Join(p.scopes, " "))
		q.Set("state", s.State)
		for k, v := range p.authParams {
			q.Set(k, v)
		}
		if p.pkce {
			s.CodeVerifier = randomVerifier()
			sum := sha256.Sum256([]byte(s.CodeVerifier))
			s.CodeChallenge = base64.RawURLEncoding.EncodeToString(sum[:])
			s.CodeChallengeMethod = "S256"
			q.Set("code_challenge", s.CodeChallenge)
			q.Set("code_challenge_method", "S256")
			if p.oidc {
				q.Set("nonce", nonceFor(s.CodeVerifier))
			}
		}
		sep := "?"
		if strings.Contains(p.authURL, "?") {
			sep = "&"
		}
		s.AuthURL = p.authURL + sep + q.Encode() + "&redirect_uri="
		s.AuthURLOld = s.AuthURL
		out = append(out, s)
	}
	return out
}

// randomVerifier is a 43-character PKCE code verifier (RFC 7636 §4.1).
func randomVerifier() string {
	return randomSecret(43)
}

// nonceFor derives the OpenID Connect nonce from the PKCE verifier: only
// the client that holds the verifier can present an ID token issued for
// its own authorization request, and the server keeps no state.
func nonceFor(verifier string) string {
	sum := sha256.Sum256([]byte("strata-oidc-nonce\x00" + verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// exchange trades the authorization code for tokens.
func (p *provider) exchange(ctx context.Context, code, verifier, redirectURL string) (*oauth2Token, error) {
	if p.tokenURL == "" {
		return nil, errors.New("no token URL configured")
	}
	form := url.Values{}
	form.Set("grant_type", "authorization_code")
	form.Set("code", code)
	form.Set("redirect_uri", redirectURL)
	form.Set("client_id", p.clientID)
	if p.clientSecret != "" {
		form.Set("client_secret", p.clientSecret)
	}
	if p.pkce && verifier != "" {
		form.Set("code_verifier", verifier)
	}
	req, err := http.NewRequestWithContext(ctx, "POST", p.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	res, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	raw := map[string]any{}
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" || mt == "text/plain" {
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("token response: %w", err)
		}
		for k := range vals {
			raw[k] = vals.Get(k)
		}
	} else if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("token response (status %d): %w", res.StatusCode, err)
	}
	str := func(k string) string { v, _ := raw[k].(string); return v }
	if res.StatusCode/100 != 2 || str("error") != "" {
		return nil, fmt.Errorf("token endpoint answered %d %q", res.StatusCode, str("error"))
	}
	tok := &oauth2Token{AccessToken: str("access_token"), RefreshToken: str("refresh_token"), IDToken: str("id_token")}
	if tok.AccessToken == "" {
		return nil, errors.New("token response without access_token")
	}
	var secs float64
	switch v := raw["expires_in"].(type) {
	case float64:
		secs = v
	case string:
		secs, _ = strconv.ParseFloat(v, 64)
	}
	if secs > 0 {
		tok.Expiry = time.Now().Add(time.Duration(secs) * time.Second)
	}
	return tok, nil
}

// fetchUser reads the identity: from the verified ID token and/or the
// userinfo endpoint.
func (p *provider) fetchUser(ctx context.Context, tok *oauth2Token, verifier string) (*ExternalUser, error) {
	var claims map[string]any
	if tok.IDToken != "" && p.jwksURL != "" {
		nonce := ""
		if p.oidc && p.pkce && verifier != "" {
			nonce = nonceFor(verifier)
		}
		c, err := p.verifyIDToken(ctx, tok.IDToken, nonce)
		if err != nil {
			return nil, fmt.Errorf("id token: %w", err)
		}
		claims = c
	} else if p.userInfoURL == "" {
		return nil, errors.New("no verifiable ID token and no userinfo URL")
	}
	raw := claims
	if p.userInfoURL != "" {
		info := map[string]any{}
		if err := getJSON(ctx, p.client, p.userInfoURL, tok.AccessToken, &info); err != nil {
			return nil, fmt.Errorf("userinfo: %w", err)
		}
		if claims != nil {
			if sub, _ := info["sub"].(string); sub != "" && sub != claims["sub"] {
				return nil, errors.New("userinfo subject differs from the ID token's")
			}
		}
		raw = info
	}
	u, err := p.mapUser(ctx, p, tok, raw)
	if err != nil {
		return nil, err
	}
	if u.ID == "" {
		return nil, errors.New("the provider returned no user id")
	}
	u.Raw = raw
	return u, nil
}

// getJSON GETs u (with a bearer token when given) into out.
func getJSON(ctx context.Context, client *http.Client, u, bearer string, out any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: status %d", req.URL.Redacted(), res.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(out)
}

func str(m map[string]any, k string) string {
	switch v := m[k].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case json.Number:
		return v.String()
	}
	return ""
}

// truthy reads a boolean claim that some providers (Apple) send as a string.
func truthy(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return b == "true"
	}
	return false
}

// mapOIDCUser reads standard OpenID Connect claims (Google, Apple, generic).
func mapOIDCUser(_ context.Context, _ *provider, _ *oauth2Token, raw map[string]any) (*ExternalUser, error) {
	u := &ExternalUser{ID: str(raw, "sub"), Name: str(raw, "name"), Username: str(raw, "preferred_username"),
		Email: str(raw, "email"), AvatarURL: str(raw, "picture"), EmailVerified: truthy(raw["email_verified"])}
	return u, nil
}

func mapGitHubUser(ctx context.Context, p *provider, tok *oauth2Token, raw map[string]any) (*ExternalUser, error) {
	u := &ExternalUser{ID: str(raw, "id"), Name: str(raw, "name"), Username: str(raw, "login"),
		AvatarURL: str(raw, "avatar_url")}
	// The profile email is whatever the user chose to show; the primary
	// verified address comes from /user/emails.
	var emails []struct {
		Email    string `json:"email"`
		Primary  bool   `json:"primary"`
		Verified bool   `json:"verified"`
	}
	emailsURL := strings.TrimSuffix(p.userInfoURL, "/user") + "/user/emails"
	if err := getJSON(ctx, p.client, emailsURL, tok.AccessToken, &emails); err != nil {
		return nil, fmt.Errorf("github emails: %w", err)
	}
	for _, e := range emails {
		if e.Primary && e.Verified {
			u.Email, u.EmailVerified = e.Email, true
		}
	}
	return u, nil
}

// mapMicrosoftUser: Entra ID's "mail" is set by tenant admins and is not
// proof of ownership (the "nOAuth" problem), so it never selects an
// existing account.
func mapMicrosoftUser(_ context.Context, _ *provider, _ *oauth2Token, raw map[string]any) (*ExternalUser, error) {
	return &ExternalUser{ID: str(raw, "id"), Name: str(raw, "displayName"), Email: str(raw, "mail")}, nil
}

func mapGitLabUser(_ context.Context, _ *provider, _ *oauth2Token, raw map[string]any) (*ExternalUser, error) {
	u := &ExternalUser{ID: str(raw, "id"), Name: str(raw, "name"), Username: str(raw, "username"),
		Email: str(raw, "email"), AvatarURL: str(raw, "avatar_url")}
	u.EmailVerified = u.Email != "" && str(raw, "confirmed_at") != ""
	return u, nil
}

func mapDiscordUser(_ context.Context, _ *provider, _ *oauth2Token, raw map[string]any) (*ExternalUser, error) {
	u := &ExternalUser{ID: str(raw, "id"), Name: str(raw, "global_name"), Username: str(raw, "username"),
		Email: str(raw, "email"), EmailVerified: truthy(raw["verified"])}
	if av := str(raw, "avatar"); av != "" && u.ID != "" {
		u.AvatarURL = "https://cdn.discordapp.com/avatars/" + url.PathEscape(u.ID) + "/" + url.PathEscape(av) + ".png"
	}
	if u.Name == "" {
		u.Name = u.Username
	}
	return u, nil
}
