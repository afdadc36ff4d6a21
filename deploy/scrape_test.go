// Package deploy holds Strata's deployment files: Prometheus alert rules
// (prometheus/) and a Grafana dashboard (grafana/). Its test checks that
// every metric they query is one a real node exports.
package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/api"
	"github.com/strata-run/strata/bus/memory"
	"github.com/strata-run/strata/cache"
	"github.com/strata-run/strata/guard"
	"github.com/strata-run/strata/realtime"
	"github.com/strata-run/strata/service"
	"github.com/strata-run/strata/store/postgres"
	"github.com/strata-run/strata/store/postgres/pgtest"
	"github.com/strata-run/strata/store/sqlite"
	"github.com/strata-run/strata/telemetry"
)

// metricName finds the metrics an expression reads: Strata's own and the
// Go and process collectors' that telemetry.NewRegistry adds.
var metricName = regexp.MustCompile(`\b(?:strata|go|process)_[a-z0-9_]+\b`)

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	SchemaVersion int `json:"schemaVersion"`
	Inputs        []struct {
		Name     string `json:"name"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Definition string          `json:"definition"`
			Datasource json.RawMessage `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	Panels     []panel         `json:"panels"` // a collapsed row's
	Targets    []struct {
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
}

// queries is every PromQL expression of the dashboard's panels, by panel title.
func (d *dashboard) queries() map[string][]string {
	out := map[string][]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				out[p.Title] = append(out[p.Title], t.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	raw, err := os.ReadFile("grafana/strata.json")
	if err != nil {
		t.Fatal(err)
	}
	d := new(dashboard)
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(d); err != nil {
		t.Fatalf("grafana/strata.json: %v", err)
	}
	return d
}

// TestDashboardShape checks what makes the dashboard importable anywhere:
// a datasource input rather than a fixed datasource, an instance variable
// every query honours, and unique panel ids.
func TestDashboardShape(t *testing.T) {
	d := loadDashboard(t)
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d, want 39 or later", d.SchemaVersion)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs = %+v, want one prometheus datasource input DS_PROMETHEUS", d.Inputs)
	}
	const ds = `"uid":"${DS_PROMETHEUS}"`
	usesInput := func(raw json.RawMessage) bool {
		var b bytes.Buffer
		return json.Compact(&b, raw) == nil && strings.Contains(b.String(), ds)
	}
	var haveInstance bool
	for _, v := range d.Templating.List {
		if v.Name == "instance" {
			haveInstance = true
			if !usesInput(v.Datasource) || !strings.Contains(v.Definition, "instance") {
				t.Errorf("instance variable: datasource %s, definition %q", v.Datasource, v.Definition)
			}
		}
	}
	if !haveInstance {
		t.Error("no instance template variable")
	}
	ids := map[int]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if prev, dup := ids[p.ID]; dup {
				t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			if p.Type != "row" && !usesInput(p.Datasource) {
				t.Errorf("panel %q: datasource %s, want the ${DS_PROMETHEUS} input", p.Title, p.Datasource)
			}
			for _, tg := range p.Targets {
				if !usesInput(tg.Datasource) {
					t.Errorf("panel %q: a target's datasource is %s", p.Title, tg.Datasource)
				}
				if !strings.Contains(tg.Expr, `instance=~"$instance"`) {
					t.Errorf("panel %q ignores the instance variable: %s", p.Title, tg.Expr)
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
}

// TestDashboardQueriesParse has promtool parse every panel query, with
// Grafana's variables replaced by what they expand to.
func TestDashboardQueriesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (run scripts/ensure-services.sh): %v", err)
	}
	expand := strings.NewReplacer(`"$instance"`, `".*"`, "$__rate_interval", "5m")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, exprs := range loadDashboard(t).queries() {
		for _, e := range exprs {
			n++
			// A JSON string is a valid YAML double-quoted scalar.
			q, _ := json.Marshal(expand.Replace(e))
			fmt.Fprintf(&rules, "      - record: dashboard:query_%d\n        expr: %s\n", n, q)
		}
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Fatalf("promtool rejects a dashboard query: %v\n%s", err, out)
	}
}

// TestMetricsExist scrapes two real nodes, one on SQLite and one on
// PostgreSQL with a replica, after some traffic, and checks that every
// metric the dashboard and the alert rules read is in one of the scrapes.
// The PostgreSQL node's replica is the primary itself, which fails its
// health check: replica series exist without starting a cluster.
func TestMetricsExist(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	regLite := telemetry.NewRegistry()
	lite, err := sqlite.Open(ctx, filepath.Join(dir, "data.db"), sqlite.Options{Registerer: regLite})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })

	regPG := telemetry.NewRegistry()
	dsn := pgtest.Schema(t)
	pg, err := postgres.Open(ctx, dsn, postgres.Options{Replicas: []string{dsn}, ReplicaRetry: time.Hour,
		Logger: slog.New(slog.DiscardHandler), Registerer: regPG})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })

	scraped := map[string]*dto.MetricFamily{}
	for name, n := range map[string]*node{
		"sqlite":   startNode(t, lite, regLite, filepath.Join(dir, "lite-aux.db")),
		"postgres": startNode(t, pg, regPG, filepath.Join(dir, "pg-aux.db")),
	} {
		n.traffic()
		mfs := n.scrape()
		// Both stores export the shared store metrics.
		for _, shared := range []string{"strata_store_query_duration_seconds", "strata_store_pool_in_use_connections",
			"strata_store_pool_max_open_connections", "strata_store_pool_wait_total"} {
			if _, ok := mfs[shared]; !ok {
				t.Errorf("the %s node does not export %s", name, shared)
			}
		}
		for k, v := range mfs {
			scraped[k] = v
		}
	}

	used := map[string][]string{} // metric → where it is used
	for title, exprs := range loadDashboard(t).queries() {
		for _, e := range exprs {
			for _, m := range metricName.FindAllString(e, -1) {
				used[m] = append(used[m], "dashboard panel "+title)
			}
		}
	}
	alerts, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metricName.FindAllString(string(alerts), -1) {
		used[m] = append(used[m], "alerts.yml")
	}
	names := make([]string, 0, len(used))
	for m := range used {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		if !exported(scraped, m) {
			t.Errorf("%s (%s) is in no scrape", m, strings.Join(used[m], ", "))
		}
	}
	if len(names) < 40 {
		t.Fatalf("only %d metrics found in the dashboard and alerts: the extraction is broken", len(names))
	}
}

// exported reports whether name is a family of mfs, or a series of one:
// a histogram's _bucket, _sum and _count, a summary's _sum and _count.
func exported(mfs map[string]*dto.MetricFamily, name string) bool {
	if _, ok := mfs[name]; ok {
		return true
	}
	for suffix, types := range map[string][]dto.MetricType{
		"_bucket": {dto.MetricType_HISTOGRAM},
		"_sum":    {dto.MetricType_HISTOGRAM, dto.MetricType_SUMMARY},
		"_count":  {dto.MetricType_HISTOGRAM, dto.MetricType_SUMMARY},
	} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if mf, ok := mfs[base]; ok {
			for _, ty := range types {
				if mf.GetType() == ty {
					return true
				}
			}
		}
	}
	return false
}

const (
	suEmail = "ops@example.com"
	suPass  = "ops-password-123"
)

// node is one Strata node served over HTTP, as `strata serve` wires it:
// request log, record cache, bus, realtime hub and the overload guard all
// report to its registry.
type node struct {
	t       *testing.T
	url     string
	suToken string
}

func startNode(t *testing.T, st strata.Store, reg *prometheus.Registry, auxPath string) *node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	logs, err := sqlite.OpenLogs(ctx, auxPath, sqlite.LogOptions{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	app, err := service.New(ctx, service.Config{Store: st, Logger: log, Cache: cache.New(cache.Options{Registerer: reg}), Bus: memory.New()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.UpsertSuperuser(ctx, suEmail, suPass); err != nil {
		t.Fatal(err)
	}
	h := api.New(app, api.Options{Logger: log, Registry: reg, Logs: logs,
		Concurrency: guard.NewConcurrency(guard.ConcurrencyOptions{})})
	hub := realtime.New(app, app.Bus(), realtime.Config{Logger: log})
	h.EnableRealtime(hub)
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); hub.Run(ctx) }()
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-hubDone
		logs.Close()
	})
	n := &node{t: t, url: srv.URL}
	var auth struct{ Token string }
	n.call("POST", "/api/collections/_superusers/auth-with-password", map[string]any{"identity": suEmail, "password": suPass}, 200, &auth)
	n.suToken = auth.Token
	return n
}

// call sends a request as the superuser (once signed in) and checks its status.
func (n *node) call(method, path string, body any, want int, out any) {
	n.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			n.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.url+path, rd)
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if n.suToken != "" {
		req.Header.Set("Authorization", n.suToken)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		n.t.Fatal(err)
	}
	if res.StatusCode != want {
		n.t.Fatalf("%s %s = %d, want %d: %s", method, path, res.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			n.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// traffic makes the requests after which every labelled series the
// dashboard reads exists: record writes and reads (store, cache), an error,
// and a rate-limited request.
func (n *node) traffic() {
	n.t.Helper()
	n.call("POST", "/api/collections", map[string]any{"name": "posts", "type": "base", "listRule": "", "viewRule": "",
		"fields": []map[string]any{{"name": "title", "type": "text"}}}, 200, nil)
	var rec struct{ ID string }
	n.call("POST", "/api/collections/posts/records", map[string]any{"title": "hello"}, 200, &rec)
	for range 3 {
		n.call("GET", "/api/collections/posts/records/"+rec.ID, nil, 200, nil)
	}
	n.call("GET", "/api/collections/posts/records?filter=title%3D%27hello%27", nil, 200, nil)
	n.call("GET", "/api/collections/posts/records/missing0000000", nil, 404, nil)
	n.call("PATCH", "/api/settings", map[string]any{"rateLimits": map[string]any{"enabled": true, "excludedIPs": []string{},
		"rules": []map[string]any{{"label": "/api/health", "audience": "", "duration": 60, "maxRequests": 1}}}}, 200, nil)
	// Superusers are never rate-limited.
	token := n.suToken
	n.suToken = ""
	n.call("GET", "/api/health", nil, 200, nil)
	n.call("GET", "/api/health", nil, 429, nil)
	n.suToken = token
}

// scrape fetches GET /metrics as the superuser and parses it.
func (n *node) scrape() map[string]*dto.MetricFamily {
	n.t.Helper()
	req, err := http.NewRequest("GET", n.url+"/metrics", nil)
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Authorization", n.suToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		n.t.Fatalf("GET /metrics = %d", res.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		n.t.Fatal(err)
	}
	return mfs
}
