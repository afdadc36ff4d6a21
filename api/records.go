package api

import (
	"cmp"
	"net/http"
	"strconv"
	"strings"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/cache"
	"github.com/strata-run/strata/service"
)

const (
	maxSortLen  = 8
	maxSortItem = 255
)

// parseListParams reads page, perPage, sort, filter and skipTotal; a
// malformed value is PocketBase's generic 400.
func parseListParams(r *http.Request) (service.ListParams, error) {
	q := r.URL.Query()
	p := service.ListParams{Page: 1, PerPage: 30, Sort: q.Get("sort"), Filter: q.Get("filter")}
	var err error
	if v := q.Get("page"); v != "" {
		if p.Page, err = strconv.Atoi(v); err != nil {
			return p, badParams(err)
		}
	}
	if v := q.Get("perPage"); v != "" {
		if p.PerPage, err = strconv.Atoi(v); err != nil {
			return p, badParams(err)
		}
	}
	if p.Page <= 0 {
		p.Page = 1
	}
	if p.PerPage <= 0 {
		p.PerPage = 30
	}
	p.PerPage = min(p.PerPage, 1000)
	if v := q.Get("skipTotal"); v != "" {
		if p.SkipTotal, err = strconv.ParseBool(v); err != nil {
			return p, badParams(err)
		}
	}
	if p.Sort != "" {
		items := strings.Split(p.Sort, ",")
		if len(items) > maxSortLen {
			return p, badParams(nil)
		}
		for _, it := range items {
			if len(it) > maxSortItem {
				return p, badParams(nil)
			}
		}
	}
	if len(p.Filter) > 3500 {
		return p, badParams(nil)
	}
	return p, nil
}

func (s *Server) listRecords(w http.ResponseWriter, r *http.Request) {
	c, err := s.app.RecordCollection(r.PathValue("collection"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := parseListParams(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	req := requestInfo(r)
	ctx := r.Context()
	var fill *cache.ListFill
	if lists := s.lists(); lists != nil {
		var body []byte
		body, fill = lists.Lookup(ctx, cache.ListQuery{Schema: s.app.Schema(), Collection: c, Request: req,
			Method: r.Method, Query: r.URL.Query()})
		if body != nil {
			writeBody(w, r, http.StatusOK, body)
			return
		}
		if fill != nil {
			// A stored page is served to every matching caller until the
			// next write, so it is read where every write already is: a
			// replica could still be behind a write whose generation bump
			// this lookup saw.
			ctx = strata.WithReadAfter(ctx, strata.ReadLatest)
		}
	}
	res, err := s.app.ListRecords(ctx, req, c, p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.app.Expand(ctx, req, res.Items, r.URL.Query().Get("expand")); err != nil {
		s.writeError(w, r, err)
		return
	}
	items, err := s.app.Export(ctx, req, res.Items)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if fill == nil {
		writeList(w, r, res.Page, res.PerPage, res.TotalItems, res.TotalPages, items)
		return
	}
	// Stored before the response goes out, so that the client's next
	// request already finds it.
	buf := &bufferedResponse{header: http.Header{}}
	writeList(buf, r, res.Page, res.PerPage, res.TotalItems, res.TotalPages, items)
	if buf.code == http.StatusOK {
		fill.Store(ctx, buf.body)
	}
	buf.replay(w)
}

// lists returns the shared list cache, when the node runs one.
func (s *Server) lists() *cache.Lists {
	if rc, ok := s.app.RecordCache().(*cache.Records); ok {
		return rc.Lists()
	}
	return nil
}

// bufferedResponse holds a response until it is replayed, so that a list
// page can be stored before the client sees it. A 304 (If-None-Match
// matched) has no body and is simply not stored.
type bufferedResponse struct {
	header http.Header
	code   int
	body   []byte
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	b.body = append(b.body, p...)
	return len(p), nil
}

func (b *bufferedResponse) replay(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range b.header {
		h[k] = v
	}
	w.WriteHeader(cmp.Or(b.code, http.StatusOK))
	if len(b.body) > 0 {
		w.Write(b.body)
	}
}

func (s *Server) viewRecord(w http.ResponseWriter, r *http.Request) {
	c, err := s.app.RecordCollection(r.PathValue("collection"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	req := requestInfo(r)
	rec, err := s.app.GetRecord(r.Context(), req, c, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeRecord(w, r, req, rec, http.StatusOK)
}

// writeRecord expands and exports one record as the response.
func (s *Server) writeRecord(w http.ResponseWriter, r *http.Request, req *strata.RequestInfo, rec *strata.Record, status int) {
	if err := s.app.Expand(r.Context(), req, []*strata.Record{rec}, r.URL.Query().Get("expand")); err != nil {
		s.writeError(w, r, err)
		return
	}
	m, err := s.app.ExportOne(r.Context(), req, rec, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, r, status, m)
}

// recordInput decodes a record write body, refusing file uploads clearly
// until file storage exists.
func recordInput(r *http.Request) (service.Input, error) {
	b, err := readBody(r, 0)
	if err != nil {
		return nil, err
	}
	if err := refuseFiles(b.files); err != nil {
		return nil, err
	}
	return service.Input(b.values), nil
}

func refuseFiles(keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	data := map[string]any{}
	for _, k := range keys {
		name := strings.Trim(k, "+-")
		data[name] = strata.NewFieldError("validation_invalid_file", "File uploads are not supported yet.", nil)
	}
	return strata.ValidationError("Failed to save record.", data)
}

func (s *Server) createRecord(w http.ResponseWriter, r *http.Request) {
	s.recordWrite(w, r, func(req *strata.RequestInfo, c *strata.Collection, in service.Input) (*strata.Record, error) {
		rec, _, err := s.app.CreateRecord(r.Context(), req, c, in)
		return rec, err
	})
}

func (s *Server) updateRecord(w http.ResponseWriter, r *http.Request) {
	s.recordWrite(w, r, func(req *strata.RequestInfo, c *strata.Collection, in service.Input) (*strata.Record, error) {
		rec, _, err := s.app.UpdateRecord(r.Context(), req, c, r.PathValue("id"), in)
		return rec, err
	})
}

// recordWrite decodes a record write, runs it and answers with the saved
// record (expand and fields applied).
func (s *Server) recordWrite(w http.ResponseWriter, r *http.Request, write func(*strata.RequestInfo, *strata.Collection, service.Input) (*strata.Record, error)) {
	c, err := s.app.RecordCollection(r.PathValue("collection"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	in, err := recordInput(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	req := requestInfo(r)
	rec, err := write(req, c, in)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeRecord(w, r, req, rec, http.StatusOK)
}

func (s *Server) deleteRecord(w http.ResponseWriter, r *http.Request) {
	c, err := s.app.RecordCollection(r.PathValue("collection"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := s.app.DeleteRecord(r.Context(), requestInfo(r), c, r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
