package postgres

import (
	"strconv"
	"strings"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/filter"
)

// source is the FROM item a record query reads: the collection's table, or
// q.Snapshot as a derived table of bound values. Only the outer row is
// replaced; the compiled filters name other tables (relations, @collection,
// and the collection itself when joined again) directly, so they still
// read live rows.
func source(q *strata.RecordQuery, args *filter.Args) string {
	if q.Snapshot == nil {
		return quote(q.Collection.Name)
	}
	c := q.Collection
	var b strings.Builder
	b.WriteString("(")
	row := func(i int, value func(f *strata.Field) string) {
		b.WriteString("SELECT ")
		for _, f := range c.Fields {
			// Each value gets its column's type, as the compiled SQL
			// and the JSON reads of selectSQL expect.
			b.WriteString("CAST(" + value(f) + " AS " + snapshotType(f) + ") AS " + quote(f.Name) + ", ")
		}
		// Sort ties (and @rowid) follow the snapshot's order.
		b.WriteString("CAST(" + strconv.Itoa(i) + " AS BIGINT) AS " + quote("_rowid"))
	}
	for i, r := range q.Snapshot {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		row(i, func(f *strata.Field) string { return args.Add(toColumn(f, r.Data[f.Name])) })
	}
	if len(q.Snapshot) == 0 {
		row(0, func(*strata.Field) string { return "NULL" })
		b.WriteString(" WHERE FALSE")
	}
	b.WriteString(")")
	return b.String()
}

// snapshotType is the SQL type of f's column (see columnType).
func snapshotType(f *strata.Field) string {
	switch {
	case isJSONColumn(f):
		return "JSON"
	case f.Type == strata.FieldNumber:
		return "DOUBLE PRECISION"
	case f.Type == strata.FieldBool:
		return "BOOLEAN"
	}
	return "TEXT"
}
