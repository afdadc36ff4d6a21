package sqlite

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
			b.WriteString(snapshotColumn(f, value(f)))
			b.WriteString(" AS " + quote(f.Name) + ", ")
		}
		// Sort by @rowid follows the snapshot's order.
		b.WriteString(strconv.Itoa(i) + " AS _rowid_")
	}
	for i, r := range q.Snapshot {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		row(i, func(f *strata.Field) string { return args.Add(toColumn(f, r.Data[f.Name])) })
	}
	if len(q.Snapshot) == 0 {
		row(0, func(*strata.Field) string { return "NULL" })
		b.WriteString(" WHERE 0")
	}
	b.WriteString(")")
	return b.String()
}

// snapshotColumn gives a bound value the affinity of the field's column,
// which comparisons with literals depend on (SQLite applies a column's
// affinity to the other operand). CAST is lossless here because toColumn
// already produced the column's storage class. JSON columns are declared
// JSON (NUMERIC affinity), but a CAST to NUMERIC would turn JSON text into
// 0; the compiler reads them through JSON functions, so they stay bare.
func snapshotColumn(f *strata.Field, v string) string {
	switch {
	case f.Type == strata.FieldJSON, f.Type == strata.FieldGeoPoint, f.IsMultiple():
		return v
	case f.Type == strata.FieldNumber, f.Type == strata.FieldBool:
		return "CAST(" + v + " AS NUMERIC)"
	}
	return "CAST(" + v + " AS TEXT)"
}

// uncached keeps snapshot queries of several rows out of the read pool's
// statement cache: their SQL varies with the number of rows, and the
// cache, once full, stops caching the queries that do repeat. One-row
// snapshots (realtime deletes) repeat like any other query.
func uncached(db queryer, q *strata.RecordQuery) queryer {
	if sq, ok := db.(stmtQueryer); ok && len(q.Snapshot) > 1 {
		return sq.s.reader
	}
	return db
}
