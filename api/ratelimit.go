package api

import (
	"context"
	"encoding/json"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/guard"
	"github.com/strata-run/strata/service"
)

// routeActions maps collection routes to PocketBase's rate-limit actions:
// the label "<collection>:<action>" (or "*:<action>") of a rule. A route
// with two actions is matched by the specific one first, then the generic
// one ("authWithPassword", then "auth").
var routeActions = map[string][2]string{
	"GET /api/collections/{collection}/records":                 {"list"},
	"POST /api/collections/{collection}/records":                {"create"},
	"GET /api/collections/{collection}/records/{id}":            {"view"},
	"PATCH /api/collections/{collection}/records/{id}":          {"update"},
	"DELETE /api/collections/{collection}/records/{id}":         {"delete"},
	"GET /api/collections/{collection}/auth-methods":            {"listAuthMethods"},
	"POST /api/collections/{collection}/auth-with-password":     {"authWithPassword", "auth"},
	"POST /api/collections/{collection}/auth-with-otp":          {"authWithOTP", "auth"},
	"POST /api/collections/{collection}/auth-with-oauth2":       {"authWithOAuth2", "auth"},
	"POST /api/collections/{collection}/auth-refresh":           {"authRefresh"},
	"POST /api/collections/{collection}/request-otp":            {"requestOTP"},
	"POST /api/collections/{collection}/request-verification":   {"requestVerification"},
	"POST /api/collections/{collection}/confirm-verification":   {"confirmVerification"},
	"POST /api/collections/{collection}/request-password-reset": {"requestPasswordReset"},
	"POST /api/collections/{collection}/confirm-password-reset": {"confirmPasswordReset"},
	"POST /api/collections/{collection}/request-email-change":   {"requestEmailChange"},
	"POST /api/collections/{collection}/confirm-email-change":   {"confirmEmailChange"},
	"GET /api/files/{collection}/{recordId}/{filename}":         {"file"},
}

// routePriority ranks routes for load shedding; unlisted GETs are cheap
// reads and everything else a write.
var routePriority = map[string]guard.Priority{
	"GET /api/health": guard.PriorityCritical,
	"GET /readyz":     guard.PriorityCritical,
	"GET /metrics":    guard.PriorityCritical,
	"GET /api/collections/{collection}/records":     guard.PriorityList,
	"GET /api/collections":                          guard.PriorityList,
	"GET /api/logs":                                 guard.PriorityList,
	"GET /api/logs/stats":                           guard.PriorityList,
	"GET /api/collections/{collection}/changes":     guard.PriorityList,
	"POST /api/batch":                               guard.PriorityList,
	"PUT /api/collections/import":                   guard.PriorityList,
	"DELETE /api/collections/{collection}/truncate": guard.PriorityList,
}

// streaming routes hold their connection open for as long as the client
// stays: they take no concurrency slot and have no request deadline.
func streaming(pattern string) bool {
	return pattern == "GET /api/realtime" || pattern == "GET /api/realtime/ws"
}

func priorityOf(method, pattern string) guard.Priority {
	if p, ok := routePriority[pattern]; ok {
		return p
	}
	if method == http.MethodGet || method == http.MethodHead {
		return guard.PriorityRead
	}
	return guard.PriorityWrite
}

// rateRules is settings.rateLimits compiled for one settings snapshot.
type rateRules struct {
	from     *service.Settings
	enabled  bool
	rules    []guard.Rule
	excluded []*net.IPNet
	// per rule, by index: the limiter key after the client IP, and the
	// RateLimit-Policy header value
	keySuffix, policy []string
}

// compileRateRules turns the settings into guard rules; single IPs in
// excludedIPs become /32 (or /128) networks.
func compileRateRules(st *service.Settings) *rateRules {
	rr := &rateRules{from: st, enabled: st.RateLimits.Enabled}
	for _, r := range st.RateLimits.Rules {
		rr.rules = append(rr.rules, guard.Rule{Label: r.Label, Audience: r.Audience, MaxRequests: r.MaxRequests,
			Window: time.Duration(r.Duration) * time.Second})
		limit, window := strconv.Itoa(r.MaxRequests), strconv.FormatInt(r.Duration, 10)
		// The budget is the rule's as it stands: a changed limit or window
		// starts a fresh schedule instead of inheriting the old one's debt.
		rr.keySuffix = append(rr.keySuffix, "\x00"+r.Label+"\x00"+r.Audience+"\x00"+limit+"/"+window)
		rr.policy = append(rr.policy, limit+";w="+window)
	}
	for _, e := range st.RateLimits.ExcludedIPs {
		e = strings.TrimSpace(e)
		if _, n, err := net.ParseCIDR(e); err == nil {
			rr.excluded = append(rr.excluded, n)
		} else if ip := net.ParseIP(e); ip != nil {
			bits := 8 * len(ip.To16())
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			rr.excluded = append(rr.excluded, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
		}
	}
	return rr
}

func (rr *rateRules) isExcluded(ip string) bool {
	if len(rr.excluded) == 0 {
		return false
	}
	addr := net.ParseIP(ip)
	if addr == nil {
		return false
	}
	for _, n := range rr.excluded {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

// limits is the server's protection: rate limits from the live settings
// and the optional adaptive concurrency limit.
type limits struct {
	limiter        guard.Limiter
	conc           *guard.Concurrency
	requestTimeout time.Duration
	rules          atomic.Pointer[rateRules]

	limited *prometheus.CounterVec
	// refusals samples the log lines and request-log entries of 429 and
	// 503 answers: a flood refused cheaply must not turn into a flood of
	// log writes that costs more than the refusals. Metrics count them all.
	refusals        *rate.Limiter
	refusalsDropped prometheus.Counter
}

var (
	shedBody        = mustJSON(errorBody{Status: 503, Message: defaultMessages[503], Data: map[string]any{}})
	jsonContentType = []string{"application/json"}
	retryAfterOne   = []string{"1"}
)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// logRefusal reports whether a 429/503 answer may be logged now.
func (l *limits) logRefusal() bool {
	if l.refusals.Allow() {
		return true
	}
	l.refusalsDropped.Inc()
	return false
}

func newLimits(opts Options) *limits {
	l := &limits{limiter: opts.RateLimiter, conc: opts.Concurrency, requestTimeout: opts.RequestTimeout,
		refusals: rate.NewLimiter(10, 50)}
	l.refusalsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "strata", Subsystem: "http", Name: "refusals_unlogged_total",
		Help: "Log lines and request-log entries of 429 and 503 answers left out because more than 10 per second (bursts of 50) were written.",
	})
	if l.limiter == nil {
		l.limiter = guard.NewLocal()
	}
	l.limited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "strata", Subsystem: "ratelimit", Name: "limited_total",
		Help: "Requests refused with 429 by a settings.rateLimits rule, by rule label.",
	}, []string{"rule"})
	return l
}

func (l *limits) collectors() []prometheus.Collector {
	cs := []prometheus.Collector{l.limited, l.refusalsDropped}
	if f, ok := l.limiter.(interface{ Fallbacks() int64 }); ok {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "strata", Subsystem: "ratelimit", Name: "redis_fallbacks_total",
			Help: "Rate-limit checks answered by the local limiter because Redis was unavailable.",
		}, func() float64 { return float64(f.Fallbacks()) }))
	}
	if l.conc != nil {
		cs = append(cs, l.conc.Collectors()...)
	}
	return cs
}

// current returns the rules of the live settings, recompiled only when
// the settings changed (a settings update swaps the snapshot pointer).
func (l *limits) current(st *service.Settings) *rateRules {
	rr := l.rules.Load()
	if rr == nil || rr.from != st {
		rr = compileRateRules(st)
		l.rules.Store(rr)
	}
	return rr
}

// admission is what protect admitted; done releases it.
type admission struct {
	ticket guard.Ticket
	cancel context.CancelFunc
	// body, for a request with a body, holds its slot instead of ticket.
	body *bodyWait
}

func (a admission) done() {
	a.ticket.Release()
	if a.body != nil {
		a.body.ticket.Release()
	}
	if a.cancel != nil {
		a.cancel()
	}
}

// bodyWait is the concurrency slot of a request with a body, which
// readBody pauses while the body arrives: at the client's pace, not the
// node's. Held through the read, a handful of clients sending slowly would
// each keep a slot, and with the limit at its floor of 4 that shuts the
// node to everyone else. The slot is taken again (queued, or shed) once
// the body is in.
type bodyWait struct {
	ticket  guard.Ticket
	started bool // only the first body read waits: batch sub-requests read in-memory bodies
}

type bodyWaitKey struct{}

var errShedAfterBody = strata.Errorf(strata.EUnavailable, "Service unavailable, try again later.")

// start pauses the slot; it reports false (and does nothing) on a nil
// bodyWait or after the first read.
func (b *bodyWait) start() bool {
	if b == nil || b.started {
		return false
	}
	b.started = true
	b.ticket.Pause()
	return true
}

// finish takes a slot again; false: shed.
func (b *bodyWait) finish(ctx context.Context) bool { return b.ticket.Resume(ctx) }

// hasBody reports whether r may carry a body: a length other than zero
// (chunked bodies have -1).
func hasBody(r *http.Request) bool { return r.ContentLength != 0 && r.Body != http.NoBody }

// protect runs after auth: the overload guard (superusers and health
// checks are never shed), then settings.rateLimits (superusers and
// excludedIPs exempt), then the request deadline. When it answers the
// request itself it returns ok=false.
func (s *Server) protect(w http.ResponseWriter, r *http.Request, pattern string, info *strata.RequestInfo) (*http.Request, admission, bool) {
	var adm admission
	su := info.IsSuperuser()
	l := s.limits
	slot := l.conc != nil && !su && !streaming(pattern)
	if slot {
		t, ok := l.conc.Acquire(r.Context(), priorityOf(r.Method, pattern))
		if !ok {
			s.m.countError(strata.EUnavailable)
			// Most requests of a spike end here: the answer is encoded
			// once and the headers set without canonicalising.
			h := w.Header()
			h["Content-Type"], h["Retry-After"] = jsonContentType, retryAfterOne
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write(shedBody)
			return r, adm, false
		}
		adm.ticket = t
	}
	if slot && hasBody(r) {
		adm.body = &bodyWait{ticket: adm.ticket}
		adm.ticket = guard.Ticket{}
	}
	if !su {
		if rr := l.current(s.app.Settings()); rr.enabled && len(rr.rules) > 0 {
			if !s.rateLimit(w, r, pattern, info, rr) {
				adm.done()
				return r, admission{}, false
			}
		}
	}
	if l.requestTimeout > 0 && !streaming(pattern) {
		ctx, cancel := context.WithTimeout(r.Context(), l.requestTimeout)
		adm.cancel = cancel
		r = r.WithContext(ctx)
		if adm.body != nil {
			// Body reads do not watch the context, so the deadline goes
			// to the connection too: a body still arriving then fails at
			// the deadline, not at the server's 5-minute ReadTimeout, and
			// so does net/http's drain of a body the handler left unread
			// while it holds the slot. net/http resets the connection's
			// deadline once the body is read and before the next request.
			// Superusers hold no slot and keep ReadTimeout (large backup
			// uploads).
			dl, _ := ctx.Deadline()
			http.NewResponseController(w).SetReadDeadline(dl)
		}
	}
	if adm.body != nil {
		r = r.WithContext(context.WithValue(r.Context(), bodyWaitKey{}, adm.body))
	}
	return r, adm, true
}

// rateLimit applies the matching rule, if any, and sets the IETF draft
// RateLimit headers; it answers 429 and returns false when over the limit.
func (s *Server) rateLimit(w http.ResponseWriter, r *http.Request, pattern string, info *strata.RequestInfo, rr *rateRules) bool {
	ip := s.clientIP(r)
	if rr.isExcluded(ip) {
		return true
	}
	t := guard.Target{Method: r.Method, Path: r.URL.Path, Authenticated: info.Auth != nil}
	actions := routeActions[pattern]
	if actions[0] != "" {
		seg, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/api/collections/"), "/api/files/"), "/")
		t.Collection = seg
		if c := s.app.Collection(seg); c != nil {
			t.Collection = c.Name
		}
		t.Action = actions[0]
	}
	rule := guard.Match(rr.rules, t)
	if actions[1] != "" && (rule == nil || !strings.Contains(rule.Label, ":")) {
		t.Action = actions[1]
		if alt := guard.Match(rr.rules, t); alt != nil && strings.Contains(alt.Label, ":") {
			rule = alt
		}
	}
	if rule == nil {
		return true
	}
	i := ruleIndex(rr.rules, rule)
	d := s.limits.limiter.Allow(r.Context(), ip+rr.keySuffix[i], rule.MaxRequests, rule.Window)
	// Header names in canonical form: Set would allocate to canonicalise
	// "RateLimit-Policy" on every request.
	h := w.Header()
	h.Set("Ratelimit-Policy", rr.policy[i])
	var buf [64]byte
	b := append(buf[:0], "limit="...)
	b = strconv.AppendInt(b, int64(rule.MaxRequests), 10)
	b = append(b, ", remaining="...)
	b = strconv.AppendInt(b, int64(d.Remaining), 10)
	b = append(b, ", reset="...)
	b = strconv.AppendInt(b, int64(ceilSeconds(d.Reset)), 10)
	h.Set("Ratelimit", string(b))
	if d.Allowed {
		return true
	}
	h.Set("Retry-After", strconv.Itoa(max(1, ceilSeconds(d.RetryAfter))))
	s.limits.limited.WithLabelValues(rule.Label).Inc()
	s.writeError(w, r, strata.Errorf(strata.ETooMany, "Too Many Requests."))
	return false
}

// ruleIndex is the index of r, an element of rules.
func ruleIndex(rules []guard.Rule, r *guard.Rule) int {
	for i := range rules {
		if &rules[i] == r {
			return i
		}
	}
	panic("api: rule not in its rule set")
}

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}
