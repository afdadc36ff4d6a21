package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/service"
)

var (
	batchRecordsRe = regexp.MustCompile(`^/api/collections/([^/]+)/records/?$`)
	batchRecordRe  = regexp.MustCompile(`^/api/collections/([^/]+)/records/([^/]+)$`)
)

// batchItem is one parsed sub-request.
type batchItem struct {
	action string // create, upsert, update, delete
	coll   *strata.Collection
	id     string
	query  url.Values
	body   service.Input
	req    *strata.RequestInfo
	// result
	rec *strata.Record
}

func (s *Server) batch(w http.ResponseWriter, r *http.Request) {
	st := s.app.Settings()
	if !st.Batch.Enabled {
		s.writeError(w, r, strata.Errorf(strata.EForbidden, "Batch requests are not allowed."))
		return
	}
	limit := st.Batch.MaxBodySize
	if limit <= 0 {
		limit = 128 << 20
	}
	b, err := readBody(r, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rawList, _ := b.values["requests"].([]any)
	if len(rawList) == 0 {
		s.writeError(w, r, strata.ValidationError("Something went wrong while processing your request.", map[string]any{
			"requests": strata.NewFieldError("validation_required", "Cannot be blank.", nil)}))
		return
	}
	if st.Batch.MaxRequests > 0 && len(rawList) > st.Batch.MaxRequests {
		s.writeError(w, r, strata.ValidationError("Something went wrong while processing your request.", map[string]any{
			"requests": strata.NewFieldError("validation_length_too_long", "The length must be no more than "+strconv.Itoa(st.Batch.MaxRequests)+".", nil)}))
		return
	}
	base := requestInfo(r)
	items := make([]*batchItem, len(rawList))
	for i, raw := range rawList {
		it, err := s.parseBatchItem(raw, base)
		if err != nil {
			s.writeError(w, r, batchFailure(i, err))
			return
		}
		items[i] = it
	}
	if len(b.files) > 0 {
		s.writeError(w, r, batchFailure(0, refuseFiles(b.files)))
		return
	}
	ctx := r.Context()
	if st.Batch.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(st.Batch.Timeout)*time.Second)
		defer cancel()
	}
	failed := -1
	_, err = s.app.Batch(ctx, func(tx *service.BatchTx) error {
		for i, it := range items {
			var err error
			switch it.action {
			case "create":
				it.rec, err = tx.Create(ctx, it.req, it.coll, it.body)
			case "upsert":
				it.rec, err = tx.Upsert(ctx, it.req, it.coll, it.body)
			case "update":
				it.rec, err = tx.Update(ctx, it.req, it.coll, it.id, it.body)
			case "delete":
				err = tx.Delete(ctx, it.req, it.coll, it.id)
			}
			if err != nil {
				failed = i
				return err
			}
		}
		return nil
	})
	if err != nil {
		if failed < 0 {
			failed = 0
		}
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			err = strata.Errorf(strata.EInvalid, "Batch transaction timed out.")
		}
		s.writeError(w, r, batchFailure(failed, err))
		return
	}
	out := make([]map[string]any, len(items))
	for i, it := range items {
		if it.rec == nil {
			out[i] = map[string]any{"status": http.StatusNoContent, "body": nil}
			continue
		}
		if err := s.app.Expand(r.Context(), it.req, []*strata.Record{it.rec}, it.query.Get("expand")); err != nil {
			s.writeError(w, r, err)
			return
		}
		m, err := s.app.ExportOne(r.Context(), it.req, it.rec, false)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var body any = m
		if spec := it.query.Get("fields"); spec != "" {
			body = pickFields(m.Map(), parseFields(spec))
		}
		out[i] = map[string]any{"status": http.StatusOK, "body": body}
	}
	// The top-level ?fields= does not apply to the batch envelope.
	writeRaw(w, http.StatusOK, out)
}

func batchFailure(i int, err error) error {
	status, body := errorResponse(err)
	_ = status
	return &strata.Error{Code: strata.EInvalid, Message: "Batch transaction failed.", Err: err, Data: map[string]any{
		"requests": map[string]any{strconv.Itoa(i): map[string]any{
			"code": "batch_request_failed", "message": "Batch request failed.", "response": body,
		}},
	}}
}

func (s *Server) parseBatchItem(raw any, base *strata.RequestInfo) (*batchItem, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, strata.Errorf(strata.EInvalid, "Invalid batch request.")
	}
	method, _ := m["method"].(string)
	rawURL, _ := m["url"].(string)
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, strata.Errorf(strata.EInvalid, "Invalid batch request url.")
	}
	it := &batchItem{query: u.Query()}
	body, _ := m["body"].(map[string]any)
	if body == nil {
		body = map[string]any{}
	}
	it.body = service.Input(body)
	var collName string
	switch method = strings.ToUpper(method); {
	case method == http.MethodPost && batchRecordsRe.MatchString(u.Path):
		it.action, collName = "create", batchRecordsRe.FindStringSubmatch(u.Path)[1]
	case method == http.MethodPut && batchRecordsRe.MatchString(u.Path):
		it.action, collName = "upsert", batchRecordsRe.FindStringSubmatch(u.Path)[1]
	case method == http.MethodPatch && batchRecordRe.MatchString(u.Path):
		sm := batchRecordRe.FindStringSubmatch(u.Path)
		it.action, collName, it.id = "update", sm[1], sm[2]
	case method == http.MethodDelete && batchRecordRe.MatchString(u.Path):
		sm := batchRecordRe.FindStringSubmatch(u.Path)
		it.action, collName, it.id = "delete", sm[1], sm[2]
	default:
		return nil, strata.Errorf(strata.EInvalid, "Unsupported batch action.")
	}
	if name, err := url.PathUnescape(collName); err == nil {
		collName = name
	}
	if id, err := url.PathUnescape(it.id); err == nil {
		it.id = id
	}
	it.coll, err = s.app.RecordCollection(collName)
	if err != nil {
		return nil, err
	}
	req := *base
	req.Method = method
	req.Context = strata.ContextBatch
	req.Query = map[string]string{}
	for k, vs := range it.query {
		req.Query[k] = vs[0]
	}
	req.Headers = map[string]string{}
	for k, v := range base.Headers {
		req.Headers[k] = v
	}
	if hs, ok := m["headers"].(map[string]any); ok {
		for k, v := range hs {
			key := strings.ReplaceAll(strings.ToLower(k), "-", "_")
			if key == "authorization" {
				continue
			}
			if sv, ok := v.(string); ok {
				req.Headers[key] = sv
			}
		}
	}
	it.req = &req
	return it, nil
}
