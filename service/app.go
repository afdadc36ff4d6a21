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

	settings atomic.Pointer[Settings]
}

// Config configures an App.
type Config struct {
	Store  strata.Store
	Logger *slog.Logger
	// HashConcurrency bounds concurrent password hashes (0 = GOMAXPROCS).
	HashConcurrency int
}

// New opens the service layer on a store, creating the system collections
// a fresh data dir needs.
func New(ctx context.Context, cfg Config) (*App, error) {
	a := &App{store: cfg.Store, log: cfg.Logger, hasher: NewHasher(cfg.HashConcurrency)}
	if a.log == nil {
		a.log = slog.Default()
	}
	if err := a.reload(ctx); err != nil {
		return nil, err
	}
	if err := a.bootstrap(ctx); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if err := a.loadSettings(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// Store returns the underlying store.
func (a *App) Store() strata.Store { return a.store }

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
	return nil
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
