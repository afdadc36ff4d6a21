package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/strata-run/strata"
)

// quote quotes an identifier. Names reaching here were validated by the
// service (^\w+$), quoting guards against reserved words.
func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// columnDef is the column declaration of a field; the layout is shared with
// the filter compiler (see package filter) and PocketBase's own tables.
func columnDef(f *strata.Field) string {
	if f.Name == "id" {
		return quote("id") + " TEXT PRIMARY KEY NOT NULL"
	}
	return quote(f.Name) + " " + columnType(f)
}

func columnType(f *strata.Field) string {
	switch {
	case f.Type == strata.FieldNumber:
		return "NUMERIC DEFAULT 0 NOT NULL"
	case f.Type == strata.FieldBool:
		return "BOOLEAN DEFAULT FALSE NOT NULL"
	case f.Type == strata.FieldJSON:
		return "JSON DEFAULT NULL"
	case f.Type == strata.FieldGeoPoint:
		return `JSON DEFAULT '{"lon":0,"lat":0}' NOT NULL`
	case f.IsMultiple():
		return "JSON DEFAULT '[]' NOT NULL"
	}
	return "TEXT DEFAULT '' NOT NULL"
}

func (t *tx) saveCollectionRow(ctx context.Context, c *strata.Collection, insert bool) error {
	data, err := c.StorageJSON()
	if err != nil {
		return fmt.Errorf("encode collection: %w", err)
	}
	if insert {
		_, err = t.ddl(ctx, `INSERT INTO _collections (id, name, type, data, created, updated) VALUES (?, ?, ?, ?, ?, ?)`,
			c.ID, c.Name, c.Type, string(data), c.Created, c.Updated)
	} else {
		_, err = t.ddl(ctx, `UPDATE _collections SET name = ?, type = ?, data = ?, updated = ? WHERE id = ?`,
			c.Name, c.Type, string(data), c.Updated, c.ID)
	}
	if err != nil {
		return translateCollection(err)
	}
	return nil
}

func translateCollection(err error) error {
	if strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return strata.ValidationError("Failed to save collection.", map[string]any{
			"name": strata.NewFieldError("validation_collection_name_exists", "Collection name must be unique (case insensitive).", nil),
		})
	}
	return fmt.Errorf("save collection: %w", err)
}

// CreateCollection implements strata.Tx.
func (t *tx) CreateCollection(ctx context.Context, c *strata.Collection) error {
	if err := t.saveCollectionRow(ctx, c, true); err != nil {
		return err
	}
	if c.Type == strata.CollectionView {
		return strata.Errorf(strata.EInvalid, "View collections are not supported yet.")
	}
	cols := make([]string, 0, len(c.Fields))
	for _, f := range c.Fields {
		cols = append(cols, columnDef(f))
	}
	if _, err := t.ddl(ctx, "CREATE TABLE "+quote(c.Name)+" ("+strings.Join(cols, ", ")+")"); err != nil {
		return fmt.Errorf("create table %q: %w", c.Name, err)
	}
	return t.createIndexes(ctx, c)
}

func (t *tx) createIndexes(ctx context.Context, c *strata.Collection) error {
	for _, s := range c.Indexes {
		idx, err := strata.ParseIndex(s)
		if err != nil {
			return strata.Errorf(strata.EInvalid, "Invalid index %q: %v.", s, err)
		}
		if _, err := t.ddl(ctx, idx.SQL(c.Name, quote)); err != nil {
			if strings.Contains(err.Error(), "UNIQUE constraint failed") {
				return strata.ValidationError("Failed to create index.", map[string]any{
					"indexes": strata.NewFieldError("validation_invalid_index", "Existing rows violate the unique index "+idx.Name+".", nil),
				})
			}
			return strata.Errorf(strata.EInvalid, "Failed to create index %s: %v.", idx.Name, err)
		}
	}
	return nil
}

func (t *tx) dropIndexes(ctx context.Context, c *strata.Collection) error {
	rows, err := t.s.wconn.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL`, c.Name)
	if err != nil {
		return fmt.Errorf("list indexes: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return fmt.Errorf("list indexes: %w", err)
		}
		names = append(names, n)
	}
	rows.Close()
	for _, n := range names {
		if _, err := t.ddl(ctx, "DROP INDEX "+quote(n)); err != nil {
			return fmt.Errorf("drop index %q: %w", n, err)
		}
	}
	return nil
}

// UpdateCollection implements strata.Tx. The table is altered in place
// (renames, dropped and added columns), so the data of untouched columns is
// never copied; fields switching between single and multiple values are
// converted with SQL.
func (t *tx) UpdateCollection(ctx context.Context, old, c *strata.Collection) error {
	if err := t.dropIndexes(ctx, old); err != nil {
		return err
	}
	table := old.Name
	if old.Name != c.Name {
		if _, err := t.ddl(ctx, "ALTER TABLE "+quote(old.Name)+" RENAME TO "+quote(c.Name)); err != nil {
			return fmt.Errorf("rename table: %w", err)
		}
		table = c.Name
	}
	// Drop fields that disappeared.
	for _, of := range old.Fields {
		if c.FieldByID(of.ID) == nil {
			if _, err := t.ddl(ctx, "ALTER TABLE "+quote(table)+" DROP COLUMN "+quote(of.Name)); err != nil {
				return fmt.Errorf("drop column %q: %w", of.Name, err)
			}
		}
	}
	// Renames go through temporary names so that swapping two names works.
	var renamed []*strata.Field
	for _, f := range c.Fields {
		if of := old.FieldByID(f.ID); of != nil && of.Name != f.Name {
			if _, err := t.ddl(ctx, "ALTER TABLE "+quote(table)+" RENAME COLUMN "+quote(of.Name)+" TO "+quote("_tmp_"+f.ID)); err != nil {
				return fmt.Errorf("rename column %q: %w", of.Name, err)
			}
			renamed = append(renamed, f)
		}
	}
	for _, f := range renamed {
		if _, err := t.ddl(ctx, "ALTER TABLE "+quote(table)+" RENAME COLUMN "+quote("_tmp_"+f.ID)+" TO "+quote(f.Name)); err != nil {
			return fmt.Errorf("rename column to %q: %w", f.Name, err)
		}
	}
	for _, f := range c.Fields {
		of := old.FieldByID(f.ID)
		if of == nil {
			if _, err := t.ddl(ctx, "ALTER TABLE "+quote(table)+" ADD COLUMN "+columnDef(f)); err != nil {
				return fmt.Errorf("add column %q: %w", f.Name, err)
			}
			continue
		}
		if err := t.convertColumn(ctx, table, of, f); err != nil {
			return err
		}
	}
	if err := t.saveCollectionRow(ctx, c, false); err != nil {
		return err
	}
	return t.createIndexes(ctx, c)
}

// convertColumn rewrites the values of a field that switched between single
// and multiple: a single value becomes a one-item array, an array keeps its
// last item (PocketBase's rule for single fields).
func (t *tx) convertColumn(ctx context.Context, table string, of, f *strata.Field) error {
	if of.IsMultiple() == f.IsMultiple() {
		return nil
	}
	col := quote(f.Name)
	var expr string
	if f.IsMultiple() {
		expr = "CASE WHEN " + col + " = '' OR " + col + " IS NULL THEN '[]' ELSE json_array(" + col + ") END"
	} else {
		expr = "CASE WHEN json_valid(" + col + ") AND json_array_length(" + col + ") > 0 THEN json_extract(" + col + ", '$[#-1]') ELSE '' END"
	}
	if _, err := t.ddl(ctx, "UPDATE "+quote(table)+" SET "+col+" = "+expr); err != nil {
		return fmt.Errorf("convert column %q: %w", f.Name, err)
	}
	return nil
}

// DeleteCollection implements strata.Tx.
func (t *tx) DeleteCollection(ctx context.Context, c *strata.Collection) error {
	if _, err := t.ddl(ctx, "DROP TABLE IF EXISTS "+quote(c.Name)); err != nil {
		return fmt.Errorf("drop table %q: %w", c.Name, err)
	}
	if _, err := t.ddl(ctx, `DELETE FROM _collections WHERE id = ?`, c.ID); err != nil {
		return fmt.Errorf("delete collection %q: %w", c.Name, err)
	}
	return nil
}

// TruncateCollection implements strata.Tx: each removed record gets a
// delete entry in the change log so that sync clients see tombstones.
func (t *tx) TruncateCollection(ctx context.Context, c *strata.Collection) error {
	now := strata.NowDate()
	obj := make([]string, 0, 2*len(c.Fields))
	for _, f := range c.Fields {
		obj = append(obj, "'"+strings.ReplaceAll(f.Name, "'", "''")+"'", jsonValueExpr(f))
	}
	res, err := t.ddl(ctx, `INSERT INTO _changes (collection_id, collection_name, record_id, action, time, record)
		SELECT ?, ?, id, 'delete', ?, json_object(`+strings.Join(obj, ", ")+`) FROM `+quote(c.Name)+` ORDER BY rowid`,
		c.ID, c.Name, now)
	if err != nil {
		return fmt.Errorf("truncate %q: log: %w", c.Name, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		// Report the tombstones to the caller like single deletes.
		last, _ := res.LastInsertId()
		chs, err := changes(ctx, t, last-n, int(n))
		if err != nil {
			return err
		}
		t.changes = append(t.changes, chs...)
	}
	if _, err := t.ddl(ctx, "DELETE FROM "+quote(c.Name)); err != nil {
		return translate(fmt.Errorf("truncate %q: %w", c.Name, err), c)
	}
	return nil
}

// jsonValueExpr renders a column as a JSON value for json_object().
func jsonValueExpr(f *strata.Field) string {
	col := quote(f.Name)
	switch {
	case f.Type == strata.FieldBool:
		return "json(CASE WHEN " + col + " THEN 'true' ELSE 'false' END)"
	case f.Type == strata.FieldJSON, f.Type == strata.FieldGeoPoint, f.IsMultiple():
		return "json(" + col + ")"
	}
	return col
}

// decodeJSONColumn decodes a JSON column value; invalid JSON is kept as a
// JSON string so nothing stored is ever lost on read.
func decodeJSONColumn(s string) any {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return s
	}
	return v
}
