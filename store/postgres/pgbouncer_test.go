package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/store/postgres"
	"github.com/strata-run/strata/store/postgres/pgtest"
	"github.com/strata-run/strata/store/storetest"
)

// pgbouncerExecMode is the DSN parameter docs/pgbouncer.md prescribes:
// without it pgx's statement cache breaks under transaction pooling.
const pgbouncerExecMode = "&default_query_exec_mode=exec"

// startPgBouncer starts a private pgbouncer configured as docs/pgbouncer.md
// says, in front of a fresh schema, and returns the schema's name.
func startPgBouncer(tb testing.TB) (*pgtest.PgBouncer, string) {
	tb.Helper()
	schema := pgtest.NewSchema(tb)
	b := pgtest.StartPgBouncer(tb, pgtest.PgBouncerOptions{
		// Fewer server connections than the store's 8: clients share them.
		PoolSize:                3,
		ConnectQuery:            "SET search_path TO " + schema + "; SET statement_timeout = '30s'",
		IgnoreStartupParameters: []string{"statement_timeout"},
	})
	return b, schema
}

// TestConformancePgBouncer runs the conformance suite through PgBouncer in
// transaction mode, each test on its own pgbouncer and schema.
func TestConformancePgBouncer(t *testing.T) {
	storetest.Run(t, func(tb testing.TB) strata.Store {
		b, schema := startPgBouncer(tb)
		s, err := postgres.Open(context.Background(), b.DSN()+pgbouncerExecMode, postgres.Options{MaxConns: 8})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() })
		// The session settings come from connect_query, on every server
		// connection: the suite's tables land in the test's schema.
		var path, timeout string
		if err := s.Pool().QueryRow(context.Background(), `SELECT current_schema(), current_setting('statement_timeout')`).Scan(&path, &timeout); err != nil {
			tb.Fatal(err)
		}
		if path != schema || timeout != "30s" {
			tb.Fatalf("through pgbouncer: schema %q, statement_timeout %q; want %q, 30s", path, timeout, schema)
		}
		return s
	})
}

// TestPgBouncerStartupParameter: a search_path in the DSN, as used
// without PgBouncer, is refused by pgbouncer; the error says what to do.
func TestPgBouncerStartupParameter(t *testing.T) {
	b, schema := startPgBouncer(t)
	s, err := postgres.Open(context.Background(), b.DSN()+pgbouncerExecMode+"&search_path="+schema, postgres.Options{})
	if err == nil {
		s.Close()
		t.Fatal("search_path as a startup parameter went through pgbouncer")
	}
	if !strings.Contains(err.Error(), "docs/pgbouncer.md") {
		t.Fatalf("error without the hint: %v", err)
	}
}
