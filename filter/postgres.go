package filter

import (
	"strings"
)

// Postgres is the Dialect of the PostgreSQL store. It expects the store's
// layout: text columns for text-like fields, DOUBLE PRECISION for numbers,
// BOOLEAN for bools, JSON for json, geoPoint and multi-valued fields, and a
// BIGSERIAL "_rowid" column in insertion order. Placeholders carry the type
// of their value ("$1::text"), and the compiler's Coerce calls stand in for
// SQLite's type affinity.
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

// pgPath renders a path as a text[] literal for #>; PostgreSQL tries
// digit-only keys as array indexes on arrays by itself.
func pgPath(path []string) string {
	parts := make([]string, len(path))
	for i, p := range path {
		parts[i] = sqlString(p)
	}
	return "ARRAY[" + strings.Join(parts, ", ") + "]::text[]"
}

// JSONExtract returns jsonb, with JSON null as SQL NULL and booleans as the
// numbers 0/1, which is what SQLite's json_extract yields.
func (postgresDialect) JSONExtract(expr string, path []string) string {
	v := "(" + expr + ")::jsonb"
	if len(path) > 0 {
		v += " #> " + pgPath(path)
	}
	return "(SELECT CASE jsonb_typeof(__v) WHEN 'null' THEN NULL WHEN 'boolean' THEN to_jsonb((__v)::boolean::int) ELSE __v END FROM (SELECT " + v + " AS __v) AS __x)"
}

func (postgresDialect) JSONArrayLength(expr string) string {
	j := "(" + expr + ")::json"
	return "(CASE WHEN json_typeof(" + j + ") = 'array' THEN json_array_length(" + j + ") ELSE 0 END)"
}

func (postgresDialect) Like(expr, pattern string, negate bool) string {
	not := ""
	if negate {
		not = "NOT "
	}
	return "((" + expr + ")::text " + not + "ILIKE " + pattern + " ESCAPE '\\')"
}

func (postgresDialect) Lower(expr string) string { return "LOWER((" + expr + ")::text)" }

func (postgresDialect) Concat(parts ...string) string {
	cast := make([]string, len(parts))
	for i, p := range parts {
		cast[i] = "(" + p + ")::text"
	}
	return "(" + strings.Join(cast, " || ") + ")"
}

func (postgresDialect) Random() string { return "random()" }

func (d postgresDialect) RowID(alias string) string { return d.Quote(alias) + `."_rowid"` }

// strftimeSpecs maps SQLite strftime specifiers to to_char patterns. The
// format is a bind value, so the conversion runs in SQL: the whole format is
// quoted (literal text for to_char) and each specifier closes the quote,
// emits its pattern and reopens it.
var strftimeSpecs = [][2]string{
	{"%Y", "YYYY"}, {"%m", "MM"}, {"%d", "DD"}, {"%H", "HH24"}, {"%M", "MI"},
	{"%S", "SS"}, {"%f", "SS.MS"}, {"%j", "DDD"}, {"%W", "IW"},
}

// Strftime supports the specifiers above and %%; modifiers are not
// supported on PostgreSQL and leave the time unchanged.
func (postgresDialect) Strftime(format, time string, modifiers []string) string {
	f := "replace((" + format + ")::text, '\"', '\\\"')"
	for _, s := range strftimeSpecs {
		f = "replace(" + f + ", " + sqlString(s[0]) + ", " + sqlString(`"`+s[1]+`"`) + ")"
	}
	f = "replace('\"' || " + f + " || '\"', '%%', '%')"
	t := "(" + time + ")::text"
	ts := "CASE WHEN " + t + ` ~ '^\d{4}-\d{2}-\d{2}( |T|$)' THEN (` + t + ")::timestamp END"
	return "COALESCE(to_char(" + ts + ", " + f + "), '')"
}

func (postgresDialect) GeoDistance(lonA, latA, lonB, latB string) string {
	inner := "cos(radians(" + latA + ")) * cos(radians(" + latB + ")) * cos(radians(" + lonB + ") - radians(" + lonA + ")) + sin(radians(" + latA + ")) * sin(radians(" + latB + "))"
	return "(6371 * acos(greatest(-1.0, least(1.0, " + inner + "))))"
}

func (postgresDialect) IsDistinct(a, b string, negate bool) string {
	if negate {
		return "(" + a + " IS DISTINCT FROM " + b + ")"
	}
	return "(" + a + " IS NOT DISTINCT FROM " + b + ")"
}

// numericText matches what SQLite's numeric affinity converts to a number.
const numericText = `'^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$'`

func (postgresDialect) Coerce(expr string, from, to Kind) string {
	if from == to || from == KindAny {
		return expr
	}
	e := "(" + expr + ")"
	switch to {
	case KindText:
		switch from {
		case KindBool:
			return "(CASE WHEN " + e + " THEN '1' WHEN NOT " + e + " THEN '0' END)"
		case KindJSON:
			return "(" + e + " #>> '{}')"
		}
		return e + "::text"
	case KindNumber:
		switch from {
		case KindBool:
			return e + "::int"
		case KindJSON:
			return "(CASE WHEN jsonb_typeof(" + e + ") = 'number' THEN " + e + "::float8 END)"
		case KindJSONDoc:
			e += "::text"
		}
		return "(CASE WHEN " + e + " ~ " + numericText + " THEN " + e + "::float8 END)"
	case KindJSON:
		switch from {
		case KindBool:
			return "to_jsonb(" + e + "::int)"
		case KindNumber:
			return "to_jsonb(" + e + "::float8)"
		case KindJSONDoc:
			return e + "::jsonb"
		}
		return "to_jsonb(" + e + "::text)"
	}
	return expr
}
