package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/strata-run/strata"
	"github.com/strata-run/strata/store/postgres"
	"github.com/strata-run/strata/store/storetest"
)

// baseDSN is the test server; STRATA_TEST_PG overrides it. A server that
// cannot be reached fails the test: CI must never skip PostgreSQL.
func baseDSN() string {
	if v := os.Getenv("STRATA_TEST_PG"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// testSchema creates a fresh schema for one test, dropped in Cleanup, and
// returns a DSN whose search_path selects it (river's TestSchema pattern).
func testSchema(tb testing.TB) string {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, baseDSN())
	if err != nil {
		tb.Fatalf("PostgreSQL is required (run `make services`): %v", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	name := "strata_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), baseDSN())
		if err != nil {
			tb.Errorf("drop schema: %v", err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE"); err != nil {
			tb.Errorf("drop schema: %v", err)
		}
	})
	return baseDSN() + "&search_path=" + name
}

func open(tb testing.TB) strata.Store {
	tb.Helper()
	s, err := postgres.Open(context.Background(), testSchema(tb), postgres.Options{MaxConns: 8})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, open) }
