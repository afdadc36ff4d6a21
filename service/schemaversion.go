package service

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/strata-run/strata"
)

// schemaVersionKey names a settings row that every write changing a
// collection or the settings rewrites, in the same transaction, with a fresh
// random value. Each node keeps collections and settings in memory; it polls
// this row (FollowChanges) and reloads both when the row differs from what it
// last loaded, so that a rule tightened through one node is enforced by every
// node within one poll. The value is random rather than a counter: two nodes
// changing the schema at once could both write the same next number, and a
// third node that saw one of them would miss the other.
const schemaVersionKey = "schemaVersion"

func newSchemaVersion() json.RawMessage {
	return json.RawMessage(`"` + randomSecret(24) + `"`)
}

// schemaTx records whether a write changed collections or settings, so that
// App.write bumps the schema version in the same transaction.
type schemaTx struct {
	strata.Tx
	changed bool
}

func (t *schemaTx) CreateCollection(ctx context.Context, c *strata.Collection) error {
	t.changed = true
	return t.Tx.CreateCollection(ctx, c)
}

func (t *schemaTx) UpdateCollection(ctx context.Context, old, c *strata.Collection) error {
	t.changed = true
	return t.Tx.UpdateCollection(ctx, old, c)
}

func (t *schemaTx) DeleteCollection(ctx context.Context, c *strata.Collection) error {
	t.changed = true
	return t.Tx.DeleteCollection(ctx, c)
}

func (t *schemaTx) PutSetting(ctx context.Context, key string, value json.RawMessage) error {
	t.changed = true
	return t.Tx.PutSetting(ctx, key, value)
}

// schemaVersion reads the stored schema version ("" before the first
// change that wrote one).
func (a *App) schemaVersion(ctx context.Context) (string, error) {
	raw, ok, err := a.store.Setting(ctx, schemaVersionKey)
	if err != nil {
		return "", fmt.Errorf("read schema version: %w", err)
	}
	if !ok {
		return "", nil
	}
	return string(raw), nil
}

// followSchema reloads collections and settings if another writer changed
// them since this node last loaded them.
func (a *App) followSchema(ctx context.Context) {
	a.schemaMu.Lock()
	defer a.schemaMu.Unlock()
	if err := a.syncSchemaLocked(ctx); err != nil && ctx.Err() == nil {
		a.log.Warn("follow schema changes", "err", err)
	}
}

// syncSchemaLocked (schemaMu held) reloads collections and settings when
// the stored schema version differs from the one they were loaded at.
// Schema changes call it first, so that a change made through this node is
// computed from the current definitions, not from a copy another node has
// since changed. The version is read before the reload, so what is loaded
// is at least as new as the version recorded: a change committed in
// between moves the version again and is reloaded next time.
func (a *App) syncSchemaLocked(ctx context.Context) error {
	v, err := a.schemaVersion(ctx)
	if err != nil {
		return err
	}
	if v == a.schemaSeen {
		return nil
	}
	if err := a.reload(ctx); err != nil {
		return err
	}
	if err := a.loadSettings(ctx); err != nil {
		return err
	}
	a.schemaSeen = v
	return nil
}
