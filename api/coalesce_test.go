package api_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/api"
)

// gatedStore counts reads of single posts by id and, while gated, holds
// them until the gate opens: a slow or stuck primary.
type gatedStore struct {
	strata.Store
	finds atomic.Int64
	gate  atomic.Pointer[chan struct{}]
}

func (s *gatedStore) FindRecords(ctx context.Context, q *strata.RecordQuery) ([]*strata.Record, error) {
	if q.Collection != nil && q.Collection.Name == "posts" && len(q.IDs) == 1 {
		s.finds.Add(1)
		if g := s.gate.Load(); g != nil {
			select {
			case <-*g:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return s.Store.FindRecords(ctx, q)
}

// close holds reads until the returned func is called.
func (s *gatedStore) close() (open func()) {
	g := make(chan struct{})
	s.gate.Store(&g)
	return func() { s.gate.Store(nil); close(g) }
}

func newGatedServer(t *testing.T, opts api.Options) (*testServer, *gatedStore) {
	t.Helper()
	gs := &gatedStore{Store: openSQLite(t, filepath.Join(t.TempDir(), "data.db"))}
	return nodeOn(t, gs, true, opts), gs
}

// A stampede on one record that is not cached yet is one read of the
// store, not one per request.
func TestViewStampedeIsOneRead(t *testing.T) {
	ts, gs := newGatedServer(t, api.Options{})
	id := postsFixture(ts)
	view := "/api/collections/posts/records/" + id
	gs.finds.Store(0)
	open := gs.close()
	var wg sync.WaitGroup
	codes := make([]int, 20)
	for i := range codes {
		wg.Go(func() { codes[i] = ts.do("GET", view, "", nil).code })
	}
	for gs.finds.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the other requests join the read
	open()
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("request %d: %d", i, c)
		}
	}
	if n := gs.finds.Load(); n != 1 {
		t.Fatalf("%d reads of the store for 20 concurrent views, want 1", n)
	}
}

// A shared read that is stuck must not hold its callers past their own
// deadlines: each answers 503 at its deadline.
func TestCoalescedViewKeepsEachDeadline(t *testing.T) {
	ts, gs := newGatedServer(t, api.Options{RequestTimeout: 200 * time.Millisecond})
	id := postsFixture(ts)
	view := "/api/collections/posts/records/" + id
	open := gs.close()
	start := time.Now()
	res := ts.do("GET", view, "", nil)
	res.status(503)
	if res.hdr.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("answered after %v with a 200 ms deadline", el)
	}
	open()
	ts.do("GET", view, "", nil).status(200).expect("title", "hello")
}
