// Package service holds Strata's use cases: collections, records, auth and
// settings. It checks rules, validates input and talks to the Store through
// its interface; it knows nothing of HTTP or SQL text.
package service

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/strata-run/strata"
)

// App is the service layer of one node.
type App struct {
	store  strata.Store
	log    *slog.Logger
	hasher *Hasher

	// registry is an immutable snapshot of the collections, swapped whole
	// after every schema change so readers never lock.
	registry atomic.Pointer[registry]
	// schemaMu serialises schema changes (and registry reloads).
	schemaMu sync.Mutex
	// schemaSeen is the schema version the registry and settings were
	// last loaded at (guarded by schemaMu; see schemaVersionKey).
	schemaSeen string

	settings atomic.Pointer[Settings]

	// cache holds records for reads by id (nil: every read goes to the
	// store); flights coalesces concurrent misses on one record.
	cache   strata.RecordCache
	flights singleflight.Group

	// bus, if set, receives every committed change (realtime, other nodes).
	bus strata.Bus

	// flows holds the mailer, mail queue and attempt limiters (authflows).
	flows *flowState
}

// Config configures an App.
type Config struct {
	Store  strata.Store
	Logger *slog.Logger
	// HashConcurrency bounds concurrent password hashes (0 = half of GOMAXPROCS, at least one).
	HashConcurrency int
	// Cache, if set, serves reads of records by id (views, auth records).
	Cache strata.RecordCache
	// Bus, if set, receives every committed change after commit.
	Bus strata.Bus
}

// New opens the service layer on a store, creating the system collections
// a fresh data dir needs.
func New(ctx context.Context, cfg Config) (*App, error) {
	a := &App{store: cfg.Store, log: cfg.Logger, hasher: NewHasher(cfg.HashConcurrency), cache: cfg.Cache, bus: cfg.Bus,
		flows: newFlowState()}
	if a.log == nil {
		a.log = slog.Default()
	}
	// Read before loading, so that a change made meanwhile is reloaded.
	seen, err := a.schemaVersion(ctx)
	if err != nil {
		return nil, err
	}
	a.schemaSeen = seen
	if err := a.reload(ctx); err != nil {
		return nil, err
	}
	if err := a.bootstrap(ctx); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if err := a.ensureAuthSystemCollections(ctx); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if err := a.ensureExternalAuths(ctx); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if err := a.ensureAuthOrigins(ctx); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if err := a.loadSettings(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// Store returns the underlying store.
func (a *App) Store() strata.Store { return a.store }

// Bus returns the bus committed changes are published on (nil if none).
func (a *App) Bus() strata.Bus { return a.bus }

// Hasher returns the password hasher.
func (a *App) Hasher() *Hasher { return a.hasher }

// registry indexes collections by id and by lower-case name.
type registry struct {
	list   []*strata.Collection
	byID   map[string]*strata.Collection
	byName map[string]*strata.Collection
}

func newRegistry(list []*strata.Collection) *registry {
	r := &registry{list: list, byID: map[string]*strata.Collection{}, byName: map[string]*strata.Collection{}}
	for _, c := range list {
		r.byID[c.ID] = c
		r.byName[strings.ToLower(c.Name)] = c
	}
	return r
}

func (r *registry) Collection(idOrName string) *strata.Collection {
	if c, ok := r.byID[idOrName]; ok {
		return c
	}
	return r.byName[strings.ToLower(idOrName)]
}

func (a *App) reload(ctx context.Context) error {
	list, err := a.store.Collections(ctx)
	if err != nil {
		return fmt.Errorf("load collections: %w", err)
	}
	a.registry.Store(newRegistry(list))
	if a.cache != nil {
		// Cached records point at the old definitions.
		a.cache.Purge()
	}
	return nil
}

// write runs fn in a store transaction and, once it committed, drops the
// records it changed from the cache before the caller answers its client
// (so a client always reads its own writes on this node), then publishes
// them on the bus. Publishing never blocks: a subscriber that cannot keep
// up loses batches and catches up from the change log.
func (a *App) write(ctx context.Context, fn func(strata.Tx) error) ([]strata.Change, error) {
	changes, err := a.store.Write(ctx, func(tx strata.Tx) error {
		stx := &schemaTx{Tx: tx}
		if err := fn(stx); err != nil {
			return err
		}
		if !stx.changed {
			return nil
		}
		return tx.PutSetting(ctx, schemaVersionKey, newSchemaVersion())
	})
	if err == nil && a.cache != nil {
		a.cache.Invalidate(changes)
	}
	if err == nil && a.bus != nil && len(changes) > 0 {
		span := tracePublish(ctx, changes)
		a.bus.Publish(changes)
		span.End()
	}
	return changes, err
}

// FollowChanges polls the store every interval until ctx ends, for what
// other writers changed (other nodes on the same database, or another
// process on the same SQLite file such as the superuser command): it
// reloads collections and settings when the schema version moved (see
// schemaVersionKey), and tails the change log to drop the cached records
// they changed.
func (a *App) FollowChanges(ctx context.Context, every time.Duration) {
	var last int64
	if a.cache != nil {
		// Start from the end of the log: everything before is already stored.
		var err error
		if last, err = a.store.LastChangeSeq(ctx); err != nil {
			a.log.Warn("follow change log: find its end", "err", err)
		}
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.followSchema(ctx)
		if a.cache != nil {
			last = a.followRecords(ctx, last)
		}
	}
}

// followRecords invalidates the cached records named by change-log entries
// after last, and returns the last entry it read.
func (a *App) followRecords(ctx context.Context, last int64) int64 {
	for {
		chs, err := a.store.Changes(ctx, last, 1000)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("follow change log", "err", err)
				a.cache.Purge()
			}
			return last
		}
		if len(chs) == 0 {
			return last
		}
		a.cache.Invalidate(chs)
		last = chs[len(chs)-1].Seq
	}
}

// pruneBatch bounds one delete of the change log, so that the writer (the
// only one on SQLite) is never held for long.
const pruneBatch = 5000

// PruneChanges deletes change-log entries written before before, in
// batches, and returns how many it deleted.
func (a *App) PruneChanges(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		n, err := a.store.PruneChanges(ctx, before, pruneBatch)
		total += n
		if err != nil || n < pruneBatch {
			return total, err
		}
	}
}

// Collection returns a collection by id or name (nil if none). The result
// is shared: callers must not modify it (Clone first).
func (a *App) Collection(idOrName string) *strata.Collection {
	return a.registry.Load().Collection(idOrName)
}

// Schema returns the current collections as a strata.Schema snapshot.
func (a *App) Schema() strata.Schema { return a.registry.Load() }

// Collections returns every collection, oldest first.
func (a *App) Collections() []*strata.Collection { return a.registry.Load().list }

// IsSuperuser reports whether the request is authenticated as a superuser.
func IsSuperuser(req *strata.RequestInfo) bool { return req.IsSuperuser() }
