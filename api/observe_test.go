package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/strata-run/strata/api"
	"github.com/strata-run/strata/cache"
	"github.com/strata-run/strata/service"
	"github.com/strata-run/strata/store/sqlite"
	"github.com/strata-run/strata/telemetry"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// observed is a test server wired like `strata serve`: one registry for
// every component, a request log store and JSON logs in a buffer.
type observed struct {
	*testServer
	api  *api.Server
	logs *sqlite.LogStore
	out  *syncBuffer
}

func newObservedServer(tb testing.TB, starting bool) *observed {
	tb.Helper()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	dir := tb.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "data.db"), sqlite.Options{Registerer: reg})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	logs, err := sqlite.OpenLogs(ctx, filepath.Join(dir, "auxiliary.db"), sqlite.LogOptions{Registerer: reg})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { logs.Close() })
	out := &syncBuffer{}
	log, err := telemetry.NewLogger(out, "json", "info")
	if err != nil {
		tb.Fatal(err)
	}
	app, err := service.New(ctx, service.Config{Store: st, Logger: log, Cache: cache.New(cache.Options{Registerer: reg})})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := app.UpsertSuperuser(ctx, suEmail, suPass); err != nil {
		tb.Fatal(err)
	}
	h := api.New(app, api.Options{Logger: log, Registry: reg, Logs: logs, LogRequests: true, Starting: starting})
	ts := &testServer{tb: tb, app: app, srv: newHTTPTestServer(tb, h)}
	res := ts.do("POST", "/api/collections/_superusers/auth-with-password", "", map[string]any{"identity": suEmail, "password": suPass})
	res.status(200)
	ts.suToken = res.json()["token"].(string)
	return &observed{testServer: ts, api: h, logs: logs, out: out}
}

// scrape fetches /metrics as a superuser and parses it.
func (o *observed) scrape() map[string]*dto.MetricFamily {
	o.tb.Helper()
	res := o.su("GET", "/metrics", nil).status(200)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(res.body))
	if err != nil {
		o.tb.Fatal(err)
	}
	return mfs
}

// value is the sample of family name whose labels include want (counter,
// gauge or histogram count).
func value(tb testing.TB, mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	tb.Helper()
	mf, ok := mfs[name]
	if !ok {
		tb.Fatalf("metric %s not exported", name)
	}
	var sum float64
	found := false
next:
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	if !found {
		return 0
	}
	return sum
}

func TestMetricsCountKnownTraffic(t *testing.T) {
	o := newObservedServer(t, false)
	o.su("POST", "/api/collections", map[string]any{"name": "posts", "listRule": "", "viewRule": "",
		"fields": []any{map[string]any{"name": "title", "type": "text"}}}).status(200)
	rec := o.su("POST", "/api/collections/posts/records", map[string]any{"title": "a"}).status(200).json()
	for range 3 {
		o.do("GET", "/api/health", "", nil).status(200)
	}
	for range 2 {
		o.do("GET", "/api/collections/posts/records/nope", "", nil).status(404)
	}
	for range 4 {
		o.do("GET", "/api/collections/posts/records/"+rec["id"].(string), "", nil).status(200)
	}
	o.do("GET", "/definitely/not/a/route/12345", "", nil).status(404)
	o.do("GET", "/metrics", "", nil).status(401)

	mfs := o.scrape()
	const req = "strata_http_requests_total"
	view := "/api/collections/{collection}/records/{id}"
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{req, map[string]string{"route": "/api/health", "method": "GET", "status": "200"}, 3},
		{req, map[string]string{"route": view, "method": "GET", "status": "404"}, 2},
		{req, map[string]string{"route": view, "method": "GET", "status": "200"}, 4},
		{req, map[string]string{"route": "unmatched", "status": "404"}, 1},
		{req, map[string]string{"route": "/metrics", "status": "401"}, 1},
		{"strata_http_request_duration_seconds", map[string]string{"route": view, "method": "GET"}, 6},
		{"strata_http_errors_total", map[string]string{"code": "not_found"}, 3},
		{"strata_http_errors_total", map[string]string{"code": "unauthorized"}, 1},
		// The scrape itself is the one request in flight.
		{"strata_http_requests_in_flight", nil, 1},
	}
	for _, c := range checks {
		if got := value(t, mfs, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// No raw paths in labels: ids must never become label values.
	for _, m := range mfs[req].GetMetric() {
		for _, lp := range m.GetLabel() {
			if strings.Contains(lp.GetValue(), rec["id"].(string)) || strings.Contains(lp.GetValue(), "12345") {
				t.Errorf("raw path in label: %v", lp)
			}
		}
	}
	for _, name := range []string{"strata_store_query_duration_seconds", "strata_store_write_group_size",
		"strata_store_pool_open_connections", "strata_store_write_queue_length", "strata_cache_misses_total", "strata_logs_dropped_total"} {
		if _, ok := mfs[name]; !ok {
			t.Errorf("%s not exported", name)
		}
	}
	// Four views of one record: at most the first goes to the store.
	if got := value(t, mfs, "strata_cache_hits_total", nil); got < 3 {
		t.Errorf("cache hits = %v, want >= 3", got)
	}
	if got := value(t, mfs, "strata_store_query_duration_seconds", map[string]string{"op": "write"}); got < 2 {
		t.Errorf("store writes observed = %v, want >= 2", got)
	}
}

func TestMetricsEndpointAuth(t *testing.T) {
	o := newObservedServer(t, false)
	o.do("GET", "/metrics", "", nil).status(401).contains(`"status":401`)
	o.su("POST", "/api/collections/users/records", map[string]any{"email": "u@strata.test", "password": "user-pass-1", "passwordConfirm": "user-pass-1"}).status(200)
	tok := o.do("POST", "/api/collections/users/auth-with-password", "", map[string]any{"identity": "u@strata.test", "password": "user-pass-1"}).status(200).json()["token"].(string)
	o.do("GET", "/metrics", tok, nil).status(403).contains(`"status":403`)
	res := o.su("GET", "/metrics", nil).status(200)
	if !strings.Contains(res.hdr.Get("Content-Type"), "text/plain") {
		t.Errorf("content type %q", res.hdr.Get("Content-Type"))
	}
}

func TestRequestIDOnResponsesAndLogLines(t *testing.T) {
	o := newObservedServer(t, false)
	res := o.doHeaders("GET", "/api/health", map[string]string{"X-Request-Id": "lb-abc.123"}).status(200)
	if got := res.hdr.Get("X-Request-Id"); got != "lb-abc.123" {
		t.Fatalf("sane incoming id not kept: %q", got)
	}
	for _, bad := range []string{"has space", strings.Repeat("x", 65), "quote\"d", "new\u00e9line"} {
		got := o.doHeaders("GET", "/api/health", map[string]string{"X-Request-Id": bad}).hdr.Get("X-Request-Id")
		if !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(got) {
			t.Errorf("incoming %q: id %q, want a fresh one", bad, got)
		}
	}
	res = o.doHeaders("GET", "/api/collections/nope/records", map[string]string{"Authorization": "secret-token-value"}).status(404)
	id := res.hdr.Get("X-Request-Id")
	if id == "" {
		t.Fatal("no X-Request-Id")
	}
	found := false
	for _, line := range strings.Split(strings.TrimSpace(o.out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if strings.Contains(line, "secret-token-value") {
			t.Errorf("token in log line: %s", line)
		}
		if m["msg"] == "request" && m["path"] == "/api/collections/nope/records" {
			found = true
			if m["request_id"] != id || m["route"] != "/api/collections/{collection}/records" || m["status"] != float64(404) || m["ip"] == nil {
				t.Errorf("request line: %s", line)
			}
		}
		if m["msg"] == "request" && m["request_id"] == nil {
			t.Errorf("request line without request_id: %s", line)
		}
	}
	if !found {
		t.Fatalf("no request line for %s in:\n%s", id, o.out.String())
	}
}

func TestReadyz(t *testing.T) {
	o := newObservedServer(t, true)
	o.do("GET", "/readyz", "", nil).status(503)
	o.api.SetReady(true)
	o.do("GET", "/readyz", "", nil).status(200)
	o.do("GET", "/api/health", "", nil).status(200)
	o.api.Drain()
	o.do("GET", "/readyz", "", nil).status(503).contains("Draining")
	// Draining only fails the probe: requests are still served.
	o.do("GET", "/api/health", "", nil).status(200)
}

func TestLogsAPI(t *testing.T) {
	o := newObservedServer(t, false)
	o.do("GET", "/api/health", "", nil).status(200)
	o.do("GET", "/api/collections/nope/records?token=s3cret", "", nil).status(404)
	o.do("GET", "/api/collections/nope/records", "", nil).status(404)
	if err := o.logs.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	o.do("GET", "/api/logs", "", nil).status(401)

	list := o.su("GET", "/api/logs?filter="+urlQuery(`data.status = 404 && level = 8`)+"&sort=-created", nil).status(200).json()
	if list["totalItems"] != float64(2) {
		t.Fatalf("logs: %v", list)
	}
	items := list["items"].([]any)
	first := items[0].(map[string]any)
	if strings.Contains(first["message"].(string)+items[1].(map[string]any)["message"].(string), "s3cret") {
		t.Errorf("file token logged: %v", items)
	}
	data := first["data"].(map[string]any)
	if data["type"] != "request" || data["method"] != "GET" || data["auth"] != "" {
		t.Errorf("data: %v", data)
	}
	one := o.su("GET", "/api/logs/"+first["id"].(string), nil).status(200).json()
	if one["id"] != first["id"] || one["created"] == "" {
		t.Errorf("view: %v", one)
	}
	o.su("GET", "/api/logs/missing", nil).status(404)
	o.su("GET", "/api/logs?filter="+urlQuery("nosuchfield = 1"), nil).status(400)
	stats := o.su("GET", "/api/logs/stats?filter="+urlQuery("data.status = 404"), nil).status(200)
	var st []struct {
		Date  string `json:"date"`
		Total int    `json:"total"`
	}
	if err := json.Unmarshal(stats.body, &st); err != nil || len(st) != 1 || st[0].Total != 2 || !strings.HasSuffix(st[0].Date, ":00:00.000Z") {
		t.Fatalf("stats %s: %v", stats.body, err)
	}
	// maxDays 0 turns request logs off (PocketBase).
	o.su("PATCH", "/api/settings", map[string]any{"logs": map[string]any{"maxDays": 0}}).status(200)
	o.logs.Flush(context.Background())
	before := o.su("GET", "/api/logs?skipTotal=0", nil).json()["totalItems"].(float64)
	o.do("GET", "/api/health", "", nil).status(200)
	o.logs.Flush(context.Background())
	after := o.su("GET", "/api/logs", nil).json()["totalItems"].(float64)
	if after != before {
		t.Errorf("logged with maxDays 0: %v → %v", before, after)
	}
	if n, err := o.api.PruneLogs(context.Background()); err != nil || n == 0 {
		t.Errorf("prune with maxDays 0 = %d, %v", n, err)
	}
}

func newHTTPTestServer(tb testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv
}

// doHeaders sends a GET-style request with extra headers.
func (ts *testServer) doHeaders(method, path string, headers map[string]string) *response {
	ts.tb.Helper()
	req, err := http.NewRequest(method, ts.srv.URL+path, nil)
	if err != nil {
		ts.tb.Fatal(err)
	}
	for k, v := range headers {
		req.Header[k] = []string{v}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.tb.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return &response{tb: ts.tb, code: res.StatusCode, body: raw, hdr: res.Header, desc: method + " " + path}
}

func (r *response) contains(s string) *response {
	r.tb.Helper()
	if !strings.Contains(string(r.body), s) {
		r.tb.Fatalf("%s: body %s does not contain %q", r.desc, r.body, s)
	}
	return r
}

func urlQuery(s string) string { return url.QueryEscape(s) }

// A flood of refused requests is counted in full but logged only in part:
// writing every 429 to the request log would cost more than refusing it.
func TestRefusalsAreLoggedSampled(t *testing.T) {
	o := newObservedServer(t, false)
	o.su("PATCH", "/api/settings", map[string]any{"rateLimits": map[string]any{
		"enabled": true, "rules": []any{map[string]any{"label": "/api/health", "duration": 3600, "maxRequests": 1}},
		"excludedIPs": []string{}}}).status(200)
	o.do("GET", "/api/health", "", nil).status(200)
	const flood = 500
	for range flood {
		o.do("GET", "/api/health", "", nil).status(429)
	}
	if err := o.logs.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	list := o.su("GET", "/api/logs?filter="+urlQuery(`data.status = 429`)+"&perPage=1", nil).status(200).json()
	logged := int(list["totalItems"].(float64))
	dropped := int(value(t, o.scrape(), "strata_http_refusals_unlogged_total", nil))
	// 50 at once and 10 a second: the flood takes far less than the 40 s
	// that would let every refusal through.
	if logged < 1 || logged >= flood {
		t.Fatalf("%d of %d refusals in the request log, want some but not all", logged, flood)
	}
	if dropped < flood-logged {
		t.Fatalf("unlogged counter %d, want ≥ %d", dropped, flood-logged)
	}
	mfs := o.scrape()
	if got := value(t, mfs, "strata_http_requests_total", map[string]string{"status": "429"}); got != flood {
		t.Fatalf("metrics counted %v refusals, want every one of %d", got, flood)
	}
}
