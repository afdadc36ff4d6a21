package filter

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/strata-run/strata"
)

// Env is the context a filter is compiled or evaluated in.
type Env struct {
	// Dialect builds the SQL; nil means SQLite.
	Dialect Dialect
	// Collection is the collection being filtered.
	Collection *strata.Collection
	// Alias is the SQL alias (or table name) of the collection's row in the
	// outer query; "" means the collection name.
	Alias string
	// Schema resolves relations, back-relations and @collection.
	Schema strata.Schema
	// Request is what @request.* resolves to; nil is a guest with an empty body.
	Request *strata.RequestInfo
	// Restricted marks a client-supplied filter or sort (API.md §5.3):
	// @collection/@request are forbidden (EForbidden), hidden fields and
	// traversal into collections with a nil ListRule are invalid, joined
	// rows must pass their collection's ListRule, and an auth collection's
	// email only matches rows with emailVisibility.
	Restricted bool
	// Now is the time of @now and the other macros; zero means time.Now().
	Now time.Time
	// Stored is the stored record for :changed in Eval (nil on create).
	Stored *strata.Record
}

func (env *Env) dialect() Dialect {
	if env.Dialect == nil {
		return SQLite
	}
	return env.Dialect
}

func (env *Env) alias() string {
	if env.Alias != "" {
		return env.Alias
	}
	return env.Collection.Name
}

func (env *Env) now() time.Time {
	if env.Now.IsZero() {
		return time.Now().UTC()
	}
	return env.Now.UTC()
}

// ErrNeedsStore is returned by Eval when the expression needs rows other
// than the record itself (relation traversal beyond .id of a single
// relation, back-relations, @collection, deep @request.auth paths, strftime
// with modifiers): the caller must run the compiled SQL instead.
var ErrNeedsStore = errors.New("filter: expression needs the store")

func invalid(format string, args ...any) error {
	return &strata.Error{Code: strata.EInvalid, Message: fmt.Sprintf(format, args...)}
}

// forbidden is the 403 for a client filter naming a superuser-only prefix
// ("@collection." or "@request.").
func forbidden(prefix string) error {
	return &strata.Error{Code: strata.EForbidden, Message: "Only superusers can filter by " + prefix + "."}
}

// Compile compiles e to a boolean SQL expression usable in a WHERE clause,
// appending bind values to args. Fields are columns of env.Alias; relations,
// back-relations and @collection become correlated (NOT) EXISTS or scalar
// subqueries, so the outer query never needs DISTINCT. Unknown fields are
// EInvalid; see Env.Restricted for client filters.
//
// To validate a rule when a collection is saved, compile it unrestricted
// with a nil Request and a throwaway Args (see Validate).
func Compile(e Expr, env *Env, args *Args) (string, error) {
	if env == nil || env.Collection == nil {
		return "", errors.New("filter: Compile needs an Env with a Collection")
	}
	if args.Dialect == nil {
		args.Dialect = env.dialect()
	}
	c := newCompiler(env, args, new(int), 0)
	return c.expr(e)
}

// Validate checks that rule parses and compiles against c (unrestricted,
// as a guest): what the service runs when a collection is saved. An empty
// rule is valid.
func Validate(rule string, c *strata.Collection, schema strata.Schema) error {
	if strings.TrimSpace(rule) == "" {
		return nil
	}
	e, err := ParseCached(rule)
	if err != nil {
		return err
	}
	_, err = Compile(e, &Env{Collection: c, Schema: schema}, &Args{})
	return err
}

type compiler struct {
	env     *Env
	d       Dialect
	args    *Args
	counter *int              // shared with nested rule compilers: unique aliases
	aliases map[string]string // path key → alias, so merged chains share joins
	depth   int
}

func newCompiler(env *Env, args *Args, counter *int, depth int) *compiler {
	return &compiler{env: env, d: env.dialect(), args: args, counter: counter, aliases: map[string]string{}, depth: depth}
}

func (c *compiler) newAlias(prefix string) string {
	*c.counter++
	return prefix + strconv.Itoa(*c.counter)
}

func (c *compiler) aliasFor(key, prefix string) string {
	if a, ok := c.aliases[key]; ok {
		return a
	}
	a := c.newAlias(prefix)
	c.aliases[key] = a
	return a
}

func (c *compiler) col(alias, name string) string { return c.d.Quote(alias) + "." + c.d.Quote(name) }

// fromItem is one table of a multi-valued chain (rendered as FROM/JOIN).
type fromItem struct {
	key   string // canonical path: items with equal keys are the same join
	table string // table expression with alias
	cond  string // join condition, "" for none
	left  bool   // LEFT JOIN (single relation hops after the first item)
	multi bool   // may yield several rows per outer row
	merge bool   // may be shared with other comparisons of an && chain
}

// value is a compiled operand.
type value struct {
	sql    string
	from   []fromItem // non-empty: sql is evaluated per row of this chain
	strict bool       // json / function results compare with IS
	lit    bool       // compile-time constant (literal, macro, @request.*)
	litVal any
	field  bool     // not a literal (for ~ wrapping)
	guard  string   // condition the row must meet for any comparison to hold
	kind   Kind     // SQL type class, for dialects without type affinity
	aff    Affinity // SQLite affinity, for dialects that emulate it
	// listItem marks an item of an @request list: a JSON scalar that = and
	// != treat as text (NULL and '' alike).
	listItem bool
}

// textItem is v with an @request list item typed as text, the kind = and
// != decide on.
func (v value) textItem() value {
	if v.listItem {
		v.kind = KindText
	}
	return v
}

func (v value) operand() SQLOperand {
	o := SQLOperand{SQL: v.sql, Kind: v.kind, Aff: v.aff}
	if s, ok := v.litVal.(string); ok && v.lit {
		o.Text, o.IsText = s, true
	}
	return o
}

func (v value) multi() bool {
	for _, it := range v.from {
		if it.multi {
			return true
		}
	}
	return false
}

func mergeKey(items []fromItem) string {
	var keys []string
	for _, it := range items {
		if !it.merge {
			return ""
		}
		if it.multi {
			keys = append(keys, it.key)
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, "|")
}

func unionFrom(a, b []fromItem) []fromItem {
	out := append([]fromItem(nil), a...)
	seen := map[string]bool{}
	for _, it := range a {
		seen[it.key] = true
	}
	for _, it := range b {
		if !seen[it.key] {
			out = append(out, it)
			seen[it.key] = true
		}
	}
	return out
}

func renderFrom(items []fromItem) (from string, where []string) {
	var b strings.Builder
	for i, it := range items {
		if i == 0 {
			b.WriteString(" FROM " + it.table)
			if it.cond != "" {
				where = append(where, it.cond)
			}
			continue
		}
		if it.left {
			b.WriteString(" LEFT")
		}
		cond := it.cond
		if cond == "" {
			cond = "1=1"
		}
		b.WriteString(" JOIN " + it.table + " ON " + cond)
	}
	return b.String(), where
}

func exists(items []fromItem, conds ...string) string {
	from, where := renderFrom(items)
	where = append(where, conds...)
	s := "EXISTS (SELECT 1" + from
	if len(where) > 0 {
		s += " WHERE " + strings.Join(where, " AND ")
	}
	return s + ")"
}

// scalar turns a chain of single-relation hops into a scalar subquery.
func (c *compiler) scalar(v value) value {
	if len(v.from) == 0 || v.multi() {
		return v
	}
	from, where := renderFrom(v.from)
	if v.guard != "" {
		where = append(where, v.guard)
		v.guard = ""
	}
	s := "(SELECT " + v.sql + from
	if len(where) > 0 {
		s += " WHERE " + strings.Join(where, " AND ")
	}
	v.sql = s + " LIMIT 1)"
	v.from = nil
	return v
}

func (c *compiler) expr(e Expr) (string, error) {
	switch e := e.(type) {
	case *Logical:
		if e.Op == Or {
			l, err := c.expr(e.Left)
			if err != nil {
				return "", err
			}
			r, err := c.expr(e.Right)
			if err != nil {
				return "", err
			}
			return "(" + l + " OR " + r + ")", nil
		}
		return c.and(e)
	case *Compare:
		p, err := c.compare(e)
		if err != nil {
			return "", err
		}
		return p.finish(), nil
	}
	return "", invalid("Invalid filter expression.")
}

func flattenAnd(e Expr, out []Expr) []Expr {
	if l, ok := e.(*Logical); ok && l.Op == And {
		return flattenAnd(l.Right, flattenAnd(l.Left, out))
	}
	return append(out, e)
}

// and compiles an && chain. Any-of comparisons through the same relation
// chain share one EXISTS so they must hold on the same joined row, as
// PocketBase's shared joins do (@collection.m.user ?= x && @collection.m.team ?= y).
func (c *compiler) and(e *Logical) (string, error) {
	var parts []string
	groups := map[string]int{} // merge key → index in partials
	var partials []*partial
	for _, sub := range flattenAnd(e, nil) {
		cmp, ok := sub.(*Compare)
		if !ok {
			s, err := c.expr(sub)
			if err != nil {
				return "", err
			}
			partials = append(partials, &partial{done: s})
			continue
		}
		p, err := c.compare(cmp)
		if err != nil {
			return "", err
		}
		if p.any && p.key != "" {
			if i, ok := groups[p.key]; ok {
				g := partials[i]
				g.from = unionFrom(g.from, p.from)
				g.cond = "(" + g.cond + " AND " + p.cond + ")"
				continue
			}
			groups[p.key] = len(partials)
		}
		partials = append(partials, p)
	}
	for _, p := range partials {
		parts = append(parts, p.finish())
	}
	return "(" + strings.Join(parts, " AND ") + ")", nil
}

// partial is a compiled comparison before its multi-valued chain (if any)
// is wrapped in EXISTS.
type partial struct {
	done string
	cond string
	from []fromItem
	any  bool
	key  string
}

func (p *partial) finish() string {
	if p.done != "" {
		return p.done
	}
	if len(p.from) == 0 {
		return p.cond
	}
	if p.any {
		return exists(p.from, p.cond)
	}
	// Every row must match, and at least one must exist. A NULL comparison
	// counts as a mismatch.
	return "(" + exists(p.from) + " AND NOT " + exists(p.from, "NOT COALESCE("+p.cond+", FALSE)") + ")"
}

func (c *compiler) compare(cmp *Compare) (*partial, error) {
	a, err := c.operand(cmp.Left)
	if err != nil {
		return nil, err
	}
	b, err := c.operand(cmp.Right)
	if err != nil {
		return nil, err
	}
	a, b = c.scalar(a), c.scalar(b)
	cond := c.cmpSQL(cmp.BaseOp(), a, b)
	p := &partial{cond: cond, any: cmp.Any()}
	if len(a.from) > 0 || len(b.from) > 0 {
		p.from = unionFrom(a.from, b.from)
		p.key = mergeKey(p.from)
	}
	return p, nil
}

func isEmptyLit(v value) bool {
	if !v.lit {
		return false
	}
	s, ok := v.litVal.(string)
	return v.litVal == nil || ok && s == ""
}

func (c *compiler) cmpSQL(op string, a, b value) string {
	s := c.cmpCore(op, a, b)
	var guards []string
	for _, g := range []string{a.guard, b.guard} {
		if g != "" {
			guards = append(guards, g)
		}
	}
	if len(guards) > 0 {
		s = "(" + strings.Join(guards, " AND ") + " AND " + s + ")"
	}
	return s
}

// cmp renders one SQL comparison with SQLite's semantics (Dialect.Compare).
func (c *compiler) cmp(op string, a, b value) string {
	return c.d.Compare(op, a.operand(), b.operand())
}

func (c *compiler) cmpCore(op string, a, b value) string {
	switch op {
	case "=", "!=":
		neg := op == "!="
		if a.strict || b.strict {
			if neg {
				return c.cmp("IS NOT", a, b)
			}
			return c.cmp("IS", a, b)
		}
		if isEmptyLit(b) {
			a, b = b, a
		}
		if isEmptyLit(a) {
			t := c.d.Coerce(b.sql, b.kind, KindText)
			if neg {
				return "(" + t + " IS NOT NULL AND " + t + " != '')"
			}
			return "(" + t + " IS NULL OR " + t + " = '')"
		}
		if a.lit && a.litVal != nil || b.lit && b.litVal != nil {
			if neg {
				return c.cmp("IS NOT", a, b)
			}
			return c.cmp("=", a, b)
		}
		eq := c.cmp("IS", a, b)
		if ua, _ := c.unify(a.textItem(), b.textItem()); ua.kind == KindText || ua.kind == KindAny {
			// NULL and '' are alike (a missing relation reads as "").
			ta, tb := c.d.Coerce(a.sql, a.kind, KindText), c.d.Coerce(b.sql, b.kind, KindText)
			eq = "(" + eq + " OR (COALESCE(" + ta + ", '') = '' AND COALESCE(" + tb + ", '') = ''))"
		}
		if neg {
			return "(NOT " + eq + ")"
		}
		return eq
	case ">", ">=", "<", "<=":
		return c.cmp(op, a, b)
	case "~", "!~":
		// LIKE converts both sides to text without affinity rules.
		var pattern string
		if b.lit {
			if b.litVal == nil {
				pattern = "NULL"
			} else {
				p := likePattern(textOf(b.litVal))
				if danglingEscape(p) {
					// SQLite's LIKE never matches such a pattern;
					// PostgreSQL's rejects it.
					if op == "!~" {
						return "(" + c.d.Coerce(a.sql, a.kind, KindText) + " IS NOT NULL)"
					}
					return "FALSE"
				}
				pattern = c.args.Add(p)
			}
		} else {
			pattern = c.d.Concat("'%'", c.d.Coerce(b.sql, b.kind, KindText), "'%'")
		}
		return c.d.Like(c.d.Coerce(a.sql, a.kind, KindText), pattern, op == "!~")
	}
	return "FALSE"
}

// unify brings a and b to one kind, roughly following SQLite's affinity
// rules: a JSON value compares as JSON, a bool column with a number as a
// number, and a number with text as a number when the number is a column
// (numeric affinity), as text when only the text is one. Comparisons
// themselves go through Dialect.Compare, which has the exact rules; the
// kind only decides whether = treats NULL and the empty string alike.
func (c *compiler) unify(a, b value) (value, value) {
	if a.kind == KindJSONDoc {
		a.sql, a.kind = c.d.Coerce(a.sql, KindJSONDoc, KindText), KindText
	}
	if b.kind == KindJSONDoc {
		b.sql, b.kind = c.d.Coerce(b.sql, KindJSONDoc, KindText), KindText
	}
	if a.kind == b.kind || a.kind == KindAny || b.kind == KindAny {
		return a, b
	}
	var to Kind
	switch {
	case a.kind == KindJSON || b.kind == KindJSON:
		to = KindJSON
	case a.kind == KindBool || b.kind == KindBool:
		to = KindNumber
	case a.kind == KindNumber && !a.lit, b.kind == KindNumber && !b.lit:
		to = KindNumber
	case a.kind == KindText && !a.lit, b.kind == KindText && !b.lit:
		to = KindText
	default:
		to = KindNumber
	}
	a.sql, a.kind = c.d.Coerce(a.sql, a.kind, to), to
	b.sql, b.kind = c.d.Coerce(b.sql, b.kind, to), to
	return a, b
}

// likePattern turns the literal right side of ~ into a LIKE pattern: text
// without an unescaped % is escaped and wrapped as "contains".
func likePattern(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if s[i] == '%' {
			return s
		}
	}
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}

// danglingEscape reports whether a LIKE pattern ends with an unpaired '\'.
func danglingEscape(p string) bool {
	n := len(p) - len(strings.TrimRight(p, `\`))
	return n%2 == 1
}

// textOf renders a scalar the way SQLite converts it to text.
func textOf(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return formatReal(v)
	}
	return ""
}

// formatReal mimics SQLite's REAL to TEXT conversion: 15 significant
// digits when that round-trips, else 17, always with a decimal point.
func formatReal(f float64) string {
	if math.IsInf(f, 1) {
		return "Inf"
	}
	if math.IsInf(f, -1) {
		return "-Inf"
	}
	s := strconv.FormatFloat(f, 'g', 15, 64)
	if back, err := strconv.ParseFloat(s, 64); err != nil || back != f {
		s = strconv.FormatFloat(f, 'g', 17, 64)
	}
	if strings.ContainsAny(s, "e") {
		mant, exp, _ := strings.Cut(s, "e")
		if !strings.Contains(mant, ".") {
			mant += ".0"
		}
		return mant + "e" + exp
	}
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

func (c *compiler) literal(v any) value {
	if v == nil {
		return value{sql: "NULL", lit: true}
	}
	return value{sql: c.args.Add(v), lit: true, litVal: v, kind: kindOf(v)}
}

// kindOf is the Kind of a bound Go value.
func kindOf(v any) Kind {
	switch v.(type) {
	case string:
		return KindText
	case int, int64, float64:
		return KindNumber
	case bool:
		return KindBool
	}
	return KindAny
}

// numberValue converts a number literal to int64 when integral.
func numberValue(raw string) any {
	if i, err := strconv.ParseInt(raw, 10, 64); err == nil {
		return i
	}
	f, _ := strconv.ParseFloat(raw, 64)
	return normNumber(f)
}

func normNumber(f float64) any {
	if f == math.Trunc(f) && math.Abs(f) < 1<<62 {
		return int64(f)
	}
	return f
}

func (c *compiler) operand(o Operand) (value, error) {
	switch o := o.(type) {
	case *Number:
		return c.literal(numberValue(o.Raw)), nil
	case *Text:
		return c.literal(o.Value), nil
	case *Call:
		return c.call(o)
	case *Ident:
		return c.ident(o)
	}
	return value{}, invalid("Invalid filter operand.")
}

func (c *compiler) scalarOperand(o Operand) (value, error) {
	v, err := c.operand(o)
	if err != nil {
		return v, err
	}
	v = c.scalar(v)
	if len(v.from) > 0 {
		return v, invalid("Invalid filter: function arguments must be single-valued.")
	}
	return v, nil
}

func (c *compiler) call(o *Call) (value, error) {
	switch o.Name {
	case "geoDistance":
		if len(o.Args) != 4 {
			return value{}, invalid("Invalid filter: geoDistance expects 4 arguments.")
		}
		var s [4]string
		for i, a := range o.Args {
			v, err := c.scalarOperand(a)
			if err != nil {
				return value{}, err
			}
			s[i] = c.d.Coerce(v.sql, v.kind, KindNumber)
		}
		return value{sql: c.d.GeoDistance(s[0], s[1], s[2], s[3]), strict: true, field: true, kind: KindNumber}, nil
	case "strftime":
		if len(o.Args) < 1 {
			return value{}, invalid("Invalid filter: strftime expects a format.")
		}
		format, ok := o.Args[0].(*Text)
		if !ok {
			return value{}, invalid("Invalid filter: strftime format must be text.")
		}
		var t string
		if len(o.Args) > 1 {
			v, err := c.scalarOperand(o.Args[1])
			if err != nil {
				return value{}, err
			}
			t = c.d.Coerce(v.sql, v.kind, KindText)
		} else {
			t = c.args.Add(strata.FormatDate(c.env.now()))
		}
		var mods, vals []string
		for _, a := range o.Args[min(2, len(o.Args)):] {
			m, ok := a.(*Text)
			if !ok {
				return value{}, invalid("Invalid filter: strftime modifiers must be text.")
			}
			mods, vals = append(mods, c.args.Add(m.Value)), append(vals, m.Value)
		}
		return value{sql: c.d.Strftime(c.args.Add(format.Value), t, mods, vals), strict: true, field: true, kind: KindText}, nil
	}
	return value{}, invalid("Invalid filter: unknown function %q.", o.Name)
}

// Modifiers of identifiers.
const (
	modIsset   = "isset"
	modChanged = "changed"
	modLength  = "length"
	modEach    = "each"
	modLower   = "lower"
)

// splitModifier separates a trailing :modifier from an identifier.
func splitModifier(name string) (string, string, error) {
	i := strings.LastIndexByte(name, ':')
	if i < 0 || strings.Contains(name[i+1:], ".") {
		return name, "", nil
	}
	switch m := name[i+1:]; m {
	case modIsset, modChanged, modLength, modEach, modLower:
		return name[:i], m, nil
	default:
		return "", "", invalid("Invalid filter: unknown modifier %q.", m)
	}
}

func (c *compiler) ident(o *Ident) (value, error) {
	name, mod, err := splitModifier(o.Name)
	if err != nil {
		return value{}, err
	}
	switch strings.ToLower(name) {
	case "null":
		return c.literal(nil), nil
	case "true":
		return c.literal(int64(1)), nil
	case "false":
		return c.literal(int64(0)), nil
	}
	switch {
	case strings.HasPrefix(name, "@request.") || name == "@request":
		if c.env.Restricted {
			return value{}, forbidden("@request")
		}
		return c.request(strings.Split(strings.TrimPrefix(name, "@request."), "."), mod)
	case strings.HasPrefix(name, "@collection."):
		if c.env.Restricted {
			return value{}, forbidden("@collection")
		}
		return c.collection(strings.TrimPrefix(name, "@collection."), mod)
	case strings.HasPrefix(name, "@"), strings.HasPrefix(name, "#"):
		v, ok := macro(name, c.env.now())
		if !ok || mod != "" && mod != modLower {
			return value{}, invalid("Invalid filter: unknown identifier %q.", o.Name)
		}
		lv := c.literal(v)
		if mod == modLower {
			lv = value{sql: c.d.Lower(lv.sql), kind: KindText}
		}
		return lv, nil
	}
	if mod == modIsset || mod == modChanged {
		return value{}, invalid("Invalid filter: :%s only applies to @request fields.", mod)
	}
	return c.path(c.env.Collection, c.env.alias(), strings.Split(name, "."), mod, nil, "", 0)
}

// macro returns the value of a date macro (API.md §6.3).
func macro(name string, now time.Time) (any, bool) {
	now = now.UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	year := time.Date(now.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	end := func(t time.Time) string { return strata.FormatDate(t.Add(-time.Millisecond)) }
	switch name {
	case "@now":
		return strata.FormatDate(now), true
	case "@yesterday":
		return strata.FormatDate(now.AddDate(0, 0, -1)), true
	case "@tomorrow":
		return strata.FormatDate(now.AddDate(0, 0, 1)), true
	case "@todayStart":
		return strata.FormatDate(day), true
	case "@todayEnd":
		return end(day.AddDate(0, 0, 1)), true
	case "@monthStart":
		return strata.FormatDate(month), true
	case "@monthEnd":
		return end(month.AddDate(0, 1, 0)), true
	case "@yearStart":
		return strata.FormatDate(year), true
	case "@yearEnd":
		return end(year.AddDate(1, 0, 0)), true
	case "@second":
		return int64(now.Second()), true
	case "@minute":
		return int64(now.Minute()), true
	case "@hour":
		return int64(now.Hour()), true
	case "@day":
		return int64(now.Day()), true
	case "@month":
		return int64(now.Month()), true
	case "@weekday":
		return int64(now.Weekday()), true
	case "@year":
		return int64(now.Year()), true
	}
	return nil, false
}

func (c *compiler) schemaCollection(idOrName string) *strata.Collection {
	if c.env.Schema == nil {
		return nil
	}
	return c.env.Schema.Collection(idOrName)
}

// ruleCond applies target's ListRule to rows joined under alias when the
// filter is restricted. Rules compile unrestricted, so this cannot recurse
// further than one level; depth is a backstop.
func (c *compiler) ruleCond(target *strata.Collection, alias string) (string, error) {
	if !c.env.Restricted {
		return "", nil
	}
	if target.ListRule == nil {
		return "", invalid("Invalid filter: collection %q cannot be filtered by a client.", target.Name)
	}
	if strings.TrimSpace(*target.ListRule) == "" {
		return "", nil
	}
	if c.depth > 4 {
		return "FALSE", nil
	}
	e, err := ParseCached(*target.ListRule)
	if err != nil {
		return "", err
	}
	env := &Env{Dialect: c.d, Collection: target, Alias: alias, Schema: c.env.Schema, Request: c.env.Request, Now: c.env.Now}
	sub := newCompiler(env, c.args, c.counter, c.depth+1)
	return sub.expr(e)
}

// path resolves a field path of coll, whose row is aliased alias, after the
// chain items from. key is the canonical path so far (for join sharing).
func (c *compiler) path(coll *strata.Collection, alias string, segs []string, mod string, from []fromItem, key string, hops int) (value, error) {
	name, rest := segs[0], segs[1:]
	f := coll.Field(name)
	if f == nil {
		if name == "id" {
			return value{}, invalid("Invalid filter: collection %q has no id field.", coll.Name)
		}
		if back, ok := c.backRelation(coll, name); ok {
			return c.viaBack(coll, alias, back, name, rest, mod, from, key, hops)
		}
		return value{}, invalid("Invalid filter: unknown field %q.", strings.Join(segs, "."))
	}
	if c.env.Restricted && f.Hidden {
		return value{}, invalid("Invalid filter: unknown field %q.", strings.Join(segs, "."))
	}
	colSQL := c.col(alias, f.Name)
	if len(rest) == 0 {
		v := value{sql: colSQL, from: from, field: true, kind: fieldKind(f), aff: fieldAffinity(f)}
		if c.env.Restricted && coll.IsAuth() && f.Name == "email" {
			v.guard = c.col(alias, "emailVisibility") + " IS TRUE"
		}
		switch {
		case f.Type == strata.FieldJSON || f.Type == strata.FieldGeoPoint:
			v.sql, v.strict, v.kind, v.aff = c.d.JSONExtract(colSQL, nil), true, KindJSON, AffNone
		}
		switch mod {
		case modLower:
			v.sql, v.kind, v.aff = c.d.Lower(c.d.Coerce(v.sql, v.kind, KindText)), KindText, AffNone
		case modLength:
			if !f.IsMultiple() {
				return value{}, invalid("Invalid filter: :length needs a multiple field, %q is not.", f.Name)
			}
			v.sql, v.kind, v.aff = c.d.JSONArrayLength(colSQL), KindNumber, AffNone
		case modEach:
			if !f.IsMultiple() {
				return value{}, invalid("Invalid filter: :each needs a multiple field, %q is not.", f.Name)
			}
			ja := c.newAlias("__e")
			v.from = append(append([]fromItem(nil), from...), fromItem{key: ja, table: c.d.JSONEach(colSQL, c.d.Quote(ja)), multi: true})
			v.sql, v.kind, v.aff = c.d.Quote(ja)+".value", KindText, AffBlob
		}
		return v, nil
	}
	switch f.Type {
	case strata.FieldJSON, strata.FieldGeoPoint:
		if mod != "" && mod != modLower {
			return value{}, invalid("Invalid filter: :%s does not apply to JSON paths.", mod)
		}
		v := value{sql: c.d.JSONExtract(colSQL, rest), from: from, strict: true, field: true, kind: KindJSON}
		if mod == modLower {
			v.sql, v.kind = c.d.Lower(c.d.Coerce(v.sql, KindJSON, KindText)), KindText
		}
		return v, nil
	case strata.FieldRelation:
	default:
		return value{}, invalid("Invalid filter: field %q has no sub-fields.", f.Name)
	}
	if !f.IsMultiple() && len(rest) == 1 && rest[0] == "id" && (mod == "" || mod == modLower) {
		v := value{sql: colSQL, from: from, field: true, kind: KindText, aff: AffText}
		if mod == modLower {
			v.sql, v.aff = c.d.Lower(v.sql), AffNone
		}
		return v, nil
	}
	target := c.schemaCollection(f.CollectionID)
	if target == nil {
		return value{}, invalid("Invalid filter: relation %q points to a missing collection.", f.Name)
	}
	return c.relHop(target, colSQL, f.IsMultiple(), key+"."+f.Name, rest, mod, from, hops)
}

// relHop joins target rows whose id is in idExpr (a single id, or a JSON
// array of ids when multiple) and resolves rest on them.
func (c *compiler) relHop(target *strata.Collection, idExpr string, multiple bool, key string, rest []string, mod string, from []fromItem, hops int) (value, error) {
	if hops+1 > MaxRelationHops {
		return value{}, invalid("Invalid filter: more than %d relation hops.", MaxRelationHops)
	}
	ta := c.aliasFor(key, "__r")
	rule, err := c.ruleCond(target, ta)
	if err != nil {
		return value{}, err
	}
	items := append([]fromItem(nil), from...)
	table := c.d.Quote(target.Name) + " " + c.d.Quote(ta)
	if multiple {
		ja := c.aliasFor(key+"#each", "__j")
		items = append(items, fromItem{key: key + "#each", table: c.d.JSONEach(idExpr, c.d.Quote(ja)), multi: true, merge: true})
		idExpr = c.d.Quote(ja) + ".value"
	}
	cond := c.col(ta, "id") + " = " + idExpr
	if rule != "" {
		cond += " AND (" + rule + ")"
	}
	items = append(items, fromItem{key: key, table: table, cond: cond, left: len(items) > 0 && !multiple, merge: true})
	return c.path(target, ta, rest, mod, items, key, hops+1)
}

type backRel struct {
	coll  *strata.Collection
	field *strata.Field
}

// backRelation recognises <collection>_via_<relField> pointing at coll.
func (c *compiler) backRelation(coll *strata.Collection, name string) (backRel, bool) {
	for i := strings.LastIndex(name, "_via_"); i > 0; i = strings.LastIndex(name[:i], "_via_") {
		other := c.schemaCollection(name[:i])
		if other == nil {
			continue
		}
		f := other.Field(name[i+5:])
		if f == nil || f.Type != strata.FieldRelation || (f.CollectionID != coll.ID && f.CollectionID != coll.Name) {
			continue
		}
		return backRel{other, f}, true
	}
	return backRel{}, false
}

func (c *compiler) viaBack(coll *strata.Collection, alias string, back backRel, name string, rest []string, mod string, from []fromItem, key string, hops int) (value, error) {
	if len(rest) == 0 {
		return value{}, invalid("Invalid filter: back-relation %q needs a field.", name)
	}
	if hops+1 > MaxRelationHops {
		return value{}, invalid("Invalid filter: more than %d relation hops.", MaxRelationHops)
	}
	if c.env.Restricted && back.field.Hidden {
		return value{}, invalid("Invalid filter: unknown field %q.", name)
	}
	key += "." + name
	ta := c.aliasFor(key, "__b")
	rule, err := c.ruleCond(back.coll, ta)
	if err != nil {
		return value{}, err
	}
	ref, id := c.col(ta, back.field.Name), c.col(alias, "id")
	var cond string
	if back.field.IsMultiple() {
		ja := c.newAlias("__j")
		cond = "EXISTS (SELECT 1 FROM " + c.d.JSONEach(ref, c.d.Quote(ja)) + " WHERE " + c.d.Quote(ja) + ".value = " + id + ")"
	} else {
		cond = ref + " = " + id
	}
	if rule != "" {
		cond += " AND (" + rule + ")"
	}
	items := append(append([]fromItem(nil), from...), fromItem{key: key, table: c.d.Quote(back.coll.Name) + " " + c.d.Quote(ta), cond: cond, multi: true, merge: true})
	return c.path(back.coll, ta, rest, mod, items, key, hops+1)
}

func (c *compiler) collection(spec string, mod string) (value, error) {
	segs := strings.Split(spec, ".")
	if len(segs) < 2 {
		return value{}, invalid("Invalid filter: @collection needs a field.")
	}
	name, alias, _ := strings.Cut(segs[0], ":")
	coll := c.schemaCollection(name)
	if coll == nil {
		return value{}, invalid("Invalid filter: unknown collection %q.", name)
	}
	key := "@collection." + coll.ID + ":" + alias
	ta := c.aliasFor(key, "__c")
	items := []fromItem{{key: key, table: c.d.Quote(coll.Name) + " " + c.d.Quote(ta), multi: true, merge: true}}
	return c.path(coll, ta, segs[1:], mod, items, key, 0)
}

// request resolves @request.* at compile time: values become bind
// arguments; relation paths from auth or body ids become subqueries.
func (c *compiler) request(segs []string, mod string) (value, error) {
	r, err := resolveRequest(c.env, segs, mod)
	if err != nil {
		return value{}, err
	}
	switch {
	case r.changed != nil:
		f := r.changed
		fv, err := c.path(c.env.Collection, c.env.alias(), []string{f.Name}, "", nil, "", 0)
		if err != nil {
			return value{}, err
		}
		fv.guard = ""
		eq := c.cmpCore("=", fv, c.literal(r.v))
		return value{sql: "(CASE WHEN " + eq + " THEN 0 ELSE 1 END)", field: true, kind: KindNumber}, nil
	case r.rel != nil:
		target := c.schemaCollection(r.rel.CollectionID)
		if target == nil {
			return value{}, invalid("Invalid filter: relation %q points to a missing collection.", r.rel.Name)
		}
		var idExpr string
		if r.rel.IsMultiple() {
			idExpr = c.args.Add(jsonText(r.ids))
		} else {
			var id any
			if len(r.ids) > 0 {
				id = r.ids[0]
			}
			idExpr = c.literal(id).sql
		}
		return c.relHop(target, idExpr, r.rel.IsMultiple(), "@request."+r.relKey, r.rest, mod, nil, 0)
	case r.isList:
		ja := c.newAlias("__l")
		item := fromItem{key: ja, table: c.d.JSONElements(c.args.Add(jsonText(r.list)), c.d.Quote(ja)), multi: true}
		return value{sql: c.d.Quote(ja) + ".value", from: []fromItem{item}, field: true, kind: KindJSON, aff: AffBlob, listItem: true}, nil
	}
	v := c.literal(r.v)
	if mod == modLower {
		v = value{sql: c.d.Lower(v.sql), kind: KindText}
	}
	return v, nil
}

// fieldAffinity is the SQLite affinity of a field's column: NUMERIC for
// the declared types NUMERIC, BOOLEAN and JSON, TEXT for the rest.
func fieldAffinity(f *strata.Field) Affinity {
	switch {
	case f.IsMultiple(), f.Type == strata.FieldNumber, f.Type == strata.FieldBool,
		f.Type == strata.FieldJSON, f.Type == strata.FieldGeoPoint:
		return AffNumeric
	}
	return AffText
}

// fieldKind is the Kind of a field's column read as is.
func fieldKind(f *strata.Field) Kind {
	switch {
	case f.IsMultiple():
		return KindJSONDoc
	case f.Type == strata.FieldNumber:
		return KindNumber
	case f.Type == strata.FieldBool:
		return KindBool
	case f.Type == strata.FieldJSON || f.Type == strata.FieldGeoPoint:
		return KindJSONDoc
	}
	return KindText
}
