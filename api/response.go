package api

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/service"
)

// errorBody is PocketBase's error shape.
type errorBody struct {
	Status  int            `json:"status"`
	Message string         `json:"message"`
	Data    map[string]any `json:"data"`
}

var defaultMessages = map[int]string{
	400: "Something went wrong while processing your request.",
	401: "Missing or invalid authentication.",
	403: "You are not allowed to perform this request.",
	404: "The requested resource wasn't found.",
	413: "Request entity too large.",
	429: "Too Many Requests.",
	500: "Something went wrong while processing your request.",
	503: "Service unavailable, try again later.",
}

// statusOf maps domain codes to HTTP statuses: the one place this happens.
func statusOf(code strata.ErrorCode) int {
	switch code {
	case strata.EInvalid:
		return http.StatusBadRequest
	case strata.EUnauthorized:
		return http.StatusUnauthorized
	case strata.EForbidden:
		return http.StatusForbidden
	case strata.ENotFound:
		return http.StatusNotFound
	case strata.EConflict:
		return http.StatusConflict
	case strata.ETooLarge:
		return http.StatusRequestEntityTooLarge
	case strata.ETooMany:
		return http.StatusTooManyRequests
	case strata.EUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// sentence capitalises a message and ends it with a period, as PocketBase's
// messages are.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	s = string(r)
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "?") && !strings.HasSuffix(s, "!") {
		s += "."
	}
	return s
}

// errorResponse builds the status and body for err.
func errorResponse(err error) (int, errorBody) {
	var e *strata.Error
	if !errors.As(err, &e) {
		return 500, errorBody{Status: 500, Message: defaultMessages[500], Data: map[string]any{}}
	}
	status := statusOf(e.Code)
	msg := e.Message
	if status == 500 || msg == "" {
		msg = defaultMessages[status]
	}
	data := e.Data
	if data == nil {
		data = map[string]any{}
	}
	return status, errorBody{Status: status, Message: sentence(msg), Data: data}
}

// writeError sends err in PocketBase's shape; only server-side failures are
// logged (the rest are the caller's mistakes, not ours).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, body := errorResponse(err)
	code := strata.EInternal
	if e := (*strata.Error)(nil); status < 500 && errors.As(err, &e) {
		code = e.Code
	} else if status == http.StatusServiceUnavailable {
		code = strata.EUnavailable
	}
	s.m.countError(code)
	switch {
	case status == http.StatusServiceUnavailable:
		// Overload and timeouts, not bugs: a warning, sampled with the
		// other refusals; a client that went away is not even that.
		level := slog.LevelWarn
		if r.Context().Err() == context.Canceled {
			level = slog.LevelDebug
		}
		if s.log.Enabled(r.Context(), level) && s.limits.logRefusal() {
			s.log.Log(r.Context(), level, "request not served", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
		}
	case status >= 500:
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	case s.log.Enabled(r.Context(), slog.LevelDebug):
		s.log.DebugContext(r.Context(), "request rejected", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	if (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests) && w.Header().Get("Retry-After") == "" {
		// Overload answers always say when to come back.
		w.Header().Set("Retry-After", "1")
	}
	writeRaw(w, status, body)
}

func writeRaw(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"status":500,"message":"Something went wrong while processing your request.","data":{}}`, 500)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// writeJSON sends a 2xx body, applying the ?fields= picker (API.md §5.1).
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	if spec := r.URL.Query().Get("fields"); spec != "" {
		v = pickFields(toGeneric(v), parseFields(spec))
	}
	if d, ok := v.(*service.Doc); ok {
		writeBody(w, r, status, d.AppendJSON(make([]byte, 0, 512)))
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		writeRaw(w, http.StatusInternalServerError, errorBody{Status: 500, Message: defaultMessages[500], Data: map[string]any{}})
		return
	}
	writeBody(w, r, status, b)
}

// writeBody sends a JSON body. Successful GETs carry a strong ETag of the
// body and answer If-None-Match with 304: the body was built after every
// rule check for this caller, so a match can only confirm what this caller
// may already see. "private, no-cache" keeps shared caches out (bodies
// depend on the caller) while letting clients revalidate cheaply.
func writeBody(w http.ResponseWriter, r *http.Request, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if status == http.StatusOK && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		sum := fnv.New64a()
		sum.Write(b)
		etag := `"` + strconv.FormatUint(sum.Sum64(), 36) + `"`
		h.Set("ETag", etag)
		h.Set("Cache-Control", "private, no-cache")
		if etagMatch(r.Header.Get("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	w.WriteHeader(status)
	w.Write(b)
}

// etagMatch implements If-None-Match's weak comparison over a list of tags.
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// writeList sends a list result; ?fields= applies to each item.
func writeList[T any](w http.ResponseWriter, r *http.Request, page, perPage, total, totalPages int, items []T) {
	var tree fieldTree
	if spec := r.URL.Query().Get("fields"); spec != "" {
		tree = parseFields(spec)
	}
	b := make([]byte, 0, 512*(len(items)+1))
	b = append(b, `{"items":[`...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		var v any = it
		if tree != nil {
			v = pickFields(toGeneric(v), tree)
		}
		if d, ok := v.(*service.Doc); ok {
			b = d.AppendJSON(b)
			continue
		}
		raw, err := json.Marshal(v)
		if err != nil {
			writeRaw(w, http.StatusInternalServerError, errorBody{Status: 500, Message: defaultMessages[500], Data: map[string]any{}})
			return
		}
		b = append(b, raw...)
	}
	b = append(b, `],"page":`...)
	b = strconv.AppendInt(b, int64(page), 10)
	b = append(b, `,"perPage":`...)
	b = strconv.AppendInt(b, int64(perPage), 10)
	b = append(b, `,"totalItems":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	b = append(b, `,"totalPages":`...)
	b = strconv.AppendInt(b, int64(totalPages), 10)
	b = append(b, '}')
	writeBody(w, r, http.StatusOK, b)
}

// toGeneric converts a value to maps/slices so the picker can walk it.
func toGeneric(v any) any {
	switch x := v.(type) {
	case *service.Doc:
		return x.Map()
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[k] = toGeneric(val)
		}
		return out
	case []*service.Doc:
		out := make([]any, len(x))
		for i, d := range x {
			out[i] = d.Map()
		}
		return out
	case string, float64, bool, nil, int:
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return v
	}
	return out
}
