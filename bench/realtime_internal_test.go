package bench

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestParseMarker(t *testing.T) {
	f := &fanout{tag: []byte("rt:ab12:")}
	for line, want := range map[string][2]int64{
		`data:{"record":{"title":"rt:ab12:7:123456","n":7},"action":"create"}`:   {7, 123456},
		`data: {"action": "create", "record": {"n": 0, "title": "rt:ab12:0:1"}}`: {0, 1},
	} {
		seq, sent, ok := f.parseMarker([]byte(line))
		if !ok || seq != want[0] || sent != want[1] {
			t.Errorf("parseMarker(%s) = %d, %d, %v", line, seq, sent, ok)
		}
	}
	for _, line := range []string{
		`data:{"clientId":"x"}`,
		`data:{"record":{"title":"rt:other:7:1"}}`, // another run
		`data:{"record":{"title":"rt:ab12:7"}}`,    // no stamp
		`data:{"record":{"title":"rt:ab12::1"}}`,
	} {
		if _, _, ok := f.parseMarker([]byte(line)); ok {
			t.Errorf("parseMarker(%s) accepted", line)
		}
	}
}

// TestFanoutTally checks that a missing, a duplicated and an unexpected
// delivery, and a stream the server ended, are all told apart.
func TestFanoutTally(t *testing.T) {
	f := &fanout{hist: newHist(), streams: &http.Transport{}}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	for seq := range int64(3) {
		f.seq.Add(1)
		if seq != 2 { // create 2 failed
			f.created.set(seq)
			f.nCreate++
		}
	}
	full := &subscriber{body: io.NopCloser(strings.NewReader(""))}
	full.seen.set(0)
	full.seen.set(1)
	gappy := &subscriber{body: io.NopCloser(strings.NewReader("")), dups: 1, disconnects: 1}
	gappy.seen.set(1)
	gappy.seen.set(2)
	f.subs = []*subscriber{full, gappy}
	f.hist.RecordValue(1500)
	f.delivered.Store(5)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // nothing more is coming: skip the drain wait
	out := f.finish(ctx)
	if out.Creates != 2 || out.Expected != 4 || out.Received != 3 || out.Missing != 1 ||
		out.Duplicates != 1 || out.Disconnects != 1 || out.Unexpected != 1 || out.errors() != 3 {
		t.Fatalf("tally %+v", out)
	}
	if out.Latency.P50 != 1.5 || !strings.Contains(out.summary(), "1 of 4 deliveries missing") {
		t.Fatalf("latency %+v, summary %q", out.Latency, out.summary())
	}
}
