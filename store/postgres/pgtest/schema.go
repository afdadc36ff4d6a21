package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// BaseDSN is the shared test server (the machine's PostgreSQL on
// 127.0.0.1:5432); STRATA_TEST_PG overrides it.
func BaseDSN() string {
	if v := os.Getenv("STRATA_TEST_PG"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// Schema creates a fresh schema on BaseDSN for one test, dropped in
// Cleanup, and returns a DSN whose search_path selects it, so tests in
// parallel processes never see each other's tables. A server that cannot
// be reached fails the test: CI must never skip PostgreSQL.
func Schema(tb testing.TB) string {
	tb.Helper()
	return BaseDSN() + "&search_path=" + NewSchema(tb)
}

// NewSchema creates a fresh schema on BaseDSN, dropped in Cleanup, and
// returns its name, for connections that cannot select it through the DSN
// (behind PgBouncer: see StartPgBouncer's ConnectQuery).
func NewSchema(tb testing.TB) string {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, BaseDSN())
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
		conn, err := pgx.Connect(context.Background(), BaseDSN())
		if err != nil {
			tb.Errorf("drop schema: %v", err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE"); err != nil {
			tb.Errorf("drop schema: %v", err)
		}
	})
	return name
}
