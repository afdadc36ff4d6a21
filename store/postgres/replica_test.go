package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/store/postgres"
	"github.com/strata-run/strata/store/postgres/pgtest"
)

// replicaFixture is a store on a fresh primary with one replica that
// applies commits applyDelay late, and a collection "kv" (id, n).
type replicaFixture struct {
	cluster  *pgtest.Cluster
	store    *postgres.Store
	coll     *strata.Collection
	registry *prometheus.Registry // the store's metrics
}

const applyDelay = 300 * time.Millisecond

func newReplicaFixture(t *testing.T) *replicaFixture {
	t.Helper()
	cl := pgtest.Start(t, pgtest.Options{ApplyDelay: applyDelay})
	ctx := context.Background()
	reg := prometheus.NewPedanticRegistry()
	st, err := postgres.Open(ctx, cl.Primary.DSN(), postgres.Options{MaxConns: 32, Replicas: []string{cl.Replica.DSN()},
		ReplicaCheckEvery: 50 * time.Millisecond, ReplicaRetry: 200 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := strata.NowDate()
	c := &strata.Collection{ID: "pbc_kv", Name: "kv", Type: strata.CollectionBase, Created: now, Updated: now,
		Fields: []*strata.Field{{ID: "text3208210256", Name: "id", Type: strata.FieldText, System: true, PrimaryKey: true},
			{ID: "number1", Name: "n", Type: strata.FieldNumber}}}
	if _, err := st.Write(ctx, func(tx strata.Tx) error { return tx.CreateCollection(ctx, c) }); err != nil {
		t.Fatal(err)
	}
	return &replicaFixture{cluster: cl, store: st, coll: c, registry: reg}
}

// put writes id=n and returns the write's consistency token.
func (f *replicaFixture) put(ctx context.Context, id string, n int, create bool) (uint64, error) {
	ctx, tokens := strata.WithWriteTokens(ctx)
	_, err := f.store.Write(ctx, func(tx strata.Tx) error {
		r := &strata.Record{Collection: f.coll, Data: map[string]any{"id": id, "n": float64(n)}}
		if create {
			return tx.InsertRecord(ctx, r)
		}
		return tx.UpdateRecord(ctx, r)
	})
	if err == nil && tokens.Latest() == 0 {
		err = fmt.Errorf("write of %s reported no consistency token", id)
	}
	return tokens.Latest(), err
}

// get reads id's n (-1 when missing) with read-after token.
func (f *replicaFixture) get(ctx context.Context, id string, token uint64) (int, error) {
	rs, err := f.store.FindRecords(strata.WithReadAfter(ctx, token), &strata.RecordQuery{Collection: f.coll, IDs: []string{id}})
	if err != nil || len(rs) == 0 {
		return -1, err
	}
	n, _ := rs[0].Data["n"].(float64)
	return int(n), nil
}

func replicaReads(st *postgres.Store) int64 {
	var n int64
	for _, r := range st.ReadStats().Replicas {
		n += r.Reads
	}
	return n
}

// TestReadYourWritesUnderLag runs write-then-read pairs from concurrent
// sessions against a replica that applies commits 300ms late; each read
// waits a random 0–600ms, so some are served by the replica and some must
// not be. No read may return older data than the session just wrote.
func TestReadYourWritesUnderLag(t *testing.T) {
	f := newReplicaFixture(t)
	ctx := context.Background()
	const sessions, pairs = 200, 50 // 10,000 write-then-read pairs
	var stale, failed atomic.Int64
	var wg sync.WaitGroup
	for s := range sessions {
		wg.Go(func() {
			id := fmt.Sprintf("s%014d", s)
			for i := range pairs {
				token, err := f.put(ctx, id, i, i == 0)
				if err != nil {
					failed.Add(1)
					t.Error(err)
					return
				}
				time.Sleep(time.Duration(rand.IntN(int(2 * applyDelay))))
				n, err := f.get(ctx, id, token)
				if err != nil {
					failed.Add(1)
					t.Error(err)
					return
				}
				if n != i {
					stale.Add(1)
				}
			}
		})
	}
	wg.Wait()
	st := f.store.ReadStats()
	t.Logf("%d pairs: %d stale, %d failed; reads by primary %d, by replica %d", sessions*pairs, stale.Load(), failed.Load(), st.Primary, replicaReads(f.store))
	if stale.Load() != 0 {
		t.Fatalf("%d stale reads", stale.Load())
	}
	if replicaReads(f.store) == 0 {
		t.Fatal("the replica served no read: routing never used it")
	}
}

// TestReadsMoveToReplica checks that a read right after a write goes to the
// primary and, once the replica has applied the write, to the replica.
func TestReadsMoveToReplica(t *testing.T) {
	f := newReplicaFixture(t)
	ctx := context.Background()
	token, err := f.put(ctx, "moves000000001", 1, true)
	if err != nil {
		t.Fatal(err)
	}
	before := replicaReads(f.store)
	if n, err := f.get(ctx, "moves000000001", token); err != nil || n != 1 {
		t.Fatalf("read right after write: %d, %v", n, err)
	}
	if got := replicaReads(f.store); got != before {
		t.Fatalf("a read right after the write went to a replica %v behind", applyDelay)
	}
	deadline := time.Now().Add(10 * time.Second)
	for replicaReads(f.store) == before {
		if time.Now().After(deadline) {
			t.Fatalf("reads never moved to the replica: %+v", f.store.ReadStats())
		}
		time.Sleep(20 * time.Millisecond)
		if n, err := f.get(ctx, "moves000000001", token); err != nil || n != 1 {
			t.Fatalf("read: %d, %v", n, err)
		}
	}
	// And reads without a token go to the (healthy, caught up) replica.
	before = replicaReads(f.store)
	for range 20 {
		if _, err := f.get(ctx, "moves000000001", 0); err != nil {
			t.Fatal(err)
		}
	}
	if got := replicaReads(f.store) - before; got != 20 {
		t.Fatalf("replica served %d of 20 reads without a token", got)
	}
	f.checkMetrics(t, 20)
}

// TestReplicaLoss stops the replica in the middle of a read/write mix: no
// request may fail, reads fall back to the primary, and the replica is
// used again once it is back.
func TestReplicaLoss(t *testing.T) {
	f := newReplicaFixture(t)
	ctx := context.Background()
	const workers = 32
	var failed, stale, ops atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			id := fmt.Sprintf("w%014d", w)
			var token uint64
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if i%10 == 0 {
					token, err = f.put(ctx, id, i, i == 0)
				} else if i%2 == 1 {
					// A read without a token: any healthy replica.
					_, err = f.get(ctx, id, 0)
				} else {
					var n int
					n, err = f.get(ctx, id, token)
					if err == nil && n != i-i%10 {
						stale.Add(1)
					}
				}
				time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond)
				ops.Add(1)
				if err != nil {
					failed.Add(1)
					t.Errorf("op %d of %s: %v", i, id, err)
				}
			}
		})
	}
	time.Sleep(time.Second)
	before := replicaReads(f.store)
	f.cluster.StopReplica()
	t.Logf("replica stopped after %d ops (%d served by it)", ops.Load(), before)
	time.Sleep(2 * time.Second)
	f.cluster.StartReplica()
	down := replicaReads(f.store)
	deadline := time.Now().Add(15 * time.Second)
	for replicaReads(f.store) == down && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	st := f.store.ReadStats()
	t.Logf("%d ops: %d failed, %d stale; %+v", ops.Load(), failed.Load(), stale.Load(), st)
	if failed.Load() != 0 || stale.Load() != 0 {
		t.Fatalf("%d failed, %d stale", failed.Load(), stale.Load())
	}
	if replicaReads(f.store) == down {
		t.Fatal("the replica was not used again after it came back")
	}
}
