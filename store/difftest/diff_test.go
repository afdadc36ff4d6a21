package difftest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/strata-run/strata"
	"github.com/strata-run/strata/filter"
	"github.com/strata-run/strata/store/postgres"
	"github.com/strata-run/strata/store/postgres/pgtest"
	"github.com/strata-run/strata/store/sqlite"
)

// envInt reads an integer knob: STRATA_DIFFTEST_SEED explores other data
// and filters, STRATA_DIFFTEST_N runs more (or fewer) queries.
func envInt(tb testing.TB, name string, def uint64) uint64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return n
}

type stores struct {
	sqlite, pg strata.Store
	pgDSN      string
}

func openStores(t *testing.T) stores {
	t.Helper()
	ctx := context.Background()
	sl, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "data.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sl.Close() })
	dsn := pgtest.Schema(t)
	pg, err := postgres.Open(ctx, dsn, postgres.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	return stores{sl, pg, dsn}
}

// linguisticCollation gives the text columns of cols a linguistic
// collation (ICU's root locale), as a database created with a locale such
// as en_US.UTF-8 has by default: the test machine's database uses C.UTF-8,
// whose order happens to be byte order and so would hide a query relying on
// the default collation where SQLite's byte order is required.
func linguisticCollation(t *testing.T, dsn string, cols []*strata.Collection) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu')`).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Log("PostgreSQL has no ICU collations: text columns keep the database's collation")
		return
	}
	for _, c := range cols {
		for _, f := range c.Fields {
			if f.Name == "id" || f.IsMultiple() || f.Type == strata.FieldNumber || f.Type == strata.FieldBool ||
				f.Type == strata.FieldJSON || f.Type == strata.FieldGeoPoint {
				continue
			}
			q := fmt.Sprintf(`ALTER TABLE %q ALTER COLUMN %q TYPE text COLLATE "und-x-icu"`, c.Name, f.Name)
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
}

// seed writes the same collections and records to s.
func seed(t *testing.T, s strata.Store, cols []*strata.Collection, recs []*strata.Record) {
	t.Helper()
	_, err := s.Write(context.Background(), func(tx strata.Tx) error {
		for _, c := range cols {
			if err := tx.CreateCollection(context.Background(), c); err != nil {
				return err
			}
		}
		for _, r := range recs {
			if err := tx.InsertRecord(context.Background(), r); err != nil {
				return fmt.Errorf("insert %s: %w", r.ID(), err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// request is what @request resolves to: auth is signed in.
func request(auth *strata.Record) *strata.RequestInfo {
	return &strata.RequestInfo{Auth: auth, Method: "GET", Context: strata.ContextDefault,
		Query: map[string]string{"q": "abc"},
		Body: map[string]any{"a": "abc", "n": 5.0, "list": []any{"a", "10", 1.5}, "title": "ABC",
			"obj": map[string]any{"k": "v"}}}
}

// result is what one store answered for one query.
type result struct {
	ids   []string
	count int
	err   error
}

func run(s strata.Store, q *strata.RecordQuery, withCount bool) result {
	ctx := context.Background()
	recs, err := s.FindRecords(ctx, q)
	if err != nil {
		return result{err: err}
	}
	res := result{ids: make([]string, len(recs)), count: -1}
	for i, r := range recs {
		res.ids[i] = r.ID()
	}
	if withCount {
		res.count, res.err = s.CountRecords(ctx, q)
	}
	return res
}

// errCode is the strata error code of err, or "driver" for anything else:
// a query both stores reject with the same code agrees.
func errCode(err error) string {
	var se *strata.Error
	if errors.As(err, &se) {
		return string(se.Code)
	}
	return "driver"
}

// TestSQLiteVsPostgres runs generated filters and sorts on both stores
// over identical data and compares the returned ids: in order when the
// sort is total, as sets otherwise. Counts are compared on a share of the
// queries to keep the run short.
func TestSQLiteVsPostgres(t *testing.T) {
	t.Parallel()
	seedN := envInt(t, "STRATA_DIFFTEST_SEED", 6)
	n := int(envInt(t, "STRATA_DIFFTEST_N", 2000))
	if testing.Short() {
		n /= 8
	}
	r := rand.New(rand.NewPCG(seedN, 0x5eed))

	people, items := collections()
	sch := schema{people, items}
	var recs []*strata.Record
	peopleRecs := genPeople(r, people)
	itemRecs := genItems(r, items)
	recs = append(append(recs, peopleRecs...), itemRecs...)
	st := openStores(t)
	seed(t, st.sqlite, sch, recs)
	seed(t, st.pg, sch, recs)
	linguisticCollation(t, st.pgDSN, sch)

	req := request(peopleRecs[1])

	byID := map[string]*strata.Record{}
	for _, rc := range itemRecs {
		byID[rc.ID()] = rc
	}

	var failures []string
	var stats struct{ failed, empty, some int }
	for i := range n {
		restricted := r.IntN(4) == 0
		src := expr(r, 3, restricted)
		sortSrc, total := sortSpec(r)
		q := &strata.RecordQuery{Collection: items, Schema: sch, Request: req,
			Filters: []strata.Filter{{Expr: src, Restricted: restricted}}, Sort: sortSrc, SortRestricted: restricted}
		if r.IntN(5) == 0 {
			// A rule ANDed with the client's filter, as a list request runs.
			rule := expr(r, 1, false)
			q.Filters = append(q.Filters, strata.Filter{Expr: rule})
			src += "  [rule: " + rule + "]"
		}
		if total && r.IntN(6) == 0 {
			q.Limit, q.Offset = 1+r.IntN(10), r.IntN(5)
		}
		withCount := i%4 == 0
		// The stores answer concurrently: SQLite works in this process,
		// PostgreSQL in its own, so the run takes about as long as the
		// slower of the two.
		pgDone := make(chan result, 1)
		go func() { pgDone <- run(st.pg, q, withCount) }()
		a := run(st.sqlite, q, withCount)
		b := <-pgDone
		switch {
		case a.err != nil:
			stats.failed++
		case len(a.ids) == 0:
			stats.empty++
		case len(a.ids) < numItems:
			stats.some++
		}
		if msg := compare(a, b, total); msg != "" {
			failures = append(failures, fmt.Sprintf("#%d filter %s\n  restricted=%v sort=%q limit=%d offset=%d\n  %s\n  eval: %s",
				i, src, restricted, sortSrc, q.Limit, q.Offset, msg, evalIDs(q.Filters[0].Expr, items, sch, req, restricted, itemRecs)))
			if len(failures) >= 40 {
				break
			}
		}
	}
	t.Logf("%d queries: %d rejected by both stores, %d matching nothing, %d matching some but not all records",
		n, stats.failed, stats.empty, stats.some)
	// A generator that mostly writes invalid or trivial filters would
	// test little.
	if stats.failed > n/3 || stats.some < n/3 {
		t.Errorf("too few useful queries")
	}
	if len(failures) > 0 {
		t.Fatalf("seed %d: %d queries differ between SQLite and PostgreSQL (rerun with STRATA_DIFFTEST_SEED=%d):\n%s",
			seedN, len(failures), seedN, strings.Join(failures, "\n"))
	}
}

func compare(a, b result, total bool) string {
	if a.err != nil || b.err != nil {
		if a.err != nil && b.err != nil && errCode(a.err) == errCode(b.err) {
			return ""
		}
		return fmt.Sprintf("errors differ:\n    sqlite: %v\n    pg:     %v", a.err, b.err)
	}
	if a.count != b.count {
		return fmt.Sprintf("counts differ: sqlite %d, pg %d", a.count, b.count)
	}
	x, y := a.ids, b.ids
	if !total {
		x, y = slices.Sorted(slices.Values(x)), slices.Sorted(slices.Values(y))
	}
	if slices.Equal(x, y) {
		return ""
	}
	onlyA, onlyB := minus(x, y), minus(y, x)
	if len(onlyA) == 0 && len(onlyB) == 0 {
		return fmt.Sprintf("order differs:\n    sqlite: %v\n    pg:     %v", x, y)
	}
	return fmt.Sprintf("ids differ: only sqlite %v, only pg %v", onlyA, onlyB)
}

func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// evalIDs is filter.Eval's answer for a differing query (a third opinion
// for deciding which store is wrong), or why it has none.
func evalIDs(src string, c *strata.Collection, sch strata.Schema, req *strata.RequestInfo, restricted bool, recs []*strata.Record) string {
	e, err := filter.Parse(src)
	if err != nil {
		return err.Error()
	}
	env := &filter.Env{Collection: c, Schema: sch, Request: req, Restricted: restricted, Now: time.Now()}
	var ids []string
	for _, rc := range recs {
		env.Stored = rc
		ok, err := filter.Eval(e, env, rc)
		if err != nil {
			return "n/a (" + err.Error() + ")"
		}
		if ok {
			ids = append(ids, rc.ID())
		}
	}
	return fmt.Sprint(ids)
}

// TestEqualFold checks the store-level case-insensitive match used for
// e-mail look-ups: ASCII letters only, as SQLite's NOCASE.
func TestEqualFold(t *testing.T) {
	t.Parallel()
	people, items := collections()
	p1, p2 := strata.NewRecord(people), strata.NewRecord(people)
	p1.Data["id"], p1.Data["email"] = "p1", "élan@z.fr"
	p2.Data["id"], p2.Data["email"] = "p2", "Ann@Example.com"
	st := openStores(t)
	for _, s := range []strata.Store{st.sqlite, st.pg} {
		seed(t, s, []*strata.Collection{people, items}, []*strata.Record{p1, p2})
	}
	for _, tc := range []struct{ email, want string }{
		{"ann@example.COM", "[p2]"}, {"élan@Z.FR", "[p1]"}, {"ÉLAN@z.fr", "[]"}, {"ann@example.co", "[]"},
	} {
		q := &strata.RecordQuery{Collection: people, EqualFold: map[string]string{"email": tc.email}}
		for name, s := range map[string]strata.Store{"sqlite": st.sqlite, "pg": st.pg} {
			res := run(s, q, true)
			if got := fmt.Sprint(res.ids); got != tc.want || res.err != nil || res.count != len(res.ids) {
				t.Errorf("%s: EqualFold %q = %s (count %d, %v), want %s", name, tc.email, got, res.count, res.err, tc.want)
			}
		}
	}
}
