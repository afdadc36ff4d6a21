package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/strata-run/strata"
)

// quote quotes an identifier. Names reaching here were validated by the
// service (^\w+$); quoting guards against reserved words.
func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

func columnDef(f *strata.Field) string {
	if f.Name == "id" {
		return quote("id") + " TEXT PRIMARY KEY NOT NULL"
	}
	return quote(f.Name) + " " + columnType(f)
}

// columnType is the PostgreSQL twin of store/sqlite's layout (see the
// package doc and filter.Postgres).
func columnType(f *strata.Field) string {
	switch {
	case f.Type == strata.FieldNumber:
		return "DOUBLE PRECISION DEFAULT 0 NOT NULL"
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

func (t *tx) ddl(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return t.Exec(ctx, sql, args...)
}

func (t *tx) saveCollectionRow(ctx context.Context, c *strata.Collection, insert bool) error {
	data, err := c.StorageJSON()
	if err != nil {
		return fmt.Errorf("encode collection: %w", err)
	}
	// A savepoint keeps the transaction usable after a duplicate name.
	if _, err := t.ddl(ctx, "SAVEPOINT coll"); err != nil {
		return fmt.Errorf("save collection: %w", err)
	}
	if insert {
		_, err = t.ddl(ctx, `INSERT INTO _collections (id, name, type, data, created, updated) VALUES ($1, $2, $3, $4::text::json, $5, $6)`,
			c.ID, c.Name, c.Type, string(data), c.Created, c.Updated)
	} else {
		_, err = t.ddl(ctx, `UPDATE _collections SET name = $1, type = $2, data = $3::text::json, updated = $4 WHERE id = $5`,
			c.Name, c.Type, string(data), c.Updated, c.ID)
	}
	if err != nil {
		t.ddl(ctx, "ROLLBACK TO SAVEPOINT coll")
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return strata.ValidationError("Failed to save collection.", map[string]any{
				"name": strata.NewFieldError("validation_collection_name_exists", "Collection name must be unique (case insensitive).", nil),
			})
		}
		return translate(fmt.Errorf("save collection: %w", err), nil)
	}
	return nil
}

// CreateCollection implements strata.Tx.
func (t *tx) CreateCollection(ctx context.Context, c *strata.Collection) error {
	if err := t.saveCollectionRow(ctx, c, true); err != nil {
		return err
	}
	if c.Type == strata.CollectionView {
		return strata.Errorf(strata.EInvalid, "View collections are not supported yet.")
	}
	cols := make([]string, 0, len(c.Fields)+1)
	for _, f := range c.Fields {
		cols = append(cols, columnDef(f))
	}
	cols = append(cols, quote("_rowid")+" BIGSERIAL")
	if _, err := t.ddl(ctx, "CREATE TABLE "+quote(c.Name)+" ("+strings.Join(cols, ", ")+")"); err != nil {
		return translate(fmt.Errorf("create table %q: %w", c.Name, err), nil)
	}
	return t.createIndexes(ctx, c)
}

// indexSQL renders a collection index for PostgreSQL: COLLATE NOCASE (a
// SQLite collation) becomes LOWER(column).
func indexSQL(idx *strata.Index, table string) string {
	var b strings.Builder
	b.WriteString("CREATE ")
	if idx.Unique {
		b.WriteString("UNIQUE ")
	}
	b.WriteString("INDEX " + quote(idx.Name) + " ON " + quote(table) + " (")
	for i, c := range idx.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		col := c.Name
		if strings.Trim(col, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == "" {
			col = quote(col)
		}
		if strings.EqualFold(c.Collate, "NOCASE") {
			col = "LOWER(" + col + ")"
		}
		b.WriteString(col)
		if c.Desc {
			b.WriteString(" DESC")
		}
	}
	b.WriteString(")")
	if idx.Where != "" {
		b.WriteString(" WHERE " + pgQuotes(idx.Where))
	}
	return b.String()
}

// pgQuotes turns SQLite's `quoted` identifiers into "quoted" ones, leaving
// string literals alone.
func pgQuotes(sql string) string {
	out := []byte(sql)
	inString := false
	for i, ch := range out {
		switch {
		case ch == '\'':
			inString = !inString
		case ch == '`' && !inString:
			out[i] = '"'
		}
	}
	return string(out)
}

func (t *tx) createIndexes(ctx context.Context, c *strata.Collection) error {
	for _, s := range c.Indexes {
		idx, err := strata.ParseIndex(s)
		if err != nil {
			return strata.Errorf(strata.EInvalid, "Invalid index %q: %v.", s, err)
		}
		if _, err := t.ddl(ctx, indexSQL(idx, c.Name)); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "23505" {
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
	rows, err := t.Query(ctx, `SELECT i.relname FROM pg_index x
		JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class r ON r.oid = x.indrelid
		WHERE r.relname = $1 AND r.relnamespace = current_schema()::regnamespace AND NOT x.indisprimary`, c.Name)
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
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list indexes: %w", err)
	}
	for _, n := range names {
		if _, err := t.ddl(ctx, "DROP INDEX "+quote(n)); err != nil {
			return fmt.Errorf("drop index %q: %w", n, err)
		}
	}
	return nil
}

// UpdateCollection implements strata.Tx: the table is altered in place
// inside the transaction (PostgreSQL DDL is transactional).
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
	for _, of := range old.Fields {
		if c.FieldByID(of.ID) == nil {
			if _, err := t.ddl(ctx, "ALTER TABLE "+quote(table)+" DROP COLUMN "+quote(of.Name)); err != nil {
				return fmt.Errorf("drop column %q: %w", of.Name, err)
			}
		}
	}
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

// convertColumn changes the type of a field that switched between single
// (TEXT) and multiple (JSON array): a single value becomes a one-item
// array, an array keeps its last item (PocketBase's rule).
func (t *tx) convertColumn(ctx context.Context, table string, of, f *strata.Field) error {
	if of.IsMultiple() == f.IsMultiple() {
		return nil
	}
	col := quote(f.Name)
	var typ, using, def string
	if f.IsMultiple() {
		typ, def = "JSON", "'[]'"
		using = "CASE WHEN " + col + " = '' OR " + col + " IS NULL THEN '[]'::json ELSE json_build_array(" + col + ") END"
	} else {
		typ, def = "TEXT", "''"
		using = "CASE WHEN json_typeof(" + col + ") = 'array' AND json_array_length(" + col + ") > 0 THEN " +
			col + " ->> (json_array_length(" + col + ") - 1) ELSE '' END"
	}
	q := "ALTER TABLE " + quote(table) + " ALTER COLUMN " + col + " DROP DEFAULT, ALTER COLUMN " + col +
		" TYPE " + typ + " USING (" + using + "), ALTER COLUMN " + col + " SET DEFAULT " + def
	if _, err := t.ddl(ctx, q); err != nil {
		return fmt.Errorf("convert column %q: %w", f.Name, err)
	}
	return nil
}

// DeleteCollection implements strata.Tx.
func (t *tx) DeleteCollection(ctx context.Context, c *strata.Collection) error {
	if _, err := t.ddl(ctx, "DROP TABLE IF EXISTS "+quote(c.Name)); err != nil {
		return fmt.Errorf("drop table %q: %w", c.Name, err)
	}
	if _, err := t.ddl(ctx, `DELETE FROM _collections WHERE id = $1`, c.ID); err != nil {
		return fmt.Errorf("delete collection %q: %w", c.Name, err)
	}
	return nil
}

// TruncateCollection implements strata.Tx: each removed record gets a
// delete entry in the change log so that sync clients see tombstones.
func (t *tx) TruncateCollection(ctx context.Context, c *strata.Collection) error {
	recs, err := findRecords(ctx, t, &strata.RecordQuery{Collection: c})
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := t.logChange(r, strata.ActionDelete); err != nil {
			return err
		}
	}
	if _, err := t.ddl(ctx, "DELETE FROM "+quote(c.Name)); err != nil {
		return translate(fmt.Errorf("truncate %q: %w", c.Name, err), c)
	}
	return nil
}
