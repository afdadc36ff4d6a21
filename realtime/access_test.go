package realtime

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/filter"
)

// snapReader answers snapshot queries: a record passes when its "ok"
// field is true. It records each query's rows.
type snapReader struct {
	strata.Reader
	batches [][]string
}

func (r *snapReader) FindRecords(_ context.Context, q *strata.RecordQuery) ([]*strata.Record, error) {
	if q.Snapshot == nil {
		return nil, fmt.Errorf("not a snapshot query")
	}
	var ids []string
	var out []*strata.Record
	for _, rec := range q.Snapshot {
		ids = append(ids, rec.ID())
		if rec.Data["ok"] == true {
			out = append(out, rec)
		}
	}
	r.batches = append(r.batches, ids)
	return out, nil
}

// TestVisibleSnapshotsBatches: snapshots are judged in bounded queries of
// distinct ids, each record on its own values, repeated ids included.
func TestVisibleSnapshotsBatches(t *testing.T) {
	c := &strata.Collection{ID: "c1", Name: "c", Fields: []*strata.Field{{Name: "id", Type: strata.FieldText}, {Name: "ok", Type: strata.FieldBool}}}
	var recs []*strata.Record
	for i := range 250 {
		r := strata.NewRecord(c)
		r.Data["id"] = fmt.Sprintf("r%d", i%120) // ids repeat: 0…119, 0…119, 0…9
		r.Data["ok"] = i%3 == 0
		recs = append(recs, r)
	}
	a := &access{c: c, req: &strata.RequestInfo{}, env: &filter.Env{Collection: c}, stored: true, filters: []strata.Filter{{Expr: "x"}}}
	st := &snapReader{}
	out := make([]bool, len(recs))
	which := make([]int, len(recs))
	for i := range which {
		which[i] = i
	}
	if err := a.visibleSnapshots(context.Background(), st, recs, which, out); err != nil {
		t.Fatal(err)
	}
	for i, ok := range out {
		if ok != (i%3 == 0) {
			t.Fatalf("record %d judged %v", i, ok)
		}
	}
	total := 0
	for _, b := range st.batches {
		seen := map[string]bool{}
		for _, id := range b {
			if seen[id] {
				raw, _ := json.Marshal(b)
				t.Fatalf("id %s twice in one query: %s", id, raw)
			}
			seen[id] = true
		}
		if len(b) > 100 {
			t.Fatalf("query of %d rows", len(b))
		}
		total += len(b)
	}
	if total != len(recs) {
		t.Fatalf("%d rows queried, want %d", total, len(recs))
	}
}
