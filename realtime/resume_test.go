package realtime_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-run/strata/realtime"
)

type cursorData struct {
	ClientID string         `json:"clientId"`
	Cursor   string         `json:"cursor"`
	Reason   string         `json:"reason"`
	Action   string         `json:"action"`
	Record   map[string]any `json:"record"`
}

func cursorOf(tb testing.TB, m msg) cursorData {
	tb.Helper()
	var d cursorData
	if err := json.Unmarshal([]byte(m.data), &d); err != nil {
		tb.Fatalf("event data %q: %v", m.data, err)
	}
	return d
}

// leave closes a stream and waits until the hub has let it go.
func (e *env) leave(s *sse) {
	e.tb.Helper()
	s.cancel()
	<-s.closed
	deadline := time.Now().Add(5 * time.Second)
	for e.hub.Subscribe(s.id, "127.0.0.1", nil, nil) == nil {
		if time.Now().After(deadline) {
			e.tb.Fatal("stream still registered")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestResume: a client that reconnects with the cursor of the last event
// it got receives, exactly once and in order, what it missed (by GET
// ?resume= or by the POST body), then live events.
func TestResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t, realtime.Config{})
	e.collection(`{"name":"pub","type":"base","listRule":"n != 3","createRule":"","fields":[{"name":"n","type":"number"}]}`)
	create := func(n int) { e.must(200, "POST", "/api/collections/pub/records", "", map[string]any{"n": n}) }

	// An SDK-style stream: PB_CONNECT carries a cursor, events do not.
	plain := e.connect()
	if d := cursorOf(t, plain.first); d.ClientID != plain.id || d.Cursor == "" {
		t.Fatalf("PB_CONNECT data %q", plain.first.data)
	}
	e.subscribe(plain, "", "pub/*")

	s := e.connectQuery("cursors=1")
	e.subscribe(s, "", "pub/*")
	create(0)
	create(1)
	d0 := cursorOf(t, s.next(t))
	if d0.Record["n"] != float64(0) || d0.Cursor == "" {
		t.Fatalf("first event %+v", d0)
	}
	if m := plain.next(t); strings.Contains(m.data, "cursor") || !strings.HasSuffix(m.data, `,"action":"create"}`) {
		t.Fatalf("SDK stream event carries extra keys: %s", m.data)
	}
	e.leave(s) // the event for n=1 may or may not have been read: resume from n=0

	for n := 2; n <= 5; n++ {
		create(n) // n=3 is hidden by the rule
	}
	r := e.connectQuery("resume=" + d0.Cursor)
	if d := cursorOf(t, r.first); d.Cursor != d0.Cursor {
		t.Fatalf("PB_CONNECT of a resuming stream = %q, want cursor %s", r.first.data, d0.Cursor)
	}
	create(6) // before the subscribe: held back, then replayed once
	e.subscribe(r, "", "pub/*")
	create(7)
	var last string
	for _, want := range []float64{1, 2, 4, 5, 6, 7} {
		d := cursorOf(t, r.next(t))
		if d.Record["n"] != want {
			t.Fatalf("resumed event n=%v, want %v", d.Record["n"], want)
		}
		last = d.Cursor
	}
	r.none(t, 100*time.Millisecond)

	// The same through the POST body, as an SDK's beforeSend can add it.
	e.leave(r)
	create(8)
	p := e.connect()
	e.must(204, "POST", "/api/realtime", "", map[string]any{"clientId": p.id, "subscriptions": []string{"pub/*"}, "resume": last})
	if d := cursorOf(t, p.next(t)); d.Record["n"] != float64(8) || d.Cursor == "" {
		t.Fatalf("POST resume: %+v", d)
	}
	// Later POSTs (the SDK resubmits on every change) do not replay again.
	e.must(204, "POST", "/api/realtime", "", map[string]any{"clientId": p.id, "subscriptions": []string{"pub/*", "pub/x"}, "resume": last})
	create(9)
	if d := cursorOf(t, p.next(t)); d.Record["n"] != float64(9) {
		t.Fatalf("after resubmit: %+v", d)
	}
	p.none(t, 100*time.Millisecond)
	if d := e.must(400, "GET", "/api/realtime?resume=x", "", nil); d["data"].(map[string]any)["resume"] == nil {
		t.Fatalf("bad cursor: %v", d)
	}
}

// TestResumeResync: a cursor beyond the window gets PB_RESYNC with the
// cursor to continue from, then live events.
func TestResumeResync(t *testing.T) {
	t.Parallel()
	e := newEnv(t, realtime.Config{ResumeWindow: 3, ClientBuffer: 4})
	e.collection(`{"name":"pub","type":"base","listRule":"","createRule":"","fields":[{"name":"n","type":"number"}]}`)
	create := func(n int) { e.must(200, "POST", "/api/collections/pub/records", "", map[string]any{"n": n}) }
	s := e.connectQuery("cursors=1")
	start := cursorOf(t, s.first).Cursor
	e.leave(s)
	for n := range 5 {
		create(n)
	}
	r := e.connectQuery("resume=" + start)
	e.subscribe(r, "", "pub/*")
	m := r.next(t)
	d := cursorOf(t, m)
	if m.event != "PB_RESYNC" || d.Cursor == "" || d.Cursor == start || d.Reason == "" {
		t.Fatalf("want PB_RESYNC, got %s %s", m.event, m.data)
	}
	create(5)
	if d := cursorOf(t, r.next(t)); d.Record["n"] != float64(5) {
		t.Fatalf("live after resync: %+v", d)
	}
	// A cursor ahead of the hub (another node was further): nothing is
	// replayed and changes up to it are not delivered twice.
	ahead := e.connectQuery("resume=" + d.Cursor + "0")
	e.subscribe(ahead, "", "pub/*")
	create(6)
	ahead.none(t, 100*time.Millisecond)
}

// TestCursorHeartbeat: an idle stream that asked for cursors learns the
// log position from PB_CURSOR, so its cursor does not fall behind.
func TestCursorHeartbeat(t *testing.T) {
	t.Parallel()
	e := newEnv(t, realtime.Config{Heartbeat: 50 * time.Millisecond})
	e.collection(`{"name":"pub","type":"base","listRule":"","createRule":"","fields":[{"name":"n","type":"number"}]}`)
	s := e.connectQuery("cursors=1")
	e.subscribe(s, "", "other/*")
	before := cursorOf(t, s.first).Cursor
	e.must(200, "POST", "/api/collections/pub/records", "", map[string]any{"n": 1})
	// A heartbeat may fire before the create is dispatched and still carry
	// the old cursor; the next ones must move past it.
	for range 20 {
		m := s.next(t)
		if m.event != "PB_CURSOR" {
			t.Fatalf("want PB_CURSOR, got %s %s", m.event, m.data)
		}
		if cursorOf(t, m).Cursor != before {
			return
		}
	}
	t.Fatalf("no PB_CURSOR past %s", before)
}

func TestCollectors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, realtime.Config{})
	s := e.connect()
	// One change through the hub, so the dispatch lag has a sample.
	e.collection(`{"name":"pub","type":"base","listRule":"","viewRule":"","fields":[{"name":"t","type":"text"}]}`)
	e.subscribe(s, "", "pub/*")
	e.must(200, "POST", "/api/collections/pub/records", e.suToken, map[string]any{"t": "x"})
	if m := s.next(t); m.event != "pub/*" {
		t.Fatalf("want the create, got %s %s", m.event, m.data)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.hub.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
	}
	if got["strata_realtime_dispatch_lag_seconds"] < 1 {
		t.Errorf("dispatch lag has no sample after a dispatched change: %v", got)
	}
	if got["strata_realtime_clients"] != 1 || got["strata_realtime_connections_total"] != 1 {
		t.Fatalf("metrics %v", got)
	}
	for _, n := range []string{"strata_realtime_events_delivered_total", "strata_realtime_evictions_total", "strata_realtime_resyncs_total"} {
		if _, ok := got[n]; !ok {
			t.Errorf("missing %s", n)
		}
	}
}
