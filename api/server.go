// Package api is Strata's PocketBase-compatible HTTP layer: routing,
// decoding, the error shape and the middleware order. It calls the service
// layer and never touches SQL.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/guard"
	"github.com/strata-run/strata/service"
	"github.com/strata-run/strata/telemetry"
)

// Server routes PocketBase's HTTP API to the service layer.
type Server struct {
	app *service.App
	log *slog.Logger
	mux *http.ServeMux

	m              *httpMetrics
	limits         *limits
	metricsHandler http.Handler
	logs           strata.LogStore
	logRequests    bool

	tokens tokenMemory // latest consistency token per caller (consistency.go)
	reg    *prometheus.Registry
	tracer trace.Tracer // nil: tracing off (tracing.go)

	ready    atomic.Bool // startup finished
	draining atomic.Bool // SIGTERM received: fail /readyz
}

// Options configure a Server.
type Options struct {
	Logger *slog.Logger
	// Registry receives the HTTP metrics and is what GET /metrics serves;
	// nil gives the server a registry of its own.
	Registry *prometheus.Registry
	// Logs, when set, receives one entry per request for /api/logs
	// (subject to settings.logs) and serves that API.
	Logs strata.LogStore
	// LogRequests writes one info line per request to Logger.
	LogRequests bool
	// Starting makes /readyz fail until SetReady(true) is called.
	Starting bool
	// RateLimiter enforces settings.rateLimits; nil is a local limiter
	// (guard.Redis shares the limits across nodes).
	RateLimiter guard.Limiter
	// Concurrency, when set, sheds load over the node's adaptive
	// concurrency limit with 503.
	Concurrency *guard.Concurrency
	// RequestTimeout, when positive, is every request's deadline (realtime
	// streams excepted); it reaches the store through the context.
	RequestTimeout time.Duration
	// Tracing, when set, gives every request a server span (continuing the
	// caller's W3C traceparent) that the service and store spans nest
	// under; nil leaves tracing off at no cost per request.
	Tracing trace.TracerProvider
}

// New returns the HTTP handler of one node.
func New(app *service.App, opts Options) *Server {
	s := &Server{app: app, log: opts.Logger, mux: http.NewServeMux(), m: newHTTPMetrics(),
		limits: newLimits(opts), logs: opts.Logs, logRequests: opts.LogRequests}
	if s.log == nil {
		s.log = slog.Default()
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.reg = reg
	reg.MustRegister(s.m.collectors()...)
	reg.MustRegister(s.limits.collectors()...)
	s.metricsHandler = telemetry.MetricsHandler(reg)
	s.ready.Store(!opts.Starting)
	if opts.Tracing != nil {
		s.tracer = opts.Tracing.Tracer(telemetry.Instrumentation)
	}
	s.routes()
	return s
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /api/health", s.health)
	m.HandleFunc("GET /readyz", s.readyz)
	m.HandleFunc("GET /metrics", s.metrics)
	m.HandleFunc("GET /api/logs", s.listLogs)
	m.HandleFunc("GET /api/logs/stats", s.logStats)
	m.HandleFunc("GET /api/logs/{id}", s.viewLog)

	m.HandleFunc("GET /api/collections", s.listCollections)
	m.HandleFunc("POST /api/collections", s.createCollection)
	m.HandleFunc("PUT /api/collections/import", s.importCollections)
	m.HandleFunc("GET /api/collections/meta/scaffolds", s.scaffolds)
	m.HandleFunc("GET /api/collections/{collection}", s.getCollection)
	m.HandleFunc("PATCH /api/collections/{collection}", s.updateCollection)
	m.HandleFunc("DELETE /api/collections/{collection}", s.deleteCollection)
	m.HandleFunc("DELETE /api/collections/{collection}/truncate", s.truncateCollection)

	m.HandleFunc("GET /api/collections/{collection}/records", s.listRecords)
	m.HandleFunc("POST /api/collections/{collection}/records", s.createRecord)
	m.HandleFunc("GET /api/collections/{collection}/records/{id}", s.viewRecord)
	m.HandleFunc("PATCH /api/collections/{collection}/records/{id}", s.updateRecord)
	m.HandleFunc("DELETE /api/collections/{collection}/records/{id}", s.deleteRecord)

	m.HandleFunc("GET /api/collections/{collection}/auth-methods", s.authMethods)
	m.HandleFunc("POST /api/collections/{collection}/auth-with-password", s.authWithPassword)
	m.HandleFunc("POST /api/collections/{collection}/auth-refresh", s.authRefresh)
	m.HandleFunc("POST /api/collections/{collection}/auth-with-oauth2", s.authWithOAuth2)
	m.HandleFunc("GET /api/collections/meta/oauth2-providers", s.oauth2Providers)
	s.authFlowRoutes()
	s.backupRoutes()

	m.HandleFunc("POST /api/batch", s.batch)

	m.HandleFunc("GET /api/settings", s.getSettings)
	m.HandleFunc("PATCH /api/settings", s.updateSettings)

	m.HandleFunc("GET /api/collections/{collection}/changes", s.changeFeed)
}

// ServeHTTP applies the middleware chain: request id → trace span → panic
// recovery → metrics and request log → CORS → auth token → overload guard →
// rate limit → request deadline → route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.Header.Get("X-Request-Id")
	if !saneRequestID(id) {
		id = newRequestID()
	}
	w.Header().Set("X-Request-Id", id)
	_, pattern := s.mux.Handler(r)
	route := routeLabel(r, pattern)
	info := &strata.RequestInfo{Method: r.Method, Context: strata.ContextDefault}
	ctx := context.WithValue(telemetry.WithRequestID(r.Context(), id), requestInfoKey{}, info)
	var span trace.Span
	if s.tracer != nil {
		ctx, span = s.startRequestSpan(ctx, r, pattern, id)
	}
	r = r.WithContext(ctx)
	sw := &statusWriter{ResponseWriter: w}
	s.m.inFlight.Inc()
	defer func() {
		v := recover()
		if v != nil && v != http.ErrAbortHandler {
			s.log.ErrorContext(ctx, "panic", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			if sw.status == 0 {
				s.writeError(sw, r, fmt.Errorf("panic: %v", v))
			} else {
				sw.status = http.StatusInternalServerError
			}
		}
		s.m.inFlight.Dec()
		s.finish(sw, r, route, start, info)
		if span != nil {
			endRequestSpan(span, sw.status)
		}
		if v == http.ErrAbortHandler {
			panic(v)
		}
	}()
	s.route(sw, r, pattern, info)
}

// route is the part of the chain after telemetry: CORS, auth, the handler.
func (s *Server) route(w http.ResponseWriter, r *http.Request, pattern string, info *strata.RequestInfo) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE")
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
		}
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if pattern == "" {
		s.writeError(w, r, strata.Errorf(strata.ENotFound, "The requested resource wasn't found."))
		return
	}
	if token := authToken(r); token != "" {
		info.Auth = s.app.Authenticate(r.Context(), token)
	}
	if info.IsSuperuser() && !ipAllowed(s.clientIP(r), s.app.Settings().SuperuserIPs) {
		s.writeError(w, r, strata.Errorf(strata.EForbidden, "Accessing the superuser API from this IP address is not allowed."))
		return
	}
	r, adm, ok := s.protect(w, r, pattern, info)
	if !ok {
		return
	}
	defer adm.done()
	w, r = s.consistency(w, r, info)
	s.mux.ServeHTTP(w, r)
}

// saneRequestID accepts an incoming X-Request-Id only when it is a short
// token of safe characters, so that it cannot inject into logs or headers.
func saneRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// authToken reads the Authorization header: a bare token (what the SDKs
// send) or "Bearer <token>" in any case.
func authToken(r *http.Request) string {
	v := strings.TrimSpace(r.Header.Get("Authorization"))
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		v = strings.TrimSpace(v[7:])
	}
	return v
}

type requestInfoKey struct{}

// requestInfo returns @request for the handler: the caller plus the query
// and headers (body is added by the service after modifiers).
func requestInfo(r *http.Request) *strata.RequestInfo {
	base, _ := r.Context().Value(requestInfoKey{}).(*strata.RequestInfo)
	info := &strata.RequestInfo{Method: r.Method, Context: strata.ContextDefault}
	if base != nil {
		info.Auth = base.Auth
	}
	q := r.URL.Query()
	info.Query = make(map[string]string, len(q))
	for k, vs := range q {
		if len(vs) > 0 {
			info.Query[k] = vs[0]
		}
	}
	info.Headers = make(map[string]string, len(r.Header))
	for k, vs := range r.Header {
		if len(vs) > 0 {
			info.Headers[strings.ReplaceAll(strings.ToLower(k), "-", "_")] = vs[0]
		}
	}
	return info
}

// clientIP is the peer address; X-Forwarded-* are only trusted once the
// trustedProxy settings name them.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	st := s.app.Settings()
	for _, name := range st.TrustedProxy.Headers {
		v := strings.TrimSpace(r.Header.Get(name))
		if v == "" {
			continue
		}
		parts := strings.Split(v, ",")
		ip := parts[len(parts)-1]
		if st.TrustedProxy.UseLeftmostIP {
			ip = parts[0]
		}
		if parsed := net.ParseIP(strings.TrimSpace(ip)); parsed != nil {
			return parsed.String()
		}
	}
	return host
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	data := map[string]any{}
	if requestInfo(r).IsSuperuser() {
		data = map[string]any{"canBackup": false, "realIP": s.clientIP(r), "possibleProxyHeader": possibleProxyHeader(r)}
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"message": "API is healthy.", "code": 200, "data": data})
}

func possibleProxyHeader(r *http.Request) string {
	for _, h := range []string{"CF-Connecting-IP", "Fly-Client-IP", "X-Real-IP", "X-Forwarded-For"} {
		if r.Header.Get(h) != "" {
			return h
		}
	}
	return ""
}

// ipAllowed reports whether ip is in list (IPs or CIDR ranges); an empty
// list allows everyone.
func ipAllowed(ip string, list []string) bool {
	if len(list) == 0 {
		return true
	}
	addr := net.ParseIP(ip)
	for _, entry := range list {
		entry = strings.TrimSpace(entry)
		if _, network, err := net.ParseCIDR(entry); err == nil {
			if addr != nil && network.Contains(addr) {
				return true
			}
			continue
		}
		if e := net.ParseIP(entry); e != nil && addr != nil && e.Equal(addr) {
			return true
		}
	}
	return false
}
