package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/service"
)

// statusWriter remembers the status a handler sent, for metrics and logs.
// It forwards Flush and unwraps for http.ResponseController, so realtime
// streams keep working through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// quiet routes are probes and scrapes: counted in metrics, kept out of the
// request log so that they do not drown it.
func quiet(route string) bool { return route == "/readyz" || route == "/metrics" }

// finish records one request in the metrics, the process log and the
// request log store.
func (s *Server) finish(w *statusWriter, r *http.Request, route string, start time.Time, info *strata.RequestInfo) {
	elapsed := time.Since(start)
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	s.m.observe(route, metricsLabelMethod(r.Method), status, elapsed.Seconds())
	if (!s.logRequests && s.logs == nil) || quiet(route) {
		return
	}
	if (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests) && !s.limits.logRefusal() {
		return
	}
	st := s.app.Settings().Logs
	ip := ""
	if st.LogIP {
		ip = s.clientIP(r)
	}
	authID, authColl := "", ""
	if info.Auth != nil {
		authColl = info.Auth.Collection.Name
		if st.LogAuthID {
			authID = info.Auth.ID()
		}
	}
	if s.logRequests && s.log.Enabled(r.Context(), slog.LevelInfo) {
		attrs := []slog.Attr{
			slog.String("method", r.Method), slog.String("route", route), slog.String("path", r.URL.Path),
			slog.Int("status", status), slog.Duration("duration", elapsed),
		}
		if ip != "" {
			attrs = append(attrs, slog.String("ip", ip))
		}
		if authID != "" {
			attrs = append(attrs, slog.String("auth_id", authID))
		}
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	}
	// PocketBase semantics: maxDays 0 turns the request log off; entries
	// below minLevel are not kept. Errors (4xx/5xx) are logged at ERROR.
	level := strata.LogInfo
	if status >= 400 {
		level = strata.LogError
	}
	if s.logs == nil || st.MaxDays <= 0 || level < st.MinLevel {
		return
	}
	// Encoded here, in a fixed key order and without reflection: the log
	// takes one entry per request.
	var data service.Doc
	data.Set("type", "request")
	data.Set("method", r.Method)
	target := redactURL(r.URL)
	data.Set("url", target)
	data.Set("status", float64(status))
	data.Set("execTime", float64(elapsed.Microseconds())/1000)
	data.Set("auth", authColl)
	data.Set("referer", r.Referer())
	data.Set("userAgent", r.UserAgent())
	if st.LogIP {
		data.Set("userIP", ip)
		data.Set("remoteIP", remoteIP(r))
	}
	if st.LogAuthID {
		data.Set("authId", authID)
	}
	s.logs.Add(strata.Log{Created: start.UTC(), Level: level, Message: r.Method + " " + target, RawData: data.AppendJSON(make([]byte, 0, 256))})
}

// redactURL is the request URI with credentials in the query (file tokens)
// masked: the request log is readable by every superuser.
func redactURL(u *url.URL) string {
	if u.RawQuery == "" {
		return u.Path
	}
	q := u.Query()
	for _, k := range []string{"token", "password"} {
		if q.Has(k) {
			q.Set(k, "***")
		}
	}
	return u.Path + "?" + q.Encode()
}

func remoteIP(r *http.Request) string {
	host := r.RemoteAddr
	for i := len(host) - 1; i >= 0; i-- {
		if host[i] == ':' {
			return trimBrackets(host[:i])
		}
	}
	return host
}

func trimBrackets(h string) string {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}

// SetReady marks startup as finished (or not): /readyz fails until then.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Drain makes /readyz fail so that load balancers stop sending new
// requests; in-flight and new requests are still served until the HTTP
// server shuts down.
func (s *Server) Drain() { s.draining.Store(true) }

// readyz answers 200 only when startup finished, the node is not draining
// and the store answers a ping within a second.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	unavailable := func(msg string) {
		writeRaw(w, http.StatusServiceUnavailable, errorBody{Status: 503, Message: msg, Data: map[string]any{}})
	}
	switch {
	case s.draining.Load():
		unavailable("Draining.")
		return
	case !s.ready.Load():
		unavailable("Starting.")
		return
	}
	if p, ok := s.app.Store().(interface{ Ping(context.Context) error }); ok {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if err := p.Ping(ctx); err != nil {
			s.log.WarnContext(r.Context(), "readyz: store ping failed", "err", err)
			unavailable("Store unavailable.")
			return
		}
	}
	writeRaw(w, http.StatusOK, map[string]any{"status": "ready"})
}

// logJSON is a log entry in PocketBase's response shape.
type logJSON struct {
	ID      string         `json:"id"`
	Created string         `json:"created"`
	Level   int            `json:"level"`
	Message string         `json:"message"`
	Data    map[string]any `json:"data"`
}

func toLogJSON(l strata.Log) logJSON {
	return logJSON{ID: l.ID, Created: strata.FormatDate(l.Created), Level: l.Level, Message: l.Message, Data: l.Data}
}

// logsAccess checks the caller is a superuser and that logs are kept.
func (s *Server) logsAccess(w http.ResponseWriter, r *http.Request) bool {
	if _, ok := s.superuser(w, r); !ok {
		return false
	}
	if s.logs == nil {
		s.writeError(w, r, strata.Errorf(strata.ENotFound, "The requested resource wasn't found."))
		return false
	}
	return true
}

// listLogs is GET /api/logs: PocketBase's paged list with filter and sort
// over id, created, level, message and data.*.
func (s *Server) listLogs(w http.ResponseWriter, r *http.Request) {
	if !s.logsAccess(w, r) {
		return
	}
	p, err := parseListParams(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	logs, err := s.logs.FindLogs(r.Context(), strata.LogQuery{Filter: p.Filter, Sort: p.Sort, Limit: p.PerPage, Offset: (p.Page - 1) * p.PerPage})
	if err != nil {
		s.writeError(w, r, listErr(err))
		return
	}
	total, pages := -1, -1
	if !p.SkipTotal {
		if total, err = s.logs.CountLogs(r.Context(), p.Filter); err != nil {
			s.writeError(w, r, listErr(err))
			return
		}
		pages = (total + p.PerPage - 1) / p.PerPage
	}
	items := make([]logJSON, len(logs))
	for i, l := range logs {
		items[i] = toLogJSON(l)
	}
	writeList(w, r, p.Page, p.PerPage, total, pages, items)
}

// listErr keeps filter errors PocketBase's generic 400.
func listErr(err error) error {
	var e *strata.Error
	if errors.As(err, &e) && e.Code != strata.EInternal {
		return badParams(err)
	}
	return err
}

// viewLog is GET /api/logs/{id}.
func (s *Server) viewLog(w http.ResponseWriter, r *http.Request) {
	if !s.logsAccess(w, r) {
		return
	}
	id := r.PathValue("id")
	logs, err := s.logs.FindLogs(r.Context(), strata.LogQuery{Filter: "id = " + quoteFilter(id), Limit: 1})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(logs) == 0 {
		s.writeError(w, r, strata.Errorf(strata.ENotFound, "The requested resource wasn't found."))
		return
	}
	writeJSON(w, r, http.StatusOK, toLogJSON(logs[0]))
}

// quoteFilter makes s a filter string literal.
func quoteFilter(s string) string {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return string(append(b, '"'))
}

// logStats is GET /api/logs/stats: counts per hour.
func (s *Server) logStats(w http.ResponseWriter, r *http.Request) {
	if !s.logsAccess(w, r) {
		return
	}
	f := r.URL.Query().Get("filter")
	if len(f) > 3500 {
		s.writeError(w, r, badParams(nil))
		return
	}
	stats, err := s.logs.LogStats(r.Context(), f)
	if err != nil {
		s.writeError(w, r, listErr(err))
		return
	}
	type stat struct {
		Date  string `json:"date"`
		Total int    `json:"total"`
	}
	out := make([]stat, len(stats))
	for i, st := range stats {
		out[i] = stat{Date: strata.FormatDate(st.Date), Total: st.Total}
	}
	writeJSON(w, r, http.StatusOK, out)
}

// PruneLogs deletes request logs older than settings.logs.maxDays (all of
// them when maxDays is 0: logs are off). The serve command runs it hourly.
func (s *Server) PruneLogs(ctx context.Context) (int64, error) {
	if s.logs == nil {
		return 0, nil
	}
	days := s.app.Settings().Logs.MaxDays
	return s.logs.Prune(ctx, time.Now().AddDate(0, 0, -max(days, 0)))
}
