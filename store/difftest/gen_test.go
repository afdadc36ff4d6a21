package difftest

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/strata-run/strata"
)

// schema resolves collections by id or case-insensitive name.
type schema []*strata.Collection

func (s schema) Collection(idOrName string) *strata.Collection {
	for _, c := range s {
		if c.ID == idOrName || strings.EqualFold(c.Name, idOrName) {
			return c
		}
	}
	return nil
}

func field(name, typ string, opts ...func(*strata.Field)) *strata.Field {
	f := &strata.Field{ID: strata.DefaultFieldID(typ, name), Name: name, Type: typ}
	for _, o := range opts {
		o(f)
	}
	return f
}

func idField() *strata.Field {
	return field("id", strata.FieldText, func(f *strata.Field) { f.System, f.PrimaryKey = true, true })
}

func hidden(f *strata.Field) { f.Hidden = true }

func relTo(id string, n int) func(*strata.Field) {
	return func(f *strata.Field) { f.CollectionID, f.MaxSelect = id, n }
}

func autodate(update bool) func(*strata.Field) {
	return func(f *strata.Field) { f.OnCreate, f.OnUpdate = true, update }
}

func ptr(s string) *string { return &s }

// collections returns an auth collection "people" and a base collection
// "items" with one field of every filterable type, relations to people
// (single and multiple) and to itself.
func collections() (people, items *strata.Collection) {
	now := "2024-01-01 00:00:00.000Z"
	people = &strata.Collection{ID: "pbc_people", Name: "people", Type: strata.CollectionAuth, Created: now, Updated: now,
		// Joined people rows must pass this rule in client filters.
		ListRule: ptr("verified = true || age > 5"),
		Fields: []*strata.Field{idField(), field("email", strata.FieldEmail), field("emailVisibility", strata.FieldBool),
			field("verified", strata.FieldBool), field("password", strata.FieldPassword, hidden),
			field("tokenKey", strata.FieldText, hidden), field("name", strata.FieldText), field("age", strata.FieldNumber)},
		Indexes: []string{}}
	items = &strata.Collection{ID: "pbc_items", Name: "items", Type: strata.CollectionBase, Created: now, Updated: now,
		ListRule: ptr(""),
		Fields: []*strata.Field{idField(), field("title", strata.FieldText), field("n", strata.FieldNumber),
			field("flag", strata.FieldBool), field("when", strata.FieldDate),
			field("status", strata.FieldSelect, func(f *strata.Field) { f.Values, f.MaxSelect = statuses, 1 }),
			field("tags", strata.FieldSelect, func(f *strata.Field) { f.Values, f.MaxSelect = tagValues, 4 }),
			field("meta", strata.FieldJSON), field("owner", strata.FieldRelation, relTo("pbc_people", 1)),
			field("readers", strata.FieldRelation, relTo("pbc_people", 5)),
			field("parent", strata.FieldRelation, relTo("pbc_items", 1)), field("email", strata.FieldEmail),
			field("secret", strata.FieldText, hidden),
			field("created", strata.FieldAutodate, autodate(false)), field("updated", strata.FieldAutodate, autodate(true))},
		Indexes: []string{}}
	return people, items
}

// Value pools. Texts mix case, digits that look like numbers, LIKE
// wildcards and the escape character, and non-ASCII letters whose case
// SQLite's LIKE and LOWER do not fold.
var (
	texts = []string{"", "a", "A", "abc", "ABC", "Abc", "aBc", "10", "9", "1.5", "-3", "0", "+5", " 7", "1e3", ".5",
		"x_y", "x%y", "50%", "%", "_", `\`, `a\b`, `a\%`, "null", "true", "false", "é", "É", "café", "CAFÉ",
		"straße", "STRASSE", "Äpfel", "äpfel", "😀", "a😀b", "Zebra", "zebra", "z", "Z", "~", "a b", "2024-01-05",
		"1e400", "-1e400", "1e-400", "Infinity", "NaN", "0x10", "5.", "-0", "9223372036854775808", "%\\"}
	numbers   = []float64{0, 1, -1, 1.5, -2.5, 10, 9, 100, 0.1, 1000, -0.5, 123456.789, 1e15, 2}
	numberSrc = []string{"0", "1", "-1", "1.5", "-2.5", "10", "9", "100", "0.1", "1000", "-0.5", "2", "0.0", "1e3", "2024"}
	dates     = []string{"", "2024-01-05 10:00:00.000Z", "2023-12-31 23:59:59.999Z", "2024-01-01 00:00:00.000Z",
		"2024-02-29 12:30:45.123Z", "1999-12-31 23:59:59.999Z", "2099-12-31 23:59:59.999Z", "0001-01-01 00:00:00.000Z",
		"2024-01-05 10:00:00.001Z", "2024-12-30 08:00:00.000Z", "2021-01-03 00:00:00.000Z"}
	statuses  = []string{"draft", "Draft", "live", "é", "10", "9"}
	tagValues = []string{"a", "A", "b", "10", "9", "x_y", "é", "É", "50%"}
	emails    = []string{"", "alice@x.com", "Alice@X.com", "bob@y.org", "élan@z.fr", "o_k@x.com", "50%@x.com", "zed@a.io"}
)

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// some returns up to max distinct items of pool.
func some(r *rand.Rand, pool []string, max int) []string {
	out := []string{}
	for _, i := range r.Perm(len(pool))[:r.IntN(max+1)] {
		out = append(out, pool[i])
	}
	return out
}

func randJSON(r *rand.Rand, depth int) any {
	switch r.IntN(9) {
	case 0:
		return nil
	case 1:
		return pick(r, texts)
	case 2:
		return pick(r, numbers)
	case 3:
		return r.IntN(2) == 0
	case 4, 5:
		if depth > 0 {
			return []any{randJSON(r, depth-1), pick(r, numbers), pick(r, texts)}
		}
		return []any{}
	}
	if depth == 0 {
		return map[string]any{}
	}
	return map[string]any{"a": randJSON(r, depth-1), "b": []any{pick(r, numbers), pick(r, texts)}, "c": r.IntN(2) == 0}
}

const (
	numPeople = 10
	numItems  = 40
)

func personID(i int) string { return fmt.Sprintf("p%02d", i) }
func itemID(i int) string   { return fmt.Sprintf("i%03d", i) }

func genPeople(r *rand.Rand, c *strata.Collection) []*strata.Record {
	var out []*strata.Record
	for i := range numPeople {
		rec := strata.NewRecord(c)
		rec.Data["id"] = personID(i)
		rec.Data["email"] = pick(r, emails)
		rec.Data["emailVisibility"] = r.IntN(2) == 0
		rec.Data["verified"] = r.IntN(2) == 0
		rec.Data["tokenKey"] = fmt.Sprintf("tk%d", i)
		rec.Data["name"] = pick(r, texts)
		rec.Data["age"] = pick(r, numbers)
		out = append(out, rec)
	}
	return out
}

func genItems(r *rand.Rand, c *strata.Collection) []*strata.Record {
	var people []string
	for i := range numPeople {
		people = append(people, personID(i))
	}
	relID := func(pool func(int) string, n int) string {
		switch r.IntN(6) {
		case 0:
			return ""
		case 1:
			return "missing" // a dangling relation
		}
		return pool(r.IntN(n))
	}
	var out []*strata.Record
	for i := range numItems {
		rec := strata.NewRecord(c)
		rec.Data["id"] = itemID(i)
		rec.Data["title"] = pick(r, texts)
		rec.Data["n"] = pick(r, numbers)
		rec.Data["flag"] = r.IntN(2) == 0
		rec.Data["when"] = pick(r, dates)
		if r.IntN(4) > 0 {
			rec.Data["status"] = pick(r, statuses)
		}
		rec.Data["tags"] = some(r, tagValues, 3)
		rec.Data["meta"] = randJSON(r, 2)
		rec.Data["owner"] = relID(personID, numPeople)
		rec.Data["readers"] = some(r, people, 3)
		rec.Data["parent"] = relID(itemID, numItems)
		rec.Data["email"] = pick(r, emails)
		rec.Data["secret"] = pick(r, texts)
		rec.Data["created"] = pick(r, dates[1:])
		rec.Data["updated"] = pick(r, dates[1:])
		out = append(out, rec)
	}
	return out
}

// Operands. Field paths cover every field type, modifiers, relation
// paths (single, multiple, two hops, back-relation) and @collection.
var (
	fieldOps = []string{"title", "n", "flag", "when", "status", "tags", "meta", "owner", "readers", "parent", "email",
		"created", "updated", "id", "secret"}
	pathOps = []string{"title:lower", "email:lower", "status:lower", "tags:length", "tags:each", "readers:length",
		"readers:each", "tags:lower", "meta.a", "meta.b", "meta.b.0", "meta.b.1", "meta.c", "meta.0", "meta.1", "meta.a.b.0",
		"meta.a:lower", "owner.id", "owner.name", "owner.email", "owner.age", "owner.verified", "owner.name:lower",
		"readers.name", "readers.age", "readers.id", "readers.email", "readers.verified", "parent.title", "parent.n",
		"parent.owner.name", "parent.tags", "parent.tags:each", "parent.when", "parent.flag", "parent.meta.a",
		"items_via_parent.title", "items_via_parent.n", "items_via_parent.id"}
	collectionOps = []string{"@collection.people.name", "@collection.people.age", "@collection.items:x.n",
		"@collection.items:x.title"}
	requestOps = []string{"@request.auth.id", "@request.auth.name", "@request.auth.email", "@request.auth.age",
		"@request.auth.verified", "@request.body.a", "@request.body.n", "@request.body.list:each",
		"@request.body.list:length", "@request.body.missing", "@request.body.title:lower", "@request.query.q",
		"@request.method", "@request.context", "@request.body.a:isset", "@request.body.obj.k"}
	constOps = []string{"null", "true", "false", "NULL", "True"}
	// Date macros change while the test runs, so they are only ordered
	// against stored dates, which are all years away from today.
	macroOps  = []string{"@now", "@todayStart", "@todayEnd", "@yesterday", "@tomorrow", "@monthStart", "@monthEnd", "@yearStart", "@yearEnd"}
	dateOps   = []string{"when", "created", "updated", "parent.when", "items_via_parent.when"}
	macroCmps = []string{"<", "<=", ">", ">=", "=", "!=", "?<", "?>=", "?="}
	funcOps   = []string{"strftime('%Y-%m', when)", "strftime('%d', created)", "strftime('%Y', parent.when)",
		"strftime('%H:%M:%S', when)", "strftime('%j', when)", "strftime('%W', when)", "strftime('%f', when)",
		"strftime('%Y%%', when)", "strftime('%Y-%m-%d', when, '+1 day')", "strftime('%Y-%m', when, 'start of month')",
		"strftime('%m', when, '-1 month')", "strftime('%Y-%m-%d %H', when, '+36 hours', 'start of day')",
		"strftime('%Y-%m-%d', when, '+1 year')", "strftime('%s', created)", "strftime('%w %u %e %k', when)",
		"strftime('%F %T %R', updated)", "strftime('%q', when)", "strftime('%Y', '2024-02-31')"}
	ops = []string{"=", "!=", ">", ">=", "<", "<=", "~", "!~", "?=", "?!=", "?>", "?>=", "?<", "?<=", "?~", "?!~"}
)

func quote(r *rand.Rand, s string) string {
	if r.IntN(2) == 0 && !strings.Contains(s, "'") {
		return "'" + strings.ReplaceAll(s, `\`, `\\`) + "'"
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// operand returns a random operand; restricted filters (client filters)
// may not use @request or @collection.
func operand(r *rand.Rand, restricted bool) string {
	for {
		switch r.IntN(12) {
		case 0, 1, 2:
			return pick(r, fieldOps)
		case 3, 4:
			return pick(r, pathOps)
		case 5, 6:
			return quote(r, pick(r, texts))
		case 7:
			return pick(r, numberSrc)
		case 8:
			if r.IntN(2) == 0 {
				return quote(r, pick(r, dates))
			}
			return pick(r, constOps)
		case 9:
			return pick(r, funcOps)
		case 10:
			if !restricted {
				return pick(r, requestOps)
			}
		case 11:
			if !restricted && r.IntN(3) == 0 {
				return pick(r, collectionOps)
			}
		}
	}
}

func expr(r *rand.Rand, depth int, restricted bool) string {
	if depth > 0 && r.IntN(3) == 0 {
		j := " && "
		if r.IntN(2) == 0 {
			j = " || "
		}
		return "(" + expr(r, depth-1, restricted) + j + expr(r, depth-1, restricted) + ")"
	}
	switch r.IntN(40) {
	case 0:
		return pick(r, dateOps) + " " + pick(r, macroCmps) + " " + pick(r, macroOps)
	case 1:
		return pick(r, macroOps) + " " + pick(r, macroCmps) + " " + pick(r, dateOps)
	case 2:
		return "n " + pick(r, macroCmps) + " @year"
	}
	if r.IntN(40) == 0 {
		// Go's and the engines' trigonometry differ in the last digits, so
		// distances are only compared with round numbers.
		return fmt.Sprintf("geoDistance(n, 1, 2, 3) %s %d", pick(r, ops[2:6]), 100*r.IntN(20))
	}
	return operand(r, restricted) + " " + pick(r, ops) + " " + operand(r, restricted)
}

// Sort keys: single-valued fields, relation paths, JSON paths and :lower.
var sortKeys = []string{"title", "n", "flag", "when", "status", "email", "owner", "owner.name", "owner.age",
	"parent.title", "parent.n", "parent.owner.name", "title:lower", "email:lower", "meta.a", "meta", "meta.b.0",
	"created", "updated", "@rowid"}

// sortSpec returns a sort and whether it orders rows totally (ends with id).
func sortSpec(r *rand.Rand) (string, bool) {
	if r.IntN(8) == 0 {
		return "", false
	}
	var keys []string
	for n := 1 + r.IntN(3); n > 0; n-- {
		k := pick(r, sortKeys)
		if r.IntN(2) == 0 {
			k = "-" + k
		}
		keys = append(keys, k)
	}
	total := r.IntN(5) > 0
	if total {
		keys = append(keys, pick(r, []string{"id", "-id"}))
	}
	return strings.Join(keys, ","), total
}
