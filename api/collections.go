package api

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/filter"
)

// collectionsMeta describes the filterable columns of GET /api/collections
// as a collection, so the list can be filtered with the same evaluator.
var collectionsMeta = &strata.Collection{ID: "_collections", Name: "_collections", Type: strata.CollectionBase,
	Fields: []*strata.Field{
		{Name: "id", Type: strata.FieldText}, {Name: "name", Type: strata.FieldText},
		{Name: "type", Type: strata.FieldText}, {Name: "system", Type: strata.FieldBool},
		{Name: "created", Type: strata.FieldText}, {Name: "updated", Type: strata.FieldText},
	}}

func collectionRow(c *strata.Collection) *strata.Record {
	return &strata.Record{Collection: collectionsMeta, Data: map[string]any{
		"id": c.ID, "name": c.Name, "type": c.Type, "system": c.System, "created": c.Created, "updated": c.Updated,
	}}
}

func (s *Server) listCollections(w http.ResponseWriter, r *http.Request) {
	req, ok := s.superuser(w, r)
	if !ok {
		return
	}
	list, err := s.app.ListCollections(req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	lp, err := parseListParams(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if lp.Filter != "" {
		e, err := filter.ParseCached(lp.Filter)
		if err != nil {
			s.writeError(w, r, badParams(err))
			return
		}
		kept := list[:0]
		for _, c := range list {
			ok, err := filter.Eval(e, &filter.Env{Collection: collectionsMeta, Request: req}, collectionRow(c))
			if err != nil {
				s.writeError(w, r, badParams(err))
				return
			}
			if ok {
				kept = append(kept, c)
			}
		}
		list = kept
	}
	if lp.Sort != "" {
		if err := sortCollections(list, lp.Sort); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	total := len(list)
	start := min((lp.Page-1)*lp.PerPage, total)
	end := min(start+lp.PerPage, total)
	items := make([]map[string]any, 0, end-start)
	for _, c := range list[start:end] {
		items = append(items, collectionMap(c))
	}
	totalItems, totalPages := total, (total+lp.PerPage-1)/lp.PerPage
	if lp.SkipTotal {
		totalItems, totalPages = -1, -1
	}
	writeList(w, r, lp.Page, lp.PerPage, totalItems, totalPages, items)
}

func collectionMap(c *strata.Collection) map[string]any {
	b, _ := json.Marshal(c)
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

func sortCollections(list []*strata.Collection, spec string) error {
	type key struct {
		name string
		desc bool
	}
	var keys []key
	for _, p := range strings.Split(spec, ",") {
		p = strings.TrimSpace(p)
		desc := strings.HasPrefix(p, "-")
		p = strings.TrimLeft(p, "+-")
		switch p {
		case "id", "name", "type", "system", "created", "updated", "@random":
		default:
			return badParams(nil)
		}
		keys = append(keys, key{p, desc})
	}
	for _, k := range keys {
		if k.name == "@random" {
			rand.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })
			return nil
		}
	}
	sort.SliceStable(list, func(i, j int) bool {
		a, b := collectionRow(list[i]).Data, collectionRow(list[j]).Data
		for _, k := range keys {
			x, y := strings.ToLower(toSortable(a[k.name])), strings.ToLower(toSortable(b[k.name]))
			if x == y {
				continue
			}
			return (x < y) != k.desc
		}
		return false
	})
	return nil
}

func toSortable(v any) string {
	switch x := v.(type) {
	case bool:
		return strconv.FormatBool(x)
	case string:
		return x
	}
	return ""
}

func (s *Server) getCollection(w http.ResponseWriter, r *http.Request) {
	req, ok := s.superuser(w, r)
	if !ok {
		return
	}
	c, err := s.app.GetCollection(req, r.PathValue("collection"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, c)
}

func (s *Server) createCollection(w http.ResponseWriter, r *http.Request) {
	req, body, ok := s.superuserBody(w, r)
	if !ok {
		return
	}
	c, err := s.app.CreateCollection(r.Context(), req, body)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, c)
}

// superuserBody is superuser plus the request body as JSON; it answers
// the error itself when ok is false.
func (s *Server) superuserBody(w http.ResponseWriter, r *http.Request) (*strata.RequestInfo, json.RawMessage, bool) {
	req, ok := s.superuser(w, r)
	if !ok {
		return nil, nil, false
	}
	b, err := readBody(r, 0)
	if err != nil {
		s.writeError(w, r, err)
		return nil, nil, false
	}
	return req, bodyJSON(b), true
}

// bodyJSON returns the body as JSON (multipart bodies are re-encoded).
func bodyJSON(b *body) json.RawMessage {
	if b.raw != nil {
		return b.raw
	}
	raw, _ := json.Marshal(b.values)
	return raw
}

func (s *Server) updateCollection(w http.ResponseWriter, r *http.Request) {
	req, body, ok := s.superuserBody(w, r)
	if !ok {
		return
	}
	c, err := s.app.UpdateCollection(r.Context(), req, r.PathValue("collection"), body)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, c)
}

func (s *Server) deleteCollection(w http.ResponseWriter, r *http.Request) {
	req, ok := s.superuser(w, r)
	if !ok {
		return
	}
	if err := s.app.DeleteCollection(r.Context(), req, r.PathValue("collection")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) truncateCollection(w http.ResponseWriter, r *http.Request) {
	req, ok := s.superuser(w, r)
	if !ok {
		return
	}
	if _, err := s.app.TruncateCollection(r.Context(), req, r.PathValue("collection")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) scaffolds(w http.ResponseWriter, r *http.Request) {
	req, ok := s.superuser(w, r)
	if !ok {
		return
	}
	sc, err := s.app.Scaffolds(req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, sc)
}

// importCollections creates or updates each collection in the list, and
// with deleteMissing drops the non-system ones not in it.
func (s *Server) importCollections(w http.ResponseWriter, r *http.Request) {
	req, ok := s.superuser(w, r)
	if !ok {
		return
	}
	b, err := readBody(r, 0)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var in struct {
		Collections   []json.RawMessage `json:"collections"`
		DeleteMissing bool              `json:"deleteMissing"`
	}
	if err := json.Unmarshal(bodyJSON(b), &in); err != nil {
		s.writeError(w, r, errBadBody)
		return
	}
	if err := s.app.ImportCollections(r.Context(), req, in.Collections, in.DeleteMissing); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// superuser returns the request info when the caller is a superuser and
// otherwise answers 401/403 itself (ok is false then).
func (s *Server) superuser(w http.ResponseWriter, r *http.Request) (*strata.RequestInfo, bool) {
	req := requestInfo(r)
	if !req.IsSuperuser() {
		s.writeError(w, r, superuserOnly(req))
		return nil, false
	}
	return req, true
}

// superuserOnly is 401 for guests and 403 for other tokens (API.md §3).
func superuserOnly(req *strata.RequestInfo) error {
	if req.Auth == nil {
		return strata.Errorf(strata.EUnauthorized, "The request requires valid record authorization token.")
	}
	return strata.Errorf(strata.EForbidden, "The authorized record is not allowed to perform this action.")
}

// badParams is PocketBase's generic 400 for bad query parameters.
func badParams(err error) error {
	if e, ok := err.(*strata.Error); ok && e.Code == strata.EForbidden {
		return e
	}
	return &strata.Error{Code: strata.EInvalid, Message: "Something went wrong while processing your request.", Err: err}
}
