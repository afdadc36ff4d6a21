package api

import (
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/service"
)

// The account flows of API.md §7.3. Every handler that checks a credential
// or sends mail spends an attempt from the caller's IP buckets first; a
// refusal is 429 with Retry-After.

// authBody reads an auth route's body; str returns a string value ("" if
// absent or not a string: a number where a password belongs never matches).
type authBody map[string]any

func (b authBody) str(k string) string {
	v, _ := b[k].(string)
	return v
}

// authInput resolves the collection and decodes the body.
func (s *Server) authInput(w http.ResponseWriter, r *http.Request) (*strata.Collection, authBody, bool) {
	c, err := s.app.AuthCollection(r.PathValue("collection"))
	if err != nil {
		s.writeError(w, r, err)
		return nil, nil, false
	}
	b, err := readBody(r, 0)
	if err != nil {
		s.writeError(w, r, err)
		return nil, nil, false
	}
	if b.values == nil {
		return c, authBody{}, true
	}
	return c, authBody(b.values), true
}

// writeAuthError adds what plain errors lack: the MFA step's special 401
// body and Retry-After on rate limits.
func (s *Server) writeAuthError(w http.ResponseWriter, r *http.Request, err error) {
	var mfa *service.MFARequired
	if errors.As(err, &mfa) {
		writeRaw(w, http.StatusUnauthorized, map[string]any{"mfaId": mfa.ID})
		return
	}
	var ra *service.RetryAfter
	if errors.As(err, &ra) {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ra.Wait.Seconds()))))
	}
	s.writeError(w, r, err)
}

func (s *Server) requestOTP(w http.ResponseWriter, r *http.Request) {
	c, b, ok := s.authInput(w, r)
	if !ok {
		return
	}
	email := b.str("email")
	if err := s.app.AllowMailRequest(s.clientIP(r), email); err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	id, err := s.app.RequestOTP(r.Context(), c, email)
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"otpId": id})
}

func (s *Server) authWithOTP(w http.ResponseWriter, r *http.Request) {
	c, b, ok := s.authInput(w, r)
	if !ok {
		return
	}
	otpID := b.str("otpId")
	if err := s.app.AllowAuthAttempt(s.clientIP(r), "otp:"+otpID); err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	req := requestInfo(r)
	req.Body = b
	res, err := s.app.AuthWithOTP(r.Context(), req, c, otpID, b.str("password"))
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	s.app.NoteSignIn(res.Record, s.clientIP(r), r.UserAgent())
	s.writeAuth(w, r, res)
}

func (s *Server) requestVerification(w http.ResponseWriter, r *http.Request) {
	c, b, ok := s.authInput(w, r)
	if !ok {
		return
	}
	if err := s.app.AllowMailRequest(s.clientIP(r), b.str("email")); err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	s.noContent(w, r, s.app.RequestVerification(r.Context(), c, b.str("email")))
}

func (s *Server) confirmVerification(w http.ResponseWriter, r *http.Request) {
	c, b, ok := s.authInput(w, r)
	if !ok {
		return
	}
	if err := s.app.AllowAuthAttempt(s.clientIP(r), "confirm-verification"); err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	s.noContent(w, r, s.app.ConfirmVerification(r.Context(), c, b.str("token")))
}

func (s *Server) requestPasswordReset(w http.ResponseWriter, r *http.Request) {
	c, b, ok := s.authInput(w, r)
	if !ok {
		return
	}
	if err := s.app.AllowMailRequest(s.clientIP(r), b.str("email")); err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	s.noContent(w, r, s.app.RequestPasswordReset(r.Context(), c, b.str("email")))
}

func (s *Server) confirmPasswordReset(w http.ResponseWriter, r *http.Request) {
	c, b, ok := s.authInput(w, r)
	if !ok {
		return
	}
	if err := s.app.AllowAuthAttempt(s.clientIP(r), "confirm-password-reset"); err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	s.noContent(w, r, s.app.ConfirmPasswordReset(r.Context(), c, b.str("token"), b.str("password"), b.str("passwordConfirm")))
}

func (s *Server) requestEmailChange(w http.ResponseWriter, r *http.Request) {
	c, b, ok := s.authInput(w, r)
	if !ok {
		return
	}
	if err := s.app.AllowMailRequest(s.clientIP(r), b.str("newEmail")); err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	s.noContent(w, r, s.app.RequestEmailChange(r.Context(), requestInfo(r), c, b.str("newEmail")))
}

func (s *Server) confirmEmailChange(w http.ResponseWriter, r *http.Request) {
	c, b, ok := s.authInput(w, r)
	if !ok {
		return
	}
	if err := s.app.AllowAuthAttempt(s.clientIP(r), "confirm-email-change"); err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	s.noContent(w, r, s.app.ConfirmEmailChange(r.Context(), c, b.str("token"), b.str("password")))
}

func (s *Server) impersonate(w http.ResponseWriter, r *http.Request) {
	c, b, ok := s.authInput(w, r)
	if !ok {
		return
	}
	var duration int64
	switch v := b["duration"].(type) {
	case float64:
		if v != math.Trunc(v) || v < 0 || v > math.MaxInt32*100 {
			duration = -1
		} else {
			duration = int64(v)
		}
	case nil:
	default:
		duration = -1
	}
	res, err := s.app.Impersonate(r.Context(), requestInfo(r), c, r.PathValue("id"), duration)
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	s.writeAuth(w, r, res)
}

// noContent answers 204, or the error.
func (s *Server) noContent(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// authFlowRoutes registers the routes of this file.
func (s *Server) authFlowRoutes() {
	m := s.mux
	m.HandleFunc("POST /api/collections/{collection}/request-otp", s.requestOTP)
	m.HandleFunc("POST /api/collections/{collection}/auth-with-otp", s.authWithOTP)
	m.HandleFunc("POST /api/collections/{collection}/request-verification", s.requestVerification)
	m.HandleFunc("POST /api/collections/{collection}/confirm-verification", s.confirmVerification)
	m.HandleFunc("POST /api/collections/{collection}/request-password-reset", s.requestPasswordReset)
	m.HandleFunc("POST /api/collections/{collection}/confirm-password-reset", s.confirmPasswordReset)
	m.HandleFunc("POST /api/collections/{collection}/request-email-change", s.requestEmailChange)
	m.HandleFunc("POST /api/collections/{collection}/confirm-email-change", s.confirmEmailChange)
	m.HandleFunc("POST /api/collections/{collection}/impersonate/{id}", s.impersonate)
	s.oauth2PageRoutes()
	// The settings route that sends these flows' mails.
	m.HandleFunc("POST /api/settings/test/email", s.settingsTestEmail)
}
