package difftest

import (
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/filter"
)

// TestDebugFilter runs one filter and sort on both stores with the seed's
// data, logs each store's answer with the compiled PostgreSQL condition and
// requires them to agree. By default it is a worked example of the
// differences the differential test found (mixed-type comparison, case
// folding beyond ASCII, byte-order collation); set STRATA_DIFFTEST_FILTER
// (and STRATA_DIFFTEST_SORT) to look into a difference TestSQLiteVsPostgres
// reports (STRATA_DIFFTEST_DATA=1 also logs the generated items).
func TestDebugFilter(t *testing.T) {
	src, sort := os.Getenv("STRATA_DIFFTEST_FILTER"), os.Getenv("STRATA_DIFFTEST_SORT")
	if src == "" {
		src, sort = `title ~ "é" || title < "a" || n > "1e3"`, "title,id"
	}
	seedN := envInt(t, "STRATA_DIFFTEST_SEED", 6)
	r := rand.New(rand.NewPCG(seedN, 0x5eed))
	people, items := collections()
	sch := schema{people, items}
	peopleRecs, itemRecs := genPeople(r, people), genItems(r, items)
	recs := append(append([]*strata.Record{}, peopleRecs...), itemRecs...)
	st := openStores(t)
	seed(t, st.sqlite, sch, recs)
	seed(t, st.pg, sch, recs)
	linguisticCollation(t, st.pgDSN, sch)
	req := request(peopleRecs[1])
	q := &strata.RecordQuery{Collection: items, Schema: sch, Request: req,
		Filters: []strata.Filter{{Expr: src}}, Sort: sort}
	a, b := run(st.sqlite, q, true), run(st.pg, q, true)
	t.Logf("sqlite: %v %v", a.ids, a.err)
	t.Logf("pg:     %v %v", b.ids, b.err)
	e, err := filter.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	args := &filter.Args{Dialect: filter.Postgres}
	where, err := filter.Compile(e, &filter.Env{Dialect: filter.Postgres, Collection: items, Alias: "r", Schema: sch, Request: req}, args)
	sql, vals := args.Bind(where)
	t.Logf("pg where: %s %v %v", sql, vals, err)
	if os.Getenv("STRATA_DIFFTEST_DATA") != "" {
		for _, rc := range itemRecs {
			t.Logf("%s: %v", rc.ID(), rc.Data)
		}
	}
	if !slices.Equal(a.ids, b.ids) || a.count != b.count || (a.err == nil) != (b.err == nil) {
		t.Errorf("%s sorted by %q: the stores disagree", src, sort)
	}
}
