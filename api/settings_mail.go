package api

import (
	"net/http"
)

// settingsTestEmail serves POST /api/settings/test/email (API.md §11):
// {email, template, collection?} → 204 once the mail server accepted the
// template filled with placeholder data.
func (s *Server) settingsTestEmail(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.superuser(w, r); !ok {
		return
	}
	b, err := readBody(r, 0)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ab := authBody(b.values)
	if err := s.app.SendTestEmail(r.Context(), ab.str("email"), ab.str("template"), ab.str("collection")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
