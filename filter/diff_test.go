package filter

import (
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata"
)

func diffCollection() *strata.Collection {
	return &strata.Collection{ID: "pbc_items", Name: "items", Type: strata.CollectionBase, ListRule: rule(""), Fields: []*strata.Field{
		fld("id", strata.FieldText), fld("title", strata.FieldText), fld("views", strata.FieldNumber),
		fld("flag", strata.FieldBool), fld("labels", strata.FieldSelect, multi(4)), fld("meta", strata.FieldJSON),
		fld("created", strata.FieldDate), fld("owner", strata.FieldRelation, rel("pbc_items", 1)),
	}}
}

var (
	diffTexts   = []string{"", "a", "A", "abc", "ABC", "10", "9", "1.5", "-3", "x_y", "50%", "a\\b", "%", "_", "null", "true", " 7", "é", "1e400", "-1e-400"}
	diffNumbers = []string{"0", "1", "-1", "10", "9", "1.5", "-3", "100"}
	diffDates   = []string{"", "2024-01-05 10:00:00.000Z", "2023-12-31 23:59:59.999Z", "2024-02-29 00:00:00.000Z"}
)

func randData(r *rand.Rand, i int) map[string]any {
	pick := func(s []string) string { return s[r.Intn(len(s))] }
	var labels []string
	for n := r.Intn(4); n > 0; n-- {
		labels = append(labels, pick(diffTexts[:10]))
	}
	var meta any
	switch r.Intn(5) {
	case 0:
		meta = nil
	case 1:
		meta = pick(diffTexts)
	case 2:
		meta = float64(r.Intn(20) - 5)
	case 3:
		meta = map[string]any{"a": pick(diffTexts), "b": []any{float64(r.Intn(5)), "x"}}
	case 4:
		meta = []any{pick(diffTexts), 1.5, true}
	}
	views := float64(r.Intn(21) - 5)
	if r.Intn(4) == 0 {
		views += 0.5
	}
	return map[string]any{
		"id": fmt.Sprintf("r%02d", i), "title": pick(diffTexts), "views": views, "flag": r.Intn(2) == 0,
		"labels": labels, "meta": meta, "created": pick(diffDates), "owner": fmt.Sprintf("r%02d", r.Intn(5)),
	}
}

func randOperand(r *rand.Rand) string {
	pick := func(s []string) string { return s[r.Intn(len(s))] }
	quote := func(s string) string {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	switch r.Intn(9) {
	case 0, 1:
		return pick([]string{"title", "views", "flag", "labels", "meta", "created", "owner", "id", "owner.id"})
	case 2:
		return pick([]string{"title:lower", "labels:length", "labels:each", "meta.a", "meta.b.0", "meta.b.1", "meta.0", "owner.id:lower"})
	case 3:
		return quote(pick(diffTexts))
	case 4:
		return pick(diffNumbers)
	case 5:
		return pick([]string{"null", "true", "false", "NULL", "True", "@now", "@year", "@todayStart"})
	case 6:
		return pick([]string{"@request.body.a", "@request.body.b", "@request.body.list:each", "@request.body.list:length",
			"@request.body.a:isset", "@request.body.zz:isset", "@request.auth.id", "@request.body.title:changed",
			"@request.body.views:changed", "@request.body.a:lower", "@request.body.obj.k"})
	case 7:
		return pick([]string{"strftime('%Y-%m', created)", "strftime('%d', created)"})
	}
	return quote(pick(diffDates))
}

var diffOps = []string{"=", "!=", ">", ">=", "<", "<=", "~", "!~", "?=", "?!=", "?>", "?>=", "?<", "?<=", "?~", "?!~"}

func randExpr(r *rand.Rand, depth int) string {
	if depth > 0 && r.Intn(3) == 0 {
		j := " && "
		if r.Intn(2) == 0 {
			j = " || "
		}
		return "(" + randExpr(r, depth-1) + j + randExpr(r, depth-1) + ")"
	}
	if r.Intn(20) == 0 {
		// Go's and SQLite's trigonometry differ in the last digits, so
		// distances are only compared against round thresholds.
		return fmt.Sprintf("geoDistance(views, 1, 2, 3) %s %d", diffOps[2+r.Intn(4)], 100*r.Intn(20))
	}
	return randOperand(r) + " " + diffOps[r.Intn(len(diffOps))] + " " + randOperand(r)
}

// TestDifferential checks that Compile on SQLite and Eval agree on random
// records and expressions.
func TestDifferential(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewSource(1))
	coll := diffCollection()
	schema := newSchema(coll)
	db := openDB(t)
	createTable(t, db, coll)
	var recs []*strata.Record
	for i := 0; i < 30; i++ {
		rc := rec(coll, randData(r, i))
		recs = append(recs, rc)
		insertRecord(t, db, rc)
	}
	stored := recs[3]
	req := &strata.RequestInfo{Auth: &strata.Record{Collection: coll, Data: map[string]any{"id": "r01"}},
		Body: map[string]any{"a": "abc", "b": 10.0, "list": []any{"a", "10", 1.5}, "title": stored.Data["title"], "views": 3.0, "obj": map[string]any{"k": "v"}}}
	now := time.Date(2024, 1, 6, 12, 0, 0, 0, time.UTC)
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := 0; i < n; i++ {
		src := randExpr(r, 3)
		e, err := Parse(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		env := &Env{Collection: coll, Schema: schema, Request: req, Now: now, Stored: stored}
		args := &Args{}
		where, cerr := Compile(e, env, args)
		if cerr != nil {
			if _, eerr := Eval(e, env, recs[0]); eerr == nil {
				t.Errorf("%s: Compile failed (%v), Eval did not", src, cerr)
			}
			continue
		}
		q, vals := args.Bind("SELECT id FROM items WHERE " + where)
		rows, err := db.Query(q, vals...)
		if err != nil {
			t.Fatalf("%s\n%s: %v", src, where, err)
		}
		sqlIDs := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			sqlIDs[id] = true
		}
		rows.Close()
		var diffs []string
		for _, rc := range recs {
			env.Stored = rc // SQL compares :changed with the row itself
			got, err := Eval(e, env, rc)
			if errors.Is(err, ErrNeedsStore) {
				break
			}
			if err != nil {
				t.Fatalf("%s: Eval: %v", src, err)
			}
			if got != sqlIDs[rc.ID()] {
				diffs = append(diffs, fmt.Sprintf("%s (sql %v, eval %v, data %v)\n%s", rc.ID(), sqlIDs[rc.ID()], got, rc.Data, explainDiff(t, db, e, env, rc)))
			}
		}
		if len(diffs) > 0 {
			sort.Strings(diffs)
			t.Errorf("%s\nSQL: %s\n%s", src, where, strings.Join(diffs, "\n"))
			if t.Failed() && len(diffs) > 0 {
				return
			}
		}
	}
}

func newRand() *rand.Rand { return rand.New(rand.NewSource(7)) }
