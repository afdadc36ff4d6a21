package filter

import (
	"errors"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/strata-run/strata"
)

// Eval evaluates e against rec in memory, with the same result the compiled
// SQL gives for rec's row (SQLite comparison and affinity rules included).
// It returns ErrNeedsStore when the expression needs other rows; see
// NeedsStore. env.Stored is the stored record for :changed (nil on create,
// when values are compared with the field's zero value).
func Eval(e Expr, env *Env, rec *strata.Record) (bool, error) {
	if env == nil || env.Collection == nil {
		return false, errors.New("filter: Eval needs an Env with a Collection")
	}
	ev := &evaluator{env: env, rec: rec, c: newCompiler(env, &Args{}, new(int), 0)}
	return ev.expr(e)
}

// NeedsStore reports whether e needs the store (other rows) to be decided,
// i.e. whether Eval would return ErrNeedsStore for some record. Invalid
// expressions report false; Compile reports their error.
func NeedsStore(e Expr, env *Env) bool {
	if env == nil || env.Collection == nil {
		return false
	}
	ev := &evaluator{env: env, rec: strata.NewRecord(env.Collection), c: newCompiler(env, &Args{}, new(int), 0)}
	need := false
	var walk func(Expr)
	walk = func(e Expr) {
		switch e := e.(type) {
		case *Logical:
			walk(e.Left)
			walk(e.Right)
		case *Compare:
			for _, o := range []Operand{e.Left, e.Right} {
				if _, err := ev.operand(o); errors.Is(err, ErrNeedsStore) {
					need = true
				}
			}
		}
	}
	walk(e)
	return need
}

type affinity byte

const (
	affNone affinity = iota
	affText
	affNum
	affBlob // a column without declared type, e.g. json_each's value
)

// sv is one SQL scalar: nil, int64, float64 or string, with the affinity
// SQLite gives its expression.
type sv struct {
	v   any
	aff affinity
}

// evVal mirrors the compiler's value.
type evVal struct {
	items  []sv // the values; several only when multi
	multi  bool
	strict bool
	lit    bool
	guard  bool // false: no comparison with it holds (email visibility)
}

func one(v any, aff affinity) evVal { return evVal{items: []sv{{v, aff}}, guard: true} }

type evaluator struct {
	env *Env
	rec *strata.Record
	c   *compiler // for schema helpers only
}

func (ev *evaluator) expr(e Expr) (bool, error) {
	switch e := e.(type) {
	case *Logical:
		l, err := ev.expr(e.Left)
		if err != nil {
			return false, err
		}
		if e.Op == And && !l || e.Op == Or && l {
			// Still resolve the right side so errors match Compile's.
			if _, err := ev.expr(e.Right); err != nil {
				return false, err
			}
			return l, nil
		}
		return ev.expr(e.Right)
	case *Compare:
		return ev.compare(e)
	}
	return false, invalid("Invalid filter expression.")
}

func (ev *evaluator) compare(cmp *Compare) (bool, error) {
	a, err := ev.operand(cmp.Left)
	if err != nil {
		return false, err
	}
	b, err := ev.operand(cmp.Right)
	if err != nil {
		return false, err
	}
	op := cmp.BaseOp()
	n, ok := 0, 0
	for _, x := range a.items {
		for _, y := range b.items {
			n++
			if a.guard && b.guard && cmpCore(op, a, x, b, y) {
				ok++
			}
		}
	}
	if !a.multi && !b.multi {
		return ok > 0, nil
	}
	if cmp.Any() {
		return ok > 0, nil
	}
	return n > 0 && ok == n, nil
}

func isEmpty(x sv) bool {
	s, isStr := x.v.(string)
	return x.v == nil || isStr && s == ""
}

func evEmptyLit(v evVal, x sv) bool { return v.lit && isEmpty(x) }

// cmpCore mirrors compiler.cmpCore; a NULL result is false.
func cmpCore(op string, a evVal, x sv, b evVal, y sv) bool {
	switch op {
	case "=", "!=":
		neg := op == "!="
		var eq bool
		switch {
		case a.strict || b.strict:
			eq = sqlIs(x, y)
		case evEmptyLit(a, x):
			eq = isEmpty(y)
		case evEmptyLit(b, y):
			eq = isEmpty(x)
		case a.lit || b.lit:
			if !neg {
				c, ok := sqlCompare(x, y)
				return ok && c == 0
			}
			eq = sqlIs(x, y)
		default:
			eq = sqlIs(x, y) || isEmpty(x) && isEmpty(y)
		}
		return eq != neg
	case ">", ">=", "<", "<=":
		c, ok := sqlCompare(x, y)
		if !ok {
			return false
		}
		switch op {
		case ">":
			return c > 0
		case ">=":
			return c >= 0
		case "<":
			return c < 0
		}
		return c <= 0
	case "~", "!~":
		if x.v == nil || y.v == nil {
			return false
		}
		pattern := textOf(y.v)
		if b.lit {
			pattern = likePattern(pattern)
		} else {
			pattern = "%" + pattern + "%"
		}
		return likeMatch(pattern, textOf(x.v)) != (op == "!~")
	}
	return false
}

func sqlIs(x, y sv) bool {
	if x.v == nil || y.v == nil {
		return x.v == nil && y.v == nil
	}
	c, _ := sqlCompare(x, y)
	return c == 0
}

var numRe = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

// toNumeric applies NUMERIC affinity to a text value that looks like a number.
func toNumeric(x sv) sv {
	s, ok := x.v.(string)
	if !ok {
		return x
	}
	t := strings.Trim(s, " \t\n\r\f\v")
	if !numRe.MatchString(t) {
		return x
	}
	if i, err := strconv.ParseInt(t, 10, 64); err == nil {
		return sv{i, x.aff}
	}
	// Out of range, SQLite converts to ±Inf or 0, as ParseFloat does.
	f, err := strconv.ParseFloat(t, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return x
	}
	return sv{f, x.aff}
}

func toText(x sv) sv {
	switch x.v.(type) {
	case int64, float64:
		return sv{textOf(x.v), x.aff}
	}
	return x
}

// sqlCompare compares like SQLite: affinity conversions first, then
// NULL < numbers < text (bytewise). ok is false when either is NULL.
func sqlCompare(x, y sv) (int, bool) {
	if x.v == nil || y.v == nil {
		return 0, false
	}
	switch {
	case x.aff == affNum && y.aff != affNum:
		y = toNumeric(y)
	case y.aff == affNum && x.aff != affNum:
		x = toNumeric(x)
	case x.aff == affText && y.aff == affNone:
		y = toText(y)
	case y.aff == affText && x.aff == affNone:
		x = toText(x)
	}
	xs, xText := x.v.(string)
	ys, yText := y.v.(string)
	switch {
	case xText && yText:
		return strings.Compare(xs, ys), true
	case xText:
		return 1, true
	case yText:
		return -1, true
	}
	xi, xInt := x.v.(int64)
	yi, yInt := y.v.(int64)
	if xInt && yInt {
		switch {
		case xi < yi:
			return -1, true
		case xi > yi:
			return 1, true
		}
		return 0, true
	}
	xf, yf := toFloat(x.v), toFloat(y.v)
	switch {
	case xf < yf:
		return -1, true
	case xf > yf:
		return 1, true
	}
	return 0, true
}

func toFloat(v any) float64 {
	switch v := v.(type) {
	case int64:
		return float64(v)
	case float64:
		return v
	}
	return 0
}

func lowerASCII(r rune) rune {
	if r >= 'A' && r <= 'Z' {
		return r + 32
	}
	return r
}

// likeMatch is SQLite's LIKE with ESCAPE '\': ASCII case-insensitive, _ one
// character, % any run, \x the literal x; a trailing lone \ never matches.
// Dynamic programming keeps it linear in len(pattern)*len(s).
func likeMatch(pattern, s string) bool {
	const anyRun, anyOne = -1, -2
	var toks []rune
	p := []rune(pattern)
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '%':
			toks = append(toks, anyRun)
		case '_':
			toks = append(toks, anyOne)
		case '\\':
			if i+1 >= len(p) {
				return false
			}
			i++
			toks = append(toks, lowerASCII(p[i]))
		default:
			toks = append(toks, lowerASCII(p[i]))
		}
	}
	t := []rune(s)
	// cur[j]: the tokens so far match t[:j].
	cur := make([]bool, len(t)+1)
	next := make([]bool, len(t)+1)
	cur[0] = true
	for _, tok := range toks {
		for j := range next {
			next[j] = false
		}
		for j := 0; j <= len(t); j++ {
			switch {
			case tok == anyRun:
				next[j] = cur[j] || j > 0 && next[j-1]
			case j == 0:
			case tok == anyOne:
				next[j] = cur[j-1]
			default:
				next[j] = cur[j-1] && lowerASCII(t[j-1]) == tok
			}
		}
		cur, next = next, cur
	}
	return cur[len(t)]
}

func (ev *evaluator) operand(o Operand) (evVal, error) {
	switch o := o.(type) {
	case *Number:
		v := one(numberValue(o.Raw), affNone)
		v.lit = true
		return v, nil
	case *Text:
		v := one(o.Value, affNone)
		v.lit = true
		return v, nil
	case *Call:
		return ev.call(o)
	case *Ident:
		return ev.ident(o)
	}
	return evVal{}, invalid("Invalid filter operand.")
}

func lowerText(x sv) sv {
	if x.v == nil {
		return sv{}
	}
	return sv{strings.Map(lowerASCII, textOf(x.v)), affNone}
}

func (ev *evaluator) ident(o *Ident) (evVal, error) {
	name, mod, err := splitModifier(o.Name)
	if err != nil {
		return evVal{}, err
	}
	lit := func(v any) evVal {
		r := one(v, affNone)
		r.lit = true
		return r
	}
	switch strings.ToLower(name) {
	case "null":
		return lit(nil), nil
	case "true":
		return lit(int64(1)), nil
	case "false":
		return lit(int64(0)), nil
	}
	switch {
	case strings.HasPrefix(name, "@request.") || name == "@request":
		if ev.env.Restricted {
			return evVal{}, forbidden("@request")
		}
		return ev.request(strings.Split(strings.TrimPrefix(name, "@request."), "."), mod)
	case strings.HasPrefix(name, "@collection."):
		if ev.env.Restricted {
			return evVal{}, forbidden("@collection")
		}
		if _, err := ev.c.collection(strings.TrimPrefix(name, "@collection."), mod); err != nil {
			return evVal{}, err
		}
		return evVal{}, ErrNeedsStore
	case strings.HasPrefix(name, "@"), strings.HasPrefix(name, "#"):
		v, ok := macro(name, ev.env.now())
		if !ok || mod != "" && mod != modLower {
			return evVal{}, invalid("Invalid filter: unknown identifier %q.", o.Name)
		}
		if mod == modLower {
			return one(lowerText(sv{v, affNone}).v, affNone), nil
		}
		return lit(v), nil
	}
	if mod == modIsset || mod == modChanged {
		return evVal{}, invalid("Invalid filter: :%s only applies to @request fields.", mod)
	}
	return ev.path(strings.Split(name, "."), mod)
}

func (ev *evaluator) request(segs []string, mod string) (evVal, error) {
	r, err := resolveRequest(ev.env, segs, mod)
	if err != nil {
		return evVal{}, err
	}
	switch {
	case r.changed != nil:
		f := r.changed
		stored := f.ZeroValue()
		if ev.env.Stored != nil {
			if v, ok := ev.env.Stored.Data[f.Name]; ok {
				stored = v
			}
		}
		fv := fieldValue(f, stored)
		body := one(r.v, affNone)
		body.lit = true
		changed := !cmpCore("=", fv, fv.items[0], body, body.items[0])
		return one(boolInt(changed), affNone), nil
	case r.rel != nil:
		if ev.c.schemaCollection(r.rel.CollectionID) == nil {
			return evVal{}, invalid("Invalid filter: relation %q points to a missing collection.", r.rel.Name)
		}
		return evVal{}, ErrNeedsStore
	case r.isList:
		v := evVal{multi: true, guard: true}
		for _, x := range r.list {
			v.items = append(v.items, sv{x, affBlob})
		}
		return v, nil
	}
	if mod == modLower {
		return one(lowerText(sv{r.v, affNone}).v, affNone), nil
	}
	v := one(r.v, affNone)
	v.lit = true
	return v, nil
}

// fieldValue is what the compiled SQL reads for field f holding data.
func fieldValue(f *strata.Field, data any) evVal {
	switch {
	case f.IsMultiple():
		return one(jsonText(idsOrEmptyList(data)), affNum)
	case f.Type == strata.FieldJSON || f.Type == strata.FieldGeoPoint:
		v := one(scalarize(data), affNone)
		v.strict = true
		return v
	case f.Type == strata.FieldNumber:
		return one(scalarize(numberOf(data)), affNum)
	case f.Type == strata.FieldBool:
		b, _ := data.(bool)
		return one(boolInt(b), affNum)
	}
	s, _ := data.(string)
	return one(s, affText)
}

func numberOf(v any) any {
	switch v.(type) {
	case float64, int, int64, float32:
		return v
	}
	return float64(0)
}

func idsOrEmptyList(v any) []string {
	ids := idsOf(v)
	if ids == nil {
		return []string{}
	}
	return ids
}

// jsonExtract mirrors SQLite's json_extract with the dialect's paths:
// all-digit segments index arrays, others are object keys.
func jsonExtract(v any, path []string) any {
	for _, p := range path {
		if p != "" && strings.Trim(p, "0123456789") == "" {
			i, err := strconv.Atoi(p)
			l, ok := listOf(v)
			if err != nil || !ok || i >= len(l) {
				return nil
			}
			switch x := v.(type) {
			case []any:
				v = x[i]
			case []string:
				v = x[i]
			}
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		if v, ok = m[p]; !ok {
			return nil
		}
	}
	return scalarize(v)
}

func (ev *evaluator) path(segs []string, mod string) (evVal, error) {
	coll := ev.env.Collection
	name, rest := segs[0], segs[1:]
	f := coll.Field(name)
	if f == nil {
		if name != "id" {
			if back, ok := ev.c.backRelation(coll, name); ok {
				if _, err := ev.c.viaBack(coll, ev.env.alias(), back, name, rest, mod, nil, "", 0); err != nil {
					return evVal{}, err
				}
				return evVal{}, ErrNeedsStore
			}
		}
		return evVal{}, invalid("Invalid filter: unknown field %q.", strings.Join(segs, "."))
	}
	if ev.env.Restricted && f.Hidden {
		return evVal{}, invalid("Invalid filter: unknown field %q.", strings.Join(segs, "."))
	}
	var data any
	if ev.rec != nil {
		data = ev.rec.Data[f.Name]
	}
	if len(rest) == 0 {
		v := fieldValue(f, data)
		if ev.env.Restricted && coll.IsAuth() && f.Name == "email" && ev.rec != nil {
			v.guard = ev.rec.Bool("emailVisibility")
		}
		switch mod {
		case modLower:
			v.items[0] = lowerText(v.items[0])
		case modLength:
			if !f.IsMultiple() {
				return evVal{}, invalid("Invalid filter: :length needs a multiple field, %q is not.", f.Name)
			}
			v.items[0] = sv{int64(len(idsOf(data))), affNone}
		case modEach:
			if !f.IsMultiple() {
				return evVal{}, invalid("Invalid filter: :each needs a multiple field, %q is not.", f.Name)
			}
			v.multi, v.items = true, nil
			for _, s := range idsOf(data) {
				v.items = append(v.items, sv{s, affBlob})
			}
		}
		return v, nil
	}
	switch f.Type {
	case strata.FieldJSON, strata.FieldGeoPoint:
		if mod != "" && mod != modLower {
			return evVal{}, invalid("Invalid filter: :%s does not apply to JSON paths.", mod)
		}
		v := one(jsonExtract(data, rest), affNone)
		v.strict = true
		if mod == modLower {
			v.items[0] = lowerText(v.items[0])
		}
		return v, nil
	case strata.FieldRelation:
	default:
		return evVal{}, invalid("Invalid filter: field %q has no sub-fields.", f.Name)
	}
	if !f.IsMultiple() && len(rest) == 1 && rest[0] == "id" && (mod == "" || mod == modLower) {
		v := fieldValue(f, data)
		if mod == modLower {
			v.items[0] = lowerText(v.items[0])
		}
		return v, nil
	}
	// Validate the path the same way Compile does, then defer to the store.
	if _, err := ev.c.path(coll, ev.env.alias(), segs, mod, nil, "", 0); err != nil {
		return evVal{}, err
	}
	return evVal{}, ErrNeedsStore
}

func (ev *evaluator) scalarArg(o Operand) (sv, error) {
	v, err := ev.operand(o)
	if err != nil {
		return sv{}, err
	}
	if v.multi {
		return sv{}, invalid("Invalid filter: function arguments must be single-valued.")
	}
	return v.items[0], nil
}

func (ev *evaluator) call(o *Call) (evVal, error) {
	// Compile validates arity and argument kinds.
	if _, err := ev.c.call(o); err != nil {
		return evVal{}, err
	}
	var args []sv
	for _, a := range o.Args {
		x, err := ev.scalarArg(a)
		if err != nil {
			return evVal{}, err
		}
		args = append(args, x)
	}
	var out any
	switch o.Name {
	case "geoDistance":
		var f [4]float64
		for i, a := range args {
			n := toNumeric(a)
			switch n.v.(type) {
			case int64, float64:
				f[i] = toFloat(n.v)
			default:
				return evVal{items: []sv{{}}, strict: true, guard: true}, nil
			}
		}
		out = geoDistance(f[0], f[1], f[2], f[3])
	case "strftime":
		if len(args) > 2 {
			return evVal{}, ErrNeedsStore
		}
		t := sv{strata.FormatDate(ev.env.now()), affNone}
		if len(args) > 1 {
			t = args[1]
		}
		s, err := strftime(textOf(args[0].v), t.v)
		if err != nil {
			return evVal{}, err
		}
		out = s
	}
	v := one(out, affNone)
	v.strict = true
	return v, nil
}

func radians(d float64) float64 { return d * math.Pi / 180 }

// geoDistance is the dialect's formula (spherical law of cosines, km).
func geoDistance(lonA, latA, lonB, latB float64) float64 {
	x := math.Cos(radians(latA))*math.Cos(radians(latB))*math.Cos(radians(lonB)-radians(lonA)) + math.Sin(radians(latA))*math.Sin(radians(latB))
	return 6371 * math.Acos(math.Max(-1, math.Min(1, x)))
}

var timeLayouts = []string{
	"2006-01-02 15:04:05.000", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02",
	"2006-01-02T15:04:05.000", "2006-01-02T15:04:05", "2006-01-02T15:04",
}

// strftime implements the common subset of SQLite's strftime for text
// times; anything else needs the store.
func strftime(format string, t any) (string, error) {
	var tm time.Time
	switch v := t.(type) {
	case nil:
		return "", nil
	case string:
		s := strings.TrimSuffix(strings.TrimSpace(v), "Z")
		ok := false
		for _, l := range timeLayouts {
			if p, err := time.Parse(l, s); err == nil {
				tm, ok = p, true
				break
			}
		}
		if s == "" {
			return "", nil // SQLite: NULL time, coalesced to ""
		}
		if !ok {
			return "", ErrNeedsStore
		}
	default:
		return "", ErrNeedsStore
	}
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			b.WriteByte(format[i])
			continue
		}
		i++
		if i >= len(format) {
			return "", ErrNeedsStore
		}
		switch format[i] {
		case 'd':
			b.WriteString(tm.Format("02"))
		case 'H':
			b.WriteString(tm.Format("15"))
		case 'm':
			b.WriteString(tm.Format("01"))
		case 'M':
			b.WriteString(tm.Format("04"))
		case 'S':
			b.WriteString(tm.Format("05"))
		case 'Y':
			b.WriteString(tm.Format("2006"))
		case 'j':
			b.WriteString(tm.Format("002"))
		case 'w':
			b.WriteString(strconv.Itoa(int(tm.Weekday())))
		case 'F':
			b.WriteString(tm.Format("2006-01-02"))
		case 'T':
			b.WriteString(tm.Format("15:04:05"))
		case '%':
			b.WriteByte('%')
		default:
			return "", ErrNeedsStore
		}
	}
	return b.String(), nil
}
