package filter

import (
	"strconv"
	"strings"
)

// Dialect holds everything the compiler needs that differs between SQL
// engines. The compiler only builds SQL through these methods and plain
// ANSI syntax (AND, OR, NOT, IS NULL, EXISTS, CASE, COALESCE, =, <, ||), so
// a PostgreSQL dialect can be added without touching it. Each method's doc
// says how PostgreSQL would implement it.
type Dialect interface {
	// Name identifies the dialect ("sqlite", "postgres").
	Name() string
	// Quote quotes an identifier (table, column or alias).
	// PG: double quotes with "" doubling.
	Quote(ident string) string
	// Placeholder returns the bind placeholder of the n-th argument
	// (1-based). Placeholders must be numbered (SQLite "?NNN", PG "$n"):
	// the compiler may repeat an expression or emit arguments out of order.
	Placeholder(n int) string
	// BindValue converts a Go value (nil, string, int64, float64, bool) to
	// what the driver binds. SQLite binds bools as 1/0. PG: unchanged, with
	// the compiler's comparisons cast through CastText/CastNumber.
	BindValue(v any) any
	// JSONEach returns a FROM item iterating the elements of the JSON array
	// expression arr under alias, exposing each element as column "value"
	// (text for strings). Non-arrays yield no rows.
	// PG: jsonb_array_elements_text(CASE WHEN jsonb_typeof(arr::jsonb)='array'
	// THEN arr::jsonb ELSE '[]' END) AS alias(value).
	JSONEach(arr, alias string) string
	// JSONElements is JSONEach with each element's JSON type kept: "value"
	// is a JSON scalar (KindJSON), as SQLite's json_each gives it.
	// PG: json_array_elements.
	JSONElements(arr, alias string) string
	// JSONExtract returns the value at path (keys; all-digit segments are
	// also tried as array indexes) inside the JSON text expr, as a scalar
	// (SQL NULL for JSON null or a missing path; strings unquoted; objects
	// and arrays as JSON text). Invalid JSON yields NULL.
	// PG: the json value (expr::json #> path); Compare, OrderBy and Coerce
	// read it as SQLite would read the scalar.
	JSONExtract(expr string, path []string) string
	// JSONArrayLength returns the item count of a JSON array expression
	// (0 for anything else). PG: jsonb_array_length with a jsonb_typeof guard.
	JSONArrayLength(expr string) string
	// Like returns a case-insensitive (ASCII) LIKE of expr against pattern
	// with '\' as escape character. PG: LIKE on both sides with ASCII
	// letters lower-cased (ILIKE would fold every letter).
	Like(expr, pattern string, negate bool) string
	// Lower returns the ASCII lower case of expr as text. PG: translate of
	// A-Z (LOWER would fold every letter).
	Lower(expr string) string
	// Concat concatenates text expressions. PG: the same with ::text casts.
	Concat(parts ...string) string
	// Random returns an ORDER BY expression giving a random order.
	// PG: random().
	Random() string
	// RowID returns the insertion-order key of the row aliased alias.
	// PG: there is no rowid; the PG store can use a bigserial column.
	RowID(alias string) string
	// Strftime formats a time like SQLite's strftime(format, time, mods...).
	// modifiers are the bound modifiers, values their text (constants of
	// the filter) for dialects that translate them.
	// PG: to_char pieces, modifiers mapped to interval arithmetic (only the
	// common ones).
	Strftime(format, time string, modifiers, values []string) string
	// GeoDistance returns the haversine distance in km between two
	// lon/lat points. PG: the same formula with PG's trig functions.
	GeoDistance(lonA, latA, lonB, latB string) string
	// Coerce converts expr, of kind from, so that it compares as kind to
	// (for LIKE, :lower, function arguments). SQLite returns expr
	// unchanged: it converts by itself. PG: casts rendering values as SQLite
	// does (numbers without ".0" when integral, JSON scalars unquoted), with
	// text to number guarded so non-numbers become NULL.
	Coerce(expr string, from, to Kind) string
	// Compare compares two operands with SQLite's semantics, whatever the
	// engine: affinity conversions first (see Affinity), then NULL <
	// numbers < text, text in byte order (BINARY collation). op is one of
	// = < <= > >= (NULL when either side is NULL), IS or IS NOT (NULL-safe).
	// SQLite: a op b.
	Compare(op string, a, b SQLOperand) string
	// OrderBy returns the ORDER BY item(s) sorting by o in SQLite's order:
	// NULLs first when ascending, numbers before text, text in byte order.
	OrderBy(o SQLOperand, desc bool) string
}

// Affinity is the SQLite type affinity of a compiled operand, which decides
// the conversions SQLite applies before a comparison: a column has the
// affinity of its declared type (TEXT; NUMERIC for numbers, bools, JSON and
// multi-valued fields; BLOB for json_each values), a scalar subquery that of
// its column, and literals, bind values and function results have none.
type Affinity int

// Affinities of compiled operands.
const (
	// AffNone: literals, bind values, function and json_each results.
	AffNone Affinity = iota
	// AffText: TEXT columns.
	AffText
	// AffNumeric: NUMERIC, BOOLEAN and JSON columns.
	AffNumeric
	// AffBlob: columns without a declared type, such as json_each's
	// value. Unlike AffNone it does not take TEXT affinity from the other
	// side of a comparison.
	AffBlob
)

// SQLOperand is a compiled comparison operand as a dialect sees it.
type SQLOperand struct {
	SQL  string
	Kind Kind
	Aff  Affinity
	// Text is the value of a text constant (IsText), which lets a dialect
	// apply SQLite's conversions to it at compile time.
	Text   string
	IsText bool
}

// Kind is the SQL type class of a compiled operand.
type Kind int

// Kinds of compiled operands.
const (
	// KindAny is untyped: NULL, or a value of unknown type.
	KindAny Kind = iota
	// KindText is text.
	KindText
	// KindNumber is a number.
	KindNumber
	// KindBool is a boolean column (SQLite stores 0/1).
	KindBool
	// KindJSON is a scalar extracted from JSON by JSONExtract (PG: json).
	KindJSON
	// KindJSONDoc is a JSON column read as a whole (multi-valued fields).
	KindJSONDoc
)

// SQLite is the Dialect of the SQLite store (modernc.org/sqlite, built with
// the JSON1 and math functions).
var SQLite Dialect = sqliteDialect{}

type sqliteDialect struct{}

func (sqliteDialect) Name() string { return "sqlite" }

func (sqliteDialect) Quote(ident string) string {
	return "`" + strings.ReplaceAll(ident, "`", "``") + "`"
}

func (sqliteDialect) Placeholder(n int) string { return "?" + itoa(n) }

func (sqliteDialect) BindValue(v any) any {
	if b, ok := v.(bool); ok {
		if b {
			return int64(1)
		}
		return int64(0)
	}
	return v
}

func (sqliteDialect) JSONEach(arr, alias string) string {
	return "json_each(CASE WHEN json_valid(" + arr + ") THEN " + arr + " ELSE '[]' END) " + alias
}

func (d sqliteDialect) JSONElements(arr, alias string) string { return d.JSONEach(arr, alias) }

// jsonPath renders a SQLite JSON path. Digit-only segments are array
// indexes; other segments are quoted object keys.
func jsonPath(path []string) string {
	var b strings.Builder
	b.WriteString("$")
	for _, p := range path {
		if p != "" && strings.Trim(p, "0123456789") == "" {
			b.WriteString("[" + p + "]")
		} else {
			b.WriteString(".\"" + strings.NewReplacer(`"`, `\"`, `\`, `\\`).Replace(p) + "\"")
		}
	}
	return sqlString(b.String())
}

// sqlString renders s as an SQL string literal. Only used for text the
// compiler builds itself (JSON paths, strftime formats), never for values.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (sqliteDialect) JSONExtract(expr string, path []string) string {
	return "(CASE WHEN json_valid(" + expr + ") THEN json_extract(" + expr + ", " + jsonPath(path) + ") END)"
}

func (sqliteDialect) JSONArrayLength(expr string) string {
	return "(CASE WHEN json_valid(" + expr + ") AND json_type(" + expr + ") = 'array' THEN json_array_length(" + expr + ") ELSE 0 END)"
}

func (sqliteDialect) Like(expr, pattern string, negate bool) string {
	not := ""
	if negate {
		not = "NOT "
	}
	return "(" + expr + " " + not + "LIKE " + pattern + " ESCAPE '\\')"
}

func (sqliteDialect) Lower(expr string) string { return "LOWER(" + expr + ")" }

func (sqliteDialect) Concat(parts ...string) string { return "(" + strings.Join(parts, " || ") + ")" }

func (sqliteDialect) Random() string { return "RANDOM()" }

func (d sqliteDialect) RowID(alias string) string { return d.Quote(alias) + "._rowid_" }

func (sqliteDialect) Strftime(format, time string, modifiers, _ []string) string {
	args := append([]string{format, time}, modifiers...)
	return "COALESCE(strftime(" + strings.Join(args, ", ") + "), '')"
}

func (sqliteDialect) GeoDistance(lonA, latA, lonB, latB string) string {
	// Spherical law of cosines, clamped to acos's domain against rounding.
	inner := "cos(radians(" + latA + ")) * cos(radians(" + latB + ")) * cos(radians(" + lonB + ") - radians(" + lonA + ")) + sin(radians(" + latA + ")) * sin(radians(" + latB + "))"
	return "(6371 * acos(max(-1.0, min(1.0, " + inner + "))))"
}

func (sqliteDialect) Coerce(expr string, _, _ Kind) string { return expr }

func (sqliteDialect) Compare(op string, a, b SQLOperand) string {
	return "(" + a.SQL + " " + op + " " + b.SQL + ")"
}

func (sqliteDialect) OrderBy(o SQLOperand, desc bool) string {
	if desc {
		return o.SQL + " DESC"
	}
	return o.SQL + " ASC"
}

// Args accumulates the bind arguments of one SQL statement. Several Compile
// and CompileSort calls may share one Args. Add hands out placeholder tokens
// rather than final placeholders; Bind then numbers only the values the
// finished statement really uses. The compiler may bind a literal and later
// emit SQL that does not need it (comparisons with "" for example), and
// PostgreSQL refuses a statement with a parameter it cannot type. The zero
// value uses the SQLite dialect.
type Args struct {
	Dialect Dialect
	raw     []any
}

// Placeholder tokens: NUL, the value's index, SOH. Neither byte can occur
// in SQL the compiler writes (identifiers are validated, text is bound).
const (
	tokOpen  = '\x00'
	tokClose = '\x01'
)

// Add records a bind value and returns its placeholder token.
func (a *Args) Add(v any) string {
	a.raw = append(a.raw, v)
	return string(rune(tokOpen)) + strconv.Itoa(len(a.raw)-1) + string(rune(tokClose))
}

// Len is the number of values added so far.
func (a *Args) Len() int { return len(a.raw) }

// Bind replaces the tokens in sql with the dialect's numbered placeholders
// (typed ones where the dialect wants them), numbering values in order of
// first use and dropping unused ones, and returns the statement and its
// bind values.
func (a *Args) Bind(sql string) (string, []any) {
	d := a.Dialect
	if d == nil {
		d = SQLite
	}
	tp, typed := d.(typedPlaceholders)
	var b strings.Builder
	b.Grow(len(sql))
	var vals []any
	pos := map[int]int{}
	for {
		i := strings.IndexByte(sql, tokOpen)
		if i < 0 {
			b.WriteString(sql)
			break
		}
		j := strings.IndexByte(sql[i:], tokClose)
		if j < 0 {
			b.WriteString(sql)
			break
		}
		n, err := strconv.Atoi(sql[i+1 : i+j])
		if err != nil || n < 0 || n >= len(a.raw) {
			b.WriteString(sql[:i+j+1])
			sql = sql[i+j+1:]
			continue
		}
		b.WriteString(sql[:i])
		p, ok := pos[n]
		if !ok {
			vals = append(vals, d.BindValue(a.raw[n]))
			p = len(vals)
			pos[n] = p
		}
		if typed {
			b.WriteString(tp.typedPlaceholder(p, a.raw[n]))
		} else {
			b.WriteString(d.Placeholder(p))
		}
		sql = sql[i+j+1:]
	}
	return b.String(), vals
}

// typedPlaceholders is implemented by dialects whose placeholders carry
// the type of the bound value ("$1::text"), so that the engine never has to
// guess it from the context.
type typedPlaceholders interface {
	typedPlaceholder(n int, v any) string
}

func itoa(n int) string { return strconv.Itoa(n) }
