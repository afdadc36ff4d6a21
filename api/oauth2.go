package api

import (
	"net/http"

	"github.com/strata-run/strata/service"
)

// authWithOAuth2 exchanges an authorization code (API.md §7.3, §7.4).
func (s *Server) authWithOAuth2(w http.ResponseWriter, r *http.Request) {
	c, b, ok := s.authInput(w, r)
	if !ok {
		return
	}
	// Every call costs outbound requests to the provider: spend the
	// caller's credential-check budget like the other sign-ins.
	if err := s.app.AllowAuthAttempt(s.clientIP(r), "oauth2:"+b.str("provider")+":"+b.str("code")); err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	in := service.OAuth2Input{Provider: b.str("provider"), Code: b.str("code"), CodeVerifier: b.str("codeVerifier"),
		RedirectURL: b.str("redirectURL")}
	if in.RedirectURL == "" {
		in.RedirectURL = b.str("redirectUrl")
	}
	in.CreateData, _ = b["createData"].(map[string]any)
	req := requestInfo(r)
	req.Body = b
	res, meta, err := s.app.AuthWithOAuth2(r.Context(), req, c, in)
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	s.writeAuthMeta(w, r, res, meta)
}

// oauth2Providers lists the built-in providers (superusers only, like the
// rest of the collections API).
func (s *Server) oauth2Providers(w http.ResponseWriter, r *http.Request) {
	req := requestInfo(r)
	if !req.IsSuperuser() {
		s.writeError(w, r, superuserOnly(req))
		return
	}
	writeJSON(w, r, http.StatusOK, service.OAuth2Providers())
}

// oauth2AuthMethods is the "oauth2" part of auth-methods, plus the legacy
// "authProviders" list (nil when OAuth2 is off).
func oauth2AuthMethods(enabled bool, starts []service.OAuth2Start) (map[string]any, any) {
	if !enabled {
		return map[string]any{"enabled": false, "providers": []any{}}, nil
	}
	logos := map[string]string{}
	for _, p := range service.OAuth2Providers() {
		logos[p.Name] = p.Logo
	}
	providers := make([]map[string]any, 0, len(starts))
	legacy := make([]map[string]any, 0, len(starts))
	for _, st := range starts {
		m := map[string]any{"name": st.Name, "displayName": st.DisplayName, "state": st.State,
			"authURL": st.AuthURL, "authUrl": st.AuthURLOld, "codeVerifier": st.CodeVerifier,
			"codeChallenge": st.CodeChallenge, "codeChallengeMethod": st.CodeChallengeMethod}
		legacy = append(legacy, m)
		withLogo := make(map[string]any, len(m)+1)
		for k, v := range m {
			withLogo[k] = v
		}
		logo := logos[st.Name]
		if logo == "" {
			logo = logos["oidc"]
		}
		withLogo["logo"] = logo
		providers = append(providers, withLogo)
	}
	return map[string]any{"enabled": true, "providers": providers}, legacy
}
