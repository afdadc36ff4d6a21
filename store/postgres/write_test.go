package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/strata-run/strata"
	"github.com/strata-run/strata/store/postgres"
	"github.com/strata-run/strata/store/postgres/pgtest"
)

// TestGroupCommitIsolation runs, on one write lane so that concurrent
// writers share transactions, functions that fail in each way a function
// can: a unique violation it recovers from, a statement that leaves the
// transaction in the failed state (returned, or swallowed), a panic and a
// caller that is gone. Each must cost only its own work; every other write must commit, with the
// sequence numbers the log holds.
func TestGroupCommitIsolation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := postgres.Open(ctx, pgtest.Schema(t), postgres.Options{MaxConns: 4, WriteLanes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := strata.NowDate()
	c := &strata.Collection{ID: "pbc_grp", Name: "grp", Type: strata.CollectionBase, Created: now, Updated: now,
		Fields: []*strata.Field{{ID: "text3208210256", Name: "id", Type: strata.FieldText, System: true, PrimaryKey: true},
			{ID: "text1", Name: "k", Type: strata.FieldText}},
		Indexes: []string{"CREATE UNIQUE INDEX idx_grp_k ON grp (k)"}}
	if _, err := s.Write(ctx, func(tx strata.Tx) error { return tx.CreateCollection(ctx, c) }); err != nil {
		t.Fatal(err)
	}
	rec := func(id, k string) *strata.Record {
		return &strata.Record{Collection: c, Data: map[string]any{"id": id, "k": k}}
	}
	if _, err := s.Write(ctx, func(tx strata.Tx) error { return tx.InsertRecord(ctx, rec("taken", "taken")) }); err != nil {
		t.Fatal(err)
	}

	const n = 280
	boom := errors.New("boom")
	gone, cancel := context.WithCancel(ctx)
	cancel()
	type result struct {
		changes []strata.Change
		err     error
	}
	results := make([]result, n)
	// want[i] is the record write i must leave, "" for none.
	want := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		id := fmt.Sprintf("r%03d", i)
		var fn func(strata.Tx) error
		callCtx := ctx
		switch i % 7 {
		case 0, 1: // plain insert
			want[i] = id
			fn = func(tx strata.Tx) error { return tx.InsertRecord(ctx, rec(id, id)) }
		case 2: // a unique violation, handled: the function goes on
			want[i] = id
			fn = func(tx strata.Tx) error {
				err := tx.InsertRecord(ctx, rec(id+"x", "taken"))
				if strata.ErrorCodeOf(err) != strata.EInvalid {
					return fmt.Errorf("duplicate: got %v, want EInvalid", err)
				}
				return tx.InsertRecord(ctx, rec(id, id))
			}
		case 3: // writes, then fails on a statement that aborts the transaction
			fn = func(tx strata.Tx) error {
				if err := tx.InsertRecord(ctx, rec(id, id)); err != nil {
					return err
				}
				if _, err := tx.FindRecords(ctx, &strata.RecordQuery{Collection: &strata.Collection{ID: "x", Name: "no_such_table",
					Fields: c.Fields}}); err == nil {
					return errors.New("query on a missing table succeeded")
				}
				return boom
			}
		case 4: // writes, then panics
			fn = func(tx strata.Tx) error {
				if err := tx.InsertRecord(ctx, rec(id, id)); err != nil {
					return err
				}
				panic("boom")
			}
		case 5: // the caller is gone before its turn
			callCtx = gone
			fn = func(tx strata.Tx) error { return tx.InsertRecord(ctx, rec(id, id)) }
		case 6: // writes, then swallows a failed statement (the transaction is aborted)
			fn = func(tx strata.Tx) error {
				if err := tx.InsertRecord(ctx, rec(id, id)); err != nil {
					return err
				}
				tx.FindRecords(ctx, &strata.RecordQuery{Collection: &strata.Collection{ID: "x", Name: "no_such_table", Fields: c.Fields}})
				return nil
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			chs, err := s.Write(callCtx, fn)
			results[i] = result{chs, err}
		}()
	}
	wg.Wait()

	logged := map[string]int64{} // record id → seq in the log
	chs, err := s.Changes(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	for i, ch := range chs {
		if ch.Seq != int64(i+1) {
			t.Fatalf("log entry %d has seq %d: a gap", i, ch.Seq)
		}
		logged[ch.RecordID] = ch.Seq
	}
	for i, r := range results {
		if want[i] == "" {
			if r.err == nil {
				t.Fatalf("write %d (kind %d) succeeded, want an error", i, i%7)
			}
			if _, ok := logged[fmt.Sprintf("r%03d", i)]; ok {
				t.Fatalf("write %d (kind %d) failed but is in the log", i, i%7)
			}
			continue
		}
		if r.err != nil {
			t.Fatalf("write %d (kind %d): %v", i, i%7, r.err)
		}
		if len(r.changes) != 1 || r.changes[0].RecordID != want[i] || r.changes[0].Seq != logged[want[i]] || r.changes[0].Seq == 0 {
			t.Fatalf("write %d returned %+v; the log has seq %d", i, r.changes, logged[want[i]])
		}
	}
	recs, err := s.FindRecords(ctx, &strata.RecordQuery{Collection: c, Sort: "id"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.ID())
	}
	var expect []string
	for _, id := range want {
		if id != "" {
			expect = append(expect, id)
		}
	}
	expect = append(expect, "taken")
	if fmt.Sprint(got) != fmt.Sprint(expect) {
		t.Fatalf("rows:\n got %v\nwant %v", got, expect)
	}
	if len(chs) != len(expect) {
		t.Fatalf("log has %d entries, want %d", len(chs), len(expect))
	}
}

// TestGroupCommitGroups checks that concurrent writers do share commits:
// without that, the store pays a WAL flush and eight round trips per write.
func TestGroupCommitGroups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	s, err := postgres.Open(ctx, pgtest.Schema(t), postgres.Options{MaxConns: 4, WriteLanes: 1, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := strata.NowDate()
	c := &strata.Collection{ID: "pbc_grp2", Name: "grp2", Type: strata.CollectionBase, Created: now, Updated: now,
		Fields: []*strata.Field{{ID: "text3208210256", Name: "id", Type: strata.FieldText, System: true, PrimaryKey: true}}}
	if _, err := s.Write(ctx, func(tx strata.Tx) error { return tx.CreateCollection(ctx, c) }); err != nil {
		t.Fatal(err)
	}
	// The first writer holds the only lane until the others have queued.
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := s.Write(ctx, func(tx strata.Tx) error {
			<-release
			return tx.InsertRecord(ctx, &strata.Record{Collection: c, Data: map[string]any{"id": "first"}})
		}); err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	const n = 20
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Write(ctx, func(tx strata.Tx) error {
				return tx.InsertRecord(ctx, &strata.Record{Collection: c, Data: map[string]any{"id": fmt.Sprintf("r%02d", i)}})
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	// Three commits: the collection, the first writer, and one group for
	// the 20 that queued behind it.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "strata_store_write_group_size" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != 3 || h.GetSampleSum() != 1+1+n {
			t.Fatalf("group commits: %d holding %v writes, want 3 holding %d", h.GetSampleCount(), h.GetSampleSum(), 2+n)
		}
		return
	}
	t.Fatal("no strata_store_write_group_size metric")
}
