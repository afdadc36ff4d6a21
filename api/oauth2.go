package api

import (
	"encoding/json"
	"html"
	"io"
	"mime"
	"net/http"

	"github.com/strata-run/strata/realtime"
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
	s.app.NoteSignIn(res.Record, s.clientIP(r), r.UserAgent())
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

// The SDKs' realtime OAuth2 flow (API.md §7.4): the provider sends the
// browser to /api/oauth2-redirect with state = the realtime client id,
// and the code reaches the waiting client as the event "@oauth2".
const (
	oauth2Topic = "@oauth2"
	// The pages the browser lands on. PocketBase sends it to its admin UI
	// (../_/#/auth/oauth2-redirect-*), which Strata does not serve. The
	// references are relative so that they stay right behind a proxy that
	// mounts Strata under a path prefix.
	oauth2SuccessPage = "./oauth2-redirect-success"
	oauth2FailurePage = "./oauth2-redirect-failure"
	// oauth2RedirectBodyLimit bounds the form a provider posts (Apple's
	// form_post: state, code, id_token, user).
	oauth2RedirectBodyLimit = 64 << 10
)

// oauth2RedirectData is the "@oauth2" event, in PocketBase's key order.
type oauth2RedirectData struct {
	State string `json:"state"`
	Code  string `json:"code"`
	Error string `json:"error,omitempty"`
}

// oauth2RedirectRoutes serves GET|POST /api/oauth2-redirect from hub.
func (s *Server) oauth2RedirectRoutes(hub *realtime.Hub) {
	h := func(w http.ResponseWriter, r *http.Request) { s.oauth2Redirect(hub, w, r) }
	s.mux.HandleFunc("GET /api/oauth2-redirect", h)
	s.mux.HandleFunc("POST /api/oauth2-redirect", h)
}

// oauth2Redirect hands the provider's answer to the realtime client named
// by state and sends the browser to a success or failure page: 307 after
// GET, 303 after POST (so the page is fetched with GET).
//
// Like PocketBase, it does not compare the browser's address with the
// stream's: the browser that visits the provider is often not the
// connection that holds the stream (a phone app and the system browser
// may leave through different IPv6 privacy addresses). The state is the
// 40-character client id, which only the client and the provider see.
func (s *Server) oauth2Redirect(hub *realtime.Hub, w http.ResponseWriter, r *http.Request) {
	status := http.StatusTemporaryRedirect
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		status = http.StatusSeeOther
	}
	fail := func(why string) {
		s.log.DebugContext(r.Context(), "oauth2 redirect failed", "reason", why)
		redirectTo(w, oauth2FailurePage, status)
	}
	data, ok := readOAuth2Redirect(w, r)
	if !ok {
		fail("unreadable body")
		return
	}
	if data.State == "" {
		fail("missing state")
		return
	}
	if r.Method == http.MethodHead {
		// A prefetch must not use up the client's one answer.
		fail("HEAD request")
		return
	}
	payload, err := json.Marshal(data)
	if err != nil {
		fail(err.Error())
		return
	}
	switch hub.SendDirect(data.State, oauth2Topic, string(payload), true) {
	case realtime.Delivered:
	case realtime.OtherNode:
		// See the TODO on realtime.Hub.SendDirect.
		fail("the realtime client is connected to another node")
		return
	default:
		fail("no realtime client subscribed to @oauth2 with this state")
		return
	}
	if data.Error != "" || data.Code == "" {
		fail("provider error or no code")
		return
	}
	redirectTo(w, oauth2SuccessPage, status)
}

// readOAuth2Redirect reads state, code and error from the query (GET) or
// the posted form or JSON (POST). Values stay strings: the form inference
// of record bodies would turn a numeric code into a number.
func readOAuth2Redirect(w http.ResponseWriter, r *http.Request) (oauth2RedirectData, bool) {
	var d oauth2RedirectData
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		q := r.URL.Query()
		d.State, d.Code, d.Error = q.Get("state"), q.Get("code"), q.Get("error")
		return d, true
	}
	r.Body = http.MaxBytesReader(w, r.Body, oauth2RedirectBodyLimit)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/json":
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			return d, false
		}
		d.State, _ = m["state"].(string)
		d.Code, _ = m["code"].(string)
		d.Error, _ = m["error"].(string)
	case "multipart/form-data":
		if err := r.ParseMultipartForm(oauth2RedirectBodyLimit); err != nil {
			return d, false
		}
		d.State, d.Code, d.Error = r.PostFormValue("state"), r.PostFormValue("code"), r.PostFormValue("error")
	default:
		if err := r.ParseForm(); err != nil {
			return d, false
		}
		d.State, d.Code, d.Error = r.PostForm.Get("state"), r.PostForm.Get("code"), r.PostForm.Get("error")
	}
	// Apple's form_post also carries "user" (the name, on first consent
	// only). PocketBase keeps it aside for the following auth-with-oauth2
	// call; Strata does not read it yet, so the name is not mapped.
	return d, true
}

// redirectTo answers with a Location relative to the request path (what
// http.Redirect would make absolute).
func redirectTo(w http.ResponseWriter, location string, status int) {
	w.Header().Set("Location", location)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}

// oauth2Page serves the page a browser lands on after the redirect: plain
// HTML, no UI (PocketBase's own fallback when its UI is not bundled).
func oauth2Page(message string) http.HandlerFunc {
	page := "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>OAuth2</title></head><body><p>" +
		html.EscapeString(message) + "</p></body></html>\n"
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = io.WriteString(w, page)
		}
	}
}

// oauth2PageRoutes serves the landing pages of the redirect; they exist
// with or without realtime.
func (s *Server) oauth2PageRoutes() {
	s.mux.HandleFunc("GET /api/oauth2-redirect-success", oauth2Page("Auth completed. You can close this window and go back to the app."))
	s.mux.HandleFunc("GET /api/oauth2-redirect-failure", oauth2Page("Failed to authenticate. You can close this window and go back to the app to try again."))
}
