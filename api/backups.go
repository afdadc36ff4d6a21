package api

import (
	"net/http"
	"strconv"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/service"
)

// maxBackupUpload bounds POST /api/backups/upload.
const maxBackupUpload = 4 << 30

// backupRoutes registers PocketBase's backups API (API.md §11), superusers
// only. Restores are staged and applied at the next start (service.RestoreBackup).
func (s *Server) backupRoutes() {
	m := s.mux
	m.HandleFunc("GET /api/backups", s.listBackups)
	m.HandleFunc("POST /api/backups", s.createBackup)
	m.HandleFunc("POST /api/backups/upload", s.uploadBackup)
	m.HandleFunc("GET /api/backups/{key}", s.downloadBackup)
	m.HandleFunc("DELETE /api/backups/{key}", s.deleteBackup)
	m.HandleFunc("POST /api/backups/{key}/restore", s.restoreBackup)
}

func (s *Server) listBackups(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.superuser(w, r); !ok {
		return
	}
	list, err := s.app.ListBackups(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, list)
}

func (s *Server) createBackup(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.superuser(w, r); !ok {
		return
	}
	var body struct{ Name string }
	b, err := readBody(r, 0)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if name, ok := b.values["name"].(string); ok {
		body.Name = name
	}
	if _, err := s.app.CreateBackup(r.Context(), body.Name); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) uploadBackup(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.superuser(w, r); !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBackupUpload)
	f, hdr, err := r.FormFile("file")
	if err != nil {
		s.writeError(w, r, &strata.Error{Code: strata.EInvalid, Message: "Failed to load the submitted data due to invalid formatting.",
			Data: map[string]any{"file": &strata.FieldError{Code: "validation_required", Message: "Cannot be blank."}}, Err: err})
		return
	}
	defer f.Close()
	if err := s.app.UploadBackup(r.Context(), hdr.Filename, f); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// downloadBackup authenticates with a superuser file token in ?token=, as
// PocketBase does (browsers download through a plain link).
func (s *Server) downloadBackup(w http.ResponseWriter, r *http.Request) {
	rec, _, err := s.app.VerifyToken(r.Context(), r.URL.Query().Get("token"), service.TokenFile)
	if err != nil || rec == nil || !rec.Collection.IsSuperusers() {
		s.writeError(w, r, strata.Errorf(strata.EForbidden, "Insufficient permissions to access the resource."))
		return
	}
	f, err := s.app.OpenBackup(r.Context(), r.PathValue("key"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Disposition", "attachment; filename="+strconv.Quote(r.PathValue("key")))
	http.ServeContent(w, r, r.PathValue("key"), fi.ModTime(), f)
}

func (s *Server) deleteBackup(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.superuser(w, r); !ok {
		return
	}
	if err := s.app.DeleteBackup(r.Context(), r.PathValue("key")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) restoreBackup(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.superuser(w, r); !ok {
		return
	}
	if err := s.app.RestoreBackup(r.Context(), r.PathValue("key")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
