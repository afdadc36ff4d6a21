package filter

import (
	"math"
	"regexp"
	"strconv"
	"strings"
)

// This file makes the Postgres dialect compare, order, convert and format
// values the way SQLite does, since PocketBase's filter semantics are
// SQLite's. The store's differential test (store/difftest) runs the same
// generated filters on both engines to keep it so.

// numericText matches what SQLite's numeric affinity converts to a number.
const numericText = `'^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$'`

// simpleSQL reports whether expr is a column reference, placeholder or
// keyword, cheap enough to repeat inside one expression.
func simpleSQL(expr string) bool { return !strings.ContainsAny(expr, "( ") }

// once evaluates expr a single time and passes f a reference to its value,
// so f may use it repeatedly. The alias is derived from the aliases already
// inside expr, so nested uses never shadow each other and equal filters
// compile to equal SQL (statement caches stay warm).
func once(expr string, f func(v string) string) string {
	if simpleSQL(expr) {
		return f(expr)
	}
	alias := "__o" + strconv.Itoa(strings.Count(expr, "__o"))
	return "(SELECT " + f(alias+".v") + " FROM (SELECT " + expr + " AS v OFFSET 0) AS " + alias + ")"
}

// textFloat converts text that matches numericText to float8 the way
// SQLite does, never failing: beyond float8's range it is ±Infinity, below
// it 0 (a plain ::float8 cast raises an error on "1e400" or "1e-400").
func textFloat(text string) string {
	return once(text, func(v string) string {
		return "(CASE WHEN " + v + ` ~ '[eE][-+]?0*[0-9]{4}' THEN (CASE WHEN ` + v + ` ~ '^\s*[-+]?[0.]*[eE]' OR ` + v + ` ~ '[eE]-' THEN 0` +
			" WHEN " + v + ` ~ '^\s*-' THEN '-Infinity'::float8 ELSE 'Infinity'::float8 END) ELSE ` +
			once("("+v+")::numeric", func(x string) string {
				return "(CASE WHEN abs(" + x + ") > 1.7976931348623157e308 THEN sign(" + x + ") * 'Infinity'::float8" +
					" WHEN abs(" + x + ") < 1e-320 THEN 0 ELSE " + x + "::float8 END)"
			}) + " END)"
	})
}

// numText renders a number as SQLite converts it to text: integral values
// (which NUMERIC columns store as integers) without a decimal part.
func numText(expr string) string {
	return once("("+expr+")::float8", func(v string) string {
		return "(CASE WHEN " + v + " = trunc(" + v + ") AND abs(" + v + ") < 1e18 THEN trunc(" + v + ")::bigint::text" +
			" WHEN " + v + " = 'Infinity' THEN 'Inf' WHEN " + v + " = '-Infinity' THEN '-Inf' ELSE " + v + "::text END)"
	})
}

// pgJSONText is a json scalar as SQLite's json_extract returns it, as text:
// strings unquoted, numbers as SQLite renders them, booleans 1/0, objects
// and arrays as written, JSON null as NULL.
func pgJSONText(v string) string {
	return "(CASE json_typeof(" + v + ") WHEN 'string' THEN " + v + " #>> '{}' WHEN 'number' THEN " +
		numText(textFloat(v+" #>> '{}'")) + " WHEN 'boolean' THEN (CASE " + v + " #>> '{}' WHEN 'true' THEN '1' ELSE '0' END)" +
		" WHEN 'object' THEN " + v + "::text WHEN 'array' THEN " + v + "::text END)"
}

// jsonNumber is a json scalar as a number: numbers, booleans as 1/0 and,
// when numeric is set (numeric affinity), strings that look like numbers.
func jsonNumber(v string, numeric bool) string {
	s := "(CASE json_typeof(" + v + ") WHEN 'number' THEN " + textFloat(v+" #>> '{}'") + " WHEN 'boolean' THEN (CASE " + v + " #>> '{}' WHEN 'true' THEN 1 ELSE 0 END)"
	if numeric {
		s += " WHEN 'string' THEN (CASE WHEN " + v + " #>> '{}' ~ " + numericText + " THEN " + textFloat(v+" #>> '{}'") + " END)"
	}
	return s + " END)"
}

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
		case KindNumber:
			return numText(expr)
		case KindJSON:
			return once(expr, pgJSONText)
		}
		return e + "::text"
	case KindNumber:
		switch from {
		case KindBool:
			return e + "::int"
		case KindJSON:
			return once(expr, func(v string) string { return jsonNumber(v, true) })
		}
		return once(e+"::text", func(v string) string {
			return "(CASE WHEN " + v + " ~ " + numericText + " THEN " + textFloat(v) + " END)"
		})
	case KindJSON:
		return "to_json(" + e + ")"
	}
	return expr
}

// conversions returns the affinity SQLite applies to each side of a
// comparison: NUMERIC to the other side of a NUMERIC operand, else TEXT to
// an operand without affinity (not even BLOB) compared with a TEXT one.
func conversions(a, b Affinity) (ca, cb Affinity) {
	switch {
	case a == AffNumeric && b != AffNumeric:
		return AffNone, AffNumeric
	case b == AffNumeric && a != AffNumeric:
		return AffNumeric, AffNone
	case a == AffText && b == AffNone:
		return AffNone, AffText
	case b == AffText && a == AffNone:
		return AffText, AffNone
	}
	return AffNone, AffNone
}

// Storage classes an operand is known to have after conversion.
const (
	classDynamic = iota // decided per row (JSON, text under numeric affinity, NULL)
	classNumber
	classText
)

// numericConstant reports whether o is a text constant that numeric
// affinity turns into a number, and returns that number as SQL.
func numericConstant(o SQLOperand) (string, bool) {
	if !o.IsText {
		return "", false
	}
	n, ok := toNumeric(sv{o.Text, affNone}).v.(float64)
	if i, isInt := toNumeric(sv{o.Text, affNone}).v.(int64); isInt {
		n, ok = float64(i), true
	}
	switch {
	case !ok:
		return "", false
	case math.IsInf(n, 1):
		return "'Infinity'::float8", true
	case math.IsInf(n, -1):
		return "'-Infinity'::float8", true
	case n == 0:
		return "0::float8", true // also what underflows
	}
	return "(" + o.SQL + ")::float8", true
}

func staticClass(o SQLOperand, conv Affinity) int {
	if conv == AffNumeric && o.IsText {
		if _, ok := numericConstant(o); ok {
			return classNumber
		}
		return classText
	}
	switch o.Kind {
	case KindNumber, KindBool:
		if conv == AffText {
			return classText
		}
		return classNumber
	case KindJSON:
		return classDynamic
	}
	if o.Kind == KindAny && o.SQL == "NULL" || conv == AffNumeric {
		return classDynamic
	}
	return classText
}

func numberSQL(o SQLOperand) string {
	if n, ok := numericConstant(o); ok {
		return n
	}
	if o.Kind == KindBool {
		return "(" + o.SQL + ")::int"
	}
	return o.SQL
}

func textSQL(o SQLOperand) string {
	switch o.Kind {
	case KindNumber:
		return numText(o.SQL)
	case KindBool:
		return "(CASE WHEN " + o.SQL + " THEN '1' WHEN NOT " + o.SQL + " THEN '0' END)"
	}
	return "(" + o.SQL + ")::text"
}

// sqliteValue splits the value v of an operand of kind k, after conversion
// conv, into SQLite's view of it: its class (1 number, 2 text, NULL), its
// number and its text (NULL unless of that class). v is repeated.
func sqliteValue(v string, k Kind, conv Affinity) (class, num, text string) {
	switch k {
	case KindNumber, KindBool:
		o := SQLOperand{SQL: v, Kind: k}
		if conv == AffText {
			return "(CASE WHEN " + v + " IS NOT NULL THEN 2 END)", "NULL::float8", textSQL(o)
		}
		return "(CASE WHEN " + v + " IS NOT NULL THEN 1 END)", "(" + numberSQL(o) + ")::float8", "NULL::text"
	case KindJSON:
		str := "2"
		if conv == AffNumeric {
			str = "(CASE WHEN " + v + " #>> '{}' ~ " + numericText + " THEN 1 ELSE 2 END)"
		}
		number := "1"
		if conv == AffText {
			number = "2"
		}
		class = "(CASE json_typeof(" + v + ") WHEN 'number' THEN " + number + " WHEN 'boolean' THEN " + number +
			" WHEN 'string' THEN " + str + " WHEN 'object' THEN 2 WHEN 'array' THEN 2 END)"
		if conv == AffText {
			return class, "NULL::float8", pgJSONText(v)
		}
		str = v + " #>> '{}'"
		if conv == AffNumeric {
			str = "(CASE WHEN " + str + " !~ " + numericText + " THEN " + str + " END)"
		}
		text = "(CASE json_typeof(" + v + ") WHEN 'string' THEN " + str + " WHEN 'object' THEN " + v + "::text WHEN 'array' THEN " + v + "::text END)"
		return class, jsonNumber(v, conv == AffNumeric), text
	}
	if k == KindAny && v == "NULL" {
		return "NULL::int", "NULL::float8", "NULL::text"
	}
	t := "(" + v + ")::text"
	if conv == AffNumeric {
		return "(CASE WHEN " + t + " ~ " + numericText + " THEN 1 WHEN " + t + " IS NOT NULL THEN 2 END)",
			"(CASE WHEN " + t + " ~ " + numericText + " THEN " + textFloat(t) + " END)",
			"(CASE WHEN " + t + " !~ " + numericText + " THEN " + t + " END)"
	}
	return "(CASE WHEN " + t + " IS NOT NULL THEN 2 END)", "NULL::float8", t
}

// Compare follows SQLite: see Dialect.Compare. Operands whose class is
// known at compile time compare directly (text in the "C" collation, which
// is byte order); the others are split into (class, number, text) rows
// compared row-wise.
func (postgresDialect) Compare(op string, a, b SQLOperand) string {
	ca, cb := conversions(a.Aff, b.Aff)
	sa, sb := staticClass(a, ca), staticClass(b, cb)
	switch {
	case sa == classNumber && sb == classNumber:
		return pgCompare(op, numberSQL(a), numberSQL(b), "")
	case sa == classText && sb == classText:
		ta, tb := textSQL(a), textSQL(b)
		if a.Kind == KindNumber || a.Kind == KindBool {
			ta = "(" + ta + ")"
		}
		return pgCompare(op, ta, tb, ` COLLATE "C"`)
	case sa != classDynamic && sb != classDynamic:
		// A number and text: SQLite orders every number first.
		x, y := "("+a.SQL+")", "("+b.SQL+")"
		switch op {
		case "IS":
			return "(" + x + " IS NULL AND " + y + " IS NULL)"
		case "IS NOT":
			return "(" + x + " IS NOT NULL OR " + y + " IS NOT NULL)"
		}
		r := "FALSE"
		if (op == "<" || op == "<=") == (sa == classNumber) && op != "=" {
			r = "TRUE"
		}
		return "(CASE WHEN " + x + " IS NOT NULL AND " + y + " IS NOT NULL THEN " + r + " END)"
	}
	n := strconv.Itoa(strings.Count(a.SQL+b.SQL, "__s"))
	A, B := "__s"+n+"a", "__s"+n+"b"
	split := func(o SQLOperand, conv Affinity, alias string) string {
		class, num, text := sqliteValue(alias+"v.v", o.Kind, conv)
		return "(SELECT " + class + " AS c, COALESCE(" + num + ", 0) AS n, COALESCE(" + text + ", '') AS t FROM (SELECT " +
			o.SQL + " AS v OFFSET 0) AS " + alias + "v OFFSET 0) AS " + alias
	}
	ra := "ROW(" + A + ".c, " + A + ".n, " + A + `.t COLLATE "C")`
	rb := "ROW(" + B + ".c, " + B + ".n, " + B + ".t)"
	var cond string
	switch op {
	case "IS":
		cond = ra + " IS NOT DISTINCT FROM " + rb
	case "IS NOT":
		cond = ra + " IS DISTINCT FROM " + rb
	default:
		cond = "CASE WHEN " + A + ".c IS NULL OR " + B + ".c IS NULL THEN NULL ELSE " + ra + " " + op + " " + rb + " END"
	}
	return "(SELECT " + cond + " FROM " + split(a, ca, A) + ", " + split(b, cb, B) + ")"
}

func pgCompare(op, a, b, collate string) string {
	switch op {
	case "IS":
		return "(" + a + " IS NOT DISTINCT FROM " + b + ")"
	case "IS NOT":
		return "(" + a + " IS DISTINCT FROM " + b + ")"
	case "=":
		return "(" + a + " = " + b + ")"
	}
	return "(" + a + " " + op + " " + b + collate + ")"
}

// OrderBy sorts like SQLite: NULLs first when ascending (PostgreSQL puts
// them last), text in byte order whatever the database's collation, and
// JSON values by class (numbers before text), then value.
func (postgresDialect) OrderBy(o SQLOperand, desc bool) string {
	dir, nulls := " ASC", " NULLS FIRST"
	if desc {
		dir, nulls = " DESC", " NULLS LAST"
	}
	if simpleSQL(o.SQL) {
		// A column of the row itself: the store's columns are NOT NULL
		// (JSON ones aside), and without NULLS FIRST an index can serve
		// the order.
		nulls = ""
	}
	switch o.Kind {
	case KindNumber:
		return o.SQL + dir + nulls
	case KindBool:
		return "(" + o.SQL + ")::int" + dir + nulls
	case KindJSON:
		part := func(i int) string {
			return once(o.SQL, func(v string) string {
				class, num, text := sqliteValue(v, KindJSON, AffNone)
				return [3]string{class, num, text}[i]
			})
		}
		return part(0) + dir + nulls + ", " + part(1) + dir + ", " + part(2) + ` COLLATE "C"` + dir
	}
	return "(" + o.SQL + `)::text COLLATE "C"` + dir + nulls
}

// sqliteTime parses the time strings SQLite's date functions accept
// (YYYY-MM-DD with an optional [ T]HH:MM[:SS[.fff]] and Z) into a
// timestamp, NULL for anything else. Days past the end of the month roll
// over as in SQLite. Not supported (NULL): julian day numbers, time-only
// values, time zone offsets, the year 0000.
func sqliteTime(text string) string {
	const re = `'^\s*(?!0000)(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(?:[ T]([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d(?:\.\d+)?))?)?\s*[zZ]?\s*$'`
	return "(SELECT make_timestamp(__m[1]::int, __m[2]::int, 1, 0, 0, 0) + (__m[3]::int - 1) * interval '1 day'" +
		" + COALESCE(__m[4]::int, 0) * interval '1 hour' + COALESCE(__m[5]::int, 0) * interval '1 minute'" +
		" + COALESCE(__m[6]::float8, 0) * interval '1 second' FROM regexp_match(" + text + ", " + re + ") AS __m)"
}

var modifierRe = regexp.MustCompile(`^([-+]?[0-9]+(?:\.[0-9]+)?) +(day|hour|minute|second|month|year)s?$`)

// sqliteModifier applies one strftime modifier to the timestamp ts: ±N
// days/hours/minutes/seconds/months/years (months and years keep the day,
// which rolls over into the next month as in SQLite) and "start of
// day/month/year". ok is false for any other modifier.
func sqliteModifier(ts, mod string) (string, bool) {
	mod = strings.ToLower(strings.TrimSpace(mod))
	switch mod {
	case "start of day", "start of month", "start of year":
		return "date_trunc('" + strings.TrimPrefix(mod, "start of ") + "', " + ts + ")", true
	}
	m := modifierRe.FindStringSubmatch(mod)
	if m == nil {
		return "", false
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return "", false
	}
	num := strconv.FormatFloat(n, 'f', -1, 64)
	switch m[2] {
	case "month", "year":
		if n != float64(int64(n)) {
			return "", false
		}
		if m[2] == "year" {
			num = strconv.FormatInt(int64(n)*12, 10)
		}
		return once(ts, func(v string) string {
			return "(date_trunc('month', " + v + ") + " + num + " * interval '1 month' + (" + v + " - date_trunc('month', " + v + ")))"
		}), true
	}
	return "(" + ts + " + " + num + " * interval '1 " + m[2] + "')", true
}

// strftimeSpecs renders SQLite strftime specifiers from the timestamp v.
var strftimeSpecs = []struct {
	spec string
	sql  func(v string) string
}{
	{"%d", func(v string) string { return "to_char(" + v + ", 'DD')" }},
	{"%e", func(v string) string { return "lpad(extract(day from " + v + ")::int::text, 2, ' ')" }},
	{"%f", func(v string) string { return "to_char(" + v + ", 'SS.MS')" }},
	{"%F", func(v string) string { return "to_char(" + v + ", 'YYYY-MM-DD')" }},
	{"%H", func(v string) string { return "to_char(" + v + ", 'HH24')" }},
	{"%j", func(v string) string { return "to_char(" + v + ", 'DDD')" }},
	{"%k", func(v string) string { return "lpad(extract(hour from " + v + ")::int::text, 2, ' ')" }},
	{"%m", func(v string) string { return "to_char(" + v + ", 'MM')" }},
	{"%M", func(v string) string { return "to_char(" + v + ", 'MI')" }},
	{"%R", func(v string) string { return "to_char(" + v + ", 'HH24:MI')" }},
	{"%s", func(v string) string { return "floor(extract(epoch from " + v + "))::bigint::text" }},
	{"%S", func(v string) string { return "to_char(" + v + ", 'SS')" }},
	{"%T", func(v string) string { return "to_char(" + v + ", 'HH24:MI:SS')" }},
	{"%u", func(v string) string { return "extract(isodow from " + v + ")::int::text" }},
	{"%w", func(v string) string { return "extract(dow from " + v + ")::int::text" }},
	// Weeks start on Monday; days before the first Monday are week 00.
	{"%W", func(v string) string {
		return "lpad(((extract(doy from " + v + ")::int + 7 - extract(isodow from " + v + ")::int) / 7)::text, 2, '0')"
	}},
	{"%Y", func(v string) string { return "to_char(" + v + ", 'YYYY')" }},
}

// Strftime formats like SQLite's strftime. The format is a bind value, so
// the specifiers are replaced in SQL: %% first becomes chr(1), then each
// specifier its value; a % left over is a specifier PostgreSQL does not
// know, which makes the result empty (SQLite's NULL for a bad format). Any
// modifier sqliteModifier does not know also gives an empty result.
func (postgresDialect) Strftime(format, time string, _, modifiers []string) string {
	ts := sqliteTime("(" + time + ")::text")
	for _, m := range modifiers {
		var ok bool
		if ts, ok = sqliteModifier(ts, m); !ok {
			return "''"
		}
	}
	return "COALESCE(" + once(ts, func(v string) string {
		f := "replace((" + format + ")::text, '%%', chr(1))"
		for _, s := range strftimeSpecs {
			f = "replace(" + f + ", '" + s.spec + "', " + s.sql(v) + ")"
		}
		return once(f, func(r string) string {
			return "(CASE WHEN strpos(" + r + ", '%') = 0 THEN replace(" + r + ", chr(1), '%') END)"
		})
	}) + ", '')"
}
