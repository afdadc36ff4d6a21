package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/api"
	"github.com/strata-run/strata/bus/memory"
	"github.com/strata-run/strata/cache"
	"github.com/strata-run/strata/service"
	"github.com/strata-run/strata/store/sqlite"
	"github.com/strata-run/strata/telemetry"
)

// otlpReceiver is an OTLP/HTTP trace collector: it decodes what the
// exporter sends to /v1/traces and keeps the spans.
type otlpReceiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	spans    []*tracepb.Span
	services []string // service.name of each resource received
}

func newOTLPReceiver(tb testing.TB) *otlpReceiver {
	tb.Helper()
	rc := &otlpReceiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			http.Error(w, "not an OTLP trace export", http.StatusNotFound)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(raw, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					rc.services = append(rc.services, kv.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				rc.spans = append(rc.spans, ss.GetSpans()...)
			}
		}
		rc.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	tb.Cleanup(rc.srv.Close)
	return rc
}

func (rc *otlpReceiver) received() []*tracepb.Span {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]*tracepb.Span(nil), rc.spans...)
}

// tracedNode is a node exporting its traces to an otlpReceiver, with its
// log lines (JSON) kept in logs.
type tracedNode struct {
	*testServer
	tracing *telemetry.Tracing
	logs    *syncBuffer
}

// newTracedNode starts a node as serve does with --otlp-endpoint: traced
// store, request spans, trace ids in the log. Its public "posts"
// collection has a list rule and two records.
func newTracedNode(tb testing.TB, rc *otlpReceiver, sample float64) *tracedNode {
	tb.Helper()
	ctx := context.Background()
	tracing, err := telemetry.NewTracing(ctx, telemetry.TracingConfig{Endpoint: rc.srv.URL, SampleRatio: sample,
		ServiceVersion: "test", NodeID: "node-1"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tracing.Shutdown(ctx) })
	st, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "data.db"), sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	app, err := service.New(ctx, service.Config{Store: telemetry.TraceStore(st, telemetry.DBSQLite), Cache: cache.New(cache.Options{}),
		Bus: memory.New()})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := app.UpsertSuperuser(ctx, suEmail, suPass); err != nil {
		tb.Fatal(err)
	}
	logs := &syncBuffer{}
	log, err := telemetry.NewLogger(logs, "json", "info")
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(api.New(app, api.Options{Logger: log, LogRequests: true, Tracing: tracing.Provider()}))
	tb.Cleanup(srv.Close)
	ts := &testServer{tb: tb, app: app, srv: srv}
	ts.suToken = ts.do("POST", "/api/collections/_superusers/auth-with-password", "",
		map[string]any{"identity": suEmail, "password": suPass}).status(200).get("token").(string)
	ts.collection(`{"name":"posts","listRule":"title != ''","createRule":"@request.body.title != ''","fields":[{"name":"title","type":"text"}]}`)
	ts.record("posts", map[string]any{"title": "hello"})
	ts.record("posts", map[string]any{"title": ""})
	return &tracedNode{testServer: ts, tracing: tracing, logs: logs}
}

// list makes the guest list request the tests trace, with a traceparent
// header when one is given.
func (n *tracedNode) list(traceparent string) {
	n.tb.Helper()
	req, err := http.NewRequest("GET", n.srv.URL+"/api/collections/posts/records", nil)
	if err != nil {
		n.tb.Fatal(err)
	}
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		n.tb.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `"totalItems":1`) {
		n.tb.Fatalf("list: %d %s", res.StatusCode, body)
	}
}

// flush waits for the requests in flight to finish (their spans end when
// the handler returns, maybe after the client read the response), then
// exports every buffered span to the receiver.
func (n *tracedNode) flush() {
	n.tb.Helper()
	n.srv.Close()
	if err := n.tracing.Shutdown(context.Background()); err != nil {
		n.tb.Fatal(err)
	}
}

const listSpan = "GET /api/collections/{collection}/records"

func spanAttr(s *tracepb.Span, key string) string {
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() != key {
			continue
		}
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_IntValue:
			return strconv.FormatInt(v.IntValue, 10)
		case *commonpb.AnyValue_BoolValue:
			return strconv.FormatBool(v.BoolValue)
		}
		return kv.GetValue().GetStringValue()
	}
	return ""
}

func findSpans(spans []*tracepb.Span, name string) []*tracepb.Span {
	var out []*tracepb.Span
	for _, s := range spans {
		if s.GetName() == name {
			out = append(out, s)
		}
	}
	return out
}

func TestTracingSpanTree(t *testing.T) {
	t.Parallel()
	rc := newOTLPReceiver(t)
	n := newTracedNode(t, rc, 1)
	n.list("")
	n.flush()

	spans := rc.received()
	roots := findSpans(spans, listSpan)
	if len(roots) != 1 {
		t.Fatalf("%d %q spans among %d", len(roots), listSpan, len(spans))
	}
	root := roots[0]
	if len(root.GetParentSpanId()) != 0 || root.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("request span: parent %x, kind %v", root.GetParentSpanId(), root.GetKind())
	}
	for k, want := range map[string]string{
		"http.request.method": "GET", "http.route": "/api/collections/{collection}/records",
		"http.response.status_code": "200", "url.path": "/api/collections/posts/records",
	} {
		if got := spanAttr(root, k); got != want {
			t.Errorf("request span %s = %q, want %q", k, got, want)
		}
	}
	if spanAttr(root, "strata.request_id") == "" {
		t.Error("request span has no request id")
	}

	// Every other span of the request's trace hangs below it: the rule
	// check under the request, the queries evaluating the rule under it.
	var inTrace []*tracepb.Span
	for _, s := range spans {
		if bytes.Equal(s.GetTraceId(), root.GetTraceId()) {
			inTrace = append(inTrace, s)
		}
	}
	rules := findSpans(inTrace, "rule.check")
	if len(rules) != 1 {
		t.Fatalf("%d rule.check spans in the trace of %d", len(rules), len(inTrace))
	}
	rule := rules[0]
	if !bytes.Equal(rule.GetParentSpanId(), root.GetSpanId()) {
		t.Errorf("rule.check parent %x, want the request span %x", rule.GetParentSpanId(), root.GetSpanId())
	}
	if spanAttr(rule, "strata.rule.kind") != "list" || spanAttr(rule, "strata.collection") != "posts" {
		t.Errorf("rule.check attributes: %v", rule.GetAttributes())
	}
	for _, op := range []string{"FindRecords", "CountRecords"} {
		got := findSpans(inTrace, op)
		if len(got) != 1 {
			t.Fatalf("%d %s spans in the trace", len(got), op)
		}
		s := got[0]
		if !bytes.Equal(s.GetParentSpanId(), rule.GetSpanId()) {
			t.Errorf("%s parent %x, want rule.check %x", op, s.GetParentSpanId(), rule.GetSpanId())
		}
		if spanAttr(s, "db.system") != "sqlite" || spanAttr(s, "db.collection.name") != "posts" {
			t.Errorf("%s attributes: %v", op, s.GetAttributes())
		}
	}
	if len(inTrace) != 4 {
		t.Errorf("trace has %d spans, want request, rule, find, count", len(inTrace))
	}
	if len(rc.services) == 0 || rc.services[0] != "strata" {
		t.Errorf("service.name: %v", rc.services)
	}

	// The request's log line names its trace and span.
	traceID, spanID := hex.EncodeToString(root.GetTraceId()), hex.EncodeToString(root.GetSpanId())
	found := false
	for _, line := range strings.Split(strings.TrimSpace(n.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "request" && m["path"] == "/api/collections/posts/records" && m["method"] == "GET" {
			found = true
			if m["trace_id"] != traceID || m["span_id"] != spanID {
				t.Errorf("request log line %s: want trace_id %s span_id %s", line, traceID, spanID)
			}
		}
	}
	if !found {
		t.Errorf("no request log line for the list: %s", n.logs.String())
	}
}

// A write: the rule check runs inside the transaction, yet its query stays
// under the rule span, while the transaction's own operations hang under the
// Write span; the bus publish follows the commit.
func TestTracingWriteSpanTree(t *testing.T) {
	t.Parallel()
	rc := newOTLPReceiver(t)
	n := newTracedNode(t, rc, 1)
	n.do("POST", "/api/collections/posts/records", "", map[string]any{"title": "guest"}).status(200)
	n.flush()
	spans := rc.received()
	roots := findSpans(spans, "POST /api/collections/{collection}/records")
	var root *tracepb.Span
	for _, s := range roots {
		if len(s.GetParentSpanId()) == 0 && spanAttr(s, "http.response.status_code") == "200" {
			root = s
		}
	}
	if root == nil {
		t.Fatalf("no request span among %d", len(spans))
	}
	byID := map[string]*tracepb.Span{}
	for _, s := range spans {
		if bytes.Equal(s.GetTraceId(), root.GetTraceId()) {
			byID[string(s.GetSpanId())] = s
		}
	}
	parentName := func(s *tracepb.Span) string {
		if p, ok := byID[string(s.GetParentSpanId())]; ok {
			return p.GetName()
		}
		return "?"
	}
	var got []string
	for _, s := range byID {
		if s != root {
			got = append(got, parentName(s)+" > "+s.GetName())
		}
	}
	sort.Strings(got)
	want := []string{
		"POST /api/collections/{collection}/records > Write",
		"POST /api/collections/{collection}/records > bus.publish",
		"POST /api/collections/{collection}/records > rule.check",
		"Write > InsertRecord",
		"rule.check > FindRecords",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("span tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, s := range byID {
		if s.GetName() == "rule.check" && (spanAttr(s, "strata.rule.kind") != "create" || spanAttr(s, "strata.rule.allowed") != "true") {
			t.Errorf("rule.check attributes: %v", s.GetAttributes())
		}
	}
}

func TestTracingHonoursTraceparent(t *testing.T) {
	t.Parallel()
	rc := newOTLPReceiver(t)
	n := newTracedNode(t, rc, 1)
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	n.list("00-" + traceID + "-" + parentID + "-01")
	n.flush()
	roots := findSpans(rc.received(), listSpan)
	if len(roots) != 1 {
		t.Fatalf("%d request spans", len(roots))
	}
	if got := hex.EncodeToString(roots[0].GetTraceId()); got != traceID {
		t.Errorf("trace id %s, want the caller's %s", got, traceID)
	}
	if got := hex.EncodeToString(roots[0].GetParentSpanId()); got != parentID {
		t.Errorf("parent span %s, want the caller's %s", got, parentID)
	}
}

func TestTracingSampleZero(t *testing.T) {
	t.Parallel()
	rc := newOTLPReceiver(t)
	n := newTracedNode(t, rc, 0)
	n.list("")
	n.flush()
	if spans := rc.received(); len(spans) != 0 {
		t.Errorf("sample 0 exported %d spans, first %q", len(spans), spans[0].GetName())
	}
}

// BenchmarkRequestTracingOff is a guest list of a collection with a list
// rule on a node without tracing: compare with BenchmarkRequestTracingOn,
// where the same request records a request, a rule and two store spans
// (into a provider that keeps none, so the exporter is not measured).
func BenchmarkRequestTracingOff(b *testing.B) { benchTracing(b, nil) }

// BenchmarkRequestTracingOn: see BenchmarkRequestTracingOff.
func BenchmarkRequestTracingOn(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	b.Cleanup(func() { tp.Shutdown(context.Background()) })
	benchTracing(b, tp)
}

func benchTracing(b *testing.B, tp trace.TracerProvider) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "data.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	var store strata.Store = st
	if tp != nil {
		store = telemetry.TraceStore(st, telemetry.DBSQLite)
	}
	app, err := service.New(ctx, service.Config{Store: store, Cache: cache.New(cache.Options{})})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := app.UpsertSuperuser(ctx, suEmail, suPass); err != nil {
		b.Fatal(err)
	}
	h := api.New(app, api.Options{Tracing: tp})
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	ts := &testServer{tb: b, app: app, srv: srv}
	ts.suToken = ts.do("POST", "/api/collections/_superusers/auth-with-password", "",
		map[string]any{"identity": suEmail, "password": suPass}).status(200).get("token").(string)
	ts.collection(`{"name":"posts","listRule":"title != ''","fields":[{"name":"title","type":"text"}]}`)
	for i := range 10 {
		ts.record("posts", map[string]any{"title": "post " + strconv.Itoa(i)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		serve(b, h, "GET", "/api/collections/posts/records?perPage=5", nil, 200)
	}
}
