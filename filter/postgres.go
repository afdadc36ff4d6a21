package filter

import (
	"strings"
)

// Postgres is the Dialect of the PostgreSQL store. It expects the store's
// layout: text columns for text-like fields, DOUBLE PRECISION for numbers,
// BOOLEAN for bools, JSON for json, geoPoint and multi-valued fields, and a
// BIGSERIAL "_rowid" column in insertion order. Placeholders carry the type
// of their value ("$1::text"). Comparisons, ordering and conversions follow
// SQLite's rules (affinity, NULL < numbers < text, byte order, ASCII-only
// case folding) so that both stores return the same records: see
// pgcompat.go.
var Postgres Dialect = postgresDialect{}

type postgresDialect struct{}

func (postgresDialect) Name() string { return "postgres" }

func (postgresDialect) Quote(ident string) string {
	return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"`
}

func (postgresDialect) Placeholder(n int) string { return "$" + itoa(n) }

func (postgresDialect) typedPlaceholder(n int, v any) string {
	p := "$" + itoa(n)
	switch v.(type) {
	case string, nil:
		return p + "::text"
	case int, int64, int32:
		return p + "::bigint"
	case float64, float32:
		return p + "::float8"
	case bool:
		return p + "::boolean"
	}
	return p
}

// BindValue keeps values as they are: pgx encodes each to its placeholder's type.
func (postgresDialect) BindValue(v any) any { return v }

func (postgresDialect) JSONEach(arr, alias string) string {
	j := "(" + arr + ")::json"
	return "json_array_elements_text(CASE WHEN json_typeof(" + j + ") = 'array' THEN " + j + " ELSE '[]'::json END) AS " + alias + "(value)"
}

func (postgresDialect) JSONElements(arr, alias string) string {
	j := "(" + arr + ")::json"
	return "json_array_elements(CASE WHEN json_typeof(" + j + ") = 'array' THEN " + j + " ELSE '[]'::json END) AS " + alias + "(value)"
}

// pgPath renders a path as a text[] literal for #>; PostgreSQL tries
// digit-only keys as array indexes on arrays by itself.
func pgPath(path []string) string {
	parts := make([]string, len(path))
	for i, p := range path {
		parts[i] = sqlString(p)
	}
	return "ARRAY[" + strings.Join(parts, ", ") + "]::text[]"
}

// JSONExtract returns the json value at path (SQL NULL for a missing
// path; JSON null stays a json 'null', which every consumer below reads as
// NULL). It stays json rather than jsonb so objects and arrays keep the
// text they were written with, which is what SQLite's json_extract returns.
func (postgresDialect) JSONExtract(expr string, path []string) string {
	v := "(" + expr + ")::json"
	if len(path) > 0 {
		v = "(" + v + " #> " + pgPath(path) + ")"
	}
	return v
}

func (postgresDialect) JSONArrayLength(expr string) string {
	j := "(" + expr + ")::json"
	return "(CASE WHEN json_typeof(" + j + ") = 'array' THEN json_array_length(" + j + ") ELSE 0 END)"
}

// asciiFold lower-cases ASCII letters only: SQLite's LIKE and LOWER (and so
// PocketBase's ~ and :lower) leave every other letter as it is, whereas
// PostgreSQL's ILIKE and LOWER fold by the database's locale.
func asciiFold(expr string) string {
	return "translate(" + expr + ", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"
}

func (postgresDialect) Like(expr, pattern string, negate bool) string {
	not := ""
	if negate {
		not = "NOT "
	}
	return "(" + asciiFold("("+expr+")::text") + " " + not + "LIKE " + asciiFold("("+pattern+")::text") + " ESCAPE '\\')"
}

func (postgresDialect) Lower(expr string) string { return asciiFold("(" + expr + ")::text") }

func (postgresDialect) Concat(parts ...string) string {
	cast := make([]string, len(parts))
	for i, p := range parts {
		cast[i] = "(" + p + ")::text"
	}
	return "(" + strings.Join(cast, " || ") + ")"
}

func (postgresDialect) Random() string { return "random()" }

func (d postgresDialect) RowID(alias string) string { return d.Quote(alias) + `."_rowid"` }

func (postgresDialect) GeoDistance(lonA, latA, lonB, latB string) string {
	inner := "cos(radians(" + latA + ")) * cos(radians(" + latB + ")) * cos(radians(" + lonB + ") - radians(" + lonA + ")) + sin(radians(" + latA + ")) * sin(radians(" + latB + "))"
	return "(6371 * acos(greatest(-1.0, least(1.0, " + inner + "))))"
}
