package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/strata-run/strata"
)

const (
	defaultBodyLimit = 32 << 20
	maxMemoryForm    = 8 << 20
	jsonPayloadKey   = "@jsonPayload"
)

var (
	errBadBody         = strata.Errorf(strata.EInvalid, "Failed to load the submitted data due to invalid formatting.")
	errUnsupportedType = strata.Errorf(strata.EInvalid, "Unsupported Content-Type.")
	errTooLarge        = strata.Errorf(strata.ETooLarge, "Request entity too large.")
	errSlowBody        = strata.Errorf(strata.EInvalid, "The request body did not arrive before the request's deadline.")
)

// body is a decoded request body.
type body struct {
	values map[string]any
	// files names the multipart file parts by their form key (uploads
	// arrive with the files issue; until then they are refused clearly).
	files []string
	raw   []byte // JSON bodies only
}

// readBody decodes JSON, multipart and urlencoded bodies into one map
// (API.md §1.1). An empty body is an empty map whatever the Content-Type.
// While the body arrives the request's concurrency slot is paused and the
// read is bounded by the request's deadline (see bodyWait and protect).
func readBody(r *http.Request, limit int64) (*body, error) {
	bw, _ := r.Context().Value(bodyWaitKey{}).(*bodyWait)
	if !bw.start() {
		return decodeBody(r, limit)
	}
	b, err := decodeBody(r, limit)
	if !bw.finish(r.Context()) && err == nil {
		return nil, errShedAfterBody
	}
	return b, err
}

func decodeBody(r *http.Request, limit int64) (*body, error) {
	if limit <= 0 {
		limit = defaultBodyLimit
	}
	r.Body = http.MaxBytesReader(nil, r.Body, limit)
	ct := r.Header.Get("Content-Type")
	mt, params, _ := mime.ParseMediaType(ct)
	switch mt {
	case "multipart/form-data":
		return readMultipart(r, params["boundary"], limit)
	case "application/x-www-form-urlencoded":
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, bodyError(err)
		}
		vals, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, errBadBody
		}
		out := &body{values: map[string]any{}}
		for k, vs := range vals {
			if err := addFormValues(out.values, k, vs); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, bodyError(err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return &body{values: map[string]any{}}, nil
	}
	if mt != "application/json" && mt != "" && !strings.HasSuffix(mt, "+json") {
		return nil, errUnsupportedType
	}
	var v map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil || v == nil {
		return nil, errBadBody
	}
	if dec.More() {
		return nil, errBadBody
	}
	return &body{values: normalizeNumbers(v).(map[string]any), raw: raw}, nil
}

func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errTooLarge
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errSlowBody
	}
	return errBadBody
}

// normalizeNumbers turns json.Number into float64 (records hold float64).
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return x.String()
		}
		return f
	case map[string]any:
		for k, val := range x {
			x[k] = normalizeNumbers(val)
		}
		return x
	case []any:
		for i, val := range x {
			x[i] = normalizeNumbers(val)
		}
		return x
	}
	return v
}

func readMultipart(r *http.Request, boundary string, limit int64) (*body, error) {
	if boundary == "" {
		return nil, errBadBody
	}
	mr := multipart.NewReader(r.Body, boundary)
	form, err := mr.ReadForm(maxMemoryForm)
	if err != nil {
		return nil, bodyError(err)
	}
	defer form.RemoveAll()
	out := &body{values: map[string]any{}}
	var payloads []string
	for k, vs := range form.Value {
		if k == jsonPayloadKey {
			payloads = append(payloads, vs...)
			continue
		}
		if err := addFormValues(out.values, k, vs); err != nil {
			return nil, err
		}
	}
	for _, p := range payloads {
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(p))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return nil, errBadBody
		}
		for k, v := range normalizeNumbers(m).(map[string]any) {
			out.values[k] = v
		}
	}
	for k := range form.File {
		out.files = append(out.files, k)
	}
	return out, nil
}

// addFormValues infers types of form values (API.md §1.1): "true"/"false"
// are bools, exact float round-trips are numbers, repeated keys are arrays.
func addFormValues(m map[string]any, key string, vs []string) error {
	conv := make([]any, len(vs))
	for i, s := range vs {
		conv[i] = inferFormValue(s)
	}
	if len(conv) == 1 {
		m[key] = conv[0]
	} else {
		m[key] = conv
	}
	return nil
}

func inferFormValue(s string) any {
	switch s {
	case "true":
		return true
	case "false":
		return false
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && strconv.FormatFloat(f, 'f', -1, 64) == s {
		return f
	}
	return s
}
