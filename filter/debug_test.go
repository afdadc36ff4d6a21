package filter

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/strata-run/strata"
)

// explainDiff reports per comparison leaf whether SQL and Eval agree on rc.
func explainDiff(t *testing.T, db *sql.DB, e Expr, env *Env, rc *strata.Record) string {
	var out []string
	var walk func(Expr)
	walk = func(e Expr) {
		switch e := e.(type) {
		case *Logical:
			walk(e.Left)
			walk(e.Right)
		case *Compare:
			args := &Args{}
			where, err := Compile(e, env, args)
			if err != nil {
				return
			}
			var n int
			q, vals := args.Bind(fmt.Sprintf("SELECT count(*) FROM items WHERE %s AND id = %s", where, args.Add(rc.ID())))
			if err := db.QueryRow(q, vals...).Scan(&n); err != nil {
				t.Fatal(err)
			}
			got, err := Eval(e, env, rc)
			if (n == 1) != got || err != nil {
				out = append(out, fmt.Sprintf("  leaf %s: sql %v eval %v %v", String(e), n == 1, got, err))
			}
		}
	}
	walk(e)
	return strings.Join(out, "\n")
}
