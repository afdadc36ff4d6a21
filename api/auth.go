package api

import (
	"net/http"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/service"
)

func (s *Server) authMethods(w http.ResponseWriter, r *http.Request) {
	c, err := s.app.AuthCollection(r.PathValue("collection"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	o := c.Auth
	fields := o.PasswordAuth.IdentityFields
	if fields == nil {
		fields = []string{}
	}
	duration := func(enabled bool, d int64) int64 {
		if enabled {
			return d
		}
		return 0
	}
	oauth2, authProviders := oauth2AuthMethods(o.OAuth2.Enabled, s.app.OAuth2Starts(r.Context(), c))
	writeJSON(w, r, http.StatusOK, map[string]any{
		"password":         map[string]any{"enabled": o.PasswordAuth.Enabled, "identityFields": fields},
		"oauth2":           oauth2,
		"mfa":              map[string]any{"enabled": o.MFA.Enabled, "duration": duration(o.MFA.Enabled, o.MFA.Duration)},
		"otp":              map[string]any{"enabled": o.OTP.Enabled, "duration": duration(o.OTP.Enabled, o.OTP.Duration)},
		"authProviders":    authProviders,
		"usernamePassword": o.PasswordAuth.Enabled && contains(fields, "username"),
		"emailPassword":    o.PasswordAuth.Enabled && contains(fields, "email"),
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (s *Server) authWithPassword(w http.ResponseWriter, r *http.Request) {
	c, err := s.app.AuthCollection(r.PathValue("collection"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b, err := readBody(r, 0)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ab := authBody(b.values)
	if ab == nil {
		ab = authBody{}
	}
	if err := s.app.AllowAuthAttempt(s.clientIP(r), "password:"+ab.str("identity")); err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	req := requestInfo(r)
	req.Body = ab
	res, err := s.app.AuthWithPassword(r.Context(), req, c, ab.str("identity"), ab.str("password"), ab.str("identityField"))
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	// Login alerts (asynchronous: the answer does not wait for them).
	s.app.NoteSignIn(res.Record, s.clientIP(r), r.UserAgent())
	s.writeAuth(w, r, res)
}

func (s *Server) authRefresh(w http.ResponseWriter, r *http.Request) {
	c, err := s.app.AuthCollection(r.PathValue("collection"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.app.AuthRefresh(r.Context(), requestInfo(r), c, authToken(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeAuth(w, r, res)
}

// writeAuth sends {token, record}; the record is seen by its own owner, so
// the email is always included.
func (s *Server) writeAuth(w http.ResponseWriter, r *http.Request, res *service.AuthResult) {
	s.writeAuthMeta(w, r, res, nil)
}

// writeAuthMeta is writeAuth with OAuth2's "meta" when meta is non-nil.
func (s *Server) writeAuthMeta(w http.ResponseWriter, r *http.Request, res *service.AuthResult, meta *service.OAuth2Meta) {
	req := requestInfo(r)
	req.Auth = res.Record
	if err := s.app.Expand(r.Context(), req, []*strata.Record{res.Record}, r.URL.Query().Get("expand")); err != nil {
		s.writeError(w, r, err)
		return
	}
	rec, err := s.app.ExportOne(r.Context(), req, res.Record, true)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := map[string]any{"token": res.Token, "record": rec}
	if meta != nil {
		out["meta"] = meta
	}
	writeJSON(w, r, http.StatusOK, out)
}

func (s *Server) getSettings(w http.ResponseWriter, r *http.Request) {
	req := requestInfo(r)
	if !req.IsSuperuser() {
		s.writeError(w, r, superuserOnly(req))
		return
	}
	writeJSON(w, r, http.StatusOK, s.app.Settings().Public())
}

func (s *Server) updateSettings(w http.ResponseWriter, r *http.Request) {
	req := requestInfo(r)
	if !req.IsSuperuser() {
		s.writeError(w, r, superuserOnly(req))
		return
	}
	b, err := readBody(r, 0)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st, err := s.app.UpdateSettings(r.Context(), req, bodyJSON(b))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, st.Public())
}
