package migrate

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/store/sqlite"

	// The pure-Go driver, already used by store/sqlite.
	_ "modernc.org/sqlite"
)

// Source kinds, as Open detects them.
const (
	KindStrata     = "strata"
	KindPocketBase = "pocketbase"
)

// Source is a database to copy from: a Strata strata_data or a PocketBase
// pb_data. Both keep one SQLite table per collection with one column per
// field, so records are read the same way; they differ in how collections
// and settings are stored.
type Source interface {
	// Kind is KindStrata or KindPocketBase.
	Kind() string
	// Collections lists the collection definitions, oldest first.
	Collections(ctx context.Context) ([]*strata.Collection, error)
	// Setting reads one settings document (see strata.Reader.Setting).
	Setting(ctx context.Context, key string) (json.RawMessage, bool, error)
	// Scan calls fn with the records of c in insertion order, at most
	// batch at a time. Records handed to fn are not reused.
	Scan(ctx context.Context, c *strata.Collection, batch int, fn func([]*strata.Record) error) error
	// Close releases the database.
	Close() error
}

// verifier is implemented by sources that can read their records back
// through a strata.Store, so the source side of the verification goes
// through the same code as the destination side.
type verifier interface {
	Store() strata.Store
}

// Open detects what the directory dir holds (or the database file, if dir
// is a file) and opens it for reading: a `_collections` table with a data
// column is Strata's layout, one with a fields column is PocketBase's
// (v0.23 and later).
func Open(ctx context.Context, dir string) (Source, error) {
	path := dir
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("source %s does not exist", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if st.IsDir() {
		path = filepath.Join(dir, "data.db")
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("source %s: no data.db in it (want a strata_data or pb_data directory)", dir)
		}
	}
	db, err := openReadOnly(path)
	if err != nil {
		return nil, err
	}
	cols, err := tableColumns(ctx, db, "_collections")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("source %s: %w", path, err)
	}
	switch {
	case cols["data"]:
		// Open through the store as well: collections, settings and the
		// verification read use Strata's own decoding.
		s, err := sqlite.Open(ctx, path, sqlite.Options{Readers: 2})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("source %s: %w", path, err)
		}
		return &strataSource{file: file{db: db}, store: s}, nil
	case cols["fields"]:
		return &pbSource{file: file{db: db}}, nil
	}
	db.Close()
	return nil, fmt.Errorf("source %s is neither a Strata nor a PocketBase (v0.23+) database: no _collections table with a data or fields column", path)
}

// openReadOnly opens a SQLite file so that nothing can be written to it.
func openReadOnly(path string) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("source path: %w", err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "query_only(1)")
	db, err := sql.Open("sqlite", "file:"+abs+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(2)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// tableColumns returns the column names of table (empty if it is missing).
func tableColumns(ctx context.Context, db *sql.DB, table string) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", table, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", table, err)
		}
		out[n] = true
	}
	return out, rows.Err()
}

// file reads record tables, which have the same layout in both sources.
type file struct{ db *sql.DB }

func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// Scan pages through the table by rowid: each page is one indexed range
// read, so a large table costs the same per record as a small one, and the
// destination receives the records in their original insertion order.
func (f file) Scan(ctx context.Context, c *strata.Collection, batch int, fn func([]*strata.Record) error) error {
	have, err := tableColumns(ctx, f.db, c.Name)
	if err != nil {
		return err
	}
	if len(have) == 0 {
		return fmt.Errorf("collection %q has no table", c.Name)
	}
	cols := make([]string, 0, len(c.Fields)+1)
	cols = append(cols, "_rowid_")
	for _, fl := range c.Fields {
		if !have[fl.Name] {
			return fmt.Errorf("collection %q: field %q has no column in its table", c.Name, fl.Name)
		}
		cols = append(cols, quote(fl.Name))
	}
	query := "SELECT " + strings.Join(cols, ", ") + " FROM " + quote(c.Name) + " WHERE _rowid_ > ? ORDER BY _rowid_ LIMIT ?"
	var after int64
	dest := make([]any, len(cols))
	dest[0] = &after
	vals := make([]any, len(c.Fields))
	for i := range vals {
		dest[i+1] = &vals[i]
	}
	for {
		rows, err := f.db.QueryContext(ctx, query, after, batch)
		if err != nil {
			return fmt.Errorf("read %q: %w", c.Name, err)
		}
		var page []*strata.Record
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return fmt.Errorf("read %q: %w", c.Name, err)
			}
			r := &strata.Record{Collection: c, Data: make(map[string]any, len(c.Fields))}
			for i, fl := range c.Fields {
				r.Data[fl.Name] = decodeColumn(fl, vals[i])
			}
			page = append(page, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("read %q: %w", c.Name, err)
		}
		if len(page) == 0 {
			return nil
		}
		if err := fn(page); err != nil {
			return err
		}
		if len(page) < batch {
			return nil
		}
	}
}

// decodeColumn turns a SQLite value into the Go type strata.Record uses
// for the field. It accepts what Strata writes and what PocketBase writes
// (bools as 0/1 or 'true'/'false', numbers stored as text), since SQLite
// columns are loosely typed. JSON values stay raw JSON text when valid, so
// the destination stores exactly the bytes the source held.
func decodeColumn(f *strata.Field, v any) any {
	if b, ok := v.([]byte); ok {
		v = string(b)
	}
	switch f.Type {
	case strata.FieldNumber:
		switch n := v.(type) {
		case int64:
			return float64(n)
		case float64:
			return n
		case string:
			x, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
			if err != nil || math.IsNaN(x) {
				return float64(0)
			}
			return x
		}
		return float64(0)
	case strata.FieldBool:
		switch b := v.(type) {
		case int64:
			return b != 0
		case float64:
			return b != 0
		case bool:
			return b
		case string:
			return b == "1" || strings.EqualFold(b, "true")
		}
		return false
	case strata.FieldJSON, strata.FieldGeoPoint:
		s, ok := text(v)
		if !ok {
			return f.ZeroValue()
		}
		if json.Valid([]byte(s)) {
			return json.RawMessage(s)
		}
		// Keep invalid JSON as a JSON string, as the SQLite store reads it.
		return s
	}
	if f.IsMultiple() {
		s, _ := text(v)
		var list []string
		if err := json.Unmarshal([]byte(s), &list); err == nil && list != nil {
			return list
		}
		if s = strings.TrimSpace(s); s != "" && !strings.HasPrefix(s, "[") {
			// A single value left over from before the field allowed several.
			return []string{s}
		}
		return []string{}
	}
	s, _ := text(v)
	return s
}

// text renders a scanned value as a string; NULL is not text.
func text(v any) (string, bool) {
	switch s := v.(type) {
	case string:
		return s, true
	case int64:
		return strconv.FormatInt(s, 10), true
	case float64:
		return strconv.FormatFloat(s, 'g', -1, 64), true
	case bool:
		return strconv.FormatBool(s), true
	}
	return "", false
}

// strataSource is a strata_data directory.
type strataSource struct {
	file
	store *sqlite.Store
}

func (s *strataSource) Kind() string { return KindStrata }

func (s *strataSource) Collections(ctx context.Context) ([]*strata.Collection, error) {
	return s.store.Collections(ctx)
}

func (s *strataSource) Setting(ctx context.Context, key string) (json.RawMessage, bool, error) {
	return s.store.Setting(ctx, key)
}

// Store is the source opened as a Strata store, for verification.
func (s *strataSource) Store() strata.Store { return s.store }

func (s *strataSource) Close() error { return errors.Join(s.store.Close(), s.db.Close()) }

// pbSource is a PocketBase pb_data directory (v0.23+ layout).
type pbSource struct{ file }

func (s *pbSource) Kind() string { return KindPocketBase }

func (s *pbSource) Close() error { return s.db.Close() }

// Setting reads _params, where PocketBase keeps its settings as JSON.
func (s *pbSource) Setting(ctx context.Context, key string) (json.RawMessage, bool, error) {
	var v sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT value FROM _params WHERE id = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) || (err != nil && strings.Contains(err.Error(), "no such table")) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read setting %q: %w", key, err)
	}
	if !v.Valid {
		return nil, false, nil
	}
	return json.RawMessage(v.String), true, nil
}

// Collections rebuilds each collection's API shape from PocketBase's
// columns (options holds the auth or view options, spliced in beside the
// common keys, which is also how the API serializes them) and decodes it
// as Strata does.
func (s *pbSource) Collections(ctx context.Context) ([]*strata.Collection, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, system, type, name, fields, indexes,
		listRule, viewRule, createRule, updateRule, deleteRule, options, created, updated
		FROM _collections ORDER BY _rowid_`)
	if err != nil {
		return nil, fmt.Errorf("read collections: %w", err)
	}
	defer rows.Close()
	var out []*strata.Collection
	for rows.Next() {
		var (
			id, typ, name, created, updated string
			system                          any
			fields, indexes, options        sql.NullString
			rules                           [5]sql.NullString
		)
		if err := rows.Scan(&id, &system, &typ, &name, &fields, &indexes,
			&rules[0], &rules[1], &rules[2], &rules[3], &rules[4], &options, &created, &updated); err != nil {
			return nil, fmt.Errorf("read collections: %w", err)
		}
		m := map[string]any{}
		if options.Valid && strings.TrimSpace(options.String) != "" {
			if err := json.Unmarshal([]byte(options.String), &m); err != nil {
				return nil, fmt.Errorf("collection %q: options: %w", name, err)
			}
		}
		raw := func(col sql.NullString, def string) json.RawMessage {
			if !col.Valid || strings.TrimSpace(col.String) == "" {
				return json.RawMessage(def)
			}
			return json.RawMessage(col.String)
		}
		m["id"], m["name"], m["type"] = id, name, typ
		m["system"] = decodeColumn(&strata.Field{Type: strata.FieldBool}, system)
		m["fields"], m["indexes"] = raw(fields, "[]"), raw(indexes, "[]")
		for i, key := range []string{"listRule", "viewRule", "createRule", "updateRule", "deleteRule"} {
			if rules[i].Valid {
				m[key] = rules[i].String
			} else {
				m[key] = nil
			}
		}
		m["created"], m["updated"] = created, updated
		b, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("collection %q: %w", name, err)
		}
		c := new(strata.Collection)
		if err := json.Unmarshal(b, c); err != nil {
			return nil, fmt.Errorf("collection %q: %w", name, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
