package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-run/strata"
)

// TestChangeLogCommitOrder runs writers concurrently while a reader tails
// the change log: the reader must never see seq N+1 before N, i.e. every
// batch it reads continues exactly where the previous one stopped.
func TestChangeLogCommitOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	now := strata.NowDate()
	c := &strata.Collection{ID: "pbc_log", Name: "log", Type: strata.CollectionBase, Created: now, Updated: now,
		Fields: []*strata.Field{{ID: "text3208210256", Name: "id", Type: strata.FieldText, System: true, PrimaryKey: true},
			{ID: "text1", Name: "n", Type: strata.FieldText}}}
	if _, err := s.Write(ctx, func(tx strata.Tx) error { return tx.CreateCollection(ctx, c) }); err != nil {
		t.Fatal(err)
	}
	const writers, perWriter = 8, 40
	var wg sync.WaitGroup
	var done atomic.Bool
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				_, err := s.Write(ctx, func(tx strata.Tx) error {
					r := &strata.Record{Collection: c, Data: map[string]any{"id": fmt.Sprintf("w%di%d", w, i), "n": "x"}}
					if err := tx.InsertRecord(ctx, r); err != nil {
						return err
					}
					// Widen the window between the write and the commit.
					time.Sleep(time.Duration(i%3) * time.Millisecond)
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); done.Store(true) }()
	var last int64
	for {
		finished := done.Load()
		chs, err := s.Changes(ctx, last, 50)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range chs {
			if ch.Seq != last+1 {
				t.Fatalf("read seq %d right after %d: a gap a reader could skip", ch.Seq, last)
			}
			last = ch.Seq
		}
		if finished && len(chs) == 0 {
			break
		}
	}
	if last != writers*perWriter {
		t.Fatalf("read %d changes, want %d", last, writers*perWriter)
	}
}
