package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/filter"
)

const alias = "r"

// selectSQL builds "SELECT <cols> FROM t r WHERE …" plus its args. count
// selects COUNT(*) and ignores sort and paging.
func selectSQL(q *strata.RecordQuery, count bool) (string, []any, error) {
	c := q.Collection
	args := &filter.Args{Dialect: filter.Postgres}
	var b strings.Builder
	b.WriteString("SELECT ")
	if count {
		b.WriteString("COUNT(*)")
	} else {
		for i, f := range c.Fields {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(alias + "." + quote(f.Name))
			if isJSONColumn(f) {
				// Read JSON as written, as SQLite does.
				b.WriteString("::text")
			}
		}
	}
	b.WriteString(" FROM " + source(q, args) + " " + alias)

	var conds []string
	for _, f := range q.Filters {
		if strings.TrimSpace(f.Expr) == "" {
			continue
		}
		expr, err := filter.ParseCached(f.Expr)
		if err != nil {
			return "", nil, err
		}
		env := filterEnv(q)
		env.Restricted = f.Restricted
		cond, err := filter.Compile(expr, env, args)
		if err != nil {
			return "", nil, err
		}
		conds = append(conds, "("+cond+")")
	}
	if q.IDs != nil {
		ids, _ := json.Marshal(q.IDs)
		conds = append(conds, alias+".id IN (SELECT value FROM "+filter.Postgres.JSONEach(args.Add(string(ids)), "__ids")+")")
	}
	if q.RelationField != "" {
		f := c.Field(q.RelationField)
		if f == nil {
			return "", nil, fmt.Errorf("relation field %q not in %q", q.RelationField, c.Name)
		}
		ids, _ := json.Marshal(q.RelationIDs)
		col := alias + "." + quote(f.Name)
		list := "SELECT value FROM " + filter.Postgres.JSONEach(args.Add(string(ids)), "__ids")
		if f.IsMultiple() {
			conds = append(conds, "EXISTS (SELECT 1 FROM "+filter.Postgres.JSONEach(col, "je")+" WHERE je.value IN ("+list+"))")
		} else {
			conds = append(conds, col+" IN ("+list+")")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(q.Equal)) {
		f := c.Field(name)
		if f == nil {
			return "", nil, fmt.Errorf("field %q not in %q", name, c.Name)
		}
		col := alias + "." + quote(name)
		if isJSONColumn(f) {
			col += "::text"
		}
		conds = append(conds, col+" = "+args.Add(toColumn(f, q.Equal[name])))
	}
	for _, name := range slices.Sorted(maps.Keys(q.EqualFold)) {
		if c.Field(name) == nil {
			return "", nil, fmt.Errorf("field %q not in %q", name, c.Name)
		}
		// ASCII-only folding as SQLite's NOCASE; the LOWER() equality is
		// there for the LOWER(column) index of NOCASE indexes.
		col, v := alias+"."+quote(name), args.Add(q.EqualFold[name])
		conds = append(conds, "(LOWER("+col+") = LOWER("+v+") AND "+filter.Postgres.Lower(col)+" = "+filter.Postgres.Lower(v)+")")
	}
	if len(conds) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(conds, " AND "))
	}
	if !count {
		order := ""
		if q.Sort != "" {
			env := filterEnv(q)
			env.Restricted = q.SortRestricted
			var err error
			if order, err = filter.CompileSort(q.Sort, env, args); err != nil {
				return "", nil, err
			}
		}
		// Insertion order breaks ties, as SQLite's rowid scan does.
		if order != "" {
			order += ", "
		}
		b.WriteString(" ORDER BY " + order + filter.Postgres.RowID(alias))
		if q.Limit > 0 {
			b.WriteString(" LIMIT " + args.Add(q.Limit))
		}
		if q.Offset > 0 {
			b.WriteString(" OFFSET " + args.Add(q.Offset))
		}
	}
	query, vals := args.Bind(b.String())
	return query, vals, nil
}

func isJSONColumn(f *strata.Field) bool {
	return f.Type == strata.FieldJSON || f.Type == strata.FieldGeoPoint || f.IsMultiple()
}

func filterEnv(q *strata.RecordQuery) *filter.Env {
	return &filter.Env{Dialect: filter.Postgres, Collection: q.Collection, Alias: alias, Schema: q.Schema, Request: q.Request}
}

func findRecords(ctx context.Context, q db, rq *strata.RecordQuery) ([]*strata.Record, error) {
	query, args, err := selectSQL(rq, false)
	if err != nil {
		return nil, err
	}
	c := rq.Collection
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, translate(fmt.Errorf("find %q: %w", c.Name, err), c)
	}
	defer rows.Close()
	var out []*strata.Record
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, fmt.Errorf("scan %q: %w", c.Name, err)
		}
		r := &strata.Record{Collection: c, Data: make(map[string]any, len(c.Fields))}
		for i, f := range c.Fields {
			r.Data[f.Name] = fromColumn(f, vals[i])
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(fmt.Errorf("find %q: %w", c.Name, err), c)
	}
	return out, nil
}

func countRecords(ctx context.Context, q db, rq *strata.RecordQuery) (int, error) {
	query, args, err := selectSQL(rq, true)
	if err != nil {
		return 0, err
	}
	var n int
	if err := q.QueryRow(ctx, query, args...).Scan(&n); err != nil {
		return 0, translate(fmt.Errorf("count %q: %w", rq.Collection.Name, err), rq.Collection)
	}
	return n, nil
}

// fromColumn converts a scanned value to the field's Go type.
func fromColumn(f *strata.Field, v any) any {
	switch f.Type {
	case strata.FieldNumber:
		if n, ok := v.(float64); ok {
			return n
		}
		return float64(0)
	case strata.FieldBool:
		b, _ := v.(bool)
		return b
	case strata.FieldJSON, strata.FieldGeoPoint:
		s, ok := v.(string)
		if !ok {
			return f.ZeroValue()
		}
		var x any
		if err := json.Unmarshal([]byte(s), &x); err != nil {
			return s
		}
		return x
	}
	if f.IsMultiple() {
		s, _ := v.(string)
		var list []string
		if json.Unmarshal([]byte(s), &list) != nil || list == nil {
			return []string{}
		}
		return list
	}
	s, _ := v.(string)
	return s
}

// toColumn converts a field value to what is bound; JSON columns bind text
// (cast with ::text::json in the statement) so the JSON is stored as written.
func toColumn(f *strata.Field, v any) any {
	switch f.Type {
	case strata.FieldNumber:
		if n, ok := v.(float64); ok {
			return n
		}
		return float64(0)
	case strata.FieldBool:
		b, _ := v.(bool)
		return b
	case strata.FieldJSON:
		if v == nil {
			return nil
		}
		if raw, ok := v.(json.RawMessage); ok {
			return string(raw)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil
		}
		return string(b)
	case strata.FieldGeoPoint:
		b, _ := json.Marshal(v)
		return string(b)
	}
	if f.IsMultiple() {
		list, _ := v.([]string)
		if list == nil {
			return "[]"
		}
		b, _ := json.Marshal(list)
		return string(b)
	}
	s, _ := v.(string)
	return s
}

// placeholder is the bind marker of the i-th (1-based) column value.
func placeholder(f *strata.Field, i int) string {
	p := fmt.Sprintf("$%d", i)
	if isJSONColumn(f) {
		return p + "::text::json"
	}
	return p
}

// InsertRecord implements strata.Tx.
func (t *tx) InsertRecord(ctx context.Context, r *strata.Record) error {
	c := r.Collection
	cols := make([]string, len(c.Fields))
	marks := make([]string, len(c.Fields))
	args := make([]any, len(c.Fields))
	for i, f := range c.Fields {
		cols[i] = quote(f.Name)
		marks[i] = placeholder(f, i+1)
		args[i] = toColumn(f, r.Data[f.Name])
	}
	q := "INSERT INTO " + quote(c.Name) + " (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(marks, ", ") + ")"
	if _, err := t.exec(ctx, q, args...); err != nil {
		return translate(fmt.Errorf("insert into %q: %w", c.Name, err), c)
	}
	return t.logChange(r, strata.ActionCreate)
}

// UpdateRecord implements strata.Tx: every column is rewritten from r.
func (t *tx) UpdateRecord(ctx context.Context, r *strata.Record) error {
	c := r.Collection
	sets := make([]string, 0, len(c.Fields))
	args := make([]any, 0, len(c.Fields)+1)
	for _, f := range c.Fields {
		if f.Name == "id" {
			continue
		}
		args = append(args, toColumn(f, r.Data[f.Name]))
		sets = append(sets, quote(f.Name)+" = "+placeholder(f, len(args)))
	}
	args = append(args, r.ID())
	q := "UPDATE " + quote(c.Name) + " SET " + strings.Join(sets, ", ") + fmt.Sprintf(" WHERE id = $%d", len(args))
	tag, err := t.exec(ctx, q, args...)
	if err != nil {
		return translate(fmt.Errorf("update %q: %w", c.Name, err), c)
	}
	if tag.RowsAffected() == 0 {
		return strata.Errorf(strata.ENotFound, "The requested resource wasn't found.")
	}
	return t.logChange(r, strata.ActionUpdate)
}

// DeleteRecord implements strata.Tx.
func (t *tx) DeleteRecord(ctx context.Context, r *strata.Record) error {
	c := r.Collection
	tag, err := t.exec(ctx, "DELETE FROM "+quote(c.Name)+" WHERE id = $1", r.ID())
	if err != nil {
		return translate(fmt.Errorf("delete from %q: %w", c.Name, err), c)
	}
	if tag.RowsAffected() == 0 {
		return strata.Errorf(strata.ENotFound, "The requested resource wasn't found.")
	}
	return t.logChange(r, strata.ActionDelete)
}
