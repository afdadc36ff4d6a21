package cache_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/cache"
	"github.com/strata-run/strata/service"
	"github.com/strata-run/strata/store/sqlite"
)

func rec(id string) *strata.Record {
	return &strata.Record{Data: map[string]any{"id": id, "title": "x"}}
}

func TestFillAfterInvalidationIsDropped(t *testing.T) {
	c := cache.New(cache.Options{})
	gen := c.Generation()
	c.Invalidate([]strata.Change{{CollectionID: "c", RecordID: "a"}})
	c.Fill("c", "a", rec("a"), gen) // loaded before the write: stale
	if _, ok := c.Get("c", "a"); ok {
		t.Fatal("a fill that raced with an invalidation was kept")
	}
	c.Fill("c", "a", rec("a"), c.Generation())
	if _, ok := c.Get("c", "a"); !ok {
		t.Fatal("fresh fill was dropped")
	}
	c.Invalidate([]strata.Change{{CollectionID: "c", RecordID: "a"}})
	if _, ok := c.Get("c", "a"); ok {
		t.Fatal("invalidated record still cached")
	}
	c.Fill("c", "b", rec("b"), c.Generation())
	c.Purge()
	if _, ok := c.Get("c", "b"); ok {
		t.Fatal("purge kept a record")
	}
}

func TestTTL(t *testing.T) {
	c := cache.New(cache.Options{TTL: 50 * time.Millisecond})
	c.Fill("c", "a", rec("a"), c.Generation())
	time.Sleep(150 * time.Millisecond)
	if _, ok := c.Get("c", "a"); ok {
		t.Fatal("entry outlived its TTL")
	}
}

func TestBoundedMemory(t *testing.T) {
	c := cache.New(cache.Options{MaxBytes: 64 << 10})
	for i := range 5000 {
		c.Fill("c", string(rune('a'+i%26))+time.Duration(i).String(), rec("x"), c.Generation())
	}
	// Eviction is asynchronous in part; give it a moment.
	time.Sleep(50 * time.Millisecond)
	if n := c.Len(); n > 1000 {
		t.Fatalf("%d records cached in a 64 KiB budget", n)
	}
}

func TestConcurrentFillAndInvalidate(t *testing.T) {
	c := cache.New(cache.Options{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				if w%2 == 0 {
					c.Fill("c", "k", rec("k"), c.Generation())
					c.Get("c", "k")
				} else {
					c.Invalidate([]strata.Change{{CollectionID: "c", RecordID: "k"}})
				}
				_ = i
			}
		}()
	}
	wg.Wait()
}

// TestOtherWritersInvalidate: a write by another process on the same SQLite
// file (the superuser command does this) reaches the cache through the
// change log.
func TestOtherWritersInvalidate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data.db")
	open := func() *service.App {
		st, err := sqlite.Open(ctx, path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		app, err := service.New(ctx, service.Config{Store: st, Cache: cache.New(cache.Options{})})
		if err != nil {
			t.Fatal(err)
		}
		return app
	}
	server, cli := open(), open()
	if _, err := cli.UpsertSuperuser(ctx, "a@b.co", "first-pass-1"); err != nil {
		t.Fatal(err)
	}
	res, err := server.AuthWithPassword(ctx, nil, server.Collection(strata.SuperusersID), "a@b.co", "first-pass-1", "")
	if err != nil {
		t.Fatal(err)
	}
	if server.Authenticate(ctx, res.Token) == nil { // now cached on the server
		t.Fatal("fresh token rejected")
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go server.FollowChanges(fctx, 20*time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	// The other process changes the password: the token key rotates.
	if _, err := cli.UpsertSuperuser(ctx, "a@b.co", "second-pass-2"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for server.Authenticate(ctx, res.Token) != nil {
		if time.Now().After(deadline) {
			t.Fatal("token still accepted after another process changed the password")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
