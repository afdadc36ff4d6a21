package sqlite

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
	args := &filter.Args{Dialect: filter.SQLite}
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
		env := filterEnv(q, alias)
		env.Restricted = f.Restricted
		cond, err := filter.Compile(expr, env, args)
		if err != nil {
			return "", nil, err
		}
		conds = append(conds, "("+cond+")")
	}
	if q.IDs != nil {
		ids, _ := json.Marshal(q.IDs)
		conds = append(conds, alias+".id IN (SELECT value FROM json_each("+args.Add(string(ids))+"))")
	}
	if q.RelationField != "" {
		f := c.Field(q.RelationField)
		if f == nil {
			return "", nil, fmt.Errorf("relation field %q not in %q", q.RelationField, c.Name)
		}
		ids, _ := json.Marshal(q.RelationIDs)
		col := alias + "." + quote(f.Name)
		if f.IsMultiple() {
			conds = append(conds, "EXISTS (SELECT 1 FROM json_each("+col+") je WHERE je.value IN (SELECT value FROM json_each("+args.Add(string(ids))+")))")
		} else {
			conds = append(conds, col+" IN (SELECT value FROM json_each("+args.Add(string(ids))+"))")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(q.Equal)) {
		if c.Field(name) == nil {
			return "", nil, fmt.Errorf("field %q not in %q", name, c.Name)
		}
		conds = append(conds, alias+"."+quote(name)+" = "+args.Add(toColumn(c.Field(name), q.Equal[name])))
	}
	for _, name := range slices.Sorted(maps.Keys(q.EqualFold)) {
		if c.Field(name) == nil {
			return "", nil, fmt.Errorf("field %q not in %q", name, c.Name)
		}
		conds = append(conds, alias+"."+quote(name)+" = "+args.Add(q.EqualFold[name])+" COLLATE NOCASE")
	}
	if len(conds) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(conds, " AND "))
	}
	if !count {
		if q.Sort != "" {
			env := filterEnv(q, alias)
			env.Restricted = q.SortRestricted
			order, err := filter.CompileSort(q.Sort, env, args)
			if err != nil {
				return "", nil, err
			}
			if order != "" {
				b.WriteString(" ORDER BY " + order)
			}
		}
		if q.Limit > 0 || q.Offset > 0 {
			limit := q.Limit
			if limit <= 0 {
				limit = -1
			}
			b.WriteString(" LIMIT " + args.Add(limit) + " OFFSET " + args.Add(q.Offset))
		}
	}
	query, vals := args.Bind(b.String())
	return query, vals, nil
}

func findRecords(ctx context.Context, db queryer, q *strata.RecordQuery) ([]*strata.Record, error) {
	query, args, err := selectSQL(q, false)
	if err != nil {
		return nil, err
	}
	rows, err := uncached(db, q).QueryContext(ctx, query, args...)
	if err != nil {
		return nil, translate(fmt.Errorf("find %q: %w", q.Collection.Name, err), q.Collection)
	}
	defer rows.Close()
	c := q.Collection
	dest := make([]any, len(c.Fields))
	for i := range dest {
		dest[i] = new(any)
	}
	var out []*strata.Record
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scan %q: %w", c.Name, err)
		}
		r := &strata.Record{Collection: c, Data: make(map[string]any, len(c.Fields))}
		for i, f := range c.Fields {
			r.Data[f.Name] = fromColumn(f, *dest[i].(*any))
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(fmt.Errorf("find %q: %w", c.Name, err), c)
	}
	return out, nil
}

func countRecords(ctx context.Context, db queryer, q *strata.RecordQuery) (int, error) {
	query, args, err := selectSQL(q, true)
	if err != nil {
		return 0, err
	}
	var n int
	if err := uncached(db, q).QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		return 0, translate(fmt.Errorf("count %q: %w", q.Collection.Name, err), q.Collection)
	}
	return n, nil
}

// fromColumn converts a scanned SQLite value to the field's Go type.
func fromColumn(f *strata.Field, v any) any {
	switch f.Type {
	case strata.FieldNumber:
		switch n := v.(type) {
		case int64:
			return float64(n)
		case float64:
			return n
		case string:
			var x float64
			fmt.Sscan(n, &x)
			return x
		}
		return float64(0)
	case strata.FieldBool:
		switch b := v.(type) {
		case int64:
			return b != 0
		case bool:
			return b
		case string:
			return b == "1" || strings.EqualFold(b, "true")
		}
		return false
	case strata.FieldJSON, strata.FieldGeoPoint:
		s, ok := asString(v)
		if !ok {
			return f.ZeroValue()
		}
		return decodeJSONColumn(s)
	}
	if f.IsMultiple() {
		s, _ := asString(v)
		var list []string
		if json.Unmarshal([]byte(s), &list) != nil || list == nil {
			return []string{}
		}
		return list
	}
	s, _ := asString(v)
	return s
}

func asString(v any) (string, bool) {
	switch s := v.(type) {
	case string:
		return s, true
	case []byte:
		return string(s), true
	case nil:
		return "", false
	case int64:
		return fmt.Sprint(s), true
	case float64:
		return fmt.Sprint(s), true
	}
	return "", false
}

// toColumn converts a field value to what the driver stores.
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

// InsertRecord implements strata.Tx.
func (t *tx) InsertRecord(ctx context.Context, r *strata.Record) error {
	c := r.Collection
	cols := make([]string, len(c.Fields))
	marks := make([]string, len(c.Fields))
	args := make([]any, len(c.Fields))
	for i, f := range c.Fields {
		cols[i] = quote(f.Name)
		marks[i] = "?"
		args[i] = toColumn(f, r.Data[f.Name])
	}
	q := "INSERT INTO " + quote(c.Name) + " (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(marks, ", ") + ")"
	if _, err := t.exec(ctx, q, args...); err != nil {
		return translate(fmt.Errorf("insert into %q: %w", c.Name, err), c)
	}
	return t.logChange(ctx, r, strata.ActionCreate)
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
		sets = append(sets, quote(f.Name)+" = ?")
		args = append(args, toColumn(f, r.Data[f.Name]))
	}
	args = append(args, r.ID())
	q := "UPDATE " + quote(c.Name) + " SET " + strings.Join(sets, ", ") + " WHERE id = ?"
	res, err := t.exec(ctx, q, args...)
	if err != nil {
		return translate(fmt.Errorf("update %q: %w", c.Name, err), c)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return strata.Errorf(strata.ENotFound, "The requested resource wasn't found.")
	}
	return t.logChange(ctx, r, strata.ActionUpdate)
}

// DeleteRecord implements strata.Tx.
func (t *tx) DeleteRecord(ctx context.Context, r *strata.Record) error {
	c := r.Collection
	res, err := t.exec(ctx, "DELETE FROM "+quote(c.Name)+" WHERE id = ?", r.ID())
	if err != nil {
		return translate(fmt.Errorf("delete from %q: %w", c.Name, err), c)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return strata.Errorf(strata.ENotFound, "The requested resource wasn't found.")
	}
	return t.logChange(ctx, r, strata.ActionDelete)
}
